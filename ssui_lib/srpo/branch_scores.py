"""Re-scoring the contrastive pairs of an exploration: L(τ_i^+) and L(τ_i^−) under a model
(SRPO Eq. 6–7), so that a reader can compare a base model with a trained one pair by pair.

Because τ_i^+ and τ_i^− share the prefix τ1:i−1, their log-likelihood gap is the gap between the
log-probabilities of their continuations given that prefix (Eq. 7). ``rescore_pairs`` therefore
scores only each pair's ``pos`` / ``neg`` continuation (summed token log-probabilities at
temperature 1, the prompt and the prefix masked out) with ``model.logprobs``.

Scores are keyed by :data:`PairKey` ``(sample_id, step, j, side)``: ``j`` numbers the pairs of one
step in the tree's order (0 when one pair is kept per step), ``side`` is ``"pos"`` or ``"neg"``.
A mapping ``{variant name: {PairKey: log-probability}}`` is what ``widgets.BranchExplorer`` shows
as "before and after training".
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Prompt
from ssui_lib.srpo.runs import adapter_model_name, find_adapter
import pandas as pd

PairKey = tuple[str, int, int, str]
Scores = dict[PairKey, float]


def pair_keys(tree: Mapping[str, Any]) -> list[tuple[PairKey, dict[str, Any], str]]:
    """(key, pair, side) for every pair of a tree, positive before negative, in the tree's order."""
    out = []
    seen: dict[int, int] = {}
    for pr in tree.get("pairs", []):
        i = int(pr["i"])
        j = seen.get(i, 0)
        seen[i] = j + 1
        for side in ("pos", "neg"):
            out.append(((tree["id"], i, j, side), pr, side))
    return out


def rescore_pairs(model: ChatModel, trees: Sequence[Mapping[str, Any]],
                  cot_prompt_fn: Callable[[Mapping[str, Any]], Prompt], *, batch_size: int = 4) -> Scores:
    """{(sample_id, step, j, "pos"|"neg"): Σ log p(continuation | Q, D_c, τ1:i−1)} for every pair.

    ``cot_prompt_fn(tree)`` returns the prompt the tree was explored with (D_c + Q, Eq. 2); it is
    called once per tree. The model must score a continuation after a prefix
    (``logprobs(prompts, continuations, prefixes=...)``, as the transformers backends do)."""
    rows: list[tuple[PairKey, Prompt, str, str]] = []
    for t in trees:
        keys = pair_keys(t)
        if not keys:
            continue
        prompt = cot_prompt_fn(t)
        rows.extend((key, prompt, pr["prefix"], pr[side]) for key, pr, side in keys)
    if not rows:
        return {}
    kw = {"prefixes": [r[2] for r in rows]}
    if "batch_size" in inspect.signature(model.logprobs).parameters:  # the VLM backend has none
        kw["batch_size"] = batch_size
    try:
        lps = model.logprobs([r[1] for r in rows], [r[3] for r in rows], **kw)
    except (TypeError, NotImplementedError) as e:
        raise SSUIError(f"model {getattr(model, 'name', model)!r} cannot score a continuation after a prefix "
                        f"(logprobs(..., prefixes=...)): {e}") from None
    if len(lps) != len(rows):
        raise SSUIError(f"model {model.name!r}: logprobs returned {len(lps)} rows for {len(rows)} continuations")
    return {r[0]: float(sum(lp)) for r, lp in zip(rows, lps)}


def margins(scores: Mapping[PairKey, float]) -> dict[tuple[str, int, int], float]:
    """L(τ+) − L(τ−) per pair (sample_id, step, j) where both sides are scored."""
    out = {}
    for (sid, i, j, side), v in scores.items():
        if side == "pos" and (sid, i, j, "neg") in scores:
            out[(sid, i, j)] = v - scores[(sid, i, j, "neg")]
    return out


def margin_frame(variants: Mapping[str, Mapping[PairKey, float]]):
    """One row per (variant, pair): sample_id, step, j, L(τ+), L(τ−), margin."""
    rows = [{"variant": name, "sample_id": sid, "step": i, "j": j, "L_pos": sc[(sid, i, j, "pos")],
             "L_neg": sc[(sid, i, j, "neg")], "margin": m}
            for name, sc in variants.items() for (sid, i, j), m in margins(sc).items()]
    return pd.DataFrame(rows, columns=["variant", "sample_id", "step", "j", "L_pos", "L_neg", "margin"])


def trained_variants(base: str, adapters_root: str | Path) -> dict[str, str]:
    """{method: model name} for every trained adapter under ``adapters_root/<method>/`` (chapter 05's
    output), sorted by method; {} when nothing has been trained yet."""
    root = Path(adapters_root)
    if not root.is_dir():
        return {}
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        a = find_adapter(d)
        if a is not None:
            out[d.name] = adapter_model_name(base, a)
    return out
