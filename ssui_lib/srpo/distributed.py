"""The training loop (:func:`ssui_lib.srpo.train.train`) on one device or many: processes, precision
and memory, through ``accelerate``.

One process per device, started by ``accelerate launch`` (or ``torchrun``), every one running the same
``ssui train`` command. Each optimizer step takes the step's examples (``train.step_examples``: the
global batch, ``batch_size × grad_accum``, the same in a 1-process and an N-process run) and splits them
between the processes in contiguous shares (``accelerate``'s ``split_between_processes``: with 5 examples
on 2 processes, 3 and 2; a process may get none in a short last step). Each process accumulates the
gradient of its share term by term, weighted so that the sum over processes is the 1-process mean over
the global batch; then the accumulated LoRA gradients are summed across processes once per step (one
all-reduce of one flat tensor, ``accelerate.utils.reduce``), and every process takes the same optimizer
step on the same gradient. The step's loss parts are gathered (``gather_object``) into the global means
the 1-process run logs.

Why not DDP's backward hooks (``accelerator.prepare(model)`` + ``no_sync``): DDP all-reduces inside a
backward pass, so every process must run the same number of synchronising backward passes. Here the
work of a share is uneven — SRPO samples have different numbers of pairs, a DPO term has two forward
passes, and a process can have no example at all in a short last step — so the processes would wait on each other's
hooks. Summing the accumulated gradient once per step is the same synchronisation DDP's ``no_sync``
accumulation ends with, without asking every process for equal work.

Under FSDP (``configs/accelerate/fsdp.yaml``) the frozen base is sharded and every forward and backward
pass all-gathers its layers, so there the processes do run in lockstep: each step in slots of one
example per process, padded with zero-weight passes (``srpo/sharded.py``); the LoRA weights stay whole and
their gradients are summed as above. DeepSpeed is refused with a clear error (``sharded.sharded_engine``).

Only the main process writes (log, checkpoints, adapter, summary); every process resumes from the same
checkpoint: the adapter and optimizer state come from its files, and with more than one process each
process's random state (LoRA dropout) is reseeded at every step from (seed, step, process), so a resumed
run draws the same dropout masks as an uninterrupted one without a random-state file per process.

Precision (``TrainConfig.mixed_precision``): ``bf16`` runs every forward pass under bf16 autocast (the
LoRA weights, their gradients and the optimizer stay float32); ``auto`` takes the launcher's choice
(``accelerate launch``'s ``mixed_precision``), else bf16 on a CUDA device that supports it, else none (the
CPUs here run bf16 matrix products far slower than float32). fp16 is refused: the loop has no loss scaling.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch

from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.config import TrainConfig
from ssui_lib.srpo.sharded import (
    ForwardCounter, forward_plan, fsdp_settings, is_row_by_row, schedule, shard_frozen_base, sharded_engine,
)


def _cpu_only() -> bool:
    """The backends' own rule (``models.hf_vlm``): CUDA if present, else the CPU."""
    return not torch.cuda.is_available()


def process_state():
    """The process group the launcher describes (``accelerate launch`` / ``torchrun`` environment), set
    up once per process; without a launcher, one process. Call it before loading a model, so that each
    process's ``cuda`` is its own device."""
    from accelerate import PartialState

    return PartialState(cpu=_cpu_only())


def resolve_precision(requested: str, device: torch.device) -> str:
    """``no`` or ``bf16`` for a requested ``TrainConfig.mixed_precision`` on ``device``."""
    if requested == "auto":
        launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "").strip().lower()
        if launcher in ("no", "bf16"):
            return launcher
        if launcher:
            raise SSUIError(f"train: the launcher asks for mixed_precision {launcher!r}: only no or bf16 are "
                            "supported (fp16 would need loss scaling)")
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SSUIError(f"train config: field 'mixed_precision': {device} does not support bf16; use no")
    return requested


def enable_gradient_checkpointing(cm) -> None:
    """Recompute each layer's activations in the backward pass (transformers' non-reentrant
    checkpointing: no input gradients needed under a frozen, LoRA-wrapped base). Call it on the base
    model, before the adapter is attached; it is active in training mode only."""
    checkpoint_layers(cm.model)


