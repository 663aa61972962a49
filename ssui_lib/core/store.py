"""The durable run store every resumable step uses, and the project's one hash.

* :func:`cache_key` — sha256 of the canonical JSON of a value (the only hash of settings, requests
  and parameters in the library).
* :func:`append_jsonl` — append rows durably (one write, flushed and fsync'ed).
* :func:`read_jsonl` — read a JSONL file, ignoring (and on request cutting off) a torn last line
  left by a killed run; any other bad line is an error naming file:line.
* :func:`atomic_write_text` / :func:`atomic_write_dir` — write a file or a folder atomically.
* :func:`check_settings` / :func:`guard_settings_file` — "was this run folder made with the same
  settings?": an error naming the differing fields, or a reset, by choice.
* :class:`JsonlCache` — a content-addressed key → value JSONL store for generations, API
  responses and judge verdicts, built on the above.

The cache:

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
import math
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping

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


# ----------------------------------------------------------------------------- atomic files

def atomic_write_dir(target: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Fill a temporary sibling folder with ``write(tmp_folder)`` and rename it into place (an
    existing folder is swapped out first and removed): readers see the old folder or the new one,
    never half of one; a failing ``write`` leaves the target untouched. Returns the target."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        write(tmp)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to path atomically (temporary file + rename): never half-written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, **dumps_kw: Any) -> None:
    """``obj`` as JSON (one trailing newline), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, **dumps_kw) + "\n")


# ----------------------------------------------------------------------------- durable JSONL

Tail = tuple[int, bytes]  # (byte offset, bytes) of a torn last line


