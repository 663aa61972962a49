"""Where the time goes: each chapter's wall time split into phases, from the run manifest.

A chapter's kernel times its phases with :func:`ssui_lib.core.ledger.phase` (model loading,
generation, scoring, training, judging, embedding, plotting: exclusive seconds, the innermost phase
of a nested block counting). The runner adds what only it can see, from the executed notebook's
per-cell timings (papermill's ``start_time`` / ``end_time`` in each cell's metadata):
``kernel_start`` (from launching the notebook to the start of its first cell: kernel start-up and
papermill's parameter injection) and ``kernel_stop`` (from the end of its last cell to the end of
the run: kernel shutdown, writing the notebook); ``other`` is the rest of the chapter's wall time
(imports, reading data, tables, widgets, anything no phase covers). The manifest keeps them as
``chapters.<id>.ledger.phases`` (they add up to ``wall_s``), with ``phases_inclusive`` and the
models each chapter loaded (``loads``).

``ssui book timings --profile smoke`` prints the table (markdown, one row per chapter, a total row,
seconds) from ``papermill_runs/<profile>/manifest.json``; it runs nothing. Chapter 00 shows the
same table for the last run (:func:`last_run_table`).
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Mapping

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.ledger import ALL_PHASES, PHASES
from ssui_lib.core.store import read_json


def _epoch(stamp: Any) -> float | None:
    """An ISO-8601 time stamp (papermill's, with its UTC offset) as seconds since the epoch."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        t = _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def kernel_times(nb: Mapping[str, Any], launched: float, finished: float) -> dict[str, float]:
    """``kernel_start`` and ``kernel_stop`` seconds of one executed notebook (a dict in nbformat's
    JSON layout): ``launched``/``finished`` are the epoch seconds when the runner called papermill
    and when it returned. A notebook without cell timings (it never started) gives its whole time
    to ``kernel_start``."""
    starts, ends = [], []
    for cell in nb.get("cells") or []:
        pm = ((cell.get("metadata") or {}).get("papermill")) or {}
        s, e = _epoch(pm.get("start_time")), _epoch(pm.get("end_time"))
        if s is not None:
            starts.append(s)
        if e is not None:
            ends.append(e)
    wall = max(0.0, finished - launched)
    if not starts:
        return {"kernel_start": round(wall, 3), "kernel_stop": 0.0}
    start = min(max(0.0, min(starts) - launched), wall)
    stop = min(max(0.0, finished - max(ends)), wall - start) if ends else 0.0
    return {"kernel_start": round(start, 3), "kernel_stop": round(stop, 3)}


def chapter_phases(timing: Mapping[str, Mapping[str, float]], kernel: Mapping[str, float],
                   wall: float) -> dict[str, float]:
    """Seconds per phase of :data:`ssui_lib.core.ledger.ALL_PHASES` for one chapter:
    the kernel's exclusive phases (``timing["phases"]``, as :func:`ledger.read_timing` returns
    them), the runner's ``kernel`` times and ``other`` = ``wall`` − their sum (never below 0)."""
    inner = timing.get("phases") or {}
    out = {p: 0.0 for p in ALL_PHASES}
    for p in PHASES:
        out[p] = round(float(inner.get(p, 0.0)), 2)
    for p, v in kernel.items():
        out[p] = round(float(v), 2)
    out["other"] = round(max(0.0, wall - sum(v for k, v in out.items() if k != "other")), 2)
    return out


def chapter_timing(ledger_file: str | Path, notebook: str | Path, launched: float, finished: float,
                   wall: float) -> dict[str, Any]:
    """What the runner puts into a chapter's manifest ``ledger`` beside its counts: ``phases``
    (:func:`chapter_phases`, adding up to ``wall``), ``phases_inclusive`` and ``loads``, from the
    kernel's ledger file and the executed notebook (either may be missing: a kernel that died)."""
    from ssui_lib.core import ledger

    timing = ledger.read_timing(ledger_file)
    try:
        nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        nb = {}
    kernel = kernel_times(nb if isinstance(nb, dict) else {}, launched, finished)
    return {"phases": chapter_phases(timing, kernel, wall),
            "phases_inclusive": {p: round(v, 2) for p, v in timing["inclusive"].items()},
            "loads": timing["loads"]}


def read_manifest(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise SSUIError(f"{p}: no run manifest (run the book first: ssui book run --profile <profile>)")
    data = read_json(p, "a JSON run manifest")
    if not isinstance(data, dict) or not isinstance(data.get("chapters"), dict):
        raise SSUIError(f"{p}: field 'chapters': expected an object of chapters")
    return data


def timings_rows(manifest: Mapping[str, Any], *, inclusive: bool = False) -> list[dict[str, Any]]:
    """One row per chapter that has phases (in chapter id order), then a ``total`` row:
    ``{"chapter", "title", <phase>: s, ..., "wall": s}``. ``inclusive``: each phase's inclusive
    seconds (inner phases included, so a row may add up to more than its wall time; no ``other``)."""
    rows = []
    for cid, ch in sorted(manifest["chapters"].items()):
        led = (ch or {}).get("ledger") or {}
        ph = led.get("phases_inclusive" if inclusive else "phases")
        if not isinstance(ph, dict):
            continue
        cols = PHASES if inclusive else ALL_PHASES
        rows.append({"chapter": cid, "title": ch.get("title", ""),
                     **{p: float(ph.get(p, 0.0)) for p in cols}, "wall": float(led.get("wall_s", 0.0))})
    if rows:
        total = {"chapter": "total", "title": ""}
        for k in rows[0]:
            if k not in total:
                total[k] = round(sum(r[k] for r in rows), 2)
        rows.append(total)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`timings_rows` as a markdown table (seconds, one decimal; share of the
    total wall time in the total row's phase cells)."""
    if not rows:
        return ""
    cols = [k for k in rows[0] if k not in ("chapter", "title")]
    head = "| chapter | " + " | ".join(c.replace("_", " ") for c in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    wall_total = rows[-1]["wall"] or 1.0
    for r in rows:
        cells = []
        for c in cols:
            v = f"{r[c]:.1f}"
            if r["chapter"] == "total" and c != "wall":
                v += f" ({100 * r[c] / wall_total:.0f}%)"
            cells.append(v)
        name = f"**{r['chapter']}**" if r["chapter"] == "total" else r["chapter"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loads_lines(manifest: Mapping[str, Any]) -> list[str]:
    """One line per chapter naming the models it loaded and how often (``2×`` marks a model
    loaded twice in one kernel)."""
    out = []
    for cid, ch in sorted(manifest["chapters"].items()):
        loads = ((ch or {}).get("ledger") or {}).get("loads")
        if isinstance(loads, dict) and loads:
            out.append(f"{cid}: " + ", ".join(f"{n}× {m}" for m, n in sorted(loads.items())))
    return out


def last_run_table(manifest_path: str | Path) -> str:
    """The markdown table of the last run for a notebook (chapter 00): the table, or one line saying
    why there is none (no run yet, or a run from before phase timing). Never raises."""
    try:
        rows = timings_rows(read_manifest(manifest_path))
    except SSUIError:
        return f"*No run of this profile yet (`{manifest_path}` is missing or unreadable).*"
    if not rows:
        return "*The last run predates phase timing: its manifest has no per-phase times.*"
    return markdown_table(rows)


def timings_report(manifest_path: str | Path, *, inclusive: bool = False) -> str:
    """The text ``ssui book timings`` prints: the table, then the models each chapter loaded."""
    manifest = read_manifest(manifest_path)
    rows = timings_rows(manifest, inclusive=inclusive)
    if not rows:
        raise SSUIError(f"{manifest_path}: no chapter has per-phase times (the manifest comes from a run "
                        f"before phase timing; rerun the book)")
    kind = "inclusive seconds (inner phases included)" if inclusive else "seconds (exclusive: they add up to wall)"
    parts = [f"Where the time goes: profile {manifest.get('profile', '?')}, run started "
             f"{manifest.get('started', '?')}, {kind}", "", markdown_table(rows)]
    loads = loads_lines(manifest)
    if loads:
        parts += ["", "Models loaded per chapter (each kernel is its own process):", *loads]
    twice = [f"{cid} {m}" for cid, ch in sorted(manifest["chapters"].items())
             for m, n in sorted((((ch or {}).get("ledger") or {}).get("loads") or {}).items()) if n > 1]
    if twice:
        parts.append(f"Loaded more than once in one kernel: {', '.join(twice)} (a cache missed, or a fresh copy "
                     f"was needed, e.g. for training)")
    return "\n".join(parts)
