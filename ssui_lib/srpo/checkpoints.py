"""Checkpoints of a training run (:mod:`ssui_lib.srpo.train`): adapter + optimizer + RNG state +
step, written atomically; ``checkpoint.json`` names the latest and records the configuration
and data a continued run must share."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load_file

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import atomic_write_dir, atomic_write_text, check_settings, read_jsonl, read_settings
from ssui_lib.srpo.config import TrainConfig, config_key


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(out: Path, cm, optimizer, step: int, cfg: TrainConfig, elapsed: float, data_key: str) -> Path:
    """Adapter + optimizer + RNG state + step, in ``checkpoints/step-NNNNNN`` (atomic), then
    ``checkpoint.json`` points at it (atomic) and older checkpoints are removed."""
    name = f"step-{step:06d}"
    ckdir = out / "checkpoints"

    def write(tmp: Path) -> None:
        cm.model.save_pretrained(str(tmp / "adapter"))
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate(), "elapsed": elapsed}, tmp / "state.pt")

    atomic_write_dir(ckdir / name, write)
    atomic_write_text(out / "checkpoint.json", json.dumps(
        {"latest": f"checkpoints/{name}", "step": step, "config": config_key(cfg), "data": data_key}, indent=1))
    for old in ckdir.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return ckdir / name


def load_checkpoint(out: Path, cm, optimizer, cfg: TrainConfig, data_key: str) -> tuple[int, float] | None:
    """Restore the latest checkpoint in ``out`` (if any) into the LoRA model and optimizer; return
    (step, elapsed seconds). A checkpoint from a different configuration or data is an error."""
    pointer = out / "checkpoint.json"
    if not pointer.is_file():
        return None
    meta = read_settings(pointer) or {}
    check_settings(out, meta.get("config", {}), config_key(cfg), what="a different configuration",
                   hint="use another --out to start afresh")
    check_settings(out, {"data": meta.get("data")}, {"data": data_key}, what="different training data",
                   hint="use another --out to start afresh")
    folder = out / meta["latest"]

    weights = folder / "adapter" / "adapter_model.safetensors"
    if not weights.is_file():
        raise SSUIError(f"{folder}: checkpoint incomplete (no adapter_model.safetensors)")
    set_peft_model_state_dict(cm.model, load_file(str(weights)))
    state = torch.load(folder / "state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    return int(state["step"]), float(state.get("elapsed", 0.0))


def _read_log(path: Path, upto: int) -> list[dict[str, Any]]:
    """Log lines of steps ≤ ``upto`` (lines after the checkpoint, or a torn last line, are dropped)."""
    rows, _ = read_jsonl(path, what="corrupt log line", warn=False)
    return [r for _, r in rows if isinstance(r, dict) and isinstance(r.get("step"), int) and r["step"] <= upto]
