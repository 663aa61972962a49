"""Are two book runs' results the same? ``ssui book compare A B``.

A run folder (``papermill_runs/<profile>/``) holds every table a chapter showed as
``tables/<chapter>_<name>.csv`` and its headline numbers in ``results.json`` (see
:mod:`ssui_lib.book.results`). Two runs of the same profile with the same seed should give the same
values; this module says where they do not, value by value:

* **tables** — the same file names on both sides; in each table the same header, the same number
  of rows, and cell by cell the same text, where every number inside a cell (``"41.7 [16.7,
  66.7]"`` holds three) is compared as a number and the text around the numbers must be equal.
* **results.json** — the same entries by key (chapter, metric, variant), each with the same
  value, interval, n, model and judge.

Numbers are equal when they are exactly equal (the default) or within the stated tolerance
``|a - b| <= max(atol, rtol * max(|a|, |b|))`` (``math.isclose``); NaN equals NaN. Figures and the
manifest (timings, the machine) are not compared: they differ between any two runs.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import read_json

# a decimal number as pandas writes it (sign, digits, fraction, exponent), or nan / inf
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?\b(?:nan|NaN|inf|Infinity)\b")
ENTRY_KEY = ("chapter", "metric", "variant")
ENTRY_FIELDS = ("value", "interval", "n", "model", "judge")


@dataclass(frozen=True)
class Difference:
    """One place where the runs differ: ``where`` (file, row, column or entry, field) and the
    two sides as text (``None``: missing on that side)."""

    where: str
    a: str | None
    b: str | None

    def __str__(self) -> str:
        side = lambda v: "(missing)" if v is None else repr(v)  # noqa: E731
        return f"{self.where}: A {side(self.a)} != B {side(self.b)}"


def run_folder(path: str | os.PathLike, profile: str = "smoke") -> Path:
    """The run folder of ``path``: itself when it holds ``tables/`` or ``results.json``, else
    ``path/papermill_runs/<profile>`` (a checkout). SSUIError when neither exists."""
    p = Path(path)
    for cand in (p, p / "papermill_runs" / profile):
        if (cand / "tables").is_dir() or (cand / "results.json").is_file():
            return cand
    raise SSUIError(f"{p}: not a book run folder (no tables/ or results.json there, nor under "
                    f"papermill_runs/{profile}/)")


def numbers_equal(x: float, y: float, *, atol: float = 0.0, rtol: float = 0.0) -> bool:
    """``x`` equals ``y`` exactly, or within ``atol`` / ``rtol``; NaN equals NaN."""
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or math.isclose(x, y, rel_tol=rtol, abs_tol=atol)


def cells_equal(x: str, y: str, *, atol: float = 0.0, rtol: float = 0.0) -> bool:
    """Two CSV cells hold the same text, every number in them compared as a number
    (:func:`numbers_equal`) and the text between the numbers exactly."""
    if x == y:
        return True
    tx, ty = _NUMBER.split(x), _NUMBER.split(y)
    nx, ny = _NUMBER.findall(x), _NUMBER.findall(y)
    if tx != ty or len(nx) != len(ny):
        return False
    return all(numbers_equal(float(a), float(b), atol=atol, rtol=rtol) for a, b in zip(nx, ny))


def read_table(path: str | os.PathLike) -> list[list[str]]:
    """The rows of a CSV file (the header first); SSUIError naming the file when it is not UTF-8
    or not CSV."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        return list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except UnicodeDecodeError as e:
        raise SSUIError(f"{p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    except csv.Error as e:
        raise SSUIError(f"{p}: not a CSV table ({e})") from None


def compare_tables(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]], name: str, *, atol: float = 0.0,
                   rtol: float = 0.0) -> list[Difference]:
    """Differences between two tables' rows (header first): the header, the row count, then every
    cell of the rows both have, named by row number, the row's first cell and the column."""
    if not a or not b:
        return [] if not a and not b else [Difference(f"{name}: rows", str(len(a)), str(len(b)))]
    out: list[Difference] = []
    if list(a[0]) != list(b[0]):
        out.append(Difference(f"{name}: header", ",".join(a[0]), ",".join(b[0])))
    header = list(a[0])
    if len(a) != len(b):
        out.append(Difference(f"{name}: rows", str(len(a) - 1), str(len(b) - 1)))
    for i, (ra, rb) in enumerate(zip(a[1:], b[1:]), start=1):
        label = f"{name}: row {i}" + (f" ({ra[0]})" if ra and ra[0] else "")
        for j in range(max(len(ra), len(rb))):
            ca = ra[j] if j < len(ra) else None
            cb = rb[j] if j < len(rb) else None
            if ca is None or cb is None or not cells_equal(ca, cb, atol=atol, rtol=rtol):
                col = header[j] if j < len(header) and header[j] else f"#{j}"
                out.append(Difference(f"{label} column {col!r}", ca, cb))
    return out


