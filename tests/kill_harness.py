"""Runs the ``ssui`` command line in this process for the kill tests (a helper, not a test file).

    python tests/kill_harness.py ARGS...        # exactly ``ssui ARGS...``

With ``SSUI_TEST_STOP=SUFFIX:N:MODE`` the N-th append (``ssui_lib.core.store.append_text``, the one
function every resumable JSONL output is written through) to a file whose name ends with SUFFIX
stops the process so that the test can SIGKILL it at a known point:

  * ``tear``  — half of that append's bytes are written and fsync'ed first: the kill lands
                mid-write and leaves a torn last line on disk, exactly as a kill during the write
                would;
  * ``after`` — the append is completed first: the kill lands between two writes.

The process then prints ``STOPPED`` on stderr and sleeps until it is killed. Nothing else of the
command is changed.
"""
from __future__ import annotations

import os
import sys
import time

from ssui_lib.core import store

STOP = os.environ.get("SSUI_TEST_STOP", "")


def _install(spec: str) -> None:
    suffix, n, mode = spec.rsplit(":", 2)
    if mode not in ("tear", "after"):
        raise SystemExit(f"SSUI_TEST_STOP: mode must be tear or after, got {mode!r}")
    n = int(n)
    real = store.append_text
    count = [0]

    def stop() -> None:
        print("STOPPED", file=sys.stderr, flush=True)
        time.sleep(600)

    def append_text(path, text, *, cut=None):
        if not str(path).endswith(suffix):
            return real(path, text, cut=cut)
        count[0] += 1
        if count[0] != n:
            return real(path, text, cut=cut)
        if mode == "after":
            real(path, text, cut=cut)
            stop()
        data = text.encode("utf-8")
        with open(path, "ab") as f:
            f.write(data[: max(1, len(data) // 2)])
            f.flush()
            os.fsync(f.fileno())
        stop()

    store.append_text = append_text


if STOP:
    _install(STOP)

if __name__ == "__main__":
    from ssui_lib.cli import main

    sys.exit(main(sys.argv[1:]))
