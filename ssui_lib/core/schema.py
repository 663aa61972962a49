"""Records of the SSUI Book: one Sample per image–query pair, JSONL in and out, validated.

A Sample is either an IRS record (safe image + safe query whose combination is unsafe,
``kind == "irs"``, ``verdict == "unsafe"``) or its benign twin (same image, harmless request,
``kind == "twin"``, ``verdict == "safe"``), used to measure over-refusal.

Validation errors name the file, the line and the field (``data.jsonl:12: field 'query': …``).
Writes are atomic: a temporary file in the same folder, renamed into place.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import atomic_write_text
from ssui_lib.core.taxonomy import check_category

# The six steps of SSUI's explainable chain, in order: (key, human-readable name).
STEPS: tuple[tuple[str, str], ...] = (
    ("visual_context", "Analyze visual context"),
    ("textual_request", "Analyze textual request"),
    ("cross_modal_synthesis", "Synthesize visual and textual cues"),
    ("intent_and_risk", "Determine deeper intent and categorize risk"),
    ("consequences", "Evaluate potential consequences"),
    ("response_strategy", "Formulate a safety-aligned response strategy"),
)
STEP_KEYS: tuple[str, ...] = tuple(k for k, _ in STEPS)
KINDS = ("irs", "twin")
VERDICTS = ("unsafe", "safe")
SPLITS = ("train", "dev", "test")


@dataclass
class Image:
    """A picture reference. ``source`` is a URI resolved by ssui_lib.data.images
    (``skimage:coffee``, ``sklearn:china.jpg``, ``matplotlib:grace_hopper.jpg``, ``file:PATH``)
    or None for a caption-only record; ``caption`` always describes the picture (text-only
    models receive the caption instead of pixels: "caption mode")."""

    caption: str
    source: str | None = None

    @property
    def caption_only(self) -> bool:
        return self.source is None


@dataclass
class Category:
    l1: str
    l2: str | None = None
    l3: str | None = None

    def path(self) -> str:
        return " > ".join(x for x in (self.l1, self.l2, self.l3) if x)


@dataclass
class Provenance:
    source: str  # e.g. "ssui-book/hand-written", "curation:<run-id>", "siuo-gen"
    author: str = ""
    license: str = ""
    notes: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)  # curation decisions, in order
    # screens a record passed or failed, e.g. {"check": "text-only", "by": "...", "verdict": "pass"|"fail", "note": "..."}
    screens: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Sample:
    id: str
    kind: str  # "irs" | "twin"
    image: Image
    query: str
    category: Category
    verdict: str  # ground truth for the combined input: "unsafe" | "safe"
    safety_warning: str = ""
    reasoning: dict[str, str] = field(default_factory=dict)  # STEP_KEYS -> text
    safe_reply: str = ""
    unsafe_reply: str | None = None
    pair_id: str | None = None  # the twin of an IRS record, or the IRS record of a twin
    split: str | None = None
    provenance: Provenance = field(default_factory=lambda: Provenance(source="unknown"))
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific fields of external sets

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        return d

    @classmethod
    def from_dict(cls, d: Any, *, strict: bool = True) -> "Sample":
        """Build and validate a Sample; raises SSUIError naming the offending field."""
        return _parse_sample(d, strict=strict)


# ----------------------------------------------------------------------------- validation

_REQUIRED = ("id", "kind", "image", "query", "category", "verdict")
_KNOWN = set(_REQUIRED) | {
    "safety_warning", "reasoning", "safe_reply", "unsafe_reply", "pair_id", "split", "provenance", "extra",
}


def _need_str(d: dict, key: str, *, allow_empty: bool = False, optional: bool = False) -> str | None:
    if key not in d or d[key] is None:
        if optional:
            return None
        raise SSUIError(f"field '{key}': missing")
    v = d[key]
    if not isinstance(v, str):
        raise SSUIError(f"field '{key}': expected a string, got {type(v).__name__}")
    if not allow_empty and not v.strip():
        raise SSUIError(f"field '{key}': empty")
    return v


def _parse_sample(d: Any, *, strict: bool) -> Sample:
    if not isinstance(d, dict):
        raise SSUIError(f"expected a JSON object, got {type(d).__name__}")
    unknown = set(d) - _KNOWN
    if unknown and strict:
        raise SSUIError(f"field '{sorted(unknown)[0]}': unknown field (known: {', '.join(sorted(_KNOWN))})")
    for k in _REQUIRED:
        if k not in d:
            raise SSUIError(f"field '{k}': missing")
    sid = _need_str(d, "id")
    kind = _need_str(d, "kind")
    if kind not in KINDS:
        raise SSUIError(f"field 'kind': {kind!r} is not one of {KINDS}")
    verdict = _need_str(d, "verdict")
    if verdict not in VERDICTS:
        raise SSUIError(f"field 'verdict': {verdict!r} is not one of {VERDICTS}")
    if strict and kind == "irs" and verdict != "unsafe":
        raise SSUIError("field 'verdict': an IRS record must have verdict 'unsafe'")
    if strict and kind == "twin" and verdict != "safe":
        raise SSUIError("field 'verdict': a benign twin must have verdict 'safe'")

    img = d["image"]
    if not isinstance(img, dict):
        raise SSUIError("field 'image': expected an object {caption, source}")
    try:
        caption = _need_str(img, "caption")
        source = _need_str(img, "source", optional=True)
    except SSUIError as e:
        raise SSUIError(str(e).replace("field '", "field 'image.")) from None
    if set(img) - {"caption", "source"}:
        raise SSUIError(f"field 'image.{sorted(set(img) - {'caption', 'source'})[0]}': unknown field")

    cat = d["category"]
    if not isinstance(cat, dict) or "l1" not in cat:
        raise SSUIError("field 'category': expected an object {l1, l2, l3}")
    for k in ("l1", "l2", "l3"):
        if cat.get(k) is not None and not isinstance(cat[k], str):
            raise SSUIError(f"field 'category.{k}': expected a string, got {type(cat[k]).__name__}")
    category = Category(l1=cat.get("l1"), l2=cat.get("l2"), l3=cat.get("l3"))
    try:
        check_category(category.l1, category.l2 if strict else None, category.l3 if strict else None)
    except SSUIError as e:
        raise SSUIError(f"field 'category': {e}") from None

    reasoning = d.get("reasoning") or {}
    if not isinstance(reasoning, dict):
        raise SSUIError("field 'reasoning': expected an object with the six step keys")
    if reasoning:
        for k in reasoning:
            if k not in STEP_KEYS:
                raise SSUIError(f"field 'reasoning.{k}': unknown step (steps: {', '.join(STEP_KEYS)})")
        for k in STEP_KEYS:
            if not isinstance(reasoning.get(k), str) or not reasoning[k].strip():
                raise SSUIError(f"field 'reasoning.{k}': missing or empty")
    elif strict:
        raise SSUIError("field 'reasoning': missing (the six-step explainable chain)")

    safe_reply = _need_str(d, "safe_reply", allow_empty=not strict, optional=not strict) or ""
    unsafe_reply = _need_str(d, "unsafe_reply", optional=True)
    if strict and kind == "irs" and not unsafe_reply:
        raise SSUIError("field 'unsafe_reply': an IRS record needs an unsafe reply")
    warning = _need_str(d, "safety_warning", allow_empty=True, optional=True) or ""
    if strict and kind == "irs" and not warning.strip():
        raise SSUIError("field 'safety_warning': an IRS record needs a safety warning")
    split = _need_str(d, "split", optional=True)
    if split is not None and split not in SPLITS:
        raise SSUIError(f"field 'split': {split!r} is not one of {SPLITS}")
    pair_id = _need_str(d, "pair_id", optional=True)

    prov = d.get("provenance") or {"source": "unknown"}
    if not isinstance(prov, dict) or not isinstance(prov.get("source"), str):
        raise SSUIError("field 'provenance': expected an object with a 'source' string")
    extra_keys = set(prov) - {"source", "author", "license", "notes", "stages", "screens"}
    if extra_keys:
        raise SSUIError(f"field 'provenance.{sorted(extra_keys)[0]}': unknown field")
    screens = prov.get("screens", [])
    if not isinstance(screens, list) or not all(
            isinstance(s, dict) and isinstance(s.get("check"), str) and s.get("verdict") in ("pass", "fail")
            for s in screens):
        raise SSUIError("field 'provenance.screens': expected a list of objects with a 'check' string and a "
                        "'verdict' of 'pass' or 'fail'")
    provenance = Provenance(**prov)
    extra = d.get("extra") or {}
    if not isinstance(extra, dict):
        raise SSUIError("field 'extra': expected an object")

    return Sample(
        id=sid, kind=kind, image=Image(caption=caption, source=source), query=_need_str(d, "query"),
        category=category, verdict=verdict, safety_warning=warning, reasoning=dict(reasoning),
        safe_reply=safe_reply, unsafe_reply=unsafe_reply, pair_id=pair_id, split=split,
        provenance=provenance, extra=dict(extra),
    )


# ----------------------------------------------------------------------------- JSONL

def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed JSON) for each non-blank line; SSUIError names file:line."""
    p = Path(path)
    if not p.exists():
        raise SSUIError(f"{p}: file not found")
    if p.is_dir():
        raise SSUIError(f"{p}: is a directory, expected a JSONL file")
    with p.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SSUIError(f"{p}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                f"expected UTF-8 JSON lines") from None
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise SSUIError(f"{p}:{n}: malformed JSON ({e.msg} at column {e.colno})") from None


def read_samples(path: str | os.PathLike, *, strict: bool = True) -> list[Sample]:
    """Read and validate a JSONL file of samples. Errors name the file and line; ids must be unique."""
    out: list[Sample] = []
    seen: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        try:
            s = Sample.from_dict(obj, strict=strict)
        except SSUIError as e:
            raise SSUIError(f"{path}:{n}: {e}") from None
        if s.id in seen:
            raise SSUIError(f"{path}:{n}: field 'id': duplicate id {s.id!r} (first on line {seen[s.id]})")
        seen[s.id] = n
        out.append(s)
    return out


def dumps_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_samples(path: str | os.PathLike, samples: Iterable[Sample]) -> None:
    atomic_write_text(path, dumps_jsonl(s.to_dict() for s in samples))


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, dumps_jsonl(rows))
