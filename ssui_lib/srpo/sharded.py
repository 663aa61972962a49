"""The LoRA loop under a sharded engine (FSDP2, launched by ``accelerate launch --config_file
configs/accelerate/fsdp.yaml``): which engine the launcher asks for, how the frozen base is sharded, and
the lockstep a sharded engine needs.

What is sharded. FSDP2's ``fully_shard`` is applied to each transformer layer named by the config's
``fsdp_transformer_layer_cls_to_wrap`` and to the base model, with the LoRA parameters as
``ignored_params``: the frozen base weights (the 7B model's ~15 GB in bf16) are split across the
processes and all-gathered one layer at a time inside each forward and backward pass, while the LoRA
weights (a few MB) stay whole in every process, so their gradients are summed once per step as in the
data-parallel path (``srpo/distributed.py``) and the optimizer, checkpoints and adapter files are those
of the one-process loop.

Why lockstep. Every forward pass of a sharded model issues one all-gather per wrapped layer, and every
backward pass another, so all processes must run the same number of forward passes, in the same grad
mode, and the same number of backward passes, in the same order; otherwise one process waits in a
collective the others never reach (measured here: two gloo processes under ``fully_shard``, one running
one forward pass and the other two before one backward pass, hang until killed). The loop's work per
process is uneven: an SRPO sample has 1 + (its pairs) forward passes (one per row on a VLM, which
forwards one row at a time), and with 5 examples on 2 processes one process gets 3 and the other 2.
So each step is run in slots: slot t runs the t-th example of every process's share, one backward pass
per example; a process whose share is shorter re-runs the step's first example with weight 0
(``dummy``), and a process whose example has fewer forward passes than the slot's largest adds
zero-weight passes (the same inputs again, its logits added × 0 to the real logits, so they are part of
the same backward pass and change no value and no gradient). The plan is computed from the examples
alone (:func:`forward_plan`), by every process for the whole step (the shares are contiguous and known
to all), so no message is needed before the first forward; a pass the plan did not foresee is refused
(SSUIError) before it runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.config import TrainConfig

FSDP_CONFIG = "configs/accelerate/fsdp.yaml"


def _flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in ("1", "true")


def sharded_engine() -> str | None:
    """``"fsdp"`` when launched with an FSDP accelerate config, None for data-parallel (or no
    launcher); SSUIError for a sharded set-up this loop cannot run (named, before any work)."""
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        raise SSUIError("train: launched with DeepSpeed (ACCELERATE_USE_DEEPSPEED=true): DeepSpeed's engine must own "
                        "every backward pass and optimizer step (deepspeed.initialize), and this LoRA loop's uneven "
                        "passes and LoRA-only optimizer do not run under it; for ZeRO-3-style sharding of the frozen "
                        f"base use {FSDP_CONFIG} (FSDP2), or configs/accelerate/ddp.yaml")
    if not _flag("ACCELERATE_USE_FSDP"):
        return None
    version = os.environ.get("FSDP_VERSION", "1").strip()
    if version != "2":
        raise SSUIError(f"train: launched with FSDP version {version} (fsdp_version in the accelerate config): this loop "
                        f"shards with FSDP2 (fully_shard); set fsdp_version: 2 as {FSDP_CONFIG} does")
    if _flag("FSDP_OFFLOAD_PARAMS"):
        raise SSUIError("train: fsdp_offload_params: true is not supported by this loop (the LoRA state stays on the "
                        "device); set it to false")
    policy = os.environ.get("FSDP_AUTO_WRAP_POLICY", "NO_WRAP").strip().upper()
    if policy != "TRANSFORMER_BASED_WRAP":
        raise SSUIError(f"train: fsdp_auto_wrap_policy {policy}: this loop shards layer by layer; set "
                        "TRANSFORMER_BASED_WRAP and fsdp_transformer_layer_cls_to_wrap (the model's decoder layer class)")
    return "fsdp"


@dataclass(frozen=True)
class FsdpSettings:
    """What the FSDP config asks of the loop (read by accelerate's own ``FullyShardedDataParallelPlugin``
    from the environment ``accelerate launch`` sets)."""

    wrap: tuple[str, ...]
    reshard_after_forward: bool
    activation_checkpointing: bool


def fsdp_settings() -> FsdpSettings:
    from accelerate.utils import FullyShardedDataParallelPlugin

    try:
        plugin = FullyShardedDataParallelPlugin()
    except (ValueError, ImportError) as e:
        raise SSUIError(f"train: the FSDP config is not usable: {e}") from None
    names = tuple(n.strip() for n in (plugin.transformer_cls_names_to_wrap or []) if n.strip())
    if not names:
        raise SSUIError("train: FSDP config: fsdp_transformer_layer_cls_to_wrap is empty: name the model's decoder "
                        "layer class (Qwen2_5_VLDecoderLayer, LlamaDecoderLayer)")
    return FsdpSettings(names, bool(plugin.reshard_after_forward), bool(plugin.activation_checkpointing))


def wrap_targets(model: torch.nn.Module, names: Sequence[str]) -> list[torch.nn.Module]:
    """The modules of ``model`` whose class is one of ``names`` (SSUIError naming the model's layer
    classes when none is)."""
    found = [m for m in model.modules() if type(m).__name__ in set(names)]
    if not found:
        layers = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.endswith(("Layer", "Block"))})
        raise SSUIError(f"train: FSDP config: fsdp_transformer_layer_cls_to_wrap {','.join(names)} matches no module of "
                        f"{type(model).__name__}; its layer classes are: {', '.join(layers) or 'none'}")
    return found


def shard_frozen_base(model, trainable: Sequence[torch.nn.Parameter], settings: FsdpSettings, device: torch.device,
                      world: int) -> None:
    """FSDP2 on the peft-wrapped ``model``: each wrap-class layer, then the base model, sharded across
    ``world`` processes; the ``trainable`` (LoRA) parameters are ignored by FSDP (whole in every process).
    (``settings.activation_checkpointing`` is applied by the caller, ``distributed.Processes.place``.)"""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = wrap_targets(base, settings.wrap)
    mesh = init_device_mesh(device.type, (world,))
    ignored = set(trainable)
    for layer in layers:
        fully_shard(layer, mesh=mesh, reshard_after_forward=settings.reshard_after_forward, ignored_params=ignored)
    fully_shard(base, mesh=mesh, reshard_after_forward=settings.reshard_after_forward, ignored_params=ignored)


# ----------------------------------------------------------------------------- the lockstep plan


def is_row_by_row(model) -> bool:
    """Whether the backend forwards one row at a time (a VLM: ``models.is_vlm_folder``'s rule,
    a ``vision_config`` in the model's config) rather than all of a call's rows in one batch."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(getattr(base, "config", None), "vision_config", None) is not None


def forward_plan(cfg: TrainConfig, ex, row_by_row: bool) -> tuple[int, int]:
    """(forward passes with gradients, forward passes without) that ``train.example_terms`` runs for
    ``ex``: srpo/sft score the reference row, then (srpo, λ ≠ 0) each pair's two rows; dpo/orpo score
    the pair's two rows, dpo also its reference log-likelihoods without gradients (unless they were
    computed before training, with ``init_adapter``)."""
    def calls(rows: int) -> int:
        return rows if row_by_row else 1

    m = cfg.method
    if m in ("srpo", "sft"):
        grad = calls(1)
        if m == "srpo" and cfg.lam != 0 and ex.pairs:
            grad += len(ex.pairs) * calls(2)
        return grad, 0
    if m == "dpo":
        return calls(2), 0 if getattr(cfg, "init_adapter", None) is not None else calls(2)
    return calls(2), 0


def bounds(n: int, world: int) -> list[tuple[int, int]]:
    """Each process's contiguous share [start, end) of ``n`` items (``split_between_processes``'s
    rule: the first ``n % world`` processes take one more)."""
    base, extra = divmod(n, world)
    out, start = [], 0
    for r in range(world):
        end = start + base + (1 if r < extra else 0)
        out.append((start, end))
        start = end
    return out


@dataclass(frozen=True)
class Slot:
    """One slot of a step on one process: the example it runs (index into the step's batch), its
    weight (0 for a dummy), and how many zero-weight forward passes it adds (``pad``)."""

    index: int
    dummy: bool
    pad: int
    plan: tuple[int, int]


def schedule(plans: Sequence[tuple[int, int]], world: int, rank: int) -> list[Slot]:
    """This process's slots for a step whose batch has the forward ``plans`` (one per example):
    as many slots as the longest share; a missing example is a dummy re-run of example 0; each slot
    pads its gradient forward passes up to the slot's largest. SSUIError when the passes without
    gradients differ within a slot (they cannot be padded)."""
    shares = bounds(len(plans), world)
    n_slots = max(e - s for s, e in shares)
    out = []
    for t in range(n_slots):
        idx = [(s + t, False) if s + t < e else (0, True) for s, e in shares]
        grads = [plans[i][0] for i, _ in idx]
        nograd = {plans[i][1] for i, _ in idx}
        if len(nograd) > 1:
            raise SSUIError(f"lockstep: slot {t} has different numbers of passes without gradients by process "
                            f"({[plans[i][1] for i, _ in idx]}); they cannot be padded")
        i, dummy = idx[rank]
        out.append(Slot(i, dummy, max(grads) - plans[i][0], plans[i]))
    return out


class ForwardCounter:
    """Replaces ``model.forward`` while a step runs in lockstep: counts each example's forward passes
    against its plan (SSUIError before an unplanned pass runs) and adds the slot's zero-weight passes
    to its first pass with gradients."""

    def __init__(self, model):
        self.model = model
        self.total = 0
        self._slot: Slot | None = None
        self._seen = [0, 0]
        self._pad = 0

    def __enter__(self) -> "ForwardCounter":
        self._had = "forward" in vars(self.model)
        self._original = self.model.forward
        self.model.forward = self._forward
        return self

    def __exit__(self, *exc) -> None:
        if self._had:
            self.model.forward = self._original
        else:
            del self.model.forward

    def run(self, slot: Slot, name: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` (one example's forward and backward passes) as ``slot``; SSUIError when it ran
        fewer passes than planned."""
        self._slot, self._seen, self._pad, self._name = slot, [0, 0], slot.pad, name
        result = fn()
        if tuple(self._seen) != slot.plan:
            raise SSUIError(f"lockstep: sample {name!r} ran {tuple(self._seen)} forward passes (with, without "
                            f"gradients), planned {slot.plan}: sharded.forward_plan is out of date with train.example_terms")
        return result

    def _forward(self, *args, **kwargs):
        if self._slot is None:
            return self._original(*args, **kwargs)
        kind = 0 if torch.is_grad_enabled() else 1
        self._seen[kind] += 1
        if self._seen[kind] > self._slot.plan[kind]:
            raise SSUIError(f"lockstep: sample {self._name!r}: forward pass {self._seen[kind]} "
                            f"{'with' if kind == 0 else 'without'} gradients was not planned ({self._slot.plan}): "
                            "sharded.forward_plan is out of date with train.example_terms")
        out = self._original(*args, **kwargs)
        self.total += 1
        if kind == 0 and self._pad:
            extra = None
            for _ in range(self._pad):
                s = self._original(*args, **kwargs).logits.float().sum()
                extra = s if extra is None else extra + s
                self.total += 1
            self._pad = 0
            out.logits = out.logits + extra * 0.0  # part of this pass's graph, changing no value or gradient
        return out