def read_json(path: str | os.PathLike, what: str = "valid JSON") -> Any:
    """The JSON value in ``path``; an SSUIError "PATH: not WHAT (reason)" when it is not valid JSON
    (the caller checks the shape and says what it expected)."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SSUIError(f"{p}: not {what} ({e})") from None


def append_text(path: str | os.PathLike, text: str, *, cut: Tail | None = None) -> None:
    """Append ``text`` (whole lines) with one write, flushed and fsync'ed, on a line of its own.
    ``cut`` — a torn tail found by :func:`read_jsonl` — is first cut off, only if the file still
    ends with exactly those bytes."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    with open(p, "a+b") as f:
        if cut is not None:
            offset, tail = cut
            f.seek(offset)
            if f.read() == tail:
                f.truncate(offset)
        size = f.seek(0, os.SEEK_END)
        if size > 0:
            f.seek(size - 1)
            if f.read(1) != b"\n":  # a valid last line that lost its newline
                data = b"\n" + data
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def append_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """Append rows as JSON lines with one write, flushed and fsync'ed (a kill leaves at most a
    torn last line, which :func:`read_jsonl` ignores)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if text:
        append_text(path, text)


def read_jsonl(path: str | os.PathLike, *, parse: Callable[[Any], Any] | None = None, what: str = "corrupt line",
               repair: bool = False, warn: bool = True, missing_ok: bool = True) -> tuple[list[tuple[int, Any]], Tail | None]:
    """The lines of a JSONL file as (line number, value), and the torn tail if there was one.

    ``parse(obj)`` may transform each decoded value and raises ValueError for a malformed one. A
    malformed *last* non-blank line is a write cut short by a kill: it is skipped (with a warning
    when ``warn``) and returned as ``(offset, bytes)``; ``repair=True`` also cuts it off the file
    now. Any other malformed line is an SSUIError "file:line: ``what`` (reason)". A missing file reads as empty
    (an SSUIError when ``missing_ok`` is False)."""
    p = Path(path)
    if not p.exists():
        if missing_ok:
            return [], None
        raise SSUIError(f"{p}: file not found")
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    out: list[tuple[int, Any]] = []
    offset = 0
    for i, line in enumerate(lines):
        if line.strip():
            try:
                obj = json.loads(line.decode("utf-8"))
                if parse is not None:
                    obj = parse(obj)
            except (ValueError, UnicodeDecodeError) as e:
                if i != last:
                    raise SSUIError(f"{p}:{i + 1}: {what} ({e})") from None
                if warn:
                    warnings.warn(f"{p}:{i + 1}: ignoring a truncated last line (an interrupted run?); "
                                  "it is redone", stacklevel=2)
                tail = (offset, raw[offset:])
                if repair:
                    with open(p, "r+b") as f:
                        f.seek(offset)
                        if f.read() == tail[1]:
                            f.truncate(offset)
                    return out, None
                return out, tail
            out.append((i + 1, obj))
        offset += len(line) + 1
    return out, None


def json_safe(x: Any) -> Any:
    """``x`` with NaN → None (JSON has no NaN) and numpy scalars → Python numbers, recursively
    through dicts, lists and tuples: a result dict ready for ``json.dumps(allow_nan=False)``."""
    if type(x).__module__ == "numpy" and hasattr(x, "item") and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if isinstance(x, float):
        return None if math.isnan(x) else float(x)
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


# ----------------------------------------------------------------------------- same settings?

def _normal(obj: Any) -> Any:
    """JSON round trip (tuples → lists, paths → strings) so that saved and new settings compare."""
    return json.loads(json.dumps(obj, default=str))


def check_settings(where: str | os.PathLike, old: Mapping[str, Any] | None, new: Mapping[str, Any], *,
                   on_mismatch: Literal["error", "reset"] = "error", reset: Callable[[], Any] | None = None,
                   what: str = "other settings", hint: str = "use another output folder (or the same settings "
                   "to resume)") -> bool:
    """Was ``where`` made with the settings ``new``? ``old`` is what it recorded (None: nothing yet).

    True when they agree (or nothing was recorded). Otherwise ``on_mismatch="error"`` raises an
    SSUIError naming the first differing field and all of them; ``"reset"`` calls ``reset()`` (remove
    or move the stale results) and returns False."""
    if old is None:
        return True
    old, new = _normal(dict(old)), _normal(dict(new))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not diff:
        return True
    if on_mismatch == "reset":
        if reset is not None:
            reset()
        return False
    if on_mismatch != "error":
        raise SSUIError(f"check_settings: on_mismatch must be 'error' or 'reset', not {on_mismatch!r}")
    k = diff[0]
    raise SSUIError(f"{where}: field '{k}': made with {what} ({old.get(k)!r} there, {new.get(k)!r} now; "
                    f"differing: {', '.join(diff)}); {hint}")


def read_settings(path: str | os.PathLike) -> dict[str, Any] | None:
    """The settings recorded in a JSON file, or None if there is none; SSUIError if unreadable."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SSUIError(f"{p}: not valid JSON (remove it, or its folder, to start afresh)") from None
    if not isinstance(d, dict):
        raise SSUIError(f"{p}: expected a JSON object of settings")
    return d


def guard_settings_file(path: str | os.PathLike, settings: Mapping[str, Any], *,
                        on_mismatch: Literal["error", "reset"] = "error", reset: Callable[[], Any] | None = None,
                        unreadable: Literal["error", "reset"] = "error", **kw: Any) -> bool:
    """:func:`check_settings` against the settings recorded in the JSON file ``path``, then record
    ``settings`` there (atomically). ``unreadable="reset"`` treats a corrupt file as a mismatch.
    Returns True when the folder's earlier results may be kept."""
    try:
        old = read_settings(path)
    except SSUIError:
        if unreadable == "error":
            raise
        old = {"__unreadable__": True}
    same = check_settings(path, old, settings, on_mismatch=on_mismatch, reset=reset, **kw)
    if old != _normal(dict(settings)):
        write_json(path, _normal(dict(settings)), sort_keys=True)
    return same


# ----------------------------------------------------------------------------- the cache

def _parse_entry(obj: Any) -> tuple[str, Any]:
    """(key, value) of one stored entry; ValueError if it is not a well-formed entry."""
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
        # the corrupt tail is cut off before the next append (not now: a reader may only read)
        rows, self._bad_tail = read_jsonl(self.path, parse=_parse_entry, what="corrupt cache line")
        for _, (key, value) in rows:
            self._data[key] = value

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
        append_text(self.path, text, cut=self._bad_tail)
        self._bad_tail = None
