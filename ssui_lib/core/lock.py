"""One writer per output: a run takes a lock on its output (a file or a folder) before writing.

The lock is a file beside the output, ``<output>.lock``, holding the holder's pid, host and start
time as JSON. Holding it means holding an exclusive ``flock`` on it, which the kernel drops the
moment the holder exits, however it exits (SIGKILL included). So:

  * a second run on the same output refuses at once, with an :class:`SSUIError` naming the
    holder's pid, host and start time;
  * a lock file left behind by a killed run is not held by anyone: the next run takes it over
    (and says so in a warning naming the dead pid).

The lock is released (and its file removed) when the ``with`` block ends::

    with output_lock(out_path):
        ...write out_path...
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ssui_lib.core.errors import SSUIError

log = logging.getLogger(__name__)


def lock_path(output: str | os.PathLike) -> Path:
    """The lock file of an output: ``<output>.lock`` beside it (for a folder too)."""
    p = Path(output)
    return p.with_name(p.name + ".lock")


def read_holder(path: str | os.PathLike) -> dict[str, Any]:
    """The holder recorded in a lock file ({} when it is missing or unreadable)."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _describe(info: dict[str, Any]) -> str:
    if not info.get("pid"):
        return "another process (holder unknown)"
    return f"pid {info['pid']} on {info.get('host', '?')} since {info.get('started', '?')}"


class OutputLock:
    """An exclusive lock on one output; use :func:`output_lock` (a context manager)."""

    def __init__(self, output: str | os.PathLike):
        self.output = Path(output)
        self.path = lock_path(output)
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None  # the dead holder whose lock was taken over

    def acquire(self) -> "OutputLock":
        if self._fd is not None:
            raise SSUIError(f"{self.output}: lock already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # retry only when the file was replaced under us (a release race)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SSUIError(f"{self.output}: another run is writing this output ({_describe(read_holder(self.path))}); "
                                f"wait for it to finish or stop it (lock file {self.path})") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file between our open and flock
                os.close(fd)
                continue
            old = read_holder(self.path)
            if old.get("pid"):
                self.took_over = old
                log.warning("%s: taking over the stale lock of %s (that run is no longer running)",
                            self.output, _describe(old))
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise SSUIError(f"{self.output}: could not take the lock {self.path} (it keeps being replaced)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: no one can take a lock on a removed name
        finally:
            os.close(self._fd)  # drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def output_lock(output: str | os.PathLike) -> Iterator[OutputLock]:
    """Hold the lock of ``output`` for the duration of the block (see the module docstring)."""
    lk = OutputLock(output).acquire()
    try:
        yield lk
    finally:
        lk.release()
