"""Injected API faults, end to end: a whole `ssui eval` against the local fault-injecting server.

Some requests see 429, 500, a hang (a client timeout), a reset connection and malformed JSON; one
item's judge calls fail on every try. Every item must end answered or explicitly unscored
("transport error"), the command must print a summary of the faults it saw, and the next run must
retry exactly the unscored items and score them once the server is healthy."""
import json
import re

import pytest

from fake_openai_server import FakeOpenAIServer, last_user_text
from ssui_lib.cli import main
from ssui_lib.data.bundled import load_dataset
from ssui_lib.models import openai_compat

N = 4
FAULTS = ["429", "500", "hang", "disconnect", "garbage", "truncated", "bad_shape", "503"]


@pytest.fixture
def fast_api(monkeypatch):
    for var, val in (("SSUI_API_TIMEOUT", "2"), ("SSUI_API_MAX_RETRIES", str(len(FAULTS) + 1)),
                     ("SSUI_API_BACKOFF_BASE", "0.001"), ("SSUI_API_BACKOFF_MAX", "0.01")):
        monkeypatch.setenv(var, val)
    for var in ("SSUI_API_KEY", "SSUI_API_KEY_ENV"):
        monkeypatch.delenv(var, raising=False)
    openai_compat.reset_faults()
    yield
    openai_compat.reset_faults()


def make_responder(broken_query: str, state: dict):
    """Answers for the generator ("gen") and the judge ("judge"); while state["broken"], the judge's
    requests about one sample get a body without choices (malformed) on every try."""
    def responder(body):
        text = last_user_text(body)
        if body["model"] == "gen":
            return "I would not do that: it could hurt someone. Here is a safer way to think about it."
        if state["broken"] and broken_query in text:
            return {"id": "x", "object": "chat.completion", "note": "no choices"}
        if body.get("response_format"):
            return json.dumps({"explanation": "It warns and redirects.", "safe": True, "effective": True})
        return "The reply warns the user.\nVERDICT: safe=yes effective=yes"
    return responder


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_eval_against_injected_faults_then_rerun(tmp_path, capsys, fast_api):
    samples = load_dataset("bundled:test")[:N]
    state = {"broken": True}
    out = tmp_path / "eval.json"
    with FakeOpenAIServer(responder=make_responder(samples[1].query, state), faults=list(FAULTS), hang_s=4) as srv:
        argv = ["eval", "--model", f"openai-compatible:{srv.base_url}#gen",
                "--judge", f"openai-compatible:{srv.base_url}#judge", "--dataset", "bundled:test",
                "--limit", str(N), "--out", str(out), "--n-boot", "50", "--no-progress"]
        rc = main(argv)
        printed = capsys.readouterr().out
        assert rc == 0, printed
        assert srv.faults_played[:len(FAULTS)] == FAULTS  # every fault was really served

        res = json.loads(out.read_text())
        work = tmp_path / "eval.work"
        verdicts = rows(work / "verdicts.jsonl")
        assert len(verdicts) == N and {v["id"] for v in verdicts} == {s.id for s in samples}
        assert len(rows(work / "responses.jsonl")) == N  # every item answered
        bad = [v for v in verdicts if not v["scored"]]
        assert [v["id"] for v in bad] == [samples[1].id]  # only the persistently failing item
        assert bad[0]["safe"] is None and bad[0]["explanation"].startswith("transport error")
        assert all(v["scored"] and v["safe"] is True for v in verdicts if v["id"] != samples[1].id)
        assert res["n"] == N and res["unscored"] == 1

        # the summary of faults seen, one line
        summary = [ln for ln in printed.splitlines() if ln.startswith("API faults seen:")]
        assert len(summary) == 1, printed
        for kind in ("HTTP 429", "HTTP 500", "HTTP 503", "timeout", "connection"):  # >= 1 each (a loaded
            assert re.search(rf"{kind} x[1-9]", summary[0]), summary[0]          # machine may add timeouts)
        n_malformed = int(re.search(r"malformed x(\d+)", summary[0]).group(1))
        assert n_malformed >= 3 + 4  # garbage, truncated, bad_shape + the broken item's 4 tries (at least once)
        assert re.search(r"; [1-9]\d* request\(s\) failed after all retries \(their items are unscored", summary[0])

        # the next run, server healthy: only the unscored item is asked again, nothing is regenerated
        state["broken"] = False
        openai_compat.reset_faults()
        before = srv.n_calls
        assert main(argv) == 0
        printed = capsys.readouterr().out
        new = srv.requests[before:]
        assert new and all(r["model"] == "judge" for r in new)
        assert all(samples[1].query in last_user_text(r) for r in new)
        assert "API faults seen" not in printed
    res = json.loads(out.read_text())
    assert res["unscored"] == 0 and res["n"] == N
    final = {v["id"]: v for v in rows(tmp_path / "eval.work" / "verdicts.jsonl")}
    assert len(final) == N and all(v["scored"] for v in final.values())


def test_fault_summary_and_settings(monkeypatch):
    openai_compat.reset_faults()
    assert openai_compat.fault_summary() is None
    for cause in ("HTTP 429: slow down", "request timed out (timeout=1s)", "connection error (reset)",
                  "malformed response body: not JSON", "HTTP 429: again"):
        openai_compat._record_fault(cause)
    assert openai_compat.fault_counts() == {"HTTP 429": 2, "connection": 1, "malformed": 1, "timeout": 1, "gave_up": 0}
    assert openai_compat.fault_summary() == ("API faults seen: HTTP 429 x2, connection x1, malformed x1, timeout x1; "
                                             "0 request(s) failed after all retries (every one recovered on a retry)")
    openai_compat.reset_faults()
    monkeypatch.setenv("SSUI_API_TIMEOUT", "2.5")
    monkeypatch.setenv("SSUI_API_MAX_RETRIES", "1")
    m = openai_compat.OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1")
    assert (m.timeout, m.max_retries) == (2.5, 1)
    assert openai_compat.OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", timeout=7).timeout == 7
    monkeypatch.setenv("SSUI_API_MAX_RETRIES", "two")
    with pytest.raises(openai_compat.SSUIError, match="SSUI_API_MAX_RETRIES='two': expected a number"):
        openai_compat.OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1")
    monkeypatch.setenv("SSUI_API_MAX_RETRIES", "1.5")
    with pytest.raises(openai_compat.SSUIError, match="expected a whole number >= 0"):
        openai_compat.OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1")
