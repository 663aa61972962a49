"""In-context learning with SSUI exemplars (SSUI Table 1: zero-shot vs k-shot).

Each exemplar is an IRS record of the bundled TRAIN split shown as an earlier chat turn: its image
caption and query, then its six-step explainable chain, final verdict and reply
(``chain.render_chain``); the target sample follows with its own picture and query. ``k = 0`` is
the plain zero-shot prompt (``prompts.zero_shot``). The prompt templates live in
``ssui_lib.models.prompts`` (``chain_prompt`` carries the six-step instructions and the exemplar turns).

Exemplars never come from the evaluated data: the pool is the TRAIN split, the target itself, its
twin and its IRS partner are always excluded, and :func:`check_disjoint` refuses to evaluate on
samples that are in the pool (e.g. ``bundled:train``) — that would leak answers into the prompt.

Selection (:func:`select_exemplars`):
  * ``by="category"`` — exemplars of the target's level-1 category first, then the others; each
    group in an order shuffled by ``random.Random(f"{seed}|{target id}")`` (deterministic, and
    different targets get different exemplars);
  * ``by="similarity"`` — the k pool records whose caption + query is closest to the target's
    (cosine of all-MiniLM-L6-v2 sentence embeddings); ties broken by id; ``seed`` is not used.
"""
from __future__ import annotations

import random
from typing import Sequence

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.data.bundled import load_bundled
from ssui_lib.models.base import ImageRef, Prompt
from ssui_lib.data.embeddings import embed_texts
from ssui_lib.models.prompts import chain_prompt, zero_shot

BY = ("category", "similarity")


def exemplar_pool(split: str = "train", *, with_reasoning: bool = True) -> list[Sample]:
    """IRS records of the bundled ``split`` (the exemplar candidates of ICL, of exploration's CoT
    prompt and of the curation agents' prompts); ``with_reasoning`` keeps only those with a chain."""
    return [s for s in load_bundled(split) if s.kind == "irs" and (s.reasoning or not with_reasoning)]


def exemplars_by_category(pool: Sequence[Sample], category: str, n: int) -> list[Sample]:
    """n worked examples for a prompt about ``category`` (the curation agents): records of that
    class first, shortest first (short prompts keep small models fast), then the other classes;
    deterministic."""
    if n <= 0:
        return []

    def size(s: Sample) -> tuple[int, int, str]:
        return (s.category.l1 != category, len(s.query) + len(s.safe_reply) + len(s.unsafe_reply or ""), s.id)

    return sorted(pool, key=size)[:n]


def balanced_exemplars(sample: Sample, pool: Sequence[Sample], m: int, seed: int = 0) -> list[Sample]:
    """m ground-truth exemplars for SRPO's CoT prompt D_c: from ``pool`` (the train split), never
    the sample itself nor its twin (same picture), with reasoning paths, alternating unsafe / safe
    verdicts so the prompt does not lean towards one answer. The same seed gives every sample the
    same choice (up to its own exclusions)."""
    if m <= 0:
        return []
    banned = {sample.id, sample.pair_id}
    cands = sorted((s for s in pool if s.id not in banned and s.pair_id != sample.id and s.reasoning),
                   key=lambda s: s.id)
    random.Random(seed).shuffle(cands)
    by_verdict = {v: [s for s in cands if s.verdict == v] for v in ("unsafe", "safe")}
    out: list[Sample] = []
    order = ("unsafe", "safe")
    while len(out) < m and any(by_verdict.values()):
        for v in order:
            if by_verdict[v] and len(out) < m:
                out.append(by_verdict[v].pop(0))
    if len(out) < m:
        raise SSUIError(f"exemplars: asked for {m}, the pool has only {len(out)} usable for sample {sample.id!r}")
    return out


def _related(a: Sample, b: Sample) -> bool:
    """The same record, or an IRS record and its twin."""
    return a.id == b.id or a.pair_id == b.id or b.pair_id == a.id


def check_disjoint(samples: Sequence[Sample], pool: Sequence[Sample]) -> None:
    """SSUIError if an evaluated sample (or its twin) is an exemplar candidate."""
    pool_ids = {p.id for p in pool} | {p.pair_id for p in pool if p.pair_id}
    clash = [s.id for s in samples if s.id in pool_ids]
    if clash:
        raise SSUIError(f"ICL exemplars come from the same records as the evaluated samples (e.g. {clash[0]!r}, "
                        f"{len(clash)} in all): evaluate on another split (bundled:test or bundled:dev)")


def _text(s: Sample) -> str:
    return f"{s.image.caption} {s.query}"


def select_exemplars(sample: Sample, k: int, *, by: str = "category", pool: Sequence[Sample] | None = None,
                     seed: int = 0) -> list[Sample]:
    """``k`` exemplars for ``sample`` (see the module docstring); ``pool`` defaults to
    :func:`exemplar_pool` (the bundled TRAIN split)."""
    if not isinstance(k, int) or k < 0:
        raise SSUIError(f"ICL: k must be an integer >= 0, got {k!r}")
    if by not in BY:
        raise SSUIError(f"ICL: by must be one of {', '.join(BY)}, got {by!r}")
    if k == 0:
        return []
    candidates = [p for p in (exemplar_pool() if pool is None else pool) if not _related(p, sample)]
    if len(candidates) < k:
        raise SSUIError(f"ICL: k={k} exemplars asked for {sample.id!r} but the pool has only {len(candidates)}")
    if by == "category":
        rng = random.Random(f"{seed}|{sample.id}")
        same = sorted((p for p in candidates if p.category.l1 == sample.category.l1), key=lambda p: p.id)
        other = sorted((p for p in candidates if p.category.l1 != sample.category.l1), key=lambda p: p.id)
        rng.shuffle(same)
        rng.shuffle(other)
        return (same + other)[:k]

    vecs = embed_texts([_text(sample)] + [_text(p) for p in candidates])
    sims = vecs[1:] @ vecs[0]
    order = sorted(range(len(candidates)), key=lambda i: (-round(float(sims[i]), 6), candidates[i].id))
    return [candidates[i] for i in order[:k]]


def icl_prompt(sample: Sample, exemplars: Sequence[Sample], image: ImageRef | None = None) -> Prompt:
    """The k-shot prompt: exemplars (caption + query, then chain + verdict + reply), then the target
    (its picture + query). No exemplars: the plain zero-shot prompt. ``image`` is the target's
    picture (``data.image_ref``); default: its caption only."""
    if any(_related(e, sample) for e in exemplars):
        raise SSUIError(f"ICL: the exemplars of {sample.id!r} include the sample itself or its twin")
    image = image if image is not None else ImageRef(caption=sample.image.caption, source=sample.image.source)
    if not exemplars:
        return zero_shot(image, sample.query)
    missing = [e.id for e in exemplars if not e.reasoning]
    if missing:
        raise SSUIError(f"ICL: exemplar {missing[0]!r} has no reasoning chain to show")
    return chain_prompt(sample, list(exemplars), image)
