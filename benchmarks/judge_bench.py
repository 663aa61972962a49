"""Speed of the learned offline judge on 1,000 responses: one response at a time against one
batched call, in the same run.

    .venv/bin/python benchmarks/judge_bench.py [--n 1000] [--threads N] [--json FILE]

The responses are built deterministically from the hand-labelled validation set (its 360
responses to test-split records, cycled): copy 0 is the response as written, copy c > 0 writes
" (c)" into every sentence before its final stop, so each of the n responses — and each of its sentences — is a text the
judge has not embedded before (no help from de-duplication: the worst case; real evaluations repeat
refusal and warning sentences and do better).

naive    ``judge.judge([sample], [response])`` once per response: every call embeds its own few
         sentences (a batch of 1-5), the classifiers run on one row.
batched  ``judge.judge(samples, responses)`` once: every distinct sentence of the n responses is
         embedded in length-sorted batches of 64, the classifiers run once.

Both start cold in the process (the in-process embedding table emptied; MiniLM and the fitted judge
loaded beforehand and not timed; the records' references come from the disk cache, as in any run
after the first). Columns: wall seconds, CPU seconds of this process, responses per wall second,
and the speed-up naive / batched. The load average is printed: on the shared 2-core book machine
other jobs take most of the CPU, so CPU seconds are the steadier number. The verdicts of the two
paths are compared (they must agree).
"""
from __future__ import annotations

import argparse
import json
import os
import time


def build_items(n: int):
    """n (sample, response) pairs from the validation set (see the module docstring)."""
    from ssui_lib.eval.judge_validation import _records, load_validation
    from ssui_lib.eval.offline_judge import sentences

    rows = load_validation()
    by_id = _records(rows, None)
    samples, responses = [], []
    for i in range(n):
        row, copy = rows[i % len(rows)], i // len(rows)
        text = row["response"]
        if copy and text.strip():
            text = " ".join(f"{s[:-1]} ({copy}){s[-1]}" if s[-1] in ".!?" else f"{s} ({copy})"
                            for s in sentences(text))
        samples.append(by_id[row["record_id"]])
        responses.append(text)
    return samples, responses


def run(n: int) -> dict:
    from ssui_lib.data import embeddings
    from ssui_lib.eval.offline_judge import LearnedJudge, sentences

    samples, responses = build_items(n)
    judge = LearnedJudge()
    t = time.perf_counter()
    judge.models()
    embeddings._sentence_model()
    load_s = time.perf_counter() - t
    from ssui_lib.eval.offline_judge import REFUSALS, _record_refs, text_vectors

    text_vectors([t for s in {x.id: x for x in samples}.values() for t in _record_refs(s, False) if t] + list(REFUSALS),
                 persist=True)  # every record's references from the disk cache (encoded once if missing)
    refs = dict(embeddings._EMBEDDINGS)
    out = {"n": n, "distinct_sentences": len({p for r in responses for p in sentences(r)}),
           "load_s": load_s, "torch_threads": _threads(), "loadavg_before": os.getloadavg()[0]}
    verdicts = {}
    for name in ("naive", "batched"):
        embeddings.forget()
        embeddings._EMBEDDINGS.update(refs)  # references warm, responses cold
        w, c = time.perf_counter(), time.process_time()
        if name == "naive":
            got = [judge.judge([s], [r])[0] for s, r in zip(samples, responses)]
        else:
            got = judge.judge(samples, responses)
        out[name] = {"wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c}
        out[name]["per_s"] = n / out[name]["wall_s"]
        verdicts[name] = [(v.safe, v.effective) for v in got]
    out["speedup_wall"] = out["naive"]["wall_s"] / out["batched"]["wall_s"]
    out["speedup_cpu"] = out["naive"]["cpu_s"] / out["batched"]["cpu_s"]
    out["verdicts_agree"] = sum(a == b for a, b in zip(verdicts["naive"], verdicts["batched"])) / n
    out["loadavg_after"] = os.getloadavg()[0]
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def table(res: dict) -> str:
    lines = [f"{res['n']} responses ({res['distinct_sentences']} distinct sentences), torch threads "
             f"{res['torch_threads']}, load average {res['loadavg_before']:.1f} before / "
             f"{res['loadavg_after']:.1f} after; MiniLM + fitted judge loaded in {res['load_s']:.1f} s (not timed)",
             "| path | wall s | CPU s | responses / wall s |", "|---|---|---|---|"]
    for name in ("naive", "batched"):
        r = res[name]
        lines.append(f"| {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['per_s']:.1f} |")
    lines.append(f"speed-up naive / batched: {res['speedup_wall']:.1f}x wall, {res['speedup_cpu']:.1f}x CPU; "
                 f"verdicts agree on {100 * res['verdicts_agree']:.1f}% of responses")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="responses (default 1000)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be >= 1")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    res = run(args.n)
    print(table(res))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
