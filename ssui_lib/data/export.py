"""Exports of a list of Samples: a Hugging Face ``datasets.Dataset`` and TRL preference triples.

``to_hf_dataset``: one flat row per record. Nested fields become columns (``category_l1``,
``reasoning_visual_context`` ... one per step, ``provenance_source`` ...); the picture is a
``datasets.Image`` column (None for caption-only records; the original file's bytes, not re-encoded);
``provenance_stages`` and ``extra`` (free-form, different per format) are JSON strings.

``to_trl_preference``: the conversational preference format that TRL's DPO/ORPO trainers and their
vision collator read::

    {"id": ..., "prompt": [{"role": "user", "content": QUERY}],
     "chosen": [{"role": "assistant", "content": SAFE REPLY}],
     "rejected": [{"role": "assistant", "content": UNSAFE REPLY}], "images": [PICTURE]}

TRL inserts the image placeholder into the first user turn itself (one per entry of ``images``). A
caption-only record has no picture: ``images`` is empty and the prompt starts with ``[Image: caption]``
(caption mode, as text-only models see it). ``chosen`` is the safe reply, or with ``chain=True`` the
six-step chain + final verdict + answer (chain.render_chain). ``rejected`` is the unsafe reply; a SIUO
multiple-choice record without one gives one triple per wrong option. Records with nothing to prefer
are skipped and counted by reason (twins have no rejected reply; external sets have no safe reply or
no chain) — ``preference_rows`` returns the counts, ``to_trl_preference`` warns with them.

``save_dataset`` writes with ``Dataset.save_to_disk`` into a temporary sibling folder and renames it
into place, so OUT is either the old export or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from datasets import Dataset, Features, Image, List, Value

from ssui_lib.core.chain import render_chain
from ssui_lib.core.errors import SSUIError
from ssui_lib.data.images import ImageRef, caption_text, resolve_path
from ssui_lib.core.schema import STEP_KEYS, Sample
from ssui_lib.core.store import atomic_write_dir

_S = Value("string")
HF_FEATURES = Features({
    "id": _S, "kind": _S, "verdict": _S, "split": _S, "pair_id": _S,
    "image": Image(), "image_caption": _S, "image_source": _S,
    "query": _S, "category_l1": _S, "category_l2": _S, "category_l3": _S,
    "safety_warning": _S,
    **{f"reasoning_{k}": _S for k in STEP_KEYS},
    "safe_reply": _S, "unsafe_reply": _S,
    "provenance_source": _S, "provenance_author": _S, "provenance_license": _S, "provenance_notes": _S,
    "provenance_stages": _S, "extra": _S,
})
_MESSAGES = List({"role": _S, "content": _S})
TRL_FEATURES = Features({"id": _S, "prompt": _MESSAGES, "chosen": _MESSAGES, "rejected": _MESSAGES, "images": List(Image())})


def _dataset(rows: list[dict[str, Any]], features: Features) -> Dataset:
    """Rows → Dataset; column-wise so that an empty list still gives the full schema."""
    return Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)


@lru_cache(maxsize=256)
def _file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def image_cell(sample: Sample, base_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The picture as a ``datasets.Image`` value ({bytes, path}: the file as it is), or None if caption-only."""
    if not sample.image.source:
        return None
    p = resolve_path(sample.image.source, base_dir)
    return {"bytes": _file_bytes(str(p)), "path": p.name}


def hf_row(sample: Sample, base_dir: str | Path | None = None) -> dict[str, Any]:
    """One record as a flat row of HF_FEATURES."""
    s = sample
    return {
        "id": s.id, "kind": s.kind, "verdict": s.verdict, "split": s.split, "pair_id": s.pair_id,
        "image": image_cell(s, base_dir), "image_caption": s.image.caption, "image_source": s.image.source,
        "query": s.query, "category_l1": s.category.l1, "category_l2": s.category.l2, "category_l3": s.category.l3,
        "safety_warning": s.safety_warning,
        **{f"reasoning_{k}": s.reasoning.get(k) for k in STEP_KEYS},
        "safe_reply": s.safe_reply, "unsafe_reply": s.unsafe_reply,
        "provenance_source": s.provenance.source, "provenance_author": s.provenance.author,
        "provenance_license": s.provenance.license, "provenance_notes": s.provenance.notes,
        "provenance_stages": json.dumps(s.provenance.stages, ensure_ascii=False),
        "extra": json.dumps(s.extra, ensure_ascii=False, sort_keys=True),
    }


