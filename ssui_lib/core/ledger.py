"""The cost ledger: what a run spent — tokens generated and prefilled by local models, API calls,
cache hits and API tokens, training steps and examples.

Backends and loops call :func:`count` (a dict update; cheap enough for every batch). When the
environment names a file in ``SSUI_LEDGER_FILE`` — the book runner does this for each chapter's
kernel — every update also rewrites that small JSON file atomically, so the runner can put the
chapter's totals into the manifest even if the kernel dies without a clean exit. The variable is
set by the runner, not by users: it names where to report, not a setting of the run.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

KEYS = ("tokens_generated", "tokens_prefilled", "sequences_generated", "api_calls", "api_cache_hits",
        "api_tokens_in", "api_tokens_out", "training_steps", "training_examples")
ENV = "SSUI_LEDGER_FILE"

_totals: dict[str, int] = {}


def count(key: str, n: int = 1) -> None:
    """Add ``n`` to ``key`` (one of :data:`KEYS`)."""
    if key not in KEYS:
        raise KeyError(f"ledger: unknown key {key!r}; known: {', '.join(KEYS)}")
    if not n:
        return
    _totals[key] = _totals.get(key, 0) + int(n)
    path = os.environ.get(ENV)
    if path:
        _write(Path(path))


def snapshot() -> dict[str, int]:
    """The totals so far in this process (every key, zeros included)."""
    return {k: _totals.get(k, 0) for k in KEYS}


def reset() -> None:
    _totals.clear()


def _write(path: Path) -> None:
    # not core.store's durable write: no fsync per update (this runs once per batch); a torn file
    # is impossible (rename), a lost last update at a power cut is acceptable for a cost estimate
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(snapshot(), f)
    os.replace(tmp, path)


def read(path: str | os.PathLike) -> dict[str, int]:
    """A ledger file written by a kernel (all zeros when it wrote nothing or the file is unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {k: 0 for k in KEYS}
    return {k: int(data.get(k, 0)) if isinstance(data, dict) else 0 for k in KEYS}
