"""Splitting a run across machines (``--shard I/N``) and merging the shards back into one run.

Shard ``I`` of ``N`` (1 ≤ I ≤ N) holds blocks ``I-1, I-1+N, I-1+2N, …`` of the dataset after
``--limit``, a block being one batch of the command (``ssui generate`` / ``judge``: 16 samples;
``ssui explore``: ``--batch-samples``). Round robin keeps the shards within one block of each
other, and the same command line gives the same split on every machine. Each batch of a shard is
a batch of the unsharded run (same prompts, same seeds), so shard ``I`` writes exactly the records
one unsharded run writes for its samples.

:func:`merge_jsonl` puts the shards' JSONL files (``ssui generate`` / ``ssui judge`` outputs, or
``trees.jsonl`` of ``ssui explore``) back together in the dataset's order, refusing a sample
missing from every shard, an id the dataset does not hold, two different records for one id,
and shards that were run with different settings (their ``.meta.json`` sidecars differ).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence, TypeVar

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import _normal, append_jsonl, read_jsonl, read_settings, write_json

T = TypeVar("T")
SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` as ``(I, N)`` with 1 ≤ I ≤ N; None for None. SSUIError for anything else."""
    if text is None:
        return None
    m = SHARD_RE.match(str(text))
    if not m:
        raise SSUIError(f"--shard {text!r}: expected I/N, e.g. 2/8 (shard I of N, counted from 1)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= i <= n:
        raise SSUIError(f"--shard {text}: expected 1 <= I <= N, got I={i}, N={n}")
    return i, n


def take_shard(items: Sequence[T], shard: tuple[int, int] | None, block: int = 1) -> list[T]:
    """The items of shard ``(I, N)``: blocks of ``block`` consecutive items dealt round robin
    (block ``b`` goes to shard ``b mod N + 1``); all of them for None. A block is a batch of the
    command (one generate call): with the command's batch size as ``block`` every batch of a shard
    is a batch of the unsharded run, so its seeds and padding, and hence its records, are the same."""
    if shard is None:
        return list(items)
    if block < 1:
        raise SSUIError(f"take_shard: block must be >= 1, got {block}")
    i, n = shard
    return [x for b in range(i - 1, -(-len(items) // block), n) for x in items[b * block:(b + 1) * block]]


def _meta(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _unscored(row: dict[str, Any]) -> bool:
    return row.get("scored") is False


def read_shard(path: Path) -> dict[str, dict[str, Any]]:
    """One shard's rows by id. A later row replaces an earlier one of the same id only when the
    earlier is an unscored verdict (what a resumed ``ssui judge`` appends); a torn last line (a
    killed run) is an error: finish the shard (rerun its command) before merging."""
    lines, torn = read_jsonl(path, what="malformed JSON", warn=False, missing_ok=False)
    if torn is not None:
        n = path.read_bytes()[:torn[0]].count(b"\n") + 1
        raise SSUIError(f"{path}:{n}: a truncated last line: rerun this shard's command (it resumes) before merging")
    rows: dict[str, dict[str, Any]] = {}
    for n, obj in lines:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            raise SSUIError(f"{path}:{n}: field 'id': expected an object with a non-empty string id")
        if obj["id"] in rows and not _unscored(rows[obj["id"]]):
            raise SSUIError(f"{path}:{n}: field 'id': duplicate id {obj['id']!r}")
        rows[obj["id"]] = obj
    return rows


def shard_settings(paths: Sequence[Path]) -> dict[str, Any] | None:
    """The settings the shards were run with (their ``.meta.json``, all equal), or None when
    none has one; SSUIError naming the two files when they differ or only some have one."""
    metas = [(p, read_settings(_meta(p)) if _meta(p).is_file() else None) for p in paths]
    first_path, first = metas[0]
    for p, m in metas[1:]:
        if (m is None) != (first is None) or (m is not None and _normal(m) != _normal(first)):
            raise SSUIError(f"{p}: run with other settings than {first_path} (compare their .meta.json files); "
                            "shards of one run share every setting but --shard")
    return first


def merge_jsonl(paths: Sequence[str | os.PathLike], out: str | os.PathLike, order: Sequence[str]) -> list[dict]:
    """Merge shard files into ``out`` (atomically, with their common ``.meta.json``), one record per
    id of ``order`` (the dataset's ids after ``--limit``) in that order; returns the records."""
    files = [Path(p) for p in paths]
    if not files:
        raise SSUIError("merge: no shard files given")
    out = Path(out)
    if out.resolve() in {f.resolve() for f in files}:
        raise SSUIError(f"merge: --out {out} is one of the shards")
    settings = shard_settings(files)
    known = set(order)
    merged: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    for f in files:
        for rid, row in read_shard(f).items():
            if rid not in known:
                raise SSUIError(f"{f}: id {rid!r} is not in the dataset (after --limit); wrong --dataset or --limit?")
            if rid in merged and _normal(merged[rid]) != _normal(row):
                if _unscored(merged[rid]) and not _unscored(row):
                    pass  # a scored verdict wins over an unscored one
                elif _unscored(row):
                    continue
                else:
                    raise SSUIError(f"{f}: id {rid!r} differs from its record in {where[rid]}")
            merged[rid] = row
            where[rid] = f
    missing = [i for i in order if i not in merged]
    if missing:
        raise SSUIError(f"merge: {len(missing)} of {len(order)} samples are in no shard (first: "
                        f"{', '.join(repr(m) for m in missing[:3])}); run the missing shards first")
    rows = [merged[i] for i in order]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".merging")
    tmp.unlink(missing_ok=True)
    append_jsonl(tmp, rows)
    if settings is not None:
        write_json(_meta(out), settings, sort_keys=True)
    else:
        _meta(out).unlink(missing_ok=True)
    os.replace(tmp, out)
    return rows

