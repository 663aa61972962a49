"""Scenario-level leakage between splits: the same scenario told twice, once in train and once in
dev or test, with other words or on another picture, so that a held-out score partly measures recall.

The split tests compare pictures, captions and queries literally; this check compares *scenarios*.
A scenario is an IRS record's request in its picture's context. Its similarity to another is the mean
of two cosine similarities of MiniLM sentence embeddings (ssui_lib.data.embeddings): of the queries
alone (the request carries the scenario) and of caption + query (the picture grounds it). The mean
keeps two different requests on look-alike pictures apart (two formal portraits of women in uniform:
long, similar captions) and brings the same request on two different pictures close.

Threshold (SCENARIO_THRESHOLD = 0.65), set on the hand-written set before its fixes: the one known
near-duplicate found by reading (carving initials into a temple, moral-002 in train, and into a shrine
gate, relig-022 in test) scored 0.73; the highest cross-split pair that is *not* one scenario scored
0.61 (pol-006 / disc-001, a fake endorsement and a retirement roast on two official portraits). What
embeddings cannot see is a shared idea told with different objects and words (bricks carried to a
march vs gravel to a derby: 0.30-0.38); such pairs are found by reading and fixed by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample

SCENARIO_THRESHOLD = 0.65

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> unit-length rows


@dataclass(frozen=True)
class ScenarioPair:
    """Two records in different splits whose scenarios are near-duplicates."""

    a: str
    b: str
    split_a: str
    split_b: str
    similarity: float


def _default_embed(texts: Sequence[str]) -> np.ndarray:
    from ssui_lib.data.embeddings import embed_texts

    return embed_texts(texts)


def scenario_similarity(samples: Sequence[Sample], *, embed: Embed | None = None) -> np.ndarray:
    """[n, n] scenario similarities: the mean of the cosine similarities of the queries and of
    caption + query (embed must return unit-length rows)."""
    embed = embed or _default_embed
    q = np.asarray(embed([s.query for s in samples]), dtype=np.float32)
    cq = np.asarray(embed([f"{s.image.caption} {s.query}" for s in samples]), dtype=np.float32)
    if q.shape[0] != len(samples) or cq.shape[0] != len(samples):
        raise SSUIError(f"embedding function returned {q.shape[0]} / {cq.shape[0]} rows for {len(samples)} texts")
    return (q @ q.T + cq @ cq.T) / 2.0


def cross_split_near_duplicates(samples: Sequence[Sample], threshold: float = SCENARIO_THRESHOLD, *,
                                kinds: tuple[str, ...] = ("irs",), embed: Embed | None = None) -> list[ScenarioPair]:
    """Pairs of records (of the given kinds, default IRS only: a twin shares its record's picture and
    split) in different splits whose scenario similarity is at least ``threshold``, most similar first.
    Records without a split are compared with every split."""
    if not 0.0 < threshold <= 1.0:
        raise SSUIError(f"scenario threshold must be in (0, 1], got {threshold!r}")
    recs = [s for s in samples if s.kind in kinds]
    if len(recs) < 2:
        return []
    sim = scenario_similarity(recs, embed=embed)
    out = []
    for i in range(len(recs)):
        for j in range(i + 1, len(recs)):
            if recs[i].split == recs[j].split and recs[i].split is not None:
                continue
            if sim[i, j] >= threshold:
                out.append(ScenarioPair(recs[i].id, recs[j].id, recs[i].split or "", recs[j].split or "",
                                        round(float(sim[i, j]), 4)))
    return sorted(out, key=lambda p: -p.similarity)


# Twins on one picture must ask different things: a benign twin is a contrast to its IRS record, and two
# twins with the same question on the same picture teach the same contrast twice. 0.70 on the query
# similarity: the repeated twins fixed in the bundled set scored 0.74-0.82 (three portraits asking "who
# is she and what is she known for"); the closest remaining pair on one picture scores 0.65 (what a
# retina scan shows vs what an employer may see from it).
TWIN_THRESHOLD = 0.70


def same_picture_twin_duplicates(samples: Sequence[Sample], threshold: float = TWIN_THRESHOLD, *,
                                 embed: Embed | None = None) -> list[ScenarioPair]:
    """Pairs of twins on the same shipped picture whose queries have cosine similarity >= threshold."""
    if not 0.0 < threshold <= 1.0:
        raise SSUIError(f"twin threshold must be in (0, 1], got {threshold!r}")
    twins = [s for s in samples if s.kind == "twin" and s.image.source]
    if len(twins) < 2:
        return []
    embed = embed or _default_embed
    q = np.asarray(embed([s.query for s in twins]), dtype=np.float32)
    sim = q @ q.T
    out = []
    for i in range(len(twins)):
        for j in range(i + 1, len(twins)):
            if twins[i].image.source == twins[j].image.source and sim[i, j] >= threshold:
                out.append(ScenarioPair(twins[i].id, twins[j].id, twins[i].split or "", twins[j].split or "",
                                        round(float(sim[i, j]), 4)))
    return sorted(out, key=lambda p: -p.similarity)
