"""One benchmark's column of SRPO Table 1 for one model: load, generate, judge with the benchmark's
own judge, score with its own metrics; resumable (``ssui eval --benchmark NAME`` and chapter 08).

:func:`run_benchmark` answers every item zero-shot (``eval.evaluate.generate_responses``), judges
the answers with the benchmark's judge (``eval.bench_judges``: ``usb:J`` and ``usb-arr:J`` for USB,
``safebench-jury:J1,J2,J3`` when several SafeBench jurors are named, else ``BENCH:J``) through
``eval.evaluate.judge_responses`` — both append batch by batch and skip what is already done, so a
killed run resumes — and computes the metrics of ``eval.bench_metrics``. The result is written
atomically as JSON; the returned dict also carries the metrics with their bootstrap replicates
(``raw``) so Table 1's averages get intervals.

Data per benchmark (``data``: a path, or a full dataset spec): ``usb`` — the CSV; its ``#sist``
rows (ASR) and ``#overrefusal`` rows (ARR) are loaded from it. ``mllmguard`` — the data folder.
``mssbench`` — ``combined.json``. ``safebench`` — the folder of CSVs. ``vlsbench`` — ``data.json``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample, atomic_write_text

BENCHMARKS = ("usb", "mllmguard", "mssbench", "safebench", "vlsbench")
# Table 1 columns per benchmark: (key, metric path in the result, higher is better)
COLUMNS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "usb": (("usb.ASR", "ASR", False), ("usb.ARR", "ARR", False), ("usb.avg", "avg", False)),
    "mllmguard": (("mllmguard.PAR", "PAR", True), ("mllmguard.ASD", "ASD", False)),
    "mssbench": (("mssbench.acc", "acc", True),),
    "safebench": (("safebench.ASR", "ASR", False), ("safebench.SRI", "SRI", True)),
    "vlsbench": (("vlsbench.safe_rate", "safe_rate", True),),
}


def benchmark_specs(benchmark: str, data: str | os.PathLike) -> dict[str, str]:
    """{part: dataset spec} of a benchmark: USB has two parts (``vulnerability`` = SIST, ``overrefusal``)."""
    if benchmark not in BENCHMARKS:
        raise SSUIError(f"unknown benchmark {benchmark!r} (one of {', '.join(BENCHMARKS)})")
    path = str(data)
    if path.startswith(f"{benchmark}:"):
        path = path[len(benchmark) + 1:]
    if not path:
        raise SSUIError(f"benchmark {benchmark}: no data path given")
    if benchmark == "usb":
        base = path.split("#", 1)[0]
        return {"vulnerability": f"usb:{base}#sist", "overrefusal": f"usb:{base}#overrefusal"}
    return {"all": f"{benchmark}:{path}"}


def judge_names(benchmark: str, judge: str) -> dict[str, str]:
    """{part: benchmark judge name} for an inner judge name (several SafeBench jurors: a jury)."""
    judge = judge.strip()
    if benchmark == "usb":
        return {"vulnerability": f"usb:{judge}", "overrefusal": f"usb-arr:{judge}"}
    if benchmark == "safebench" and "," in judge:
        return {"all": f"safebench-jury:{judge}"}
    return {"all": f"{benchmark}:{judge}"}


def load_parts(benchmark: str, data: str | os.PathLike, image_dir: str | None = None,
               limit: int | None = None) -> dict[str, list[Sample]]:
    """The samples of each part (first ``limit`` of each; a USB file without over-refusal rows has no such part)."""
    from ssui_lib.data.bundled import load_dataset

    parts = {}
    for part, spec in benchmark_specs(benchmark, data).items():
        try:
            samples = load_dataset(spec, image_dir)
        except SSUIError as e:
            if part == "overrefusal" and "no rows in selection" in str(e):
                continue
            raise
        parts[part] = samples[:limit] if limit else samples
    return parts


def score(benchmark: str, tables: dict, *, n_boot: int = 1000, seed: int = 0, sri: str = "linear",
          mss_report: str = "mean") -> dict[str, Any]:
    """The benchmark's metrics from its judged tables ({part: DataFrame of bench_judges.bench_table})."""
    from ssui_lib.eval import bench_metrics as bm

    if benchmark == "usb":
        return bm.usb_rates(tables["vulnerability"], tables.get("overrefusal"), n_boot=n_boot, seed=seed)
    t = tables["all"]
    if benchmark == "mllmguard":
        return bm.mllmguard_rates(t, n_boot=n_boot, seed=seed)
    if benchmark == "mssbench":
        return bm.mssbench_accuracy(t, report=mss_report, n_boot=n_boot, seed=seed)
    if benchmark == "safebench":
        return bm.safebench_rates(t, sri=sri, n_boot=n_boot, seed=seed)
    return bm.vlsbench_rates(t, n_boot=n_boot, seed=seed)


