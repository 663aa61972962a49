"""Second signal for the bundled set's text-only screen: the curation pipeline's check agent (the
embedded SmolLM2-135M by default) answers every IRS query with no picture and judges query + answer
as text alone (ssui_lib.curation stage 4, the same prompts and parser), then reports how often it
agrees with the hand screen recorded in ``provenance.screens``.

    python scripts/screen_text_only_model.py --out runs/text_only_screen.jsonl    # run or resume
    python scripts/screen_text_only_model.py --out runs/text_only_screen.jsonl --record   # + write screens

Calls are cached in ``<out>.cache.jsonl`` (a killed run resumes where it stopped). ``--record`` adds
a ``{"check": "text-only-model", ...}`` screen to the records of the part files named by ``--parts``
(default: the original three), replacing an earlier one of the same check.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ssui_lib.core.errors import SSUIError  # noqa: E402
from ssui_lib.core.store import JsonlCache, atomic_write_text  # noqa: E402
from ssui_lib.curation import CurationConfig, agent_text_judge, cached_generate  # noqa: E402
from ssui_lib.data.bundled import BUNDLED_DIR, load_bundled  # noqa: E402
from ssui_lib.models.base import SamplingParams  # noqa: E402
from ssui_lib.models.prompts import text_only_prompt  # noqa: E402

CHECK = "text-only-model"
BY = "curation check agent (embedded SmolLM2-135M)"
DEFAULT_PARTS = ("dangerous", "discrim", "moralcrime")


def hand_verdict(sample) -> str | None:
    """The last hand 'text-only' screen of a record ('pass'/'fail'), or None."""
    screens = [s for s in sample.provenance.screens if s.get("check") == "text-only"]
    return screens[-1]["verdict"] if screens else None


def run_screen(model, samples, cache_path: Path, cfg: CurationConfig, batch: int = 8) -> list[dict]:
    """The check agent's verdict per IRS sample (resumable through the cache at cache_path)."""
    cache = JsonlCache(cache_path)
    judge = agent_text_judge(model, cache, cfg)
    params = SamplingParams(max_new_tokens=cfg.answer_tokens, temperature=0.0, seed=cfg.seed)
    rows = []
    for i in range(0, len(samples), batch):
        part = samples[i:i + batch]
        answers = cached_generate(model, cache, "text_safety:answer", [text_only_prompt(s.query) for s in part], params)
        verdicts = judge([(s.query, a) for s, a in zip(part, answers)])
        for s, a, v in zip(part, answers, verdicts):
            model_v = {True: "pass", False: "fail", None: "invalid"}[v.safe]
            rows.append({"id": s.id, "hand": hand_verdict(s), "model": model_v, "reason": v.explanation,
                         "answer": a})
        print(f"{min(i + batch, len(samples))}/{len(samples)}", flush=True)
    return rows


def agreement(rows: list[dict]) -> dict:
    """Counts of the model's verdicts and its agreement with the hand screen (invalid ones apart)."""
    judged = [r for r in rows if r["model"] != "invalid" and r["hand"] is not None]
    agree = sum(r["model"] == r["hand"] for r in judged)
    return {"n": len(rows), "model_pass": sum(r["model"] == "pass" for r in rows),
            "model_fail": sum(r["model"] == "fail" for r in rows),
            "invalid": sum(r["model"] == "invalid" for r in rows),
            "judged": len(judged), "agree": agree, "agreement": round(agree / len(judged), 3) if judged else None}


def record_screens(rows: list[dict], parts: list[str]) -> int:
    """Add (or replace) the model screen in the records of the given part files; returns how many."""
    by_id = {r["id"]: r for r in rows}
    n = 0
    for name in parts:
        path = BUNDLED_DIR / f"{name}.jsonl"
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            r = by_id.get(rec["id"])
            if r is not None and r["model"] != "invalid":
                screens = [s for s in rec["provenance"].get("screens", []) if s.get("check") != CHECK]
                note = (r["reason"] or "").replace("\n", " ").strip()[:200]
                screens.append({"check": CHECK, "by": BY, "verdict": r["model"], "note": note or "no reason given"})
                rec["provenance"]["screens"] = screens
                n += 1
            out.append(json.dumps(rec, ensure_ascii=False))
        atomic_write_text(path, "\n".join(out) + "\n")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSONL report (one row per IRS record)")
    ap.add_argument("--record", action="store_true", help="write the model screens into the part files")
    ap.add_argument("--parts", nargs="*", default=list(DEFAULT_PARTS), help="part files to screen (and record into)")
    ap.add_argument("--limit", type=int, default=None, help="first N IRS records only (a quick try)")
    args = ap.parse_args(argv)
    from ssui_lib.models.embedded import load_embedded

    ids = {json.loads(line)["id"] for name in args.parts
           for line in (BUNDLED_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()}
    samples = [s for s in load_bundled("all") if s.kind == "irs" and s.id in ids][:args.limit]
    if not samples:
        raise SSUIError("no IRS records in the bundled set")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = CurationConfig(max_new_tokens=24, answer_tokens=32)
    rows = run_screen(load_embedded(), samples, out.with_suffix(".cache.jsonl"), cfg)
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(json.dumps(agreement(rows)))
    if args.record:
        print(f"recorded {record_screens(rows, args.parts)} model screens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