def checkpoint_layers(model) -> None:
    """:func:`enable_gradient_checkpointing` on a transformers model (also the base inside a peft model)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise SSUIError(f"train config: field 'gradient_checkpointing': {type(model).__name__} does not support it")
    kw = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name for it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:  # pragma: no cover - older transformers
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return random.Random(f"ssui-train-rng:{seed}:{step}:{rank}").getrandbits(63)


class Processes:
    """The training processes as seen from one of them: its share of each step, the once-per-step
    gradient sum, the gathered loss parts, autocast, and who writes. One per :func:`train` call."""

    def __init__(self, cfg: TrainConfig):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        self.engine = sharded_engine()  # None (data parallel) or "fsdp"; SSUIError for what cannot run
        self.fsdp = fsdp_settings() if self.engine == "fsdp" else None
        state = process_state()
        self.precision = resolve_precision(cfg.mixed_precision, state.device)
        acc_state = AcceleratorState._shared_state
        if state.num_processes == 1 and acc_state and acc_state.get("_mixed_precision") != self.precision:
            # one process calling train() again with another precision (tests, notebooks): accelerate keeps
            # the first precision for the life of a process unless its state is reset (its own tests do this)
            AcceleratorState._reset_state()
        self.accelerator = Accelerator(mixed_precision=self.precision, cpu=_cpu_only())
        self.seed = cfg.seed
        self.cfg = cfg
        self.lockstep = self.engine is not None and self.world > 1
        self.forward_passes = 0  # this process's forward passes under lockstep (dummies included)
        self.sharded = 0  # parameters FSDP holds as shards (the frozen base's)

    # -------------------------------------------------------------------------------------- who

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def describe(self) -> dict[str, Any]:
        """The run's set-up for its summary; under lockstep also each process's forward passes
        (a collective: every process calls it)."""
        out = {"processes": self.world, "mixed_precision": self.precision, "device": str(self.device)}
        if self.lockstep:
            from accelerate.utils import gather_object

            out.update(sharding="fsdp2", sharded_parameters=self.sharded,
                       forward_passes=gather_object([self.forward_passes]))
        return out

    # -------------------------------------------------------------------------------------- set-up

    def place(self, model, params: Sequence[torch.nn.Parameter]) -> None:
        """Move the model to this process's device and make every process start from the main
        process's trainable weights (what DDP's constructor does)."""
        model.to(self.device)
        if self.world > 1:
            from accelerate.utils import broadcast

            broadcast([p.data for p in params], from_process=0)
        if self.lockstep:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            on = getattr(base, "is_activation_checkpointing", None)  # transformers >= 5.x's name
            if on is None:  # pragma: no cover - older transformers
                on = getattr(base, "is_gradient_checkpointing", False)
            if self.fsdp.activation_checkpointing and not on:
                checkpoint_layers(base)
            shard_frozen_base(model, params, self.fsdp, self.device, self.world)
            from torch.distributed.tensor import DTensor

            self.sharded = sum(isinstance(p, DTensor) for p in model.parameters())

    def check_same_start(self, step: int, out) -> None:
        """Every process must resume from the same checkpoint step (SSUIError otherwise: on several
        machines ``--out`` must be one shared folder, which only the main process writes)."""
        if self.world == 1:
            return
        from accelerate.utils import gather_object

        starts = gather_object([step])
        if len(set(starts)) != 1:
            raise SSUIError(f"{out}: the processes found different checkpoints (steps {starts} by process); "
                            "with several machines, --out must be a folder all of them share")

    def start_step(self, step: int) -> None:
        """With several processes, reseed this process's random state from (seed, step, process)."""
        if self.world > 1:
            s = _step_seed(self.seed, step, self.rank)
            random.seed(s)
            torch.manual_seed(s)

    def share(self, items: Sequence) -> list:
        """This process's contiguous share of ``items`` (possibly empty)."""
        with self.accelerator.split_between_processes(list(items)) as mine:
            return list(mine)

    # -------------------------------------------------------------------------------------- the step

    @contextmanager
    def autocast(self, model) -> Iterator[None]:
        """Every forward pass of ``model`` under bf16 autocast, outputs back in float32 (accelerate's
        own wrapping of a prepared model's forward); backward passes stay outside autocast."""
        if self.precision == "no":
            yield
            return
        from accelerate.utils import convert_outputs_to_fp32

        had = "forward" in vars(model)
        original = model.forward
        model.forward = convert_outputs_to_fp32(torch.autocast(self.device.type, dtype=torch.bfloat16)(original))
        try:
            yield
        finally:
            if had:
                model.forward = original
            else:
                del model.forward

    def objective(self, model, run, batch: Sequence, params: Sequence[torch.nn.Parameter]) -> dict[str, Any]:
        """Accumulate the gradient of the mean objective over the global ``batch`` and return the
        step's parts as global means. ``run(examples, scale)`` is ``train.batch_objective`` with
        ``backward=True``: it accumulates the gradient of (its mean × scale) and returns its parts.
        One process: ``run(batch, None)``, exactly the 1-process loop. Several: this process's share
        with scale len(share)/len(batch) (so the sum over processes is the global mean), then the
        gradient sum across processes."""
        if self.world == 1:
            with self.autocast(model):
                return run(list(batch), None)
        if self.lockstep:
            return self._lockstep(model, run, list(batch), params)
        mine = self.share(batch)
        parts = None
        if mine:
            with self.autocast(model):
                parts = run(mine, len(mine) / len(batch))
        self.sum_gradients(params)
        return self.combine(len(mine), parts)

    def _lockstep(self, model, run, batch: list, params: Sequence[torch.nn.Parameter]) -> dict[str, Any]:
        """:meth:`objective` for a sharded engine: one example per slot on every process, padded
        (``sharded.schedule``); each real example weighted as in the data-parallel path."""
        row_by_row = is_row_by_row(model)
        slots = schedule([forward_plan(self.cfg, ex, row_by_row) for ex in batch], self.world, self.rank)
        n_mine = sum(not s.dummy for s in slots)
        scale = (n_mine / len(batch)) / n_mine if n_mine else 0.0  # the data-parallel path's weight per example
        shares = []
        with self.autocast(model), ForwardCounter(model) as counter:
            for slot in slots:
                ex = batch[slot.index]
                parts = counter.run(slot, ex.sample_id, lambda: run([ex], 0.0 if slot.dummy else scale))
                if not slot.dummy:
                    shares.append((1, parts))
        self.forward_passes += counter.total
        self.sum_gradients(params)
        from accelerate.utils import gather_object

        return combine_parts(gather_object(shares))

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum the accumulated gradients across processes (one all-reduce of one flat tensor); a
        process without examples contributes zeros."""
        if self.world == 1:
            return
        from accelerate.utils import reduce

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = reduce(torch.cat([g.reshape(-1).float() for g in grads]), reduction="sum")
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
            offset += n

    def combine(self, n_mine: int, parts: dict[str, Any] | None) -> dict[str, Any]:
        """The global step parts from each process's (share size, parts): means over examples
        weighted by share size, ``margin`` weighted by pairs, ``n_pairs`` summed."""
        from accelerate.utils import gather_object

        return combine_parts(gather_object([(n_mine, parts)]))

    def clip_grad_norm(self, params: Sequence[torch.nn.Parameter], max_norm: float) -> float:
        """Clip the (already summed, so identical) gradients; every process computes the same norm."""
        return float(self.accelerator.clip_grad_norm_(params, max_norm))

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()


def combine_parts(shares: Sequence[tuple[int, dict[str, Any] | None]]) -> dict[str, Any]:
    """Merge per-process ``batch_objective`` parts (each a mean over that process's share) into the
    means over all examples. A share of size 0 (parts None) adds nothing."""
    done = [(n, p) for n, p in shares if n and p is not None]
    if not done:
        raise SSUIError("no training examples in this step on any process")
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for _, p in done for k in p):
        if key == "n_pairs":
            out[key] = sum(p.get(key) or 0 for _, p in done)
            continue
        weight = (lambda n, p: p.get("n_pairs") or 0) if key == "margin" else (lambda n, p: n)
        have = [(weight(n, p), p[key]) for n, p in done if p.get(key) is not None]
        total = sum(w for w, _ in have)
        out[key] = sum(w * v for w, v in have) / total if have and total else None
    return out
