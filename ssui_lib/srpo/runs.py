"""A training run in a folder, reused when it is already finished (chapters 05 and 06).

:func:`ssui_lib.srpo.train.train` resumes from a checkpoint, but it must load the model to do so. A
book chapter re-run after a finished run should cost nothing, so :func:`train_run` first checks the
folder's ``summary.json``: same configuration, same training data (the fingerprint of the
examples, built without any model), every planned step done, an adapter present → the summary is
returned without loading a model. Otherwise the model is loaded and ``train`` runs (or continues).

A folder that holds a run of *another* configuration or *other* data (chapter 04 was re-run with
more samples, a parameter changed) is an error from ``train``; ``restart_stale=True`` removes the
folder first and trains afresh (the chapters do that: their folders hold derived results only).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.core.store import check_settings, read_settings
from ssui_lib.eval.heldout import adapter_fingerprint, heldout_eval
from ssui_lib.models import LazyModel, ModelSpec, is_vlm_folder, parse_model_name
from ssui_lib.models.embedded import ensure_converted
from ssui_lib.srpo.config import TrainConfig, config_key
from ssui_lib.srpo.examples import load_exploration, run_fingerprint
from ssui_lib.srpo.train import load_trainable, train


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return read_settings(path)
    except SSUIError:
        return None


def finished_summary(out_dir: str | os.PathLike, cfg: TrainConfig, data_key: str) -> dict[str, Any] | None:
    """The summary of a finished run of exactly ``cfg`` on data ``data_key`` in ``out_dir``, or None."""
    out = Path(out_dir)
    s = _read_json(out / "summary.json")
    if not s or not (out / "adapter" / "adapter_config.json").is_file():
        return None
    if not check_settings(out, {**s.get("config", {}), "data": s.get("data_fingerprint")},
                          {**cfg.to_dict(), "data": data_key}, on_mismatch="reset"):
        return None
    if not isinstance(s.get("steps"), int) or s["steps"] < s.get("planned_steps", s["steps"] + 1):
        return None
    return s


def _recorded(out: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    """The configuration (the fields ``train`` checks on resume) and data fingerprint that the
    folder's checkpoint, else its summary, records; None for an empty folder."""
    ck = _read_json(out / "checkpoint.json")
    if ck is not None:
        return {**ck.get("config", {}), "data": ck.get("data")}
    s = _read_json(out / "summary.json")
    if s is not None:
        return {**{k: v for k, v in s.get("config", {}).items() if k in config_key(cfg)},
                "data": s.get("data_fingerprint")}
    return None


def is_stale(out_dir: str | os.PathLike, cfg: TrainConfig, data_key: str) -> bool:
    """True when ``out_dir`` holds a checkpoint or summary of another configuration or other data
    (what ``train`` refuses to continue); fields that only decide when a run stops (max_steps,
    save_every) do not count."""
    return not check_settings(out_dir, _recorded(Path(out_dir), cfg), {**config_key(cfg), "data": data_key},
                              on_mismatch="reset")


def _wants_images(spec: ModelSpec) -> bool:
    """Whether the model takes pixels (a local VLM folder); decided without loading it."""
    return spec.kind == "hf" and is_vlm_folder(spec.path)


def train_run(model_name: str | ModelSpec, data_dir: str | os.PathLike, cfg: TrainConfig, out_dir: str | os.PathLike, *,
              dataset: str | None = None, restart_stale: bool = False, progress: bool = True,
              only_paired: bool = False) -> dict[str, Any]:
    """Train ``cfg.method`` on the exploration in ``data_dir`` into ``out_dir`` (adapter in
    ``out_dir/adapter``), or reuse a finished identical run. Returns the run's summary with
    ``"reused": True/False``. SSUIError when the data gives no examples for the method (dpo/orpo
    need explored pairs) or the folder is stale and ``restart_stale`` is False. ``only_paired``
    keeps only the examples with at least one explored pair (a cheap λ sweep: λ changes nothing
    for a sample without pairs)."""
    if not (Path(data_dir) / "trees.jsonl").is_file():
        raise SSUIError(f"{data_dir}: no trees.jsonl there (the exploration of chapter 04 / ssui explore --out DIR)")
    spec = parse_model_name(model_name)  # resolved once: the image check and the loader share it
    examples = load_exploration(data_dir, cfg.method, dataset=dataset, load_images=_wants_images(spec))
    if only_paired:
        examples = [e for e in examples if e.pairs]
    if not examples:
        raise SSUIError(f"{data_dir}: no training examples for method {cfg.method!r}"
                        + (" (dpo/orpo need samples with at least one positive and one negative path)"
                           if cfg.method in ("dpo", "orpo") or only_paired else ""))
    key = run_fingerprint(examples, cfg.init_adapter)
    done = finished_summary(out_dir, cfg, key)
    if done is not None:
        return {**done, "reused": True}
    check_settings(out_dir, _recorded(Path(out_dir), cfg), {**config_key(cfg), "data": key},
                   on_mismatch="reset" if restart_stale else "error", reset=lambda: shutil.rmtree(out_dir),
                   what="another configuration or other data", hint="delete it or pass restart_stale=True")
    cm = load_trainable(spec)
    try:
        summary = train(cm, examples, cfg, out_dir, progress=progress)
    finally:
        del cm  # the LoRA-wrapped model is not reused: free its memory before the next run
    return {**summary, "reused": False}


