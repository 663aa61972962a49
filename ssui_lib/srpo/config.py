"""The training configuration of :mod:`ssui_lib.srpo.train` (method, λ, k, LoRA, optimizer,
schedule), validated field by field; ``config_key`` is what a resumed run must share."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence


from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.losses import VARIANTS

METHODS = ("srpo", "sft", "dpo", "orpo")
# auto: the launcher's choice (accelerate config), else bf16 on a CUDA device that supports it, else no
PRECISIONS = ("auto", "no", "bf16")
# Fields that may differ when a run is continued: they change when it stops or saves (or how much memory it
# needs: gradient checkpointing recomputes the same activations), not what it computes.
_RESUME_FREE = ("max_steps", "save_every", "gradient_checkpointing")
# Fields added later, left out of the resume key at their default: checkpoints written before them still resume.
_KEY_DEFAULTS = {"mixed_precision": "auto", "init_adapter": None}


# ----------------------------------------------------------------------------- config


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SSUIError(f"train config: field '{name}': {value!r} is not one of {', '.join(choices)}")


def _check_int(name: str, value: Any, lo: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise SSUIError(f"train config: field '{name}': expected an integer >= {lo}, got {value!r}")


def _check_float(name: str, value: Any, lo: float, hi: float = math.inf, *, lo_open: bool = False,
                 hi_open: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lo_s = f"> {lo}" if lo_open else f">= {lo}"
        hi_s = "" if hi == math.inf else (f" and < {hi}" if hi_open else f" and <= {hi}")
        raise SSUIError(f"train config: field '{name}': expected a number {lo_s}{hi_s}, got {value!r}")


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes (SRPO Implementation defaults:
    LoRA rank 8, lr 5e-5, batch 8, λ 0.3). Validated on construction (SSUIError names the field)."""

    method: str = "srpo"  # srpo | sft | dpo | orpo
    lam: float = 0.3  # λ of Eq. 9 (srpo)
    k: float = 1.0  # k of Eq. 6 (srpo)
    variant: str = "loglik"  # srpo pair loss: loglik (Eq. 6, summed log-likelihoods) | odds_ratio (ORPO/RPO form)
    beta: float = 0.1  # DPO's β; ORPO's weight on the odds-ratio term (λ in the ORPO paper); both default 0.1
    lr: float = 5e-5
    batch_size: int = 8  # examples per optimizer step (times grad_accum)
    grad_accum: int = 1
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule ignores it)
    warmup_steps: int = 0  # linear warm-up, then a constant learning rate
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    lora_rank: int = 8
    lora_alpha: float = 16
    # 0, peft's default (the SRPO paper gives rank, lr and batch only). Measured on the 2-core CPU
    # (benchmarks/train_bench.py): dropout 0.05 drew a Bernoulli mask for every adapter input, 18% of
    # a LoRA training step (200 -> 170 tokens/s); set it here or with --lora-dropout where wanted.
    lora_dropout: float = 0.0
    target_modules: list[str] | str | None = None  # None: the backend's lora_target_modules()
    max_len: int | None = None  # truncate rows (prompt + continuation) to this many tokens, from the right
    ref_eos: bool = True  # end the reference path with the end-of-turn token (the model learns to stop)
    seed: int = 0
    save_every: int = 50  # checkpoint every this many optimizer steps (and at the end)
    mixed_precision: str = "auto"  # auto | no | bf16 (srpo/distributed.py: bf16 autocast of the forward passes)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (less memory, more time)
    # start from this LoRA adapter folder (e.g. the SFT run's ``adapter/``) instead of a fresh adapter; same
    # rank, alpha and targets. DPO's reference model π_ref is then the starting model (base + this adapter).
    init_adapter: str | None = None

    def __post_init__(self):
        _check_choice("method", self.method, METHODS)
        _check_choice("variant", self.variant, tuple(VARIANTS))
        _check_float("lam", self.lam, 0.0)
        _check_float("k", self.k, 0.0, lo_open=True)
        _check_float("beta", self.beta, 0.0, lo_open=True)
        _check_float("lr", self.lr, 0.0, lo_open=True)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("grad_accum", self.grad_accum, 1)
        _check_int("epochs", self.epochs, 1)
        _check_int("max_steps", self.max_steps, 1, optional=True)
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_float("weight_decay", self.weight_decay, 0.0)
        _check_float("max_grad_norm", self.max_grad_norm, 0.0, lo_open=True, optional=True)
        _check_int("lora_rank", self.lora_rank, 1)
        _check_float("lora_alpha", self.lora_alpha, 0.0, lo_open=True)
        _check_float("lora_dropout", self.lora_dropout, 0.0, 1.0, hi_open=True)
        _check_int("max_len", self.max_len, 8, optional=True)
        _check_int("seed", self.seed, 0)
        _check_int("save_every", self.save_every, 1)
        _check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        for flag in ("ref_eos", "gradient_checkpointing"):
            if not isinstance(getattr(self, flag), bool):
                raise SSUIError(f"train config: field '{flag}': expected true or false, got {getattr(self, flag)!r}")
        if self.init_adapter is not None and not (isinstance(self.init_adapter, str) and self.init_adapter):
            raise SSUIError(f"train config: field 'init_adapter': expected an adapter folder path, got {self.init_adapter!r}")
        tm = self.target_modules
        if tm is not None and not (isinstance(tm, str) and tm) and not (
                isinstance(tm, (list, tuple)) and tm and all(isinstance(x, str) and x for x in tm)):
            raise SSUIError(f"train config: field 'target_modules': expected a module-name list or a regex, got {tm!r}")
        if isinstance(tm, tuple):
            self.target_modules = list(tm)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SSUIError(f"train config: field '{unknown[0]}': unknown (known: {', '.join(sorted(known))})")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_key(cfg: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.to_dict().items()
            if k not in _RESUME_FREE and not (k in _KEY_DEFAULTS and v == _KEY_DEFAULTS[k])}


