"""Which path does exploration branch? The two prefixes of SRPO Eq. 2 / Eq. 4, measured on one model.

``prefix = "reference"`` branches the dataset's reference path τ* (off-policy: every prefix τ₁:ᵢ₋₁
is written by the dataset); ``prefix = "sampled"`` first lets the model write its own path with
τ* and the exemplars D_c in context (Eq. 2) and branches *that* path (Eq. 4). This script runs
``ssui explore`` both ways on the same first N train samples, with the same settings (by default
the ``cpu`` profile's chapter 04), into ``OUT/reference`` and ``OUT/sampled`` (resumable: a rerun
reuses what finished), and prints one table:

* wall seconds, branches, generated tokens (the sampled path's own generation included where the
  exploration counts it), unverified branches (no verdict line, or cut off by the token limit);
* pairs per sample and generated tokens per pair;
* pair quality: the share of pairs for which an independent judge (default: the learned offline
  judge, path mode) finds the positive path τ₁:ᵢ₋₁ ⊕ τ⁺ safe and the negative path τ₁:ᵢ₋₁ ⊕ τ⁻ not
  safe — i.e. agrees with the exploration's outcome F that the pair points the right way.

    python scripts/compare_prefixes.py --limit 8 --out results/prefix_compare

Chapter 04 quotes the table this prints."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from ssui_lib.data.bundled import load_dataset
from ssui_lib.eval.judge import resolve_judge
from ssui_lib.srpo.explore import load_pairs

# chapter 04's settings in the cpu profile (book.toml [profiles.cpu.chapters."04"])
CPU_04 = {"mode": "until_pair", "k": "4", "max-samples": "8", "temperature": "1.0", "max-new-tokens": "160",
          "shots": "2", "steps": "4,5,6", "batch-samples": "8"}


def explore(prefix: str, out: Path, model: str, dataset: str, limit: int, seed: int) -> float:
    """Run ``ssui explore`` with one prefix; the wall seconds of this call (0 when it was done already)."""
    cmd = [sys.executable, "-m", "ssui_lib", "explore", "--model", model, "--dataset", dataset, "--out", str(out),
           "--prefix", prefix, "--limit", str(limit), "--seed", str(seed), "--no-progress"]
    for k, v in CPU_04.items():
        cmd += [f"--{k}", v]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def pair_quality(out: Path, dataset: str, judge_name: str) -> tuple[float, int]:
    """(share of pairs the judge orders as F does, number of pairs)."""
    rows, _ = load_pairs(out)
    if not rows:
        return float("nan"), 0
    samples = {s.id: s for s in load_dataset(dataset)}
    judge = resolve_judge(judge_name)
    ss = [samples[r.sample_id] for r in rows]
    pos = judge.judge(ss, [r.prefix + r.pos for r in rows], mode="path")
    neg = judge.judge(ss, [r.prefix + r.neg for r in rows], mode="path")
    agree = [bool(p.safe) and n.safe is False for p, n in zip(pos, neg)]
    return sum(agree) / len(agree), len(agree)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--dataset", default="bundled:train")
    ap.add_argument("--limit", type=int, default=8, help="the first N samples of the dataset")
    ap.add_argument("--judge", default="offline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/prefix_compare")
    a = ap.parse_args(argv)
    rows = []
    for prefix in ("reference", "sampled"):
        out = Path(a.out) / prefix
        took = explore(prefix, out, a.model, a.dataset, a.limit, a.seed)
        stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
        st = stats["statistics"]
        quality, n = pair_quality(out, a.dataset, a.judge)
        rows.append({"prefix": prefix, "samples": st["samples"], "wall s (exploration)": stats.get("wall_s", took),
                     "branches": st["branches"], "tokens": st["tokens"],
                     "unverified": f"{st['unverified']} ({st['unverified'] / max(st['branches'], 1):.0%})",
                     "pairs": st["pairs"], "pairs / sample": round(st["pairs_per_sample"], 3),
                     "tokens / pair": round(st["tokens_per_pair"]) if st["pairs"] else None,
                     f"pair quality ({a.judge} judge agrees, n)": f"{quality:.0%} ({n})" if n else "–"})
    print(f"Exploration prefixes on {a.model}, first {a.limit} samples of {a.dataset}, the cpu profile's chapter-04 "
          f"settings ({', '.join(f'{k} {v}' for k, v in CPU_04.items())}):\n")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