def read_entries(path: str | os.PathLike) -> tuple[Any, dict[tuple, dict]]:
    """(profile, {(chapter, metric, variant): entry}) of a ``results.json``; SSUIError naming the file
    and the entry for malformed JSON, a missing key field or a repeated key."""
    p = Path(path)
    data = read_json(p)
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise SSUIError(f'{p}: expected {{"profile", "entries": [...]}}')
    out: dict[tuple, dict] = {}
    for i, e in enumerate(data["entries"]):
        if not isinstance(e, dict) or any(not isinstance(e.get(k), str) for k in ENTRY_KEY):
            raise SSUIError(f"{p}: entries[{i}]: expected an object with string fields {', '.join(ENTRY_KEY)}")
        key = tuple(e[k] for k in ENTRY_KEY)
        if key in out:
            raise SSUIError(f"{p}: entries[{i}]: the key {' / '.join(key)} appears twice")
        out[key] = e
    return data.get("profile"), out


def _values_equal(x: Any, y: Any, atol: float, rtol: float) -> bool:
    num = (int, float)
    if isinstance(x, num) and isinstance(y, num) and not isinstance(x, bool) and not isinstance(y, bool):
        return numbers_equal(float(x), float(y), atol=atol, rtol=rtol)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_values_equal(u, v, atol, rtol) for u, v in zip(x, y))
    return x == y


def _text(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def compare_entries(a: dict[tuple, dict], b: dict[tuple, dict], *, atol: float = 0.0,
                    rtol: float = 0.0) -> list[Difference]:
    """Differences between two runs' headline entries (by key; fields value, interval, n, model,
    judge)."""
    out: list[Difference] = []
    for key in sorted(set(a) | set(b)):
        where = f"results.json: {' / '.join(key)}"
        if key not in a or key not in b:
            out.append(Difference(where, "present" if key in a else None, "present" if key in b else None))
            continue
        for f in ENTRY_FIELDS:
            if not _values_equal(a[key].get(f), b[key].get(f), atol, rtol):
                out.append(Difference(f"{where} {f}", _text(a[key].get(f)), _text(b[key].get(f))))
    return out


def compare_runs(a: str | os.PathLike, b: str | os.PathLike, *, profile: str = "smoke", atol: float = 0.0,
                 rtol: float = 0.0) -> tuple[list[Difference], dict[str, int]]:
    """Compare two run folders (or checkouts, see :func:`run_folder`): (differences, counts of what
    was compared: tables, cells, entries)."""
    for name, v in (("atol", atol), ("rtol", rtol)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
            raise SSUIError(f"compare: {name} must be a number >= 0, got {v!r}")
    da, db = run_folder(a, profile), run_folder(b, profile)
    diffs: list[Difference] = []
    counts = {"tables": 0, "cells": 0, "entries": 0}
    ta = {p.name: p for p in sorted((da / "tables").glob("*.csv"))}
    tb = {p.name: p for p in sorted((db / "tables").glob("*.csv"))}
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            diffs.append(Difference(f"tables/{name}", "present" if name in ta else None,
                                    "present" if name in tb else None))
            continue
        rows_a, rows_b = read_table(ta[name]), read_table(tb[name])
        counts["tables"] += 1
        counts["cells"] += sum(len(r) for r in rows_a[1:])
        diffs += compare_tables(rows_a, rows_b, f"tables/{name}", atol=atol, rtol=rtol)
    ra, rb = da / "results.json", db / "results.json"
    if ra.is_file() != rb.is_file():
        diffs.append(Difference("results.json", "present" if ra.is_file() else None,
                                "present" if rb.is_file() else None))
    elif ra.is_file():
        (pa, ea), (pb, eb) = read_entries(ra), read_entries(rb)
        if pa != pb:
            diffs.append(Difference("results.json: profile", _text(pa), _text(pb)))
        counts["entries"] = len(set(ea) | set(eb))
        diffs += compare_entries(ea, eb, atol=atol, rtol=rtol)
    return diffs, counts


def compare_report(a: str | os.PathLike, b: str | os.PathLike, *, profile: str = "smoke", atol: float = 0.0,
                   rtol: float = 0.0) -> tuple[str, bool]:
    """The text ``ssui book compare`` prints (one line per difference, then a summary line) and
    whether the runs are the same."""
    diffs, counts = compare_runs(a, b, profile=profile, atol=atol, rtol=rtol)
    tol = "exactly" if not atol and not rtol else f"within atol={atol:g}, rtol={rtol:g}"
    lines = [str(d) for d in diffs]
    lines.append(f"compared {counts['tables']} tables ({counts['cells']} cells) and {counts['entries']} "
                 f"results.json entries {tol}: " + ("the same" if not diffs else f"{len(diffs)} difference(s)"))
    return "\n".join(lines), not diffs
