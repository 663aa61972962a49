"""Generate, judge, evaluate: the loop behind ``ssui generate | judge | eval`` and SSUI Table 1 /
RSBench.

* :func:`generate_responses` — a model answers each sample (zero-shot, or k-shot ICL with SSUI
  exemplars) into a JSONL file of ``{id, response}``.
* :func:`judge_responses` — a judge labels each response into a JSONL file of
  ``{id, safe, effective, scored, explanation}``.
* :func:`evaluate` — both, then the metrics (S, E, S&E; SR, ER, SER; per category; with
  intervals) written atomically as one JSON file (DESIGN.md).

Resumable and append-only. Both JSONL files are appended batch by batch (each batch one write,
flushed and fsync'ed); a rerun skips the ids already in the file, so an interrupted run resumes and
no id is ever written twice. A last line cut short by a kill is dropped (with a warning) and
redone. Beside each file, ``FILE.meta.json`` records the settings it was made with (model, ICL,
sampling / judge, mode); resuming with other settings is an error instead of a silently mixed file.

Responses and reasoning paths. A response that contains a six-step chain (Step k … / Final
verdict / Answer) is judged in ``"response"`` mode on its final answer (``chain.final_answer``),
in ``"path"`` mode as a whole. :func:`evaluate` gets the paths for SR / ER / SER like this: with
``icl_k > 0`` the responses already are chains (the exemplars show the format), so the same file
is judged in both modes; with ``icl_k = 0`` the plain zero-shot responses give S / E / S&E and a
second generation with the zero-shot chain prompt (``prompts.chain_prompt`` without exemplars)
gives the paths. A path without any step lines is still judged (the judge is told to take the text
as the reasoning) and counted in ``paths_without_chain``.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from ssui_lib.core.chain import answer_text, has_chain
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.core.store import append_jsonl, atomic_write_text, guard_settings_file, json_safe, read_jsonl
from ssui_lib.eval.judge import MODES, Judge
from ssui_lib.models import ChatModel, LazyModel, ModelSpec, SamplingParams

DEFAULT_MAX_NEW_TOKENS = 256


# ============================================================================ models and judges, not names

def as_model(model: ChatModel | LazyModel, where: str) -> LazyModel:
    """``model`` as a :class:`~ssui_lib.models.LazyModel`: a ChatModel already loaded, or a
    LazyModel loaded on first use. Names are resolved once, at the edge (the CLI, a notebook's first
    cells), never here: a model name or a ModelSpec is an SSUIError naming ``where``."""
    if isinstance(model, LazyModel):
        return model
    if isinstance(model, (str, ModelSpec)):
        name = model if isinstance(model, str) else model.name
        raise SSUIError(f"{where}: expected a model, got the model name {name!r}; resolve the name once where it "
                        f"comes in: ssui_lib.models.resolve_model(name), or models.LazyModel(name) to load it on "
                        f"first use")
    if not callable(getattr(model, "generate", None)) or not isinstance(getattr(model, "name", None), str):
        raise SSUIError(f"{where}: expected a ChatModel or a models.LazyModel, got {type(model).__name__} {model!r}")
    return LazyModel.of(model)


def as_judge(judge: Judge, where: str) -> Judge:
    """``judge`` itself when it is a :class:`~ssui_lib.eval.judge.Judge`; a judge name (resolved at
    the edge with ``resolve_judge``, which also chooses its cache) or anything else is an SSUIError
    naming ``where``."""
    if isinstance(judge, Judge):
        return judge
    if isinstance(judge, str):
        raise SSUIError(f"{where}: expected a Judge, got the judge name {judge!r}; resolve the name once where it "
                        f"comes in: ssui_lib.eval.judge.resolve_judge(name, cache_dir=...)")
    raise SSUIError(f"{where}: expected a Judge (ssui_lib.eval.judge), got {type(judge).__name__} {judge!r}")


# ============================================================================ resumable JSONL

def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def check_meta(path: Path, meta: dict[str, Any]) -> None:
    """Record the settings of ``path`` beside it, or check that a resumed file used the same ones."""
    mp = _meta_path(path)
    if not path.exists():  # nothing to resume: (re)record the settings
        mp.unlink(missing_ok=True)
    guard_settings_file(mp, meta, hint="delete it (and its .meta.json) or choose another --out")


def read_rows(path: str | os.PathLike, check: Callable[[dict], str | None], *, resume: bool = False,
              redo: Callable[[dict], bool] | None = None) -> dict[str, dict]:
    """Rows of a JSONL file of ``{id, …}`` objects, by id, in file order.

    ``redo(row)`` True marks a row that a later row of the same id may replace (an unscored verdict
    that a rerun judged again); any other repeated id is an error.

    ``check(row)`` returns an error text or None. Errors name the file and line (malformed JSON,
    a bad row, a duplicate id). With ``resume=True`` a malformed last line (a write cut short by a
    kill) is cut off the file with a warning (``store.read_jsonl``), and a missing file is empty.
    """
    p = Path(path)
    lines, torn = read_jsonl(p, what="malformed JSON", repair=resume, warn=resume, missing_ok=resume)
    if torn is not None:  # not resuming: a bad last line is an error like any other
        n = p.read_bytes()[:torn[0]].count(b"\n") + 1
        raise SSUIError(f"{p}:{n}: malformed JSON (a truncated or corrupt line)")
    rows: dict[str, dict] = {}
    for n, obj in lines:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            raise SSUIError(f"{p}:{n}: field 'id': expected an object with a non-empty string id")
        err = check(obj)
        if err:
            raise SSUIError(f"{p}:{n}: {err}")
        if obj["id"] in rows and not (redo is not None and redo(rows[obj["id"]])):
            raise SSUIError(f"{p}:{n}: field 'id': duplicate id {obj['id']!r}")
        rows[obj["id"]] = obj
    return rows


def _known(ids: set[str], what: str) -> Callable[[dict], str | None]:
    def check(row: dict) -> str | None:
        if row["id"] not in ids:
            return f"field 'id': unknown id {row['id']!r} (not in the {what})"
        return None
    return check


def _response_row(known: set[str], what: str) -> Callable[[dict], str | None]:
    base = _known(known, what)

    def check(row: dict) -> str | None:
        if not isinstance(row.get("response"), str):
            return "field 'response': expected a string"
        return base(row)
    return check


def _verdict_row(known: set[str]) -> Callable[[dict], str | None]:
    base = _known(known, "judged samples")

    def check(row: dict) -> str | None:
        for k in ("safe", "effective"):
            if row.get(k) not in (True, False, None):
                return f"field '{k}': expected true, false or null"
        if not isinstance(row.get("scored"), bool):
            return "field 'scored': expected true or false"
        if row["scored"] and (row.get("safe") is None or row.get("effective") is None):
            return "a scored row needs both 'safe' and 'effective'"
        return base(row)
    return check


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc)


# ============================================================================ generate

def generate_responses(model: ChatModel | LazyModel, samples: Sequence[Sample], *, out_path: str | os.PathLike,
                       icl_k: int = 0,
                       icl_by: str = "category", params=None, progress: bool = False, chain: bool = False,
                       seed: int = 0, batch_size: int = 16, pool: Sequence[Sample] | None = None,
                       image_dir: str | os.PathLike | None = None,
                       known_ids: set[str] | None = None) -> dict[str, str]:
    """Answer every sample into ``out_path`` (JSONL ``{id, response}``), resumably; returns
    ``{id: response}`` for ``samples`` in their order.

    ``model``: a ChatModel, or a LazyModel loaded only when some sample is still unanswered (a
    finished file is re-read without loading anything). ``icl_k`` exemplars per sample chosen ``icl_by``
    ("category" / "similarity") from ``pool`` (default: the bundled TRAIN split, which must not
    hold the evaluated samples). ``chain=True`` with ``icl_k = 0`` asks for the six-step chain
    (zero-shot chain prompt). ``params``: SamplingParams (default greedy, 256 new tokens, ``seed``).
    ``known_ids``: every id of the dataset (rows already in the file for ids outside ``samples``,
    e.g. from a run with a larger --limit, are kept; any other id is an error).
    """
    from ssui_lib.data.bundled import image_ref
    from ssui_lib.eval.icl import check_disjoint, exemplar_pool, icl_prompt, select_exemplars
    from ssui_lib.models.prompts import chain_prompt

    lazy = as_model(model, "generate_responses")
    params = params or SamplingParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS, seed=seed)
    if params.n != 1:
        raise SSUIError(f"generate: one response per sample (SamplingParams.n = 1), got n={params.n}")
    if batch_size < 1:
        raise SSUIError(f"generate: batch_size must be >= 1, got {batch_size}")
    samples = list(samples)
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise SSUIError("generate: the samples have duplicate ids")
    if icl_k:
        pool = exemplar_pool() if pool is None else list(pool)
        check_disjoint(samples, pool)
    out = Path(out_path)
    check_meta(out, {"kind": "responses", "model": lazy.name, "icl_k": icl_k, "icl_by": icl_by if icl_k else None,
                     "chain": bool(chain or icl_k), "seed": seed, "params": asdict(params)})
    done = read_rows(out, _response_row(set(ids) | set(known_ids or ()), "dataset"), resume=True)
    todo = [s for s in samples if s.id not in done]
    bar = _bar(len(todo), f"generate ({lazy.name})", progress)
    model = lazy.load() if todo else None
    for batch in _batches(todo, batch_size):
        prompts = []
        for s in batch:
            image = image_ref(s, image_dir, load=model.supports_images)
            if icl_k:
                prompts.append(icl_prompt(s, select_exemplars(s, icl_k, by=icl_by, pool=pool, seed=seed), image))
            elif chain:
                prompts.append(chain_prompt(s, (), image))
            else:
                prompts.append(icl_prompt(s, [], image))
        gens = model.generate(prompts, params)
        rows = [{"id": s.id, "response": g[0].text} for s, g in zip(batch, gens)]
        append_jsonl(out, rows)
        done.update({r["id"]: r for r in rows})
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return {i: done[i]["response"] for i in ids}


# ============================================================================ judge

def read_responses(path: str | os.PathLike, samples: Sequence[Sample],
                   known_ids: set[str] | None = None) -> dict[str, str]:
    """``{id: response}`` for ``samples`` from a responses file. Errors name the file and line: an
    id not in ``known_ids`` (default: the samples' ids), a duplicate, a bad row; a file that lacks
    some of the samples is an error naming how many and the first ones."""
    ids = [s.id for s in samples]
    known = set(known_ids or ()) | set(ids)
    rows = read_rows(path, _response_row(known, "dataset"))
    missing = [i for i in ids if i not in rows]
    if missing:
        raise SSUIError(f"{path}: no response for {len(missing)} of {len(ids)} samples (first: "
                        f"{', '.join(repr(m) for m in missing[:3])}); generate them first (ssui generate resumes)")
    return {i: rows[i]["response"] for i in ids}


def judge_responses(judge: Judge, samples: Sequence[Sample], responses_path: str | os.PathLike,
                    out_path: str | os.PathLike, *, mode: str = "response", progress: bool = False,
                    batch_size: int = 16, known_ids: set[str] | None = None) -> list[dict]:
    """Judge every sample's response into ``out_path`` (JSONL ``{id, safe, effective, scored,
    explanation}``), resumably; returns the rows for ``samples`` in their order. A rerun judges
    again every row that is still unscored (``scored: false``, e.g. a transport error), appends the
    new verdict (it supersedes the old row) and warns how many it retried.

    ``judge``: a Judge (``eval.judge.resolve_judge`` makes one from a name). ``mode``: "response"
    (the final answer of a chain, else the whole text) or "path" (the whole text). ``known_ids``:
    every id of the dataset (ids of the responses file outside it are an error; ids in it but not
    in ``samples``, e.g. beyond --limit, are ignored).
    """
    judge = as_judge(judge, "judge_responses")
    if mode not in MODES:
        raise SSUIError(f"judge: mode must be one of {', '.join(MODES)}, got {mode!r}")
    samples = list(samples)
    responses = read_responses(responses_path, samples, known_ids)
    out = Path(out_path)
    check_meta(out, {"kind": "verdicts", "judge": judge.name, "mode": mode})
    done = read_rows(out, _verdict_row({s.id for s in samples}), resume=True, redo=lambda r: not r["scored"])
    todo = [s for s in samples if s.id not in done or not done[s.id]["scored"]]
    retried = sum(s.id in done for s in todo)
    if retried:
        warnings.warn(f"{out}: retrying {retried} unscored row(s) of an earlier run", stacklevel=2)
    bar = _bar(len(todo), f"judge ({judge.name}, {mode})", progress)
    for batch in _batches(todo, batch_size):
        texts = [responses[s.id] if mode == "path" else answer_text(responses[s.id]) for s in batch]
        rows = [v.row() for v in judge.judge(batch, texts, mode=mode)]
        append_jsonl(out, rows)
        done.update({r["id"]: r for r in rows})
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return [done[s.id] for s in samples]


# ============================================================================ evaluate

def verdict_table(samples: Sequence[Sample], rows: Sequence[dict]):
    """The judged-responses table of ssui_lib.eval.metrics (id, category = level-1 class, kind, safe,
    effective, scored)."""
    import pandas as pd

    by_id = {r["id"]: r for r in rows}
    return pd.DataFrame([{
        "id": s.id, "category": s.category.l1, "kind": s.kind, "safe": by_id[s.id]["safe"],
        "effective": by_id[s.id]["effective"], "scored": by_id[s.id]["scored"],
    } for s in samples], columns=["id", "category", "kind", "safe", "effective", "scored"])


def _per_category(df, metric_fn, names: tuple[str, ...], n_boot: int, seed: int) -> dict[str, dict]:
    from ssui_lib.eval.metrics import by_category

    out: dict[str, dict] = {}
    irs = df[df["kind"] == "irs"]
    if irs.empty:
        return out
    for name in names:
        table = by_category(irs, metric_fn, metric=name, n_boot=n_boot, seed=seed)
        for cat, r in table.iterrows():
            out.setdefault(str(cat), {})[name] = {"value": r["value"], "ci": [r["lo"], r["hi"]],
                                                  "n": int(r["n"]), "unscored": int(r["unscored"])}
    return out


def summarise(samples: Sequence[Sample], verdicts: Sequence[dict], path_verdicts: Sequence[dict] | None = None,
              *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """metrics / by_category / over_refusal / unscored counts of judged samples (the metric part of
    :func:`evaluate`'s result). S / E / S&E and SR / ER / SER are over the IRS samples; the benign
    twins give the over-refusal rate; an unscored row stays in the denominator as neither safe nor
    effective, and each rate carries its scored-only value and the unscored count beside it."""
    from ssui_lib.eval.metrics import over_refusal, rates, rsbench_rates

    df = verdict_table(samples, verdicts)
    metrics = dict(rates(df, n_boot=n_boot, seed=seed))
    by_cat = _per_category(df, rates, ("S", "E", "SE"), n_boot, seed)
    result: dict[str, Any] = {"unscored": int((~df["scored"].astype(bool)).sum())}
    if path_verdicts is not None:
        pdf = verdict_table(samples, path_verdicts)
        metrics.update(rsbench_rates(pdf, n_boot=n_boot, seed=seed))
        for cat, m in _per_category(pdf, rsbench_rates, ("SR", "ER", "SER"), n_boot, seed).items():
            by_cat.setdefault(cat, {}).update(m)
        result["unscored_paths"] = int((~pdf["scored"].astype(bool)).sum())
    result["metrics"] = metrics
    result["by_category"] = by_cat
    if (df["kind"] == "twin").any():
        result["over_refusal"] = over_refusal(df, n_boot=n_boot, seed=seed)
    return result


def evaluate(model: ChatModel | LazyModel, judge: Judge, dataset: str | Sequence[Sample], out_path: str | os.PathLike,
             *, icl_k: int = 0, icl_by: str = "category", params=None, limit: int | None = None, seed: int = 0,
             paths: bool = True, work_dir: str | os.PathLike | None = None, n_boot: int = 1000,
             progress: bool = False, image_dir: str | os.PathLike | None = None,
             pool: Sequence[Sample] | None = None, chain: bool = False) -> dict[str, Any]:
    """Generate, judge and score; write the result atomically to ``out_path`` (JSON) and return it:

    ``{"model", "judge", "dataset", "n", "unscored", "metrics": {"S"|"E"|"SE"|"SR"|"ER"|"SER":
    {"value", "ci": [lo, hi], "n", "unscored"}}, "by_category": {L1: {metric: {...}}}, …}``

    plus ``over_refusal`` (when the data has benign twins), ``unscored_paths``,
    ``paths_without_chain``, ``settings`` and ``files``. Values are fractions in [0, 1]; an
    undefined value (no scored sample) is null. ``model``: a ChatModel, or a LazyModel (loaded
    once the dataset has been read, so a bad dataset fails before a model loads); ``judge``: a
    Judge. Both are objects resolved from their names at the edge (``models.resolve_model``,
    ``eval.judge.resolve_judge``, which also places a model judge's cache); the result records
    their ``name``. ``dataset``: a spec (``bundled:test``) or samples. Intermediate files
    (responses, verdicts, paths) go to ``work_dir`` (default ``OUT.work/`` beside the output), so an
    interrupted evaluation resumes where it stopped. ``paths=False`` skips SR / ER / SER.
    ``chain=True`` with ``icl_k = 0``: the zero-shot prompt with the six-step instructions (SSUI
    Table 1's instruction-only arm; its responses are also its paths).
    """
    from ssui_lib.data.bundled import load_dataset

    lazy = as_model(model, "evaluate")
    judge = as_judge(judge, "evaluate")
    if isinstance(dataset, str):
        samples, dataset_name = load_dataset(dataset, str(image_dir) if image_dir else None), dataset
    else:
        samples, dataset_name = list(dataset), "(samples)"
    samples = apply_limit(samples, limit)
    out = Path(out_path)
    work = Path(work_dir) if work_dir else out.with_name(out.name.removesuffix(".json") + ".work")
    model = lazy.load()
    params = params or SamplingParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS, seed=seed)
    common = dict(icl_by=icl_by, params=params, progress=progress, seed=seed, pool=pool, image_dir=image_dir)
    files = {"responses": work / "responses.jsonl", "verdicts": work / "verdicts.jsonl"}
    generate_responses(model, samples, out_path=files["responses"], icl_k=icl_k, chain=chain, **common)
    verdicts = judge_responses(judge, samples, files["responses"], files["verdicts"], mode="response",
                               progress=progress)
    path_verdicts = None
    no_chain = None
    if paths:
        if icl_k or chain:
            files["paths"] = files["responses"]
        else:
            files["paths"] = work / "paths.jsonl"
            generate_responses(model, samples, out_path=files["paths"], icl_k=0, chain=True, **common)
        files["path_verdicts"] = work / "path_verdicts.jsonl"
        path_verdicts = judge_responses(judge, samples, files["paths"], files["path_verdicts"], mode="path",
                                        progress=progress)
        path_texts = read_responses(files["paths"], samples)
        no_chain = sum(not has_chain(t) for t in path_texts.values())
    summary = summarise(samples, verdicts, path_verdicts, n_boot=n_boot, seed=seed)
    result = {
        "model": model.name, "judge": judge.name, "dataset": dataset_name, "n": len(samples),
        "unscored": summary.pop("unscored"), "metrics": summary.pop("metrics"),
        "by_category": summary.pop("by_category"), **summary,
        "paths_without_chain": no_chain,
        "settings": {"icl_k": icl_k, "icl_by": icl_by if icl_k else None, "chain": bool(chain or icl_k),
                     "limit": limit, "seed": seed,
                     "paths": paths, "n_boot": n_boot, "params": asdict(params)},
        "files": {k: str(v) for k, v in files.items()},
    }
    result = json_safe(result)
    atomic_write_text(out, json.dumps(result, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return result


def apply_limit(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The first ``limit`` samples (dataset order), or all."""
    if limit is None:
        return samples
    if not isinstance(limit, int) or limit < 1:
        raise SSUIError(f"--limit must be an integer >= 1, got {limit!r}")
    return samples[:limit]
