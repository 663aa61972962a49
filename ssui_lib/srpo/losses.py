"""The losses of SRPO's path optimization (SRPO Eq. 5–9) and its odds-ratio variant, as small
pure functions on tensors. Imports only torch; tested on hand-made tensors.

Notation (SRPO §"Path Optimization"):

- Eq. 5  J_ref   = −E_{(v_{i−1}, v_i) ∈ τ*} log p_θ(v_i | v_{i−1})    → :func:`ref_nll`
- Eq. 6  J_align,i = −k · log σ(L(τ_i⁺) − L(τ_i⁻)),  L(τ) = log p_θ(τ | Q) → :func:`align_loss`
- Eq. 7  τ_i⁺ and τ_i⁻ share the prefix τ_{1:i−1}, so L(τ_i⁺) − L(τ_i⁻) equals the difference of
  the continuation-only log-likelihoods: mask the shared prefix out (or not — the result is the
  same) in :func:`sequence_logps`.
- Eq. 8  J_align = Σ_i J_align,i  and  Eq. 9  J = J_ref + λ · J_align     → :func:`srpo_objective`

The ORPO / RPO form (:func:`orpo_align_loss`) replaces the summed log-likelihoods of Eq. 6 by
length-averaged log-probabilities turned into log-odds, as in ORPO (Hong, Lee and Thorne 2024),
the "log-ratio preference functional" SRPO cites.

Shapes: B = batch, L = sequence length, V = vocabulary, P = number of contrastive pairs.
Errors on malformed input are ``ValueError`` (this module imports only torch; ``SSUIError`` is a
``ValueError`` too, so callers catching either see them).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "sequence_logps",
    "token_logps_from_logits",
    "ref_nll",
    "align_loss",
    "log1mexp",
    "log_odds",
    "orpo_align_loss",
    "srpo_objective",
    "VARIANTS",
]


def _check_same_shape(a: Tensor, b: Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def sequence_logps(token_logps: Tensor, mask: Tensor, average: bool = False) -> Tensor:
    """Log-likelihood of each sequence from its per-token log-probabilities.

    ``token_logps[b, t]`` is log p(token t | tokens < t); ``mask[b, t]`` (bool or 0/1) says which
    tokens belong to the path being scored. ``average=False`` gives the sum, L(τ) of SRPO Eq. 6;
    ``average=True`` the mean over the masked tokens (the ORPO / RPO form). A row with no masked
    token has sum 0 and average 0. Masked-out positions never contribute, even if they hold
    ``-inf`` or NaN (``torch.where``, not a multiplication).
    """
    _check_same_shape(token_logps, mask, "sequence_logps(token_logps, mask)")
    if token_logps.dim() != 2:
        raise ValueError(f"sequence_logps: expected [B, L] tensors, got {tuple(token_logps.shape)}")
    keep = mask.bool()
    total = torch.where(keep, token_logps, torch.zeros_like(token_logps)).sum(-1)
    if not average:
        return total
    count = keep.sum(-1).clamp(min=1).to(token_logps.dtype)
    return total / count


def token_logps_from_logits(
    logits: Tensor, labels: Tensor, ignore_index: int = -100
) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of ``labels`` under ``logits`` of a causal LM.

    The shift is handled here: ``logits[:, t]`` predicts ``labels[:, t + 1]``. The result stays
    aligned with ``labels`` (shape [B, L]): ``token_logps[:, t]`` is log p(labels[:, t] | < t),
    and position 0 (no prediction for it) is always masked out. Positions whose label is
    ``ignore_index`` are masked out too and hold 0.

    Returns ``(token_logps [B, L] float, mask [B, L] bool)``.
    """
    if logits.dim() != 3 or labels.dim() != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(
            "token_logps_from_logits: expected logits [B, L, V] and labels [B, L], got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    B, L, V = logits.shape
    token_logps = logits.new_zeros((B, L))
    mask = torch.zeros((B, L), dtype=torch.bool, device=labels.device)
    if L < 2:
        return token_logps, mask
    pred = logits[:, :-1, :]
    target = labels[:, 1:]
    valid = target != ignore_index
    if bool(((target < 0) | (target >= V))[valid].any()):
        raise ValueError(f"token_logps_from_logits: a label is outside [0, {V}) and is not ignore_index")
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    picked = torch.gather(pred, -1, safe_target.unsqueeze(-1)).squeeze(-1)
    # log p = logit − logsumexp(logits), one row at a time: unlike log_softmax over the whole
    # [B, L, V] block this never holds a second full-vocabulary copy (the trick TRL uses too).
    lse = torch.stack([torch.logsumexp(row, dim=-1) for row in pred])
    logps = (picked - lse).to(token_logps.dtype)
    token_logps = torch.cat([token_logps[:, :1], torch.where(valid, logps, torch.zeros_like(logps))], dim=1)
    mask = torch.cat([mask[:, :1], valid], dim=1)
    return token_logps, mask


def ref_nll(token_logps: Tensor, mask: Tensor) -> Tensor:
    """SRPO Eq. 5: the mean token negative log-likelihood of the reference path τ*.

    The mean is over every masked token of the batch (the usual language-modelling loss, so long
    and short paths weigh by their tokens). Raises ``ValueError`` if no token is masked in: a
    loss over nothing would silently be NaN or 0.
    """
    _check_same_shape(token_logps, mask, "ref_nll(token_logps, mask)")
    keep = mask.bool()
    count = keep.sum()
    if int(count) == 0:
        raise ValueError("ref_nll: the mask selects no token (empty reference path)")
    total = torch.where(keep, token_logps, torch.zeros_like(token_logps)).sum()
    return -total / count.to(token_logps.dtype)


def align_loss(logp_pos: Tensor, logp_neg: Tensor, k: float = 1.0) -> Tensor:
    """SRPO Eq. 6, one value per pair: −k · log σ(L(τ⁺) − L(τ⁻)).

    ``logp_pos`` / ``logp_neg`` [P] are path log-likelihoods (:func:`sequence_logps` with
    ``average=False``). By Eq. 7 the full paths or only their continuations after the shared
    prefix give the same value. ``F.logsigmoid`` is stable for any margin.
    """
    _check_same_shape(logp_pos, logp_neg, "align_loss(logp_pos, logp_neg)")
    return -k * F.logsigmoid(logp_pos - logp_neg)


def log1mexp(x: Tensor) -> Tensor:
    """log(1 − exp(x)) for x ≤ 0, accurate over the whole range.

    torch has no such function. The two-branch form is Mächler (2012), "Accurately computing
    log(1 − exp(−|a|))": ``log(−expm1(x))`` near 0, ``log1p(−exp(x))`` far from it.
    """
    return torch.where(
        x > -math.log(2.0),
        torch.log(-torch.expm1(x)),
        torch.log1p(-torch.exp(x)),
    )


def log_odds(avg_logp: Tensor) -> Tensor:
    """log odds(p) = log p − log(1 − p) with p = exp(avg_logp) (ORPO's odds of a sequence).

    ``avg_logp`` is clamped to at most −eps(dtype) first: a probability of exactly 1 has infinite
    odds; the clamp keeps value and gradient finite as p → 1 (about log(1/eps) ≈ 15.9 in float32).
    Very negative inputs (p → 0) need no care: the odds tend to p, log odds to ``avg_logp``.
    """
    x = avg_logp.clamp(max=-torch.finfo(avg_logp.dtype).eps)
    return x - log1mexp(x)


def orpo_align_loss(avg_logp_pos: Tensor, avg_logp_neg: Tensor, k: float = 1.0) -> Tensor:
    """The odds-ratio variant of Eq. 6, one value per pair: −k · log σ(log odds⁺ − log odds⁻).

    Inputs are length-averaged log-probabilities (:func:`sequence_logps` with ``average=True``),
    as in ORPO and RPO. Stable for p → 0 and p → 1 (see :func:`log_odds`).
    """
    _check_same_shape(avg_logp_pos, avg_logp_neg, "orpo_align_loss(avg_logp_pos, avg_logp_neg)")
    return -k * F.logsigmoid(log_odds(avg_logp_pos) - log_odds(avg_logp_neg))


def srpo_objective(
    ref_loss: Tensor,
    align_terms: Tensor | Sequence[Tensor],
    lam: float,
    reduction: str = "sum",
) -> Tensor:
    """SRPO Eq. 9: J = J_ref + λ · J_align, with J_align from the per-pair terms (Eq. 8).

    ``align_terms`` holds the J_align,i of one sample (a [P] tensor or a list of scalars).

    ``reduction="sum"`` is the paper's Eq. 8: J_align = Σ_i J_align,i over the intermediate states
    of one sample's reference path, so a sample with more explored steps weighs more. When a
    batch holds several samples, the caller sums the pairs of each sample and passes those
    per-sample sums (or calls this once per sample and averages the objectives).
    ``reduction="mean"`` (a variant, not in the paper) averages the pair terms instead, making
    λ independent of the number of pairs. A sample with no pair contributes J_align = 0 under
    either reduction.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"srpo_objective: reduction must be 'sum' or 'mean', got {reduction!r}")
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"srpo_objective: lam must be a finite number >= 0, got {lam!r}")
    if ref_loss.dim() != 0:
        raise ValueError(f"srpo_objective: ref_loss must be a scalar, got shape {tuple(ref_loss.shape)}")
    if isinstance(align_terms, Tensor):
        terms = align_terms.reshape(-1)
    elif len(align_terms) == 0:
        terms = ref_loss.new_zeros((0,))
    else:
        terms = torch.stack([torch.as_tensor(t, dtype=ref_loss.dtype).reshape(()) for t in align_terms])
    if terms.numel() == 0:
        j_align = ref_loss.new_zeros(())
    elif reduction == "sum":
        j_align = terms.sum()
    else:
        j_align = terms.mean()
    return ref_loss + lam * j_align


# The pair losses offered by `train --method srpo`: Eq. 6 as written, and the ORPO/RPO form.
# "loglik" expects summed path log-likelihoods, "odds_ratio" length-averaged ones.
VARIANTS: dict[str, Callable[..., Tensor]] = {
    "loglik": align_loss,
    "odds_ratio": orpo_align_loss,
}


# ----------------------------------------------------------------------------- the baselines' losses (DPO, ORPO)


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