def to_hf_dataset(samples: Iterable[Sample], base_dir: str | Path | None = None) -> Dataset:
    """The samples as a ``datasets.Dataset`` (columns: HF_FEATURES)."""
    return _dataset([hf_row(s, base_dir) for s in samples], HF_FEATURES)


# ----------------------------------------------------------------------------- TRL preference triples


def _prompt(sample: Sample) -> list[dict[str, str]]:
    text = sample.query if sample.image.source else f"{caption_text(ImageRef(caption=sample.image.caption))}\n{sample.query}"
    return [{"role": "user", "content": text}]


def _rejected_replies(sample: Sample) -> list[str]:
    """The unsafe reply, else (SIUO multiple choice) every wrong option, in option order."""
    if sample.unsafe_reply:
        return [sample.unsafe_reply]
    options, correct = sample.extra.get("options"), sample.extra.get("correct_option")
    if isinstance(options, dict) and correct in options:
        return [v for k, v in sorted(options.items()) if k != correct]
    return []


def preference_rows(samples: Iterable[Sample], *, chain: bool = False,
                    base_dir: str | Path | None = None) -> tuple[list[dict[str, Any]], Counter]:
    """(TRL triples, skipped records counted by reason); see the module docstring."""
    rows: list[dict[str, Any]] = []
    skipped: Counter = Counter()
    for s in samples:
        if s.kind == "twin":
            skipped["twin: no rejected reply"] += 1
            continue
        if chain and not s.reasoning:
            skipped["no six-step chain"] += 1
            continue
        if not chain and not s.safe_reply.strip():
            skipped["no safe reply"] += 1
            continue
        rejected = _rejected_replies(s)
        if not rejected:
            skipped["no unsafe reply"] += 1
            continue
        chosen = render_chain(s) if chain else s.safe_reply
        cell = image_cell(s, base_dir)
        for j, r in enumerate(rejected):
            rows.append({
                "id": s.id if len(rejected) == 1 else f"{s.id}#{j}",
                "prompt": _prompt(s),
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": r}],
                "images": [cell] if cell else [],
            })
    return rows, skipped


def describe_skipped(skipped: Counter) -> str:
    return ", ".join(f"{n} ({reason})" for reason, n in sorted(skipped.items())) or "none"


def to_trl_preference(samples: Iterable[Sample], *, chain: bool = False,
                      base_dir: str | Path | None = None) -> Dataset:
    """TRL preference triples as a ``datasets.Dataset`` (columns: TRL_FEATURES); warns about skipped records."""
    rows, skipped = preference_rows(samples, chain=chain, base_dir=base_dir)
    if skipped:
        warnings.warn(f"TRL export skipped records: {describe_skipped(skipped)}", UserWarning, stacklevel=2)
    return _dataset(rows, TRL_FEATURES)


# ----------------------------------------------------------------------------- writing


def _is_saved_dataset(p: Path) -> bool:
    return (p / "dataset_info.json").is_file() or (p / "state.json").is_file()


def save_dataset(ds: Dataset, out: str | os.PathLike) -> Path:
    """``ds.save_to_disk`` into a temporary sibling folder, then rename it to ``out``. An existing
    ``out`` is replaced only if it is itself a saved dataset (or an empty folder)."""
    target = Path(out)
    if target.exists():
        if not target.is_dir():
            raise SSUIError(f"{target}: exists and is not a folder; choose another output path")
        if any(target.iterdir()) and not _is_saved_dataset(target):
            raise SSUIError(f"{target}: exists and is not a saved dataset; refusing to replace it")
    atomic_write_dir(target, lambda tmp: ds.save_to_disk(str(tmp)))
    return target


EXPORT_FORMATS: tuple[str, ...] = ("hf", "trl")


def export(samples: Sequence[Sample], to: str, out: str | os.PathLike, *, chain: bool = False,
           base_dir: str | Path | None = None) -> tuple[Path, int, Counter]:
    """Build the ``to`` export ("hf" or "trl") and save it atomically: (folder, rows, skipped by reason)."""
    if not samples:
        raise SSUIError(f"export to {out}: no records to export (an empty dataset); nothing written")
    if to == "hf":
        ds, skipped = to_hf_dataset(samples, base_dir), Counter()
    elif to == "trl":
        rows, skipped = preference_rows(samples, chain=chain, base_dir=base_dir)
        if not rows:
            raise SSUIError(f"TRL export: no preference pairs in {len(samples)} records (skipped: {describe_skipped(skipped)})")
        ds = _dataset(rows, TRL_FEATURES)
    else:
        raise SSUIError(f"export format {to!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    return save_dataset(ds, out), len(ds), skipped
