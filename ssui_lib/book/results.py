"""Results are data: every chapter's tables as CSV and its headline numbers in one JSON file.

Beside a profile's run manifest (``papermill_runs/<profile>/``) a chapter writes

* ``tables/<chapter>_<name>.csv`` — every table it shows (:func:`write_table`), and
* entries in ``results.json`` — one per headline number (:func:`record`)::

    {"chapter": "05", "metric": "verdict accuracy", "variant": "SRPO", "value": 0.58,
     "interval": [0.42, 0.75], "n": 24, "model": "embedded", "judge": "offline"}

so two runs on two machines can be compared without opening a notebook. An entry's key is
(chapter, metric, variant): recording it again replaces it. Chapters run in any order and each
merges its entries into the file under a lock, written atomically (temporary file + rename), so
the file is never half-written and never loses another chapter's numbers. The file is
``{"profile": P, "entries": [...]}`` with entries sorted by key.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import atomic_write_text

FIELDS = ("chapter", "metric", "variant", "value", "interval", "n", "model", "judge")
KEY = ("chapter", "metric", "variant")
_CHAPTER = re.compile(r"^\d{2}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def run_dir(profile: str, root: str | os.PathLike = "papermill_runs") -> Path:
    """``<root>/<profile>``: where the manifest, ``results.json`` and ``tables/`` live."""
    if not isinstance(profile, str) or not _NAME.match(profile):
        raise SSUIError(f"results: profile must be a plain name (letters, digits, _ . -), got {profile!r}")
    return Path(root) / profile


def _number(x: Any, what: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "__float__"):
        raise SSUIError(f"results: {what} must be a number or null, got {x!r}")
    v = float(x)
    return None if math.isnan(v) else v


def entry(chapter: str, metric: str, variant: str, value: Any, *, interval: Sequence[Any] | None = None,
          n: int | None = None, model: str | None = None, judge: str | None = None) -> dict[str, Any]:
    """One validated headline number (NaN becomes null; an interval is [lo, hi] or null)."""
    if not isinstance(chapter, str) or not _CHAPTER.match(chapter):
        raise SSUIError(f"results: chapter must be a two-digit id like '05', got {chapter!r}")
    for name, v in (("metric", metric), ("variant", variant)):
        if not isinstance(v, str) or not v.strip():
            raise SSUIError(f"results: {name} must be a non-empty string, got {v!r} (chapter {chapter})")
    where = f"chapter {chapter}, {metric} / {variant}"
    iv = None
    if interval is not None:
        if len(interval) != 2:
            raise SSUIError(f"results: interval must be [lo, hi], got {interval!r} ({where})")
        lo, hi = (_number(x, f"interval ({where})") for x in interval)
        iv = None if lo is None or hi is None else [lo, hi]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__") or int(n) < 0):
        raise SSUIError(f"results: n must be a count >= 0, got {n!r} ({where})")
    for name, v in (("model", model), ("judge", judge)):
        if v is not None and not isinstance(v, str):
            raise SSUIError(f"results: {name} must be a string or null, got {v!r} ({where})")
    return {"chapter": chapter, "metric": metric, "variant": variant, "value": _number(value, f"value ({where})"),
            "interval": iv, "n": None if n is None else int(n), "model": model, "judge": judge}


def _key(e: Mapping[str, Any]) -> tuple[str, str, str]:
    return tuple(str(e[k]) for k in KEY)  # type: ignore[return-value]


def read_results(profile: str, root: str | os.PathLike = "papermill_runs") -> list[dict[str, Any]]:
    """The entries of ``results.json`` (empty when there is none); a malformed file or entry is an
    error naming the file and the entry."""
    path = run_dir(profile, root) / "results.json"
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise SSUIError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise SSUIError(f"{path}: expected {{\"profile\", \"entries\": [...]}}")
    out = []
    for i, e in enumerate(data["entries"]):
        if not isinstance(e, dict) or set(e) != set(FIELDS):
            raise SSUIError(f"{path}: entries[{i}]: expected the fields {', '.join(FIELDS)}")
        try:
            out.append(entry(e["chapter"], e["metric"], e["variant"], e["value"], interval=e["interval"], n=e["n"],
                             model=e["model"], judge=e["judge"]))
        except SSUIError as err:
            raise SSUIError(f"{path}: entries[{i}]: {err}") from None
    return out


@contextmanager
def _merge_lock(path: Path) -> Iterator[None]:
    """A short exclusive lock (waits for another chapter's merge to finish)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".merge-lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def record(profile: str, entries: Iterable[Mapping[str, Any]], *,
           root: str | os.PathLike = "papermill_runs") -> Path:
    """Merge ``entries`` (dicts with :data:`FIELDS`, see :func:`entry`) into the profile's
    ``results.json``: an entry replaces the one with its (chapter, metric, variant), every other
    entry is kept. Atomic and locked. Returns the file's path."""
    new = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or set(e) != set(FIELDS):
            raise SSUIError(f"results: entry {i}: expected the fields {', '.join(FIELDS)}, got {e!r}")
        new.append(entry(e["chapter"], e["metric"], e["variant"], e["value"], interval=e["interval"], n=e["n"],
                         model=e["model"], judge=e["judge"]))
    path = run_dir(profile, root) / "results.json"
    with _merge_lock(path):
        merged = {_key(e): e for e in read_results(profile, root)}
        merged.update({_key(e): e for e in new})
        body = {"profile": profile, "entries": [merged[k] for k in sorted(merged)]}
        atomic_write_text(path, json.dumps(body, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def metric_entries(chapter: str, variant: str, metrics: Mapping[str, Mapping[str, Any]], *,
                   names: Mapping[str, str] | None = None, model: str | None = None,
                   judge: str | None = None) -> list[dict[str, Any]]:
    """Entries from a metrics dict as the library returns them (``{name: {"value", "ci", "n"}}``);
    ``names`` renames and selects metrics (default: all, under their own names)."""
    names = dict(names) if names is not None else {m: m for m in metrics}
    out = []
    for m, label in names.items():
        if m not in metrics:
            raise SSUIError(f"results: chapter {chapter}, {variant}: no metric {m!r} (have: {', '.join(metrics)})")
        e = metrics[m]
        out.append(entry(chapter, label, variant, e.get("value"), interval=e.get("ci"), n=e.get("n"),
                         model=model, judge=judge))
    return out


def write_table(profile: str, chapter: str, name: str, table: Any, *, root: str | os.PathLike = "papermill_runs",
                index: bool = True) -> Path:
    """Write a table a chapter shows (a pandas DataFrame or Styler) as
    ``<root>/<profile>/tables/<chapter>_<name>.csv`` (atomically). Returns the path."""
    if not isinstance(chapter, str) or not _CHAPTER.match(chapter):
        raise SSUIError(f"results: chapter must be a two-digit id like '05', got {chapter!r}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SSUIError(f"results: table name must be a plain name (letters, digits, _ . -), got {name!r}")
    df = getattr(table, "data", table)  # a Styler carries its frame in .data
    if not hasattr(df, "to_csv"):
        raise SSUIError(f"results: table {chapter}_{name}: expected a pandas DataFrame, got {type(table).__name__}")
    path = run_dir(profile, root) / "tables" / f"{chapter}_{name}.csv"
    atomic_write_text(path, df.to_csv(index=index))
    return path
