"""SRPO path optimization (SRPO Eq. 5–9) and the SFT / DPO / ORPO baselines: one LoRA training loop.

What each method optimises, per training example (the losses are in :mod:`ssui_lib.srpo.losses`, or
below where they are baselines only):

- ``srpo``  one example per sample: J = J_ref(τ*) + λ · Σ_i J_align,i (Eq. 9), J_ref the mean token
  NLL of the reference path given Q (Eq. 5), J_align,i = −k · log σ(L(τ_i⁺) − L(τ_i⁻)) (Eq. 6) on the
  continuations after the shared prefix τ_1:i−1 (Eq. 7: the prefix cancels, so only continuation
  tokens are scored). ``variant="odds_ratio"`` swaps Eq. 6 for the ORPO / RPO log-odds form on
  length-averaged log-probs.
- ``sft``   J_ref only, on every sample (λ = 0, no pairs): the same loop.
- ``dpo``   one example per explored pair, whole paths (τ_1:i−1 ⊕ continuation) as chosen / rejected:
  −log σ(β · [(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))]), π_ref = the base model
  (the LoRA adapter switched off).
- ``orpo``  one example per explored pair: NLL(chosen) + β · (−log σ(log odds(c) − log odds(r))).

Why our own loop and not TRL's DPOTrainer / ORPOTrainer (trl 1.16): TRL's DPOTrainer does run here
on CPU with a peft LoRA (measured on a 2-layer random Llama: ~10 s import + ~5.5 s per step of
4 tiny pairs), but (1) ORPOTrainer now lives in ``trl.experimental`` (an unstable API), (2) TRL
re-applies the chat template and tokenizes prompt/chosen/rejected its own way, while SRPO and SFT
score exactly the tokens of the backend's ``encode()`` contract (prompt ⊕ prefix ⊕ continuation,
labels only on the continuation) — the paper's comparison is fair only if the four methods see the
same tokens, the same LoRA, the same optimizer and data order, and differ only in the objective;
(3) resumable checkpoints, ``log.jsonl`` and the vision backend (pixels through the same
``encode()``) then come once, for all four. DPO and ORPO are each a few lines (below), written
after TRL's definitions (``sigmoid`` DPO loss; ORPO's ``odds_ratio_loss`` with mean-token NLL on
the chosen path) and tested on hand-made tensors.

Memory: the objective of a sample is a *sum* of independent terms (the reference row, then one
term per pair), so each term is forwarded and back-propagated on its own: peak memory is that of
two sequences, whatever the number of pairs. The gradient equals that of the whole objective.

Outputs in ``out_dir``: ``adapter/`` (peft ``save_pretrained``: ``adapter_model.safetensors`` +
``adapter_config.json``), ``log.jsonl`` (one line per optimizer step: step, loss, ref, align, lr,
time, …), ``summary.json``, and ``checkpoints/`` (adapter + optimizer + scheduler + RNG state +
step, every ``save_every`` steps, written atomically; ``checkpoint.json`` names the latest).
Restarting with the same configuration continues from the latest checkpoint; the learning-rate
schedule (linear warm-up, then constant) does not depend on ``max_steps``, so a run capped by
``max_steps`` and then continued ends in the same state as an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.losses import VARIANTS, orpo_align_loss, ref_nll, sequence_logps, token_logps_from_logits
from ssui_lib.models.base import Prompt
from ssui_lib.core.store import append_jsonl, atomic_write_dir, atomic_write_text, check_settings, read_jsonl, read_settings

METHODS = ("srpo", "sft", "dpo", "orpo")
# A text LM's attention + MLP projections (Llama / Qwen / SmolLM names); a VLM backend names its
# own (its language model only) through ``lora_target_modules()``.
LM_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Fields that may differ when a run is continued: they change when it stops or saves, not what it computes.
_RESUME_FREE = ("max_steps", "save_every")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Pair:
    """One contrastive pair of SRPO Eq. 6 for a sample: the shared prefix τ_1:i−1 (the reference
    path's first i−1 steps) and a positive / negative continuation of it (F = 1 / F = 0).
    The same fields, in the same order, as ``explore.PairRow`` (``Pair(*row)``)."""

    sample_id: str
    step: int
    prefix: str
    pos: str
    neg: str


@dataclass
class TrainExample:
    """What one unit of a batch is trained on: the question prompt Q, the reference path τ*
    (srpo, sft) and the contrastive pairs (srpo: all of the sample's steps; dpo/orpo: one)."""

    sample_id: str
    prompt: Prompt
    reference: str | None = None
    pairs: list[Pair] = field(default_factory=list)


def build_examples(method: str, references: dict[str, str], pairs: Iterable[Pair],
                   prompt_for: Callable[[str], Prompt]) -> list[TrainExample]:
    """Training examples for a method from reference paths (sample id → τ*) and explored pairs.

    srpo: one example per sample with a reference path (its pairs, possibly none: J_align = 0);
    sft: the same without pairs; dpo / orpo: one example per pair (only samples with ≥ 1 correct and
    ≥ 1 incorrect path have pairs). ``prompt_for(sample_id)`` gives the question prompt Q.
    Order: sample ids as given, pairs by step."""
    _check_choice("method", method, METHODS)
    by_id: dict[str, list[Pair]] = {}
    for p in pairs:
        by_id.setdefault(p.sample_id, []).append(p)
    for ps in by_id.values():
        ps.sort(key=lambda p: p.step)
    if method in ("srpo", "sft"):
        return [TrainExample(sid, prompt_for(sid), ref, by_id.get(sid, []) if method == "srpo" else [])
                for sid, ref in references.items()]
    return [TrainExample(sid, prompt_for(sid), None, [p]) for sid, ps in by_id.items() for p in ps]


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
    lora_dropout: float = 0.05
    target_modules: list[str] | str | None = None  # None: the backend's default (see LM_TARGETS)
    max_len: int | None = None  # truncate rows (prompt + continuation) to this many tokens, from the right
    ref_eos: bool = True  # end the reference path with the end-of-turn token (the model learns to stop)
    seed: int = 0
    save_every: int = 50  # checkpoint every this many optimizer steps (and at the end)

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
        if not isinstance(self.ref_eos, bool):
            raise SSUIError(f"train config: field 'ref_eos': expected true or false, got {self.ref_eos!r}")
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


# ----------------------------------------------------------------------------- the extra losses (baselines)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """DPO (Rafailov et al. 2023), per pair: −log σ(β · [(π_c − ref_c) − (π_r − ref_r)]) on summed
    log-likelihoods of the whole paths (TRL's ``sigmoid`` loss). Shapes [P] → [P]."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin)


def orpo_loss(nll_chosen: torch.Tensor, avg_logp_chosen: torch.Tensor, avg_logp_rejected: torch.Tensor,
              beta: float = 0.1) -> torch.Tensor:
    """ORPO (Hong, Lee and Thorne 2024), per pair: NLL(chosen) + β · (−log σ(log odds_c − log odds_r)),
    with the mean-token NLL of the chosen path and length-averaged log-probs in the odds (as TRL's
    ORPOTrainer). The odds-ratio term is :func:`ssui_lib.srpo.losses.orpo_align_loss`. Shapes [P] → [P]."""
    return nll_chosen + beta * orpo_align_loss(avg_logp_chosen, avg_logp_rejected)


# ----------------------------------------------------------------------------- scoring rows


@dataclass(frozen=True)
class Row:
    """One sequence to score: prompt ⊕ prefix ⊕ continuation; only the continuation is labelled."""

    prompt: Prompt
    continuation: str
    prefix: str = ""
    add_eos: bool = False


def _batch_dict(cm, row: Row) -> dict[str, torch.Tensor]:
    """A batch of one row through the backend's encode contract: the text LM returns ``Encoded``
    (collated here by the backend's ``collate``), the VLM a ready batch dict with pixels."""
    enc = cm.encode(row.prompt, row.continuation, prefix=row.prefix, add_eos=row.add_eos)
    if isinstance(enc, dict):
        return enc
    if hasattr(cm, "collate"):
        return cm.collate([enc])
    raise SSUIError(f"{getattr(cm, 'name', cm)}: encode() gave {type(enc).__name__}, and there is no collate()")


def _batch_rows(cm, rows: Sequence[Row]) -> list[dict[str, torch.Tensor]]:
    """Forward batches for rows: one padded batch on a text LM, one row per batch otherwise (a VLM's
    pixels and image-grid tensors are per batch; the vision backend collates its own)."""
    if hasattr(cm, "collate"):
        encs = [cm.encode(r.prompt, r.continuation, prefix=r.prefix, add_eos=r.add_eos) for r in rows]
        if all(not isinstance(e, dict) for e in encs):
            return [cm.collate(encs)]
    return [_batch_dict(cm, r) for r in rows]


def _truncate(batch: dict[str, torch.Tensor], max_len: int | None) -> dict[str, torch.Tensor]:
    """Cut every per-token tensor to ``max_len`` positions (from the right: the prompt stays)."""
    L = batch["input_ids"].shape[1]
    if max_len is None or L <= max_len:
        return batch
    return {k: (v[:, :max_len] if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[:2] == batch["input_ids"].shape
                else v) for k, v in batch.items()}


def _device(cm) -> torch.device:
    try:
        return next(cm.model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def _accepts_logits_to_keep(model) -> bool:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - an exotic forward
        return False


def score_rows(cm, rows: Sequence[Row], max_len: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-token log-probabilities of each row's continuation, with the graph kept (for training):
    a list of ``(token_logps [1, L'], mask [1, L'])``, one per row, from
    :func:`ssui_lib.srpo.losses.token_logps_from_logits`.

    Only the positions that predict a labelled token get logits (transformers' ``logits_to_keep``):
    the prompt of a CoT question is long and its vocabulary projection is wasted work and memory
    (a [L, 49152] float block per row for the embedded model). ``L'`` is the kept width."""
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    dev = _device(cm)
    trim = _accepts_logits_to_keep(cm.model)
    for batch in _batch_rows(cm, rows):
        if max_len is not None:
            for r in range(batch["labels"].shape[0]):
                first = int((batch["labels"][r] != -100).nonzero()[0])
                if first >= max_len:
                    raise SSUIError(f"the prompt (+ prefix) is {first} tokens: max_len={max_len} leaves no "
                                    "continuation token to score; raise max_len")
        batch = _truncate(batch, max_len)
        labels = batch["labels"].to(dev)
        inputs = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items() if k != "labels"}
        labelled = (labels != -100).any(0).nonzero()
        if trim:
            # keep the position before the first labelled token (it predicts that token) and all after
            keep = labels.shape[1] - max(int(labelled[0]) - 1, 0)
            inputs["logits_to_keep"] = keep
            labels = labels[:, labels.shape[1] - keep:]
        logits = cm.model(**inputs).logits
        tlp, mask = token_logps_from_logits(logits.float(), labels)
        for r in range(tlp.shape[0]):
            out.append((tlp[r:r + 1], mask[r:r + 1]))
    return out


def _sums(scored: Sequence[tuple[torch.Tensor, torch.Tensor]], average: bool = False) -> torch.Tensor:
    return torch.cat([sequence_logps(t, m, average=average) for t, m in scored])


# ----------------------------------------------------------------------------- the objective, term by term


def _reference_rows(cm, rows: Sequence[Row], max_len: int | None) -> torch.Tensor:
    """Summed log-likelihoods under the reference model (LoRA switched off), without a graph."""
    with torch.no_grad():
        ctx = cm.model.disable_adapter() if hasattr(cm.model, "disable_adapter") else _nullcontext()
        with ctx:
            return _sums(score_rows(cm, rows, max_len)).detach()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def example_terms(cm, cfg: TrainConfig, ex: TrainExample) -> Iterable[tuple[torch.Tensor, dict[str, float]]]:
    """The objective of one example as a sequence of independent additive terms, each with the
    graph of only its own rows: summing the yielded tensors gives the example's objective; the
    dicts carry the parts for logging ("ref", "align", "margin", "n_pairs").

    srpo/sft: J_ref(τ*) first, then λ·J_align,i per pair (Eq. 9 with Eq. 8's sum; with λ = 0 the
    pairs are not even scored); dpo/orpo: one term."""
    m = cfg.method
    if m in ("srpo", "sft"):
        if not ex.reference:
            raise SSUIError(f"sample {ex.sample_id!r}: no reference path τ* to train on")
        (ref_row,) = score_rows(cm, [Row(ex.prompt, ex.reference, "", cfg.ref_eos)], cfg.max_len)
        j_ref = ref_nll(*ref_row)
        yield j_ref, {"ref": j_ref.item()}
        if m == "sft" or cfg.lam == 0:
            return
        average = cfg.variant == "odds_ratio"
        for p in ex.pairs:
            scored = score_rows(cm, [Row(ex.prompt, p.pos, p.prefix), Row(ex.prompt, p.neg, p.prefix)], cfg.max_len)
            lp = _sums(scored, average=average)
            j_align = VARIANTS[cfg.variant](lp[:1], lp[1:], k=cfg.k)[0]
            yield cfg.lam * j_align, {"align": j_align.item(), "margin": (lp[0] - lp[1]).item(), "n_pairs": 1}
        return
    (p,) = ex.pairs
    rows = [Row(ex.prompt, p.prefix + p.pos), Row(ex.prompt, p.prefix + p.neg)]
    scored = score_rows(cm, rows, cfg.max_len)
    if m == "dpo":
        ref = _reference_rows(cm, rows, cfg.max_len)
        lp = _sums(scored)
        loss = dpo_loss(lp[:1], lp[1:], ref[:1], ref[1:], cfg.beta)[0]
        margin = ((lp[0] - ref[0]) - (lp[1] - ref[1])).item()
        yield loss, {"align": loss.item(), "margin": margin, "n_pairs": 1}
        return
    avg = _sums(scored, average=True)
    nll = ref_nll(*scored[0])
    loss = orpo_loss(nll.reshape(1), avg[:1], avg[1:], cfg.beta)[0]
    odds = orpo_align_loss(avg[:1].detach(), avg[1:].detach())[0]  # the odds-ratio part, for the log
    yield loss, {"ref": nll.item(), "align": odds.item(), "margin": (avg[0] - avg[1]).item(), "n_pairs": 1}


def _named(sample_id: str, terms: Iterable):
    """Re-raise a term's SSUIError with the sample it belongs to."""
    try:
        yield from terms
    except SSUIError as e:
        raise SSUIError(f"sample {sample_id!r}: {e}") from None


def batch_objective(cm, cfg: TrainConfig, examples: Sequence[TrainExample], backward: bool = False,
                    scale: float | None = None) -> dict[str, Any]:
    """The mean objective over ``examples`` (each example's J, averaged), with its parts; with
    ``backward=True`` the gradient of (mean J × ``scale``/len) is accumulated term by term.

    Returns {"loss", "ref", "align", "margin", "n_pairs"}: ref / align are the means over examples of
    J_ref and of Σ_i J_align,i (ORPO: NLL and the odds-ratio term; DPO: align is the DPO loss);
    margin is the mean L(τ⁺) − L(τ⁻) over pairs (DPO: the reward margin). None where not defined."""
    n = len(examples)
    if n == 0:
        raise SSUIError("no training examples")
    weight = (scale if scale is not None else 1.0) / n
    loss = ref = align = margin = 0.0
    n_ref = n_pairs = 0
    for ex in examples:
        ex_align = 0.0
        for term, parts in _named(ex.sample_id, example_terms(cm, cfg, ex)):
            if backward:
                (term * weight).backward()
            loss += term.item()
            if "ref" in parts:
                ref += parts["ref"]
                n_ref += 1
            if "align" in parts:
                ex_align += parts["align"]
                margin += parts["margin"]
                n_pairs += parts["n_pairs"]
        align += ex_align
    return {"loss": loss / n, "ref": ref / n_ref if n_ref else None,
            "align": None if cfg.method == "sft" or (cfg.method == "srpo" and cfg.lam == 0) else align / n,
            "margin": margin / n_pairs if n_pairs else None, "n_pairs": n_pairs}


# ----------------------------------------------------------------------------- LoRA


def default_targets(cm) -> list[str] | str:
    """The backend's LoRA targets: a VLM names its language model's projections (never the vision
    tower), a text LM gets LM_TARGETS."""
    if hasattr(cm, "lora_target_modules"):
        return cm.lora_target_modules()
    return list(LM_TARGETS)


def attach_lora(cm, cfg: TrainConfig):
    """Wrap ``cm.model`` in a peft LoRA model (in place: pass a freshly loaded model). Seeded, so the
    adapter's initial weights depend only on ``cfg.seed``."""
    from peft import LoraConfig, get_peft_model

    if hasattr(cm.model, "peft_config"):
        raise SSUIError(f"{getattr(cm, 'name', 'model')}: already has a LoRA adapter; train from a base model")
    targets = cfg.target_modules if cfg.target_modules is not None else default_targets(cm)
    seed_everything(cfg.seed)
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")
    try:
        cm.model = get_peft_model(cm.model, lora)
    except ValueError as e:  # peft: "Target modules ... not found in the base model"
        raise SSUIError(f"train config: field 'target_modules': {str(e).splitlines()[0]}") from None
    return cm.model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


# ----------------------------------------------------------------------------- the schedule of examples


def steps_per_epoch(n_examples: int, cfg: TrainConfig) -> int:
    return math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum))


def total_steps(n_examples: int, cfg: TrainConfig) -> int:
    full = cfg.epochs * steps_per_epoch(n_examples, cfg)
    return min(full, cfg.max_steps) if cfg.max_steps is not None else full


def epoch_order(n_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of an epoch: a pure function of (seed, epoch), so a resumed run
    knows which examples step s uses without replaying anything."""
    order = list(range(n_examples))
    random.Random(f"ssui-train:{seed}:{epoch}").shuffle(order)
    return order


def step_examples(n_examples: int, cfg: TrainConfig, step: int) -> list[int]:
    """Indices of the examples of optimizer step ``step`` (0-based); the last step of an epoch may be short."""
    spe = steps_per_epoch(n_examples, cfg)
    per = cfg.batch_size * cfg.grad_accum
    epoch, b = divmod(step, spe)
    return epoch_order(n_examples, cfg.seed, epoch)[b * per:(b + 1) * per]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then constant (independent of the run's length)."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


# ----------------------------------------------------------------------------- checkpoints


def config_key(cfg: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.to_dict().items() if k not in _RESUME_FREE}


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
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

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


# ----------------------------------------------------------------------------- the loop


def data_fingerprint(examples: Sequence[TrainExample]) -> str:
    """A hash of the training data (ids, references, pairs; prompts' text) so that a resumed run
    refuses to continue on different data."""
    import hashlib

    from ssui_lib.models.base import flatten_for_text

    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.sample_id, flatten_for_text(ex.prompt), ex.reference,
                             [asdict(p) for p in ex.pairs]], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def train(cm, examples: Sequence[TrainExample], cfg: TrainConfig, out_dir: str | os.PathLike,
          progress: bool = True) -> dict[str, Any]:
    """Train a LoRA adapter on ``examples`` with ``cfg.method``; write ``out_dir`` (see module doc).

    ``cm`` is a trainable backend (HFCausalChatModel or HFVisionChatModel) freshly loaded: its
    ``.model`` is wrapped in place by peft. If ``out_dir`` holds a checkpoint of the same
    configuration and data, training continues from it. Returns the summary (also in summary.json)."""
    if not getattr(cm, "trainable", False) or not hasattr(cm, "encode"):
        raise SSUIError(f"model {getattr(cm, 'name', cm)!r} cannot be trained here (a local transformers model is needed)")
    examples = list(examples)
    if not examples:
        raise SSUIError(f"no training examples for method {cfg.method!r}"
                        + (" (dpo/orpo need samples with at least one positive and one negative path)"
                           if cfg.method in ("dpo", "orpo") else ""))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_key = data_fingerprint(examples)
    model = attach_lora(cm, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_total = total_steps(len(examples), cfg)

    resumed = load_checkpoint(out, cm, optimizer, cfg, data_key)
    start, elapsed = resumed if resumed else (0, 0.0)
    log_path = out / "log.jsonl"
    log = _read_log(log_path, start)
    atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in log))

    bar = None
    if progress and start < n_total:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, initial=start, desc=f"train {cfg.method}", unit="step")
    model.train()
    t0 = time.perf_counter() - elapsed
    step = start
    try:
        while step < n_total:
            idx = step_examples(len(examples), cfg, step)
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            parts = batch_objective(cm, cfg, [examples[i] for i in idx], backward=True)
            grad_norm = None
            if cfg.max_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            rec = {"step": step, "loss": parts["loss"], "ref": parts["ref"], "align": parts["align"],
                   "margin": parts["margin"], "lr": lr, "grad_norm": grad_norm, "examples": len(idx),
                   "epoch": (step - 1) // steps_per_epoch(len(examples), cfg) + 1,
                   "time": round(time.perf_counter() - t0, 3)}
            append_jsonl(log_path, [rec])
            log.append(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
            if step % cfg.save_every == 0 or step == n_total:
                save_checkpoint(out, cm, optimizer, step, cfg, time.perf_counter() - t0, data_key)
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    atomic_write_dir(out / "adapter", lambda tmp: model.save_pretrained(str(tmp)))
    n_trainable = sum(p.numel() for p in params)
    summary = {
        "method": cfg.method, "config": cfg.to_dict(), "model": cm.describe() if hasattr(cm, "describe") else {},
        "n_examples": len(examples), "n_pairs": sum(len(e.pairs) for e in examples),
        "samples": len({e.sample_id for e in examples}), "steps": step, "planned_steps": n_total,
        "steps_per_epoch": steps_per_epoch(len(examples), cfg), "resumed_from": start if resumed else None,
        "first_loss": log[0]["loss"] if log else None, "final_loss": log[-1]["loss"] if log else None,
        "train_time_s": round(log[-1]["time"], 3) if log else 0.0,
        "trainable_params": n_trainable, "total_params": sum(p.numel() for p in model.parameters()),
        "adapter": "adapter", "log": "log.jsonl", "data_fingerprint": data_key,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    return summary


# ----------------------------------------------------------------------------- from an exploration folder


def _exploration_info(data_dir: Path) -> dict[str, Any]:
    """What ``ssui explore`` recorded about its run (DIR/stats.json: dataset, shots_from, …), or {}."""
    p = data_dir / "stats.json"
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise SSUIError(f"{p}: malformed JSON") from None
    return d if isinstance(d, dict) else {}


def load_exploration(data_dir: str | os.PathLike, method: str, *, dataset: str | None = None,
                     load_images: bool = False, with_exemplars: bool = False) -> list[TrainExample]:
    """Training examples from an exploration folder (``DIR/trees.jsonl``, written by ``ssui explore``).

    Pairs and reference paths τ* come from ``explore.load_pairs`` (an empty reference falls back to
    ``chain.render_chain``). The prompt is the question Q alone: SRPO uses the exemplars D_c only to
    explore (Eq. 2, 4) and trains on log p(τ | Q) (Eq. 5, 6), which is also what the held-out
    evaluation asks (``heldout``: the chain prompt without exemplars). ``with_exemplars=True`` keeps
    D_c instead: the prompt exploration continued, ``explore.cot_prompt`` with the exemplars each
    tree records (``exemplar_ids``, looked up in the dataset and in the exemplar pool ``shots_from``
    named in DIR/stats.json). The samples come from ``dataset``, else the dataset DIR/stats.json
    names, else ``bundled:all``. ``load_images`` gives a VLM the pixels."""
    from ssui_lib.core.chain import render_chain
    from ssui_lib.data.bundled import load_dataset
    from ssui_lib.srpo.explore import cot_prompt, load_pairs
    from ssui_lib.srpo.explore import read_trees as read_explore_trees

    d = Path(data_dir)
    trees_path = d / "trees.jsonl"
    rows, refs = load_pairs(d)  # SSUIError if DIR/trees.jsonl is missing
    trees = read_explore_trees(trees_path)
    info = _exploration_info(d)
    spec = dataset or info.get("dataset") or "bundled:all"
    samples = {s.id: s for s in load_dataset(spec)}
    shots_from = info.get("shots_from")
    shot_pool = dict(samples)
    if shots_from and shots_from != spec:
        shot_pool.update({s.id: s for s in load_dataset(shots_from)})
    missing = [t["id"] for t in trees if t["id"] not in samples]
    if missing:
        raise SSUIError(f"{trees_path}: sample {missing[0]!r} is not in dataset {spec!r} (pass --dataset)")
    exemplar_ids = {t["id"]: list(t.get("exemplar_ids") or []) if with_exemplars else [] for t in trees}
    for sid, ids in exemplar_ids.items():
        gone = [i for i in ids if i not in shot_pool]
        if gone:
            raise SSUIError(f"{trees_path}: tree {sid!r}: exemplar {gone[0]!r} is in neither {spec!r} nor the "
                            f"exemplar pool {shots_from!r}")
    references = {t["id"]: refs.get(t["id"]) or render_chain(samples[t["id"]]) for t in trees}
    pairs = [Pair(r.sample_id, r.step, r.prefix, r.pos, r.neg) for r in rows]

    def prompt_for(sid: str) -> Prompt:
        return cot_prompt(samples[sid], [shot_pool[i] for i in exemplar_ids[sid]], load_image=load_images)

    return build_examples(method, references, pairs, prompt_for)


def load_trainable(name: str):
    """A freshly loaded trainable backend for a model name (``embedded`` or ``hf:PATH``).

    The embedded model is loaded from its converted folder without the process-wide cache that
    ``load_embedded`` keeps (training edits the modules in place)."""
    from ssui_lib.models import parse_model_name, resolve_model

    spec = parse_model_name(name)
    if spec["kind"] == "embedded":
        from ssui_lib.models.embedded import EMBEDDED_NAME, ensure_converted
        from ssui_lib.models.hf_lm import load_hf_lm

        cm = load_hf_lm(str(ensure_converted()), name="embedded")
        cm.info["model"] = EMBEDDED_NAME
        return cm
    if spec["kind"] != "hf":
        raise SSUIError(f"model {name!r}: only local models can be trained (embedded, hf:PATH)")
    if spec["adapter"]:
        raise SSUIError(f"model {name!r}: train from the base model, not one with +adapter:")
    return resolve_model(name)


# ----------------------------------------------------------------------------- command line


def add_commands(sub) -> None:
    """``ssui train --method srpo|sft|dpo|orpo --data DIR --out DIR [...]``."""
    p = sub.add_parser("train", help="SRPO path optimization or the SFT / DPO / ORPO baselines (LoRA)",
                       description="Train a LoRA adapter on an exploration folder (DIR/trees.jsonl). "
                                   "Writes OUT/adapter, OUT/log.jsonl, OUT/summary.json; resumes from OUT's checkpoint.")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--data", required=True, metavar="DIR", help="exploration output folder (trees.jsonl)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", default="embedded", help="embedded or hf:PATH (default: embedded)")
    p.add_argument("--dataset", help="dataset spec of the explored samples (default: the one DIR/stats.json records, "
                                        "else bundled:all)")
    p.add_argument("--lam", type=float, default=0.3)
    p.add_argument("--k", type=float, default=1.0)
    p.add_argument("--variant", choices=tuple(VARIANTS), default="loglik")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta / ORPO odds-ratio weight")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--max-len", type=int)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train)


def _cmd_train(a) -> int:
    cfg = TrainConfig(method=a.method, lam=a.lam, k=a.k, variant=a.variant, beta=a.beta, epochs=a.epochs,
                      max_steps=a.max_steps, lr=a.lr, batch_size=a.batch_size, lora_rank=a.lora_rank,
                      max_len=a.max_len, save_every=a.save_every, seed=a.seed)
    if not (Path(a.data) / "trees.jsonl").is_file():  # before the model load: fail in milliseconds
        raise SSUIError(f"--data {a.data}: no trees.jsonl there (an exploration output folder: ssui explore --out DIR)")
    cm = load_trainable(a.model)
    examples = load_exploration(a.data, cfg.method, dataset=a.dataset,
                                load_images=bool(getattr(cm, "supports_images", False)))
    s = train(cm, examples, cfg, a.out, progress=not a.no_progress)
    first = f"{s['first_loss']:.4f}" if s["first_loss"] is not None else "-"
    final = f"{s['final_loss']:.4f}" if s["final_loss"] is not None else "-"
    print(f"train {s['method']}: {s['steps']} steps on {s['n_examples']} examples ({s['n_pairs']} pairs); "
          f"loss {first} -> {final}; adapter {Path(a.out) / 'adapter'}")
    return 0
