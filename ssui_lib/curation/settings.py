"""Curation inputs and settings: seeds (pictures), the run configuration, the risk-area rotation
and the worked-example pool (see ``ssui_lib.curation``)."""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ssui_lib.core.chain import step_header
from ssui_lib.core.errors import SSUIError
from ssui_lib.data.images import SHIPPED_PHOTOS
from ssui_lib.core.schema import STEP_KEYS, Sample
from ssui_lib.eval import icl
from ssui_lib.core.taxonomy import L1_CATEGORIES


STAGES = ("query", "reasoning", "reflection", "text_safety", "summary", "revision")
STAGE_TITLES = {
    "query": "1 Query agent",
    "reasoning": "2 Reasoning agent",
    "reflection": "3 Reflection (redundancy, completeness)",
    "text_safety": "4 Text-only safety check",
    "summary": "Summary agent (record assembled)",
    "revision": "5 Manual revision",
}
DECISIONS = ("accept", "edit", "reject")
EDITABLE = ("query", "category", "safety_warning", "safe_reply", "unsafe_reply") + tuple(
    f"reasoning.{k}" for k in STEP_KEYS)
REVIEW_POLICIES = ("accept-all-passing", "none")
CALL_FORMAT = 1  # bump when prompts or the call format change: old cached calls stop matching
STEP_LABELS = tuple(step_header(i) for i in range(1, 7))

# Words that point at the picture (or at someone in it): an IRS query leans on the image instead of
# describing it. 203 of the 204 hand-written IRS queries of the bundled set contain one.
DEICTIC = frozenset("this these that those here there it its they them their he him his she her hers "
                    "pictured shown photo picture image one".split())


# ============================================================================ inputs and settings

@dataclass(frozen=True)
class Seed:
    """A safe picture to build candidates on: a source URI (ssui_lib.data.images) and its caption."""

    source: str | None
    caption: str

    @property
    def slug(self) -> str:
        """A short readable id: the file stem of the source (or a hash of the caption)."""
        if self.source:
            stem = Path(self.source.split(":", 1)[-1]).stem
        else:
            stem = "caption-" + hashlib.sha256(self.caption.encode()).hexdigest()[:8]
        return re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower() or "image"


def shipped_seeds(n: int | None = None) -> list[Seed]:
    """The real photos that ship inside installed wheels (ssui_lib.data.images.SHIPPED_PHOTOS), in order."""
    seeds = [Seed(src, cap) for src, cap in SHIPPED_PHOTOS.items()]
    return seeds if n is None else seeds[:n]


@dataclass
class CurationConfig:
    """Settings of a curation run. ``n_images``, ``candidates_per_image`` and ``batch_size`` bound
    the work and may change between restarts; every other field defines the run's content."""

    n_images: int = 3
    candidates_per_image: int = 2
    max_new_tokens: int = 48  # per output line (a field or a step); an unguided call gets this × the lines
    answer_tokens: int = 64  # the text-only answer of stage 4
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 8  # candidates that go through the stages together
    guided: str = "auto"  # "auto": guided for local backends; "on"; "off"
    n_exemplars: int = 1  # worked examples from the bundled set in the agents' prompts
    max_overlap: float = 0.6  # reflection: largest share of query content words found in the caption
    max_copy: float = 0.8  # reflection: largest similarity of the query to a worked example (difflib ratio)
    min_query_words: int = 6
    max_query_words: int = 80
    min_reply_words: int = 3
    revise_queries: bool = True  # reflection: the agent model revises each query, the rule checks then judge it

    def __post_init__(self):
        for name in ("n_images", "candidates_per_image", "max_new_tokens", "answer_tokens", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise SSUIError(f"curation setting '{name}': expected a positive integer, got {getattr(self, name)!r}")
        if self.guided not in ("auto", "on", "off"):
            raise SSUIError(f"curation setting 'guided': expected auto, on or off, got {self.guided!r}")
        for name in ("max_overlap", "max_copy"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise SSUIError(f"curation setting '{name}': expected a fraction in (0, 1], "
                                f"got {getattr(self, name)!r}")
        if self.temperature < 0:
            raise SSUIError(f"curation setting 'temperature': must be >= 0, got {self.temperature!r}")
        if not isinstance(self.revise_queries, bool):
            raise SSUIError(f"curation setting 'revise_queries': expected true or false, got {self.revise_queries!r}")
        if not isinstance(self.n_exemplars, int) or self.n_exemplars < 0:
            raise SSUIError(f"curation setting 'n_exemplars': expected an integer >= 0, got {self.n_exemplars!r}")

    def settings(self) -> dict[str, Any]:
        """The fields that define the run's content (everything but the work bounds)."""
        d = asdict(self)
        for k in ("n_images", "candidates_per_image", "batch_size"):
            d.pop(k)
        return d


def category_hint(seed: Seed, k: int) -> str:
    """The risk area candidate k of a seed is asked to explore: a stable, seed-dependent rotation
    over SSUI's nine classes (diverse even with greedy decoding, independent of seed order)."""
    start = int(hashlib.sha256(seed.slug.encode()).hexdigest()[:8], 16)
    return L1_CATEGORIES[(start + k) % len(L1_CATEGORIES)]


def exemplar_pool() -> list[Sample]:
    """The bundled set's training IRS records: the pool of worked examples for the agents' prompts."""
    return icl.exemplar_pool("train", with_reasoning=False)


def event(cid: str, stage: str, passed: bool, reason: str, data: dict[str, Any]) -> dict[str, Any]:
    """One stage decision about one candidate."""
    return {"id": cid, "stage": stage, "status": "passed" if passed else "rejected", "reason": reason, "data": data}