def table_entries(benchmark: str, metrics: dict) -> dict[str, dict]:
    """{"usb.ASR": result, ...}: the Table 1 columns of one benchmark's metrics."""
    return {key: metrics[path] for key, path, _ in COLUMNS[benchmark]}


def work_folder(out_path: str | os.PathLike, work_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`run_benchmark` keeps its resumable files: ``work_dir``, else ``OUT.work/``."""
    out = Path(out_path)
    return Path(work_dir) if work_dir else out.with_name(out.name.removesuffix(".json") + ".work")


def benchmark_judges(benchmark: str, judge: str, *, cache_dir: str | os.PathLike | None = None, seed: int = 0,
                     max_new_tokens: int = 256, image_dir: str | None = None) -> dict:
    """{part: Judge}: the benchmark's own judges on the judge model ``judge`` (:func:`judge_names`),
    resolved once where the name comes in (the command line, chapter 08) for :func:`run_benchmark`."""
    from ssui_lib.eval.bench_judges import resolve_bench_judge

    return {part: resolve_bench_judge(name, cache_dir=cache_dir, seed=seed, max_new_tokens=max_new_tokens,
                                      image_dir=image_dir)
            for part, name in judge_names(benchmark, judge).items()}


def run_benchmark(benchmark: str, model, judges: Mapping[str, Any], data: str | os.PathLike,
                  out_path: str | os.PathLike, *, image_dir: str | None = None, limit: int | None = None, params=None,
                  seed: int = 0, n_boot: int = 1000, work_dir: str | os.PathLike | None = None, sri: str = "linear",
                  mss_report: str = "mean", progress: bool = False) -> dict[str, Any]:
    """Generate, judge and score one benchmark for one model (module docstring); returns the result.
    ``model``: a ChatModel, or a LazyModel (loaded once the data has been read); ``judges``: {part: Judge} (:func:`benchmark_judges`),
    one for each part of the data (a model judge's cache is placed when it is resolved)."""
    from ssui_lib.eval.bench_judges import bench_table
    from ssui_lib.eval.bench_metrics import public
    from ssui_lib.eval.evaluate import DEFAULT_MAX_NEW_TOKENS, as_judge, as_model, generate_responses, judge_responses
    from ssui_lib.models import SamplingParams

    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise SSUIError(f"limit must be an integer >= 1, got {limit!r}")
    if not isinstance(judges, Mapping):
        raise SSUIError(f"run_benchmark: judges must be {{part: Judge}} (bench_run.benchmark_judges), "
                        f"got {type(judges).__name__} {judges!r}")
    judges = {part: as_judge(j, f"run_benchmark: judges[{part!r}]") for part, j in judges.items()}
    lazy = as_model(model, "run_benchmark")
    parts = load_parts(benchmark, data, image_dir, limit)
    lost = [part for part in parts if part not in judges]
    if lost:
        raise SSUIError(f"run_benchmark: no judge for part(s) {', '.join(lost)} of {benchmark} "
                        f"(judges for: {', '.join(judges) or 'none'})")
    out = Path(out_path)
    work = work_folder(out, work_dir)
    model = lazy.load()  # after the data: a wrong path fails before a model loads
    params = params or SamplingParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS, seed=seed)
    everything = [s for part in parts.values() for s in part]
    files: dict[str, str] = {"responses": str(work / "responses.jsonl")}
    generate_responses(model, everything, out_path=work / "responses.jsonl", params=params, progress=progress,
                       seed=seed, image_dir=image_dir)
    tables, judge_names_used = {}, {}
    for part, samples in parts.items():
        j = judges[part]
        judge_names_used[part] = j.name
        vpath = work / f"verdicts-{part}.jsonl"
        files[f"verdicts-{part}"] = str(vpath)
        rows = judge_responses(j, samples, work / "responses.jsonl", vpath, progress=progress,
                               known_ids={s.id for s in everything})
        tables[part] = bench_table(samples, rows)
    raw = score(benchmark, tables, n_boot=n_boot, seed=seed, sri=sri, mss_report=mss_report)
    result = {
        "benchmark": benchmark, "model": model.name, "judges": judge_names_used, "data": str(data),
        "n": {part: len(s) for part, s in parts.items()},
        "unscored": {part: int((~t["scored"]).sum()) for part, t in tables.items()},
        "metrics": public(raw), "columns": {k: public(v) for k, v in table_entries(benchmark, raw).items()},
        "settings": {"limit": limit, "seed": seed, "n_boot": n_boot, "sri": sri, "mss_report": mss_report,
                     "image_dir": image_dir},
        "files": files,
    }
    atomic_write_text(out, json.dumps(result, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return {**result, "raw": raw}


# ---------------------------------------------------------------- Table 1
TABLE1_KEYS = ("usb.ASR", "usb.ARR", "usb.avg", "mllmguard.PAR", "mllmguard.ASD", "mssbench.acc", "safebench.ASR",
               "safebench.SRI", "vlsbench.safe_rate", "avg_up", "avg_down")
# SRPO (Cai et al., "When Safe Unimodal Inputs Collide: Optimizing Reasoning Chains for Cross-Modal Safety in
# Multimodal Large Language Models"), Table 1, typed in from /work/shared/papers/003_8f6f7ff4cbed0821.txt;
# percentages in the order of TABLE1_KEYS.
PAPER_TABLE1: dict[str, tuple[float, ...]] = {
    "Claude3.5-Sonnet2": (32.80, 25.79, 29.30, 52.38, 9.01, 69.01, 0.70, 99.30, 79.35, 75.01, 13.00),
    "Gemini-1.5-Pro": (64.45, 11.33, 37.89, 38.12, 21.94, 61.94, 2.60, 97.10, 50.21, 61.84, 20.80),
    "Gemini-2.0-Flash": (76.55, 5.43, 40.99, 45.32, 20.52, 65.52, 2.80, 97.30, 52.48, 65.16, 21.44),
    "GPT-4o": (72.83, 3.77, 38.30, 56.68, 14.32, 59.30, 3.40, 96.10, 69.50, 70.40, 18.67),
    "DeepSeek-VL": (82.12, 7.78, 44.95, 25.32, 35.33, 50.40, 33.10, 75.20, 20.35, 42.82, 37.79),
    "VILA-1.5-7B": (88.68, 32.15, 60.42, 16.32, 7.65, 52.23, 42.30, 69.80, 13.56, 37.98, 36.79),
    "MiniGPT-v2": (89.12, 12.30, 50.71, 49.70, 27.01, 50.60, 38.80, 71.50, 20.35, 48.04, 38.84),
    "LLaVA-v1.5-7B": (84.51, 8.56, 46.53, 20.63, 43.08, 56.80, 39.60, 72.30, 8.65, 39.60, 43.07),
    "LLaVA-v1.6-mistral-7B": (82.28, 10.26, 46.27, 23.25, 43.58, 57.25, 32.50, 72.80, 15.32, 42.16, 40.78),
    "InternVL2.5-8B": (80.77, 11.98, 46.38, 40.19, 32.40, 51.22, 21.90, 82.10, 21.37, 48.72, 33.56),
    "MiniCPM-LLaMA3-V 2.5": (78.85, 6.12, 42.49, 26.81, 31.12, 48.25, 30.50, 74.90, 17.60, 41.89, 34.70),
    "MiniCPM-V-2.6": (81.34, 6.42, 43.88, 32.23, 33.43, 47.38, 28.70, 75.50, 15.98, 42.77, 35.34),
    "Qwen2-VL-7B": (80.99, 6.27, 43.63, 35.72, 28.36, 53.20, 35.40, 72.30, 15.77, 44.25, 35.80),
    "GLM-4v-9B": (77.72, 5.95, 41.84, 23.41, 45.30, 50.85, 12.20, 89.30, 22.64, 46.55, 29.78),
    "LLaVA-NeXT-LLaMA3": (78.88, 7.53, 43.20, 26.45, 42.27, 56.35, 29.40, 73.10, 18.56, 41.12, 38.29),
    "LLaVA-NeXT-LLaMA3 + SRPO": (50.36, 6.20, 28.28, 50.22, 17.63, 71.20, 7.20, 91.80, 50.74, 65.99, 14.37),
    "Qwen2.5VL-7B": (75.26, 4.72, 39.99, 38.22, 28.35, 55.36, 32.20, 76.30, 20.45, 47.58, 33.51),
    "Qwen2.5VL-7B + SRPO": (42.38, 2.83, 22.60, 65.30, 7.92, 73.89, 7.50, 98.10, 67.43, 76.18, 12.67),
}
PAPER_CITATION = ("SRPO paper (Cai et al., \"When Safe Unimodal Inputs Collide\"), Table 1: published numbers, "
                  "typed in from the paper; their judges (GPT-4o, GuardRank, the SafeBench jury), not this book's")


def paper_reference(rows: Mapping[str, str] | None = None):
    """The paper's Table 1 rows as a DataFrame (percent), for ``rows`` {label: paper row name} or all."""
    import pandas as pd

    wanted = rows or {k: k for k in PAPER_TABLE1}
    unknown = [v for v in wanted.values() if v not in PAPER_TABLE1]
    if unknown:
        raise SSUIError(f"paper Table 1 has no row {unknown[0]!r} (rows: {', '.join(PAPER_TABLE1)})")
    return pd.DataFrame([PAPER_TABLE1[v] for v in wanted.values()], index=list(wanted), columns=list(TABLE1_KEYS))


def table1(results: Mapping[str, Mapping[str, Mapping]], *, up: tuple[str, ...] | None = None,
           down: tuple[str, ...] | None = None, ci: float = 0.95):
    """SRPO Table 1 from ``{variant: {benchmark: run_benchmark result}}``: a numeric DataFrame
    (percent; each key with ``_lo`` / ``_hi`` interval columns) with Average↑ / Average↓ over the
    benchmarks present (:func:`ssui_lib.eval.bench_metrics.table1_averages`; members are parameters)."""
    import pandas as pd

    from ssui_lib.eval.bench_metrics import DOWN_DEFAULT, UP_DEFAULT, table1_averages

    rows = {}
    for variant, per_bench in results.items():
        entries: dict[str, dict] = {}
        for bench, res in per_bench.items():
            entries.update(table_entries(bench, res["raw"]))
        entries.update(table1_averages(entries, up=tuple(up or UP_DEFAULT), down=tuple(down or DOWN_DEFAULT), ci=ci))
        row = {}
        for key in TABLE1_KEYS:
            r = entries.get(key)
            v, (lo, hi) = (r["value"], r["ci"]) if r else (float("nan"), (float("nan"), float("nan")))
            row[key], row[f"{key}_lo"], row[f"{key}_hi"] = 100 * v, 100 * lo, 100 * hi
        rows[variant] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def format_table1(df) -> "Any":
    """The numeric Table 1 as text cells ``value [lo, hi]`` (percent, one decimal)."""
    import math

    import pandas as pd

    def cell(v, lo, hi):
        if v is None or math.isnan(v):
            return "–"
        return f"{v:.1f}" if math.isnan(lo) else f"{v:.1f} [{lo:.1f}, {hi:.1f}]"

    return pd.DataFrame({k: [cell(r[k], r[f"{k}_lo"], r[f"{k}_hi"]) for _, r in df.iterrows()] for k in TABLE1_KEYS},
                        index=df.index)
