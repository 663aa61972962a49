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
  −log σ(β · [(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))]), π_ref = the starting model:
  the base model (the LoRA adapter switched off), or, with ``init_adapter``, base + that adapter.

Any method can start from a trained adapter (``TrainConfig.init_adapter``, e.g. SFT's): the `cpu`
profile trains DPO, ORPO and SRPO on top of SFT, the usual two-stage recipe for a model that
does not yet know the output format.
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

import inspect
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import append_jsonl, atomic_write_dir, atomic_write_text
from ssui_lib.models import ModelSpec, parse_model_name, resolve_model
from ssui_lib.models.embedded import EMBEDDED_NAME, ensure_converted
from ssui_lib.models.hf_lm import load_hf_lm
from ssui_lib.models.trainable import Row, TrainableBackend
from ssui_lib.srpo.checkpoints import _read_log, load_checkpoint, save_checkpoint
from ssui_lib.srpo.config import TrainConfig
from ssui_lib.srpo.distributed import Processes, enable_gradient_checkpointing
from ssui_lib.srpo.examples import TrainExample, run_fingerprint
from ssui_lib.srpo.losses import (
    VARIANTS, dpo_loss, orpo_align_loss, orpo_loss, ref_nll, sequence_logps, srpo_objective,
    token_logps_from_logits,
)


# ----------------------------------------------------------------------------- scoring rows


def _batch_rows(cm: TrainableBackend, rows: Sequence[Row]) -> list[dict[str, torch.Tensor]]:
    """Forward batches for rows, collated by the backend (one padded batch on a text LM, one row
    per batch on a VLM: see ``models.trainable``)."""
    return cm.collate_rows(rows)


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

    srpo/sft: one term, the sample's whole objective computed by the very functions chapter 05
    prints: ``losses.srpo_objective(J_ref, [J_align,i], λ)`` (Eq. 9 with Eq. 8's sum over the
    sample's pairs; sft = J_ref alone; with λ = 0 the pairs are not even scored). The graphs of the
    sample's pairs are kept together until its backward (at most T−1 pairs a sample; with gradient
    checkpointing this is small next to the weights). dpo/orpo: one term per pair."""
    m = cfg.method
    if m in ("srpo", "sft"):
        if not ex.reference:
            raise SSUIError(f"sample {ex.sample_id!r}: no reference path τ* to train on")
        (ref_row,) = score_rows(cm, [Row(ex.prompt, ex.reference, "", cfg.ref_eos)], cfg.max_len)
        j_ref = ref_nll(*ref_row)
        if m == "sft" or cfg.lam == 0 or not ex.pairs:
            yield srpo_objective(j_ref, [], 0.0 if m == "sft" else cfg.lam), {"ref": j_ref.item()}
            return
        average = cfg.variant == "odds_ratio"
        terms, margins = [], []
        for p in ex.pairs:
            scored = score_rows(cm, [Row(ex.prompt, p.pos, p.prefix), Row(ex.prompt, p.neg, p.prefix)], cfg.max_len)
            lp = _sums(scored, average=average)
            terms.append(VARIANTS[cfg.variant](lp[:1], lp[1:], k=cfg.k)[0])
            margins.append((lp[0] - lp[1]).item())
        j = srpo_objective(j_ref, terms, cfg.lam)
        yield j, {"ref": j_ref.item(), "align": sum(t.item() for t in terms), "margin": sum(margins),
                  "n_pairs": len(terms)}
        return
    (p,) = ex.pairs
    rows = [Row(ex.prompt, p.prefix + p.pos), Row(ex.prompt, p.prefix + p.neg)]
    scored = score_rows(cm, rows, cfg.max_len)
    if m == "dpo":
        cache = getattr(cm, "reference_logps", None)
        ref = cache[_pair_key(ex, p)] if cache is not None else _reference_rows(cm, rows, cfg.max_len)
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


def default_targets(cm: TrainableBackend) -> list[str] | str:
    """The backend's LoRA targets: a VLM names its language model's projections (never the vision
    tower), a text LM its attention + MLP projections (``models.trainable.LM_TARGETS``)."""
    return cm.lora_target_modules()


def attach_lora(cm, cfg: TrainConfig):
    """Wrap ``cm.model`` in a peft LoRA model (in place: pass a freshly loaded model). Seeded, so the
    adapter's initial weights depend only on ``cfg.seed``."""
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


def load_init_adapter(model, cfg: TrainConfig) -> None:
    """Copy the LoRA weights of ``cfg.init_adapter`` (a peft ``save_pretrained`` folder) into the
    freshly attached adapter: training then starts from that adapter (e.g. SFT's). Its rank, alpha
    and targets must be this run's; SSUIError names what differs."""
    folder = Path(cfg.init_adapter)
    conf_path = folder / "adapter_config.json"
    if not conf_path.is_file():
        raise SSUIError(f"train config: field 'init_adapter': {conf_path} does not exist")
    conf = json.loads(conf_path.read_text(encoding="utf-8"))
    mine = model.peft_config["default"]
    for field, want in (("r", mine.r), ("lora_alpha", mine.lora_alpha)):
        if conf.get(field) != want:
            raise SSUIError(f"train config: field 'init_adapter': {conf_path}: {field} = {conf.get(field)!r}, "
                            f"this run's is {want!r}")
    if sorted(conf.get("target_modules") or []) != sorted(mine.target_modules or []):
        raise SSUIError(f"train config: field 'init_adapter': {conf_path}: target_modules "
                        f"{sorted(conf.get('target_modules') or [])} differ from this run's {sorted(mine.target_modules)}")
    weights = load_file(str(folder / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        raise SSUIError(f"train config: field 'init_adapter': {folder}: the adapter does not fit this model "
                        f"({(result.unexpected_keys or missing)[0]})")


def _pair_key(ex: TrainExample, p) -> tuple:
    return (ex.sample_id, p.step, p.prefix, p.pos, p.neg)


def reference_logps(cm, examples: Sequence[TrainExample], cfg: TrainConfig) -> dict[tuple, torch.Tensor]:
    """DPO's π_ref log-likelihoods (chosen, rejected) of every pair under the model as it is now."""
    out = {}
    was_training = cm.model.training
    cm.model.eval()  # no LoRA dropout in π_ref
    with torch.no_grad():
        for ex in examples:
            for p in ex.pairs:
                rows = [Row(ex.prompt, p.prefix + p.pos), Row(ex.prompt, p.prefix + p.neg)]
                out[_pair_key(ex, p)] = _sums(score_rows(cm, rows, cfg.max_len)).detach()
    cm.model.train(was_training)
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)


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


# ----------------------------------------------------------------------------- the loop


@ledger.timed("training")  # the ledger's "training" phase: LoRA set-up, the loop, checkpoints, the adapter
def train(cm, examples: Sequence[TrainExample], cfg: TrainConfig, out_dir: str | os.PathLike,
          progress: bool = True) -> dict[str, Any]:
    """Train a LoRA adapter on ``examples`` with ``cfg.method``; write ``out_dir`` (see module doc).

    ``cm`` is a trainable backend (HFCausalChatModel or HFVisionChatModel) freshly loaded: its
    ``.model`` is wrapped in place by peft. If ``out_dir`` holds a checkpoint of the same
    configuration and data, training continues from it. Returns the summary (also in summary.json).

    Under ``accelerate launch`` every process calls this with the same arguments: each takes its share
    of every step's global batch and only the main process writes (:mod:`ssui_lib.srpo.distributed`)."""
    if not isinstance(cm, TrainableBackend):
        raise SSUIError(f"model {getattr(cm, 'name', cm)!r} cannot be trained here (a local transformers model is needed)")
    examples = list(examples)
    if not examples:
        raise SSUIError(f"no training examples for method {cfg.method!r}"
                        + (" (dpo/orpo need samples with at least one positive and one negative path)"
                           if cfg.method in ("dpo", "orpo") else ""))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_key = run_fingerprint(examples, cfg.init_adapter)
    procs = Processes(cfg)  # this process, alone or one of several under accelerate launch (srpo/distributed.py)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(cm)
    model = attach_lora(cm, cfg)
    if cfg.init_adapter is not None:
        load_init_adapter(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    procs.place(model, params)
    cm.reference_logps = None
    if cfg.method == "dpo" and cfg.init_adapter is not None:
        # π_ref is the starting model (base + init adapter), not the base: its log-likelihoods are
        # computed once, before any step (and before a checkpoint is loaded), as TRL's
        # precompute_ref_log_probs does; switching the adapter off would give the base model instead.
        cm.reference_logps = reference_logps(cm, examples, cfg)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_total = total_steps(len(examples), cfg)

    resumed = load_checkpoint(out, cm, optimizer, cfg, data_key)  # every process, the same files
    start, elapsed = resumed if resumed else (0, 0.0)
    procs.check_same_start(start, out)
    log_path = out / "log.jsonl"
    log = _read_log(log_path, start)
    if procs.is_main:  # only the main process writes
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in log))

    bar = None
    if progress and start < n_total and procs.is_main:
        bar = tqdm(total=n_total, initial=start, desc=f"train {cfg.method}", unit="step")
    model.train()
    t0 = time.perf_counter() - elapsed
    step = start
    try:
        while step < n_total:
            idx = step_examples(len(examples), cfg, step)
            procs.start_step(step)
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            parts = procs.objective(  # this process's share of the global batch, gradients summed across processes
                model, lambda exs, scale: batch_objective(cm, cfg, exs, backward=True, scale=scale),
                [examples[i] for i in idx], params)
            grad_norm = None
            if cfg.max_grad_norm is not None:
                grad_norm = procs.clip_grad_norm(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if procs.is_main:
                ledger.count("training_steps")
                ledger.count("training_examples", len(idx))
            step += 1
            rec = {"step": step, "loss": parts["loss"], "ref": parts["ref"], "align": parts["align"],
                   "margin": parts["margin"], "lr": lr, "grad_norm": grad_norm, "examples": len(idx),
                   "epoch": (step - 1) // steps_per_epoch(len(examples), cfg) + 1,
                   "time": round(time.perf_counter() - t0, 3)}
            if procs.is_main:
                append_jsonl(log_path, [rec])
            log.append(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
            if (step % cfg.save_every == 0 or step == n_total) and procs.is_main:
                save_checkpoint(out, cm, optimizer, step, cfg, time.perf_counter() - t0, data_key)
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    if procs.is_main:
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
        "adapter": "adapter", "log": "log.jsonl", "data_fingerprint": data_key, **procs.describe(),
    }
    if procs.is_main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    procs.wait()  # every process returns once the adapter and summary are on disk
    return summary


def load_trainable(name: str | ModelSpec) -> TrainableBackend:
    """A freshly loaded trainable backend for a model name or spec (``embedded`` or ``hf:PATH``).

    The embedded model is loaded from its converted folder without the process-wide cache that
    ``load_embedded`` keeps (training edits the modules in place)."""
    spec = parse_model_name(name)
    name = spec.name
    if spec.kind == "embedded":
        cm = load_hf_lm(str(ensure_converted()), name="embedded")
        cm.info["model"] = EMBEDDED_NAME
        return cm
    if spec.kind != "hf":
        raise SSUIError(f"model {name!r}: only local models can be trained (embedded, hf:PATH)")
    if spec.adapter:
        raise SSUIError(f"model {name!r}: train from the base model, not one with +adapter:")
    return resolve_model(spec)