def read_log(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The run's ``log.jsonl`` (one row per optimizer step: step, loss, ref, align, margin, lr, …)."""
    p = Path(out_dir) / "log.jsonl"
    if not p.is_file():
        raise SSUIError(f"{out_dir}: no log.jsonl (not a training run folder)")
    rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return pd.DataFrame(rows)


def adapter_base(base_model: str) -> str | None:
    """The local folder a LoRA adapter of ``base_model`` is loaded on (the embedded model's is its
    float32 copy), or None for a model that takes no adapter (an API model, a model that already
    carries one)."""
    spec = parse_model_name(base_model)
    if spec.kind == "embedded":
        return str(ensure_converted())
    if spec.kind == "hf" and not spec.adapter:
        return spec.path
    return None


def adapter_model_name(base_model: str, adapter_dir: str | os.PathLike) -> str:
    """The model name that loads a trained adapter on its base model: ``hf:<base folder>+adapter:<dir>``
    (see :func:`adapter_base`). SSUIError for a model that takes no adapter (an API model)."""
    base = adapter_base(base_model)
    if base is None:
        raise SSUIError(f"model {base_model!r}: an adapter needs a local base model (embedded or hf:PATH)")
    return f"hf:{base}+adapter:{adapter_dir}"


def find_adapter(folder: str | os.PathLike) -> Path | None:
    """The LoRA adapter folder (holding ``adapter_config.json``) in ``folder`` or ``folder/adapter``."""
    p = Path(folder)
    for cand in (p, p / "adapter"):
        if (cand / "adapter_config.json").is_file():
            return cand
    return None


def exploration_data(profile: str, exploration_dir: str = "") -> Path:
    """The folder of chapter 04's exploration (``results/<profile>/04`` unless given); SSUIError
    saying how to make it when its trees.jsonl is missing."""
    data_dir = Path(exploration_dir or Path("results") / profile / "04")
    if not (data_dir / "trees.jsonl").is_file():
        raise SSUIError(f"{data_dir}/trees.jsonl is missing: this chapter trains on chapter 04's exploration. "
                        f"Run it first: ssui book run --profile {profile} --chapters 04 (or set exploration_dir)")
    return data_dir


def heldout_variants(base_model: str, variants: Mapping[Any, tuple[str, str | os.PathLike | None, str | os.PathLike]],
                     samples: Sequence[Sample], **heldout_kw: Any) -> tuple[dict[Any, dict], dict[Any, float]]:
    """Held-out evaluation (``eval.heldout.heldout_eval``) of the base model and of trained
    adapters, as chapters 05 and 06 run it: ``variants`` maps a key to (label, adapter folder or
    None for the base model itself, output folder). Each adapter is loaded on ``base_model``
    (:func:`adapter_model_name`) and fingerprinted by its weights, so a retrained adapter is
    re-evaluated; a finished evaluation is re-read without loading a model. ``heldout_kw`` go to
    ``heldout_eval`` (judge, params, n_boot, seed, force_verdict, …). Returns (results, seconds)
    by key."""
    results, seconds = {}, {}
    for key, (label, adapter, out) in variants.items():
        name = adapter_model_name(base_model, adapter) if adapter is not None else base_model
        t0 = time.perf_counter()
        results[key] = heldout_eval(LazyModel(name), samples, out, label=label,
                                    fingerprint=adapter_fingerprint(adapter) if adapter is not None else None,
                                    **heldout_kw)
        seconds[key] = time.perf_counter() - t0
    return results, seconds
