"""The cost ledger: what a run spent — tokens generated and prefilled by local models, API calls,
cache hits and API tokens, training steps and examples — and where its time went.

Backends and loops call :func:`count` (a dict update; cheap enough for every batch). When the
environment names a file in ``SSUI_LEDGER_FILE`` — the book runner does this for each chapter's
kernel — every update also rewrites that small JSON file atomically, so the runner can put the
chapter's totals into the manifest even if the kernel dies without a clean exit. The variable is
set by the runner, not by users: it names where to report, not a setting of the run.

**Phases.** ``with ledger.phase("generation"):`` (or the decorator :func:`timed`) adds the wall
seconds of the block to a named phase (:data:`PHASES`). Time is **exclusive**: each second goes to
the *innermost* open phase only. A judge that generates with a model spends its decode time in
``generation`` and only its own work (parsing, its classifier, its training) in ``judging``; an
embedding call inside a judge counts as ``embedding``. So the phases of a chapter never add up to
more than its wall time, and the rest of the chapter (imports, data loading, tables, widgets) is
``other`` = wall − Σ phases, computed by the runner, which also measures ``kernel_start`` (from
launching the notebook to its first cell) and ``kernel_stop`` (from its last cell to the end).
The *inclusive* time of a phase (its outermost blocks, inner phases included: all the time spent
"in judging") is kept beside it (:func:`inclusive`). A phase entered again inside itself (a
``generate`` that calls ``generate_texts``) is one block.

``phase("model_loading", "embedded")`` also counts one **load** of the named model
(:func:`loads`); loads that a process-wide cache answers never enter the block, so a count above
one names a model loaded twice in one process.

Time is wall time of the thread that opened the outermost phase (the notebook's thread). Blocks
opened by other threads while a phase is open — a backend's worker pool serving one ``generate``
call — are part of that phase and are not counted again; their loads still count.
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

KEYS = ("tokens_generated", "tokens_prefilled", "sequences_generated", "api_calls", "api_cache_hits",
        "api_tokens_in", "api_tokens_out", "training_steps", "training_examples")
# phases timed inside a process (phase/timed); the runner adds kernel_start, kernel_stop and other
PHASES = ("model_loading", "generation", "scoring", "training", "judging", "embedding", "plotting")
RUNNER_PHASES = ("kernel_start", "kernel_stop")
ALL_PHASES = (*RUNNER_PHASES[:1], *PHASES, *RUNNER_PHASES[1:], "other")  # the order of a timings table
ENV = "SSUI_LEDGER_FILE"

_totals: dict[str, int] = {}
_exclusive: dict[str, float] = {}
_inclusive: dict[str, float] = {}
_loads: dict[str, int] = {}
_lock = threading.RLock()
# the open phases of the owning thread: [name, start of its block, start of its current exclusive slice]
_stack: list[list[Any]] = []
_owner: int | None = None


def count(key: str, n: int = 1) -> None:
    """Add ``n`` to ``key`` (one of :data:`KEYS`)."""
    if key not in KEYS:
        raise KeyError(f"ledger: unknown key {key!r}; known: {', '.join(KEYS)}")
    if not n:
        return
    with _lock:
        _totals[key] = _totals.get(key, 0) + int(n)
    _report()


def snapshot() -> dict[str, int]:
    """The totals so far in this process (every key, zeros included)."""
    return {k: _totals.get(k, 0) for k in KEYS}


def _check_phase(name: str) -> None:
    if name not in PHASES:
        raise KeyError(f"ledger: unknown phase {name!r}; known: {', '.join(PHASES)}")


@contextmanager
def phase(name: str, load: str | None = None) -> Iterator[None]:
    """Add the block's wall seconds to phase ``name`` (one of :data:`PHASES`), exclusive of inner
    phases (see the module docstring). ``load``: the block loads this model; counted in :func:`loads`."""
    _check_phase(name)
    me = threading.get_ident()
    with _lock:
        global _owner
        if load is not None:
            _loads[load] = _loads.get(load, 0) + 1
        mine = _owner is None or _owner == me
        if mine:
            _owner = me
            now = time.perf_counter()
            if _stack:  # close the enclosing phase's exclusive slice
                outer = _stack[-1]
                _exclusive[outer[0]] = _exclusive.get(outer[0], 0.0) + now - outer[2]
            _stack.append([name, now, now])
    if not mine:  # another thread's phase is open: this block is part of it
        yield
        return
    try:
        yield
    finally:
        with _lock:
            now = time.perf_counter()
            name_, started, slice_start = _stack.pop()
            _exclusive[name_] = _exclusive.get(name_, 0.0) + now - slice_start
            if all(f[0] != name_ for f in _stack):  # its outermost block: inclusive time
                _inclusive[name_] = _inclusive.get(name_, 0.0) + now - started
            if _stack:
                _stack[-1][2] = now  # the enclosing phase resumes
            else:
                _owner = None
        if not _stack:
            _report()


def timed(name: str, load: str | None = None) -> Callable[[Callable], Callable]:
    """Decorator form of :func:`phase`: every call of the function is a block of phase ``name``."""
    _check_phase(name)

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with phase(name, load):
                return fn(*args, **kwargs)
        return inner
    return wrap


def phases() -> dict[str, float]:
    """Exclusive seconds per phase so far in this process (every phase of :data:`PHASES`); a phase
    still open counts up to now."""
    with _lock:
        out = {p: _exclusive.get(p, 0.0) for p in PHASES}
        if _stack:
            top = _stack[-1]
            out[top[0]] += time.perf_counter() - top[2]
    return out


def inclusive() -> dict[str, float]:
    """Inclusive seconds per phase (finished outermost blocks, inner phases included)."""
    with _lock:
        return {p: _inclusive.get(p, 0.0) for p in PHASES}


def loads() -> dict[str, int]:
    """How many times each model was loaded in this process (``phase(..., load=NAME)``)."""
    with _lock:
        return dict(_loads)


def reset() -> None:
    """Forget every count, phase time and load (the open phases of the stack keep running)."""
    with _lock:
        _totals.clear()
        _exclusive.clear()
        _inclusive.clear()
        _loads.clear()
        now = time.perf_counter()
        for f in _stack:
            f[1] = f[2] = now


def _report() -> None:
    path = os.environ.get(ENV)
    if path:
        _write(Path(path))


def _write(path: Path) -> None:
    # not core.store's durable write: no fsync per update (this runs once per batch); a torn file
    # is impossible (rename), a lost last update at a power cut is acceptable for a cost estimate
    with _lock:
        data = {**snapshot(), "phases": {k: round(v, 3) for k, v in phases().items()},
                "inclusive": {k: round(v, 3) for k, v in inclusive().items()}, "loads": loads()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _load_json(path: str | os.PathLike) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read(path: str | os.PathLike) -> dict[str, int]:
    """A ledger file written by a kernel (all zeros when it wrote nothing or the file is unreadable)."""
    data = _load_json(path)
    return {k: int(data.get(k, 0)) for k in KEYS}


def read_timing(path: str | os.PathLike) -> dict[str, dict]:
    """The timing part of a ledger file: ``{"phases": {phase: s}, "inclusive": {phase: s},
    "loads": {model: n}}`` (every phase of :data:`PHASES`; zeros and no loads when it wrote nothing)."""
    data = _load_json(path)

    def seconds(d: Any) -> dict[str, float]:
        d = d if isinstance(d, dict) else {}
        return {p: float(d.get(p, 0.0)) for p in PHASES}

    raw = data.get("loads")
    loads_ = {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    return {"phases": seconds(data.get("phases")), "inclusive": seconds(data.get("inclusive")), "loads": loads_}
