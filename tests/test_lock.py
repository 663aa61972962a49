"""core/lock.py: one writer per output, with real processes holding and dying."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.lock import OutputLock, lock_path, output_lock, read_holder

HOLD = ("import sys, time\nfrom ssui_lib.core.lock import output_lock\n"
        "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")


def _holder(out):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_lock_path_beside_output(tmp_path):
    assert lock_path(tmp_path / "a.jsonl") == tmp_path / "a.jsonl.lock"
    assert lock_path(tmp_path / "run") == tmp_path / "run.lock"


def test_lock_records_holder_and_is_removed_on_release(tmp_path):
    out = tmp_path / "out.jsonl"
    with output_lock(out) as lk:
        info = read_holder(lock_path(out))
        assert info["pid"] == os.getpid() and info["host"] and info["started"]
        assert lk.held and lk.took_over is None
    assert not lock_path(out).exists()
    with output_lock(out):  # free again
        pass


def test_second_run_refuses_naming_the_holder_pid(tmp_path):
    out = tmp_path / "out.jsonl"
    p = _holder(out)
    try:
        t = time.time()
        with pytest.raises(SSUIError, match=rf"another run is writing this output \(pid {p.pid} on "):
            OutputLock(out).acquire()
        assert time.time() - t < 2  # refuses at once, does not wait
    finally:
        p.kill()
        p.wait()


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run_dir"
    p = _holder(out)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert read_holder(lock_path(out))["pid"] == p.pid  # the dead run's lock file is still there
    with caplog.at_level("WARNING"), output_lock(out) as lk:
        assert lk.took_over["pid"] == p.pid
        assert read_holder(lock_path(out))["pid"] == os.getpid()
    assert f"pid {p.pid}" in caplog.text and "stale lock" in caplog.text


def test_garbage_lock_file_is_taken_over(tmp_path):
    out = tmp_path / "o.json"
    lock_path(out).write_bytes(b"\xff not json")
    assert read_holder(lock_path(out)) == {}
    with output_lock(out) as lk:
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
        assert lk.took_over is None
        with pytest.raises(SSUIError, match="already held"):
            lk.acquire()
