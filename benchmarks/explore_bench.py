"""Cost of a contrastive pair in SRPO's generative exploration: the paper's naive loop against
ssui_lib.srpo.explore's batched search, on the embedded model, in the same run.

    .venv/bin/python benchmarks/explore_bench.py [--samples 4] [--steps 5,6] [--k 2] [--max-samples 4]
        [--max-new-tokens 96] [--shots 1] [--temperature 1.0] [--naive-stop] [--json FILE]

The same samples, branch points, seed, temperature and per-step budget (``--max-samples``) for each:

naive       the paper as written: at each step, one continuation at a time (a separate generate call,
            n=1, one prompt), each to the end of the path *including the answer text* (v_T must
            contain A), verified with F, until one positive and one negative are found or the budget
            is spent.
naive+stop  (with --naive-stop) the same loop, but a continuation stops at "\\nAnswer:": F reads the
            verdict line only, so the answer text is never needed. Isolates the stop condition.
batched     ssui_lib.srpo.explore (until_pair): every (sample, step) prefix in one generate call with n=k
            continuations each (the text all prompts of a batch share — instructions and exemplars —
            is prefilled once, each prefix once more on top of it and shared by its k rows; all rows
            decode together), the stop string above, later rounds only for the prefixes still
            missing a positive or a negative.

Columns: generate calls, branches (continuations sampled), generated tokens (and per branch),
prefill tokens (prompt tokens the backend processed), wall time, pairs found, tokens and seconds per
contrastive pair, and the ratios naive / row of the per-pair and per-branch costs (higher = cheaper
than naive). Per-branch costs are always defined; per-pair ones only when both found a pair.
Sampling differs between the methods (different batches draw different random numbers), so the
pairs found differ too; per-pair costs compare them.
"""
from __future__ import annotations

import argparse
import json
import time

from ssui_lib.srpo import explore as ex
from ssui_lib.core.store import cache_key
from ssui_lib.data.bundled import load_bundled
from ssui_lib.models import SamplingParams, resolve_model
from ssui_lib.models.base import ChatModel
from ssui_lib.models.hf_lm import SHARED_PREFIX_MIN, shared_prefix_len


