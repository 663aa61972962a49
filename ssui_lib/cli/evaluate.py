"""``ssui generate``, ``ssui judge``, ``ssui eval``: responses, verdicts and metrics on a dataset
(the library calls are in :mod:`ssui_lib.eval.evaluate`)."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.core.shards import parse_shard, take_shard
from ssui_lib.data.bundled import load_dataset
from ssui_lib.data.loaders.common import pictures_optional

DEFAULT_MAX_NEW_TOKENS = 256
from ssui_lib.eval.bench_run import benchmark_judges, run_benchmark, work_folder
from ssui_lib.eval.judge import default_judge_cache_dir, resolve_judge
from ssui_lib.eval.metrics import format_rate
from ssui_lib.models import LazyModel, SamplingParams, parse_model_name, resolve_model
from ssui_lib.eval.evaluate import DEFAULT_MAX_NEW_TOKENS, apply_limit, evaluate, generate_responses, judge_responses


# ============================================================================ command line

def _common(p, *, dataset: bool = True) -> None:
    if dataset:
        p.add_argument("--dataset", required=True, help="dataset spec: bundled:test, jsonl:PATH, siuo-gen:PATH, …")
        p.add_argument("--image-dir", help="folder that relative image paths of an external dataset resolve against")
    p.add_argument("--limit", type=int, help="only the first N samples (dataset order)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and exemplar choice (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


SHARD_BLOCK = 16  # samples per batch of generate_responses / judge_responses (their batch_size)


def _shard_arg(p) -> None:
    p.add_argument("--shard", metavar="I/N", help="only shard I of N (batches of 16 samples dealt round robin, "
                                                  "after --limit); put the shards together with ssui merge")


def _judge_args(p) -> None:
    p.add_argument("--judge", required=True,
                   help="offline, local:MODEL-NAME, openai:MODEL or openai-compatible:URL#MODEL")
    p.add_argument("--judge-n", type=int, default=1, help="judge outputs per item, reduced by majority (default 1)")
    p.add_argument("--judge-max-new-tokens", type=int, default=384)


def _gen_args(p) -> None:
    p.add_argument("--model", required=True,
                   help="embedded, hf:PATH, hf:PATH+adapter:PATH, openai:MODEL, openai-compatible:URL#MODEL")
    p.add_argument("--icl", type=int, default=0, metavar="K",
                   help="K in-context exemplars from bundled:train (default 0)")
    p.add_argument("--icl-by", choices=("category", "similarity"), default="category")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")


def add_commands(sub) -> None:
    """Register ``generate``, ``judge`` and ``eval`` (called by ssui_lib.cli)."""
    g = sub.add_parser("generate", help="answer every sample of a dataset -> JSONL {id, response} (resumable)")
    _gen_args(g)
    g.add_argument("--out", required=True, help="output JSONL file")
    g.add_argument("--chain", action="store_true", help="ask for the six-step chain even with --icl 0")
    _common(g)
    _shard_arg(g)
    g.set_defaults(func=_cmd_generate)

    j = sub.add_parser("judge", help="judge responses -> JSONL {id, safe, effective, scored, explanation} (resumable)")
    _judge_args(j)
    j.add_argument("--responses", required=True, help="JSONL {id, response} from ssui generate")
    j.add_argument("--out", required=True, help="output JSONL file")
    j.add_argument("--mode", choices=("response", "path"), default="response",
                   help="judge final answers (SIUO S/E) or whole reasoning paths (RSBench SR/ER)")
    j.add_argument("--cache-dir",
                   help="judge cache folder (default $SSUI_CACHE_DIR/judges or ~/.cache/ssui-book/judges)")
    _common(j)
    _shard_arg(j)
    j.set_defaults(func=_cmd_judge)

    e = sub.add_parser("eval", help="generate + judge + metrics (S, E, S&E, SR, ER, SER) -> JSON")
    _gen_args(e)
    _judge_args(e)
    e.add_argument("--out", required=True, help="output JSON file")
    e.add_argument("--work-dir", help="intermediate files (default: OUT.work/ beside the output)")
    e.add_argument("--no-paths", action="store_true", help="skip the reasoning-path metrics SR, ER, SER")
    e.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    e.add_argument("--benchmark", choices=("usb", "mllmguard", "mssbench", "safebench", "vlsbench"),
                   help="one column of SRPO Table 1 with that benchmark's own judge and metrics (--dataset: its "
                        "file or folder; --judge: the judge model, e.g. offline or openai:gpt-4o; ssui_lib.eval.bench_run)")
    _common(e)
    e.set_defaults(func=_cmd_eval)


def _params(a):
    try:
        return SamplingParams(max_new_tokens=a.max_new_tokens, temperature=a.temperature, seed=a.seed)
    except ValueError as e:
        raise SSUIError(f"sampling parameters: {e}") from None


def _load(a, *, pictures: bool = True) -> tuple[list[Sample], list[Sample]]:
    """The dataset of ``--dataset``; ``pictures=False`` (a judge that never looks at them) loads an
    external benchmark whose images are absent instead of refusing."""

    with (nullcontext() if pictures else pictures_optional()):
        all_samples = load_dataset(a.dataset, a.image_dir)
    return all_samples, take_shard(apply_limit(all_samples, a.limit), parse_shard(getattr(a, "shard", None)),
                                   SHARD_BLOCK)


def _cmd_generate(a) -> int:
    all_samples, samples = _load(a)
    out = generate_responses(resolve_model(a.model), samples, out_path=a.out, icl_k=a.icl, icl_by=a.icl_by,
                             params=_params(a), progress=not a.no_progress, chain=a.chain, seed=a.seed,
                             image_dir=a.image_dir, known_ids={s.id for s in all_samples})
    print(f"{a.out}: {len(out)} responses ({a.model}, {a.icl}-shot)")
    return 0


def _cmd_judge(a) -> int:
    judge = resolve_judge(a.judge, cache_dir=a.cache_dir or default_judge_cache_dir(), n=a.judge_n,
                          max_new_tokens=a.judge_max_new_tokens, seed=a.seed, image_dir=a.image_dir)
    all_samples, samples = _load(a, pictures=judge.looks_at_images)
    rows = judge_responses(judge, samples, a.responses, a.out, mode=a.mode, progress=not a.no_progress,
                           known_ids={s.id for s in all_samples})
    n_un = sum(not r["scored"] for r in rows)
    print(f"{a.out}: {len(rows)} verdicts ({judge.name}, {a.mode} mode), {n_un} unscored")
    return 0


def _cmd_eval(a) -> int:
    if getattr(a, "benchmark", None):
        return _cmd_benchmark(a)

    work = Path(a.work_dir) if a.work_dir else Path(a.out).with_name(Path(a.out).name.removesuffix(".json") + ".work")
    judge = resolve_judge(a.judge, cache_dir=work / "judge_cache", n=a.judge_n,
                          max_new_tokens=a.judge_max_new_tokens, seed=a.seed, image_dir=a.image_dir)
    # the name is checked now and the model loaded by evaluate once the dataset has been read
    res = evaluate(LazyModel(parse_model_name(a.model)), judge, a.dataset, a.out, icl_k=a.icl, icl_by=a.icl_by,
                   params=_params(a), limit=a.limit, seed=a.seed, paths=not a.no_paths, work_dir=work,
                   n_boot=a.n_boot, progress=not a.no_progress, image_dir=a.image_dir)
    nan = float("nan")
    shown = "  ".join(
        f"{k}=" + format_rate({"value": nan if v["value"] is None else v["value"],
                               "ci": [nan if c is None else c for c in v["ci"]]})
        for k, v in res["metrics"].items())
    print(f"{a.out}: n={res['n']} unscored={res['unscored']}  {shown}")
    return 0


def _cmd_benchmark(a) -> int:
    """``ssui eval --benchmark NAME``: one benchmark's column (ssui_lib.eval.bench_run; the eval
    command's options). The benchmark's judges are resolved here, their cache in the work folder."""
    judges = benchmark_judges(a.benchmark, a.judge, cache_dir=work_folder(a.out, a.work_dir) / "judge_cache",
                              seed=a.seed, max_new_tokens=a.judge_max_new_tokens, image_dir=a.image_dir)
    res = run_benchmark(a.benchmark, LazyModel(parse_model_name(a.model)), judges, a.dataset, a.out,
                        image_dir=a.image_dir, limit=a.limit, params=_params(a), seed=a.seed, n_boot=a.n_boot,
                        work_dir=a.work_dir, progress=not a.no_progress)
    shown = "  ".join(f"{k}=" + ("n/a" if v["value"] is None else f"{100 * v['value']:.1f}%")
                      for k, v in res["columns"].items())
    print(f"{a.out}: {a.benchmark} n={res['n']} unscored={res['unscored']}  {shown}")
    return 0
