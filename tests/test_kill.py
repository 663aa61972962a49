"""Kill tests with real processes: `ssui generate`, `judge`, `explore`, `train` and `book run` are
started in a subprocess, SIGKILLed at several points — while requests are in flight, between two
writes, and in the middle of a write (tests/kill_harness.py tears one append in half first) — then
rerun, and compared with an uninterrupted run: no record lost or duplicated, the trained adapter
identical, the book manifest never saying ok for a killed chapter.

Tiny settings throughout (3-6 samples, the local fake API server, a tiny random Llama), so the
file stays within a few minutes of CPU: most of it is the subprocesses' start-up."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_openai_server import FakeOpenAIServer, last_user_text
from ssui_lib.cli import main

HARNESS = Path(__file__).with_name("kill_harness.py")
FAST = {"SSUI_API_TIMEOUT": "5", "SSUI_API_MAX_RETRIES": "2", "SSUI_API_BACKOFF_BASE": "0.01",
        "SSUI_API_BACKOFF_MAX": "0.05"}

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def fast_api(monkeypatch):
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    for k in ("SSUI_API_KEY", "SSUI_API_KEY_ENV", "SSUI_TEST_STOP"):
        monkeypatch.delenv(k, raising=False)


# ----------------------------------------------------------------------------- process helpers

class Run:
    """A command line in a subprocess (through the harness), its output in a log file."""

    def __init__(self, args: list[str], log: Path, stop: str | None = None):
        env = {k: v for k, v in os.environ.items() if k != "SSUI_TEST_STOP"}
        if stop:
            env["SSUI_TEST_STOP"] = stop
        self.log = log
        self._f = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, str(HARNESS), *args], stdout=self._f,
                                     stderr=subprocess.STDOUT, env=env)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, cond, what: str, timeout: float = 120) -> None:
        t = time.time()
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited ({self.proc.returncode}) before {what}:\n{self.text()[-3000:]}")
            if time.time() - t > timeout:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def stopped(self) -> None:
        self.wait_for(lambda: "STOPPED" in self.text(), "the stop point")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._f.close()
        assert self.proc.returncode == -signal.SIGKILL


def jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def torn(path: Path) -> bool:
    """True if the file ends inside a line (what a kill mid-write leaves)."""
    data = path.read_bytes()
    return bool(data) and not data.endswith(b"\n")


def by_id(rows: list[dict]) -> dict[str, dict]:
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicated records: {sorted(i for i in ids if ids.count(i) > 1)}"
    return {r["id"]: r for r in rows}


def slow(fn, delay: float = 0.15):
    def responder(body):
        time.sleep(delay)  # requests stay in flight long enough to kill the client among them
        return fn(body)
    return responder


def answer(body) -> str:
    """A deterministic reply per request (so a rerun answers exactly as the reference run)."""
    if body["model"] == "judge":
        if body.get("response_format"):
            return json.dumps({"explanation": "It declines and warns.", "safe": True, "effective": False})
        return "It declines and warns.\nVERDICT: safe=yes effective=no"
    h = hashlib.sha256(last_user_text(body).encode()).hexdigest()[:8]
    return f"I would not do that ({h}); it could hurt someone. A safer option is to ask an adult."


def continuations(body) -> list[str]:
    n = int(body.get("n") or 1)
    h = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()[:6]
    return [f" Considered {h}.\nFinal verdict: {'unsafe' if i % 2 == 0 else 'safe'}\nAnswer: ok {i}" for i in range(n)]


# ----------------------------------------------------------------------------- generate and judge

N = 6


def test_generate_and_judge_killed_in_flight_and_mid_write(tmp_path):
    with FakeOpenAIServer(responder=slow(answer, 0.6)) as srv:
        gen = ["generate", "--model", f"openai-compatible:{srv.base_url}#gen", "--dataset", "bundled:test",
               "--limit", str(N), "--no-progress", "--out"]
        assert main([*gen, str(tmp_path / "ref.jsonl")]) == 0
        ref = by_id(jsonl(tmp_path / "ref.jsonl"))
        assert len(ref) == N

        out = tmp_path / "responses.jsonl"
        # 1. killed while its requests are in flight: nothing written, nothing half-written
        before = srv.n_calls
        r = Run([*gen, str(out)], tmp_path / "g1.log")
        r.wait_for(lambda: srv.n_calls >= before + 2, "requests in flight")
        r.kill()
        assert not out.exists() or jsonl(out) == []
        # 2. killed in the middle of writing the answers: a torn last line on disk
        r = Run([*gen, str(out)], tmp_path / "g2.log", stop="responses.jsonl:1:tear")
        r.stopped()
        r.kill()
        assert torn(out)
        # 3. the rerun (which also takes over the dead runs' lock) completes the file
        assert main([*gen, str(out)]) == 0
        got = by_id(jsonl(out))
        assert got == ref

        jud = ["judge", "--judge", f"openai-compatible:{srv.base_url}#judge", "--dataset", "bundled:test",
               "--limit", str(N), "--responses", str(out), "--cache-dir", str(tmp_path / "jc-ref"), "--no-progress",
               "--out"]
        assert main([*jud, str(tmp_path / "ref_verdicts.jsonl")]) == 0
        ref_v = by_id(jsonl(tmp_path / "ref_verdicts.jsonl"))
        assert len(ref_v) == N and all(v["scored"] for v in ref_v.values())

        jud[jud.index(str(tmp_path / "jc-ref"))] = str(tmp_path / "jc")
        vout = tmp_path / "verdicts.jsonl"
        before = srv.n_calls
        r = Run([*jud, str(vout)], tmp_path / "j1.log")
        r.wait_for(lambda: srv.n_calls >= before + 1, "judge requests in flight")
        r.kill()
        r = Run([*jud, str(vout)], tmp_path / "j2.log", stop="verdicts.jsonl:1:tear")
        r.stopped()
        r.kill()
        assert torn(vout)
        assert main([*jud, str(vout)]) == 0
    assert by_id(jsonl(vout)) == ref_v


# ----------------------------------------------------------------------------- explore and train

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny random Llama + the embedded model's tokenizer, saved like a real checkpoint."""
    from tiny_vlms import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_explore_and_train_killed_between_and_mid_write(tmp_path, tiny_llama):
    import torch

    with FakeOpenAIServer(responder=slow(continuations, 0.05)) as srv:
        exp = ["explore", "--model", f"openai-compatible:{srv.base_url}#m", "--dataset", "bundled:train",
               "--mode", "fixed_k", "--k", "2", "--steps", "5,6", "--batch-samples", "1", "--limit", "3",
               "--no-progress", "--out"]
        assert main([*exp, str(tmp_path / "ref_explore")]) == 0
        ref = by_id(jsonl(tmp_path / "ref_explore" / "trees.jsonl"))
        assert len(ref) == 3 and all(t["pairs"] for t in ref.values())

        out = tmp_path / "explore"
        r = Run([*exp, str(out)], tmp_path / "e1.log", stop="trees.jsonl:1:after")  # between two trees
        r.stopped()
        r.kill()
        assert len(jsonl(out / "trees.jsonl")) == 1
        r = Run([*exp, str(out)], tmp_path / "e2.log", stop="trees.jsonl:1:tear")  # mid-write of the 2nd tree
        r.stopped()
        r.kill()
        assert torn(out / "trees.jsonl")
        assert main([*exp, str(out)]) == 0
    assert by_id(jsonl(out / "trees.jsonl")) == ref

    tr = ["train", "--method", "srpo", "--data", str(out), "--model", f"hf:{tiny_llama}", "--dataset", "bundled:train",
          "--batch-size", "1", "--epochs", "2", "--save-every", "1", "--lr", "1e-2",
          "--no-progress", "--out"]
    assert main([*tr, str(tmp_path / "ref_train")]) == 0
    ref_log = jsonl(tmp_path / "ref_train" / "log.jsonl")
    steps = [row["step"] for row in ref_log]
    assert steps == list(range(1, 7))

    tout = tmp_path / "train"
    r = Run([*tr, str(tout)], tmp_path / "t1.log", stop="log.jsonl:2:after")
    r.stopped()
    r.kill()
    r = Run([*tr, str(tout)], tmp_path / "t2.log", stop="log.jsonl:2:tear")  # resumed at 2, torn at step 4
    r.stopped()
    r.kill()
    assert torn(tout / "log.jsonl")
    assert main([*tr, str(tout)]) == 0
    log = jsonl(tout / "log.jsonl")
    assert [row["step"] for row in log] == steps  # no step lost or logged twice
    assert [row["loss"] for row in log] == [row["loss"] for row in ref_log]
    a, b = adapter_tensors(tmp_path / "ref_train" / "adapter"), adapter_tensors(tout / "adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- book run

NB_FAST = '''# %% tags=["parameters"]
profile = "smoke"
# %%
from pathlib import Path
import time
d = Path("results") / profile / "00"
d.mkdir(parents=True, exist_ok=True)
time.sleep(3)
(d / "out.txt").write_text("from 00")
'''
NB_SLOW = '''# %% tags=["parameters"]
profile = "smoke"
# %%
from pathlib import Path
import time
time.sleep(3)
print(Path("results", profile, "00", "out.txt").read_text())
'''
BOOK = '''[book]
title = "Kill"

[[chapters]]
id = "00"
source = "nb/a.py"
title = "A"
reproduces = "-"

[[chapters]]
id = "01"
source = "nb/b.py"
title = "B"
reproduces = "-"
reads = ["00"]

[profiles.smoke]
description = "d"
'''


def _manifest(book: Path) -> dict:
    try:
        return json.loads((book / "papermill_runs/smoke/manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _status(book: Path, cid: str) -> str | None:
    return _manifest(book).get("chapters", {}).get(cid, {}).get("status")


def test_book_run_killed_in_each_chapter_never_says_ok(tmp_path):
    from ssui_lib.book.runner import run_book

    book = tmp_path / "book"
    (book / "nb").mkdir(parents=True)
    (book / "nb" / "a.py").write_text(NB_FAST)
    (book / "nb" / "b.py").write_text(NB_SLOW)
    (book / "book.toml").write_text(BOOK)
    args = ["book", "run", "--profile", "smoke", "--config", str(book / "book.toml"), "--resume", "--no-progress"]

    r = Run(args, tmp_path / "b1.log")  # killed while chapter 00 runs
    r.wait_for(lambda: _status(book, "00") == "running", "chapter 00 running")
    time.sleep(1.0)
    r.kill()
    m = _manifest(book)
    assert m["status"] == "running" and m["chapters"]["00"]["status"] == "running"  # never ok

    r = Run(args, tmp_path / "b2.log")  # killed while chapter 01 runs (00 finished)
    r.wait_for(lambda: _status(book, "01") == "running", "chapter 01 running")
    time.sleep(1.0)
    r.kill()
    m = _manifest(book)
    assert m["status"] == "running" and m["chapters"]["00"]["status"] == "ok"
    assert m["chapters"]["01"]["status"] == "running"

    m = run_book("smoke", config=book / "book.toml", resume=True, progress=False)  # takes over the stale lock
    assert m["status"] == "ok" and m["chapters"]["00"].get("resumed") and not m["chapters"]["01"].get("resumed")
    assert m["chapters"]["01"]["status"] == "ok"
    assert m["chapters"]["01"]["ran_because"] == "its last run ended 'running'"
    nb = json.loads((book / "papermill_runs/smoke/01.ipynb").read_text())
    assert "from 00" in json.dumps(nb)
    assert not (book / "papermill_runs/smoke.lock").exists()
