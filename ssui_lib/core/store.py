"""A content-addressed, append-only, resumable JSONL store for generations, API responses and
judge verdicts.

Each line is ``{"key": KEY, "value": VALUE}``; ``KEY`` is :func:`cache_key` of whatever fully
determines the value (model, request, parameters, image content). Lines are only ever appended,
flushed and fsync'ed one ``put`` at a time, so a run that is killed loses at most the line it was
writing; reopening the file ignores that truncated last line (with a warning) and carries on, so
an interrupted experiment resumes where it stopped. A key written twice keeps its last value.

Why our own and not ``shelve``/``sqlite3``/``diskcache``: the file must be a plain, diffable,
greppable JSONL that survives a kill mid-write and can be shipped with a run; none of those are.
One process writes a given file at a time (threads within it may share the cache freely).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable

from ssui_lib.core.errors import SSUIError


# ----------------------------------------------------------------------------- keys

def hash_bytes(data: bytes) -> str:
    """sha256 hex of raw bytes."""
    return hashlib.sha256(data).hexdigest()


def hash_image(pil: Any) -> str:
    """sha256 hex of a PIL image's *content* (mode, size and pixels), independent of file format,
    file name and encoder settings: two loads of the same picture give the same hash."""
    h = hashlib.sha256()
    h.update(f"{pil.mode}|{pil.size[0]}x{pil.size[1]}|".encode("ascii"))
    h.update(pil.tobytes())
    return h.hexdigest()


def _is_pil_image(obj: Any) -> bool:
    # Avoid importing PIL just to build keys of plain JSON.
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "tobytes") and hasattr(obj, "mode")


def _canonical_default(obj: Any) -> Any:
    """Encode the non-JSON values a request may hold, by content."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"__bytes_sha256__": hash_bytes(bytes(obj))}
    if _is_pil_image(obj):
        return {"__image_sha256__": hash_image(obj)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # Shallow on purpose: nested values go back through this function (no deepcopy of images).
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"__dataclass__": type(obj).__name__, **fields}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot build a cache key from a {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no spaces, UTF-8 kept as is, bytes and
    images replaced by their content hashes."""
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
            default=_canonical_default,
        )
    except (TypeError, ValueError) as e:
        raise SSUIError(f"cache key: {e}") from None


def cache_key(obj: Any) -> str:
    """sha256 hex of the canonical JSON of ``obj`` (see :func:`canonical_json`)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- store

def _parse_line(line: bytes) -> tuple[str, Any]:
    """(key, value) of one stored line; ValueError if it is not a well-formed entry."""
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict) or not isinstance(obj.get("key"), str) or "value" not in obj:
        raise ValueError('expected an object {"key": string, "value": ...}')
    return obj["key"], obj["value"]


def _dump_line(key: str, value: Any) -> str:
    try:
        return json.dumps({"key": key, "value": value}, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise SSUIError(f"cache value for key {key[:12]}…: not JSON-serialisable ({e})") from None


class JsonlCache:
    """An append-only JSONL key → value store (thread-safe; see the module docstring).

    Values must be JSON-serialisable; :meth:`get` returns them as they will read back after a
    reopen (tuples become lists), so a fresh run and a resumed run see the same values.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()
        # A corrupt tail left by a killed run: (offset, bytes), cut off before the next append.
        self._bad_tail: tuple[int, bytes] | None = None
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        last_nonblank = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
        offset = 0
        for i, line in enumerate(lines):
            if line.strip():
                try:
                    key, value = _parse_line(line)
                except (ValueError, UnicodeDecodeError) as e:
                    if i != last_nonblank:
                        raise SSUIError(f"{self.path}:{i + 1}: corrupt cache line ({e})") from None
                    warnings.warn(
                        f"{self.path}:{i + 1}: ignoring a truncated or corrupt last line "
                        f"(an interrupted run?); the next entry replaces it",
                        stacklevel=3,
                    )
                    self._bad_tail = (offset, raw[offset:])
                    break
                self._data[key] = value
            offset += len(line) + 1

    # -- reading
    def get(self, key: str) -> Any | None:
        """The value stored under ``key``, or None."""
        return self._data.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[str]:
        return list(self._data)

    def __repr__(self) -> str:
        return f"JsonlCache({str(self.path)!r}, entries={len(self)})"

    # -- writing
    def put(self, key: str, value: Any) -> None:
        """Append one entry (flushed and fsync'ed before returning)."""
        self.put_many([(key, value)])

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Append several entries with one write and one fsync."""
        items = list(items)
        for key, _ in items:
            if not isinstance(key, str):
                raise SSUIError(f"cache key must be a string, got {type(key).__name__}")
        lines = [_dump_line(k, v) for k, v in items]
        if not lines:
            return
        text = "".join(lines)
        with self._lock:
            self._append(text)
            for (key, _), line in zip(items, lines):
                self._data[key] = json.loads(line)["value"]

    def _append(self, text: str) -> None:
        """Append text on a line of its own; first cut off a corrupt tail left by a killed run
        (only if it is still exactly what we found at load time)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        with open(self.path, "a+b") as f:
            if self._bad_tail is not None:
                offset, tail = self._bad_tail
                f.seek(offset)
                if f.read() == tail:
                    f.truncate(offset)
                self._bad_tail = None
            size = f.seek(0, os.SEEK_END)
            if size > 0:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a valid last line that lost its newline
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