class Counting(ChatModel):
    """Wraps a backend: counts generate calls, generated tokens and prefill tokens."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.supports_images, self.supports_prefix = inner.supports_images, inner.supports_prefix
        self.calls = self.branches = self.gen_tokens = self.prefill_tokens = 0

    def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
        prefixes = prefixes or [""] * len(prompts)
        self.calls += 1
        self.branches += len(prompts) * params.n
        self.prefill_tokens += prefill_tokens(self.inner, prompts, prefixes, params.n)
        out = self.inner.generate(prompts, params, prefixes)
        self.gen_tokens += sum(g.n_tokens for row in out for g in row)
        return out


def prefill_tokens(inner, prompts, prefixes, n: int) -> int:
    """Prompt tokens the backend computes: per chunk of prompts (as hf_lm chunks them), the prefix
    all of them share once (when long enough to be shared), then each prompt's own remainder."""
    seqs = [inner._ids(inner.render(p, x)) for p, x in zip(prompts, prefixes)]
    per_chunk = max(1, inner.max_batch_rows // n)
    total = 0
    for i in range(0, len(seqs), per_chunk):
        chunk = seqs[i:i + per_chunk]
        shared = shared_prefix_len(chunk) if len(chunk) > 1 else 0
        shared = shared if shared >= SHARED_PREFIX_MIN else 0
        total += shared + sum(len(x) - shared for x in chunk)
    return total


def naive(model, samples, pool, cfg: ex.ExploreConfig, stop: tuple[str, ...]) -> int:
    """The paper's loop; returns the number of pairs found."""
    pairs = 0
    for s in samples:
        prompt = ex.cot_prompt(s, ex.pick_exemplars(s, pool, cfg.shots, cfg.seed))
        for i in cfg.steps:
            prefix = ex.step_prefix(s, i)
            found: set[int] = set()
            for j in range(cfg.max_samples):
                seed = int(cache_key(["naive", cfg.seed, s.id, i, j])[:8], 16)
                p = SamplingParams(n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, stop=stop, seed=seed)
                (g,), = model.generate([prompt], p, prefixes=[prefix])
                F = ex.verdict_F(s, prefix + g.text) if g.text.strip() and g.finish_reason != "length" else None
                if F is not None:  # unverified branches are never a positive nor a negative
                    found.add(int(F))
                if found == {0, 1}:
                    pairs += 1
                    break
    return pairs


def batched(model, samples, pool, cfg: ex.ExploreConfig) -> int:
    trees = list(ex.explore(model, samples, cfg, exemplar_pool=pool, progress=False))
    return ex.statistics(trees)["pairs"]


def measure(name, fn, inner) -> dict:
    m = Counting(inner)
    t = time.perf_counter()
    pairs = fn(m)
    wall = time.perf_counter() - t
    return {"method": name, "calls": m.calls, "branches": m.branches, "gen_tokens": m.gen_tokens, "prefill_tokens": m.prefill_tokens,
            "wall_s": wall, "pairs": pairs,
            "tokens_per_pair": m.gen_tokens / pairs if pairs else float("nan"),
            "s_per_pair": wall / pairs if pairs else float("nan")}


def _ratio(a: float, b: float) -> float:
    return a / b if b and a == a and b == b else float("nan")  # nan where either side found no pair


def table(rows: list[dict]) -> str:
    """The rows as text; ratios are naive / row (higher = cheaper than naive)."""
    base = rows[0]
    head = (f"{'method':11s} {'calls':>5s} {'branches':>8s} {'gen tok':>8s} {'tok/br':>7s} {'prefill tok':>11s} "
            f"{'wall s':>8s} {'pairs':>5s} {'tok/pair':>9s} {'s/pair':>8s} {'tok/pair x':>10s} {'s/pair x':>9s} "
            f"{'tok/br x':>8s} {'s/br x':>7s}")
    out = [head, "-" * len(head)]
    for r in rows:
        r["tokens_per_branch"] = r["gen_tokens"] / r["branches"]
        r["s_per_branch"] = r["wall_s"] / r["branches"]
        r["tokens_per_pair_ratio"] = _ratio(base["tokens_per_pair"], r["tokens_per_pair"])
        r["s_per_pair_ratio"] = _ratio(base["s_per_pair"], r["s_per_pair"])
        r["tokens_per_branch_ratio"] = _ratio(base["gen_tokens"] / base["branches"], r["tokens_per_branch"])
        r["s_per_branch_ratio"] = _ratio(base["wall_s"] / base["branches"], r["s_per_branch"])
        out.append(f"{r['method']:11s} {r['calls']:5d} {r['branches']:8d} {r['gen_tokens']:8d} {r['tokens_per_branch']:7.1f} "
                   f"{r['prefill_tokens']:11d} {r['wall_s']:8.1f} {r['pairs']:5d} {r['tokens_per_pair']:9.1f} "
                   f"{r['s_per_pair']:8.2f} {r['tokens_per_pair_ratio']:10.2f} {r['s_per_pair_ratio']:9.2f} "
                   f"{r['tokens_per_branch_ratio']:8.2f} {r['s_per_branch_ratio']:7.2f}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4, help="test-split samples (IRS and twins alternate)")
    ap.add_argument("--steps", default="5,6", help="branch points i")
    ap.add_argument("--k", type=int, default=2, help="batched: continuations per round")
    ap.add_argument("--max-samples", type=int, default=4, help="budget of continuations per step (both)")
    # 1.0, not the paper's 0.5: at 0.5 the 135M embedded model nearly always gives the same verdict
    # at a given step, so a small run finds almost no pairs and the per-pair costs are undefined.
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--naive-stop", action="store_true", help="also run the naive loop with the stop string")
    ap.add_argument("--json", help="write the rows to this file")
    a = ap.parse_args()

    test = load_bundled("test")
    irs, twins = [s for s in test if s.kind == "irs"], [s for s in test if s.kind == "twin"]
    samples = [x for pair in zip(irs, twins) for x in pair][:a.samples]
    pool = load_bundled("train")
    cfg = ex.ExploreConfig(mode="until_pair", k=a.k, max_samples=a.max_samples, temperature=a.temperature,
                           max_new_tokens=a.max_new_tokens, shots=a.shots, steps=ex.parse_steps(a.steps),
                           batch_samples=len(samples), seed=a.seed)
    inner = resolve_model("embedded")
    inner.generate([ex.cot_prompt(samples[0], [])], SamplingParams(max_new_tokens=2))  # warm-up
    print(f"{len(samples)} samples ({', '.join(s.id for s in samples)}), steps {list(cfg.steps)}, "
          f"budget {cfg.max_samples}/step, T={cfg.temperature}, max_new_tokens {cfg.max_new_tokens}, "
          f"{cfg.shots} shot(s), batched rounds of k={cfg.k}, seed {cfg.seed}", flush=True)
    rows = [measure("naive", lambda m: naive(m, samples, pool, cfg, ()), inner)]
    print(f"  naive done in {rows[-1]['wall_s']:.0f}s", flush=True)
    if a.naive_stop:
        rows.append(measure("naive+stop", lambda m: naive(m, samples, pool, cfg, ex.STOP), inner))
        print(f"  naive+stop done in {rows[-1]['wall_s']:.0f}s", flush=True)
    rows.append(measure("batched", lambda m: batched(m, samples, pool, cfg), inner))
    print(table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"config": cfg.to_dict(), "samples": [s.id for s in samples], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
