"""The openai-compatible backend as vLLM's client: token log-probabilities through /tokenize and
/v1/completions (echo + logprobs), sampled-token log-probabilities, several servers, and the
book's two users of them (forced verdicts, exploration) — all against local fake servers."""
from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack

import pytest

from fake_openai_server import CHAT_TOKEN_LOGPROB, FakeOpenAIServer, default_scorer, render_chat
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import JsonlCache
from ssui_lib.data.bundled import load_dataset
from ssui_lib.models import parse_model_name, resolve_model
from ssui_lib.models.base import SamplingParams
from ssui_lib.models.openai_compat import OpenAIChatModel, split_base_urls
from ssui_lib.models.server_scoring import read_echo_logprobs

FAST = dict(timeout=1.0, max_retries=3, backoff_base=0.001, backoff_max=0.01)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def servers(k: int, **kw) -> tuple[ExitStack, list[FakeOpenAIServer]]:
    stack = ExitStack()
    return stack, [stack.enter_context(FakeOpenAIServer(**kw)) for _ in range(k)]


def expected_logprobs(prompt_text: str, cont: str) -> list[float]:
    ids = [ord(c) for c in prompt_text + cont]
    return default_scorer(ids)[len(prompt_text):]


# ----------------------------------------------------------------------------- names

def test_model_name_with_several_servers_and_logprobs():
    spec = parse_model_name("openai-compatible:http://127.0.0.1:8001/v1,http://127.0.0.1:8002/v1/#qwen+logprobs")
    assert spec.model == "qwen" and spec.logprobs
    assert spec.base_url == "http://127.0.0.1:8001/v1,http://127.0.0.1:8002/v1"
    assert spec.to_dict()["logprobs"] is True
    assert not parse_model_name("openai-compatible:http://127.0.0.1:8001/v1#qwen").logprobs
    m = resolve_model(spec)
    assert m.supports_logprobs and m.base_urls == ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    assert m.name.endswith("#qwen+logprobs") and m.describe()["servers"] == 2


@pytest.mark.parametrize("name, msg", [
    ("openai-compatible:http://127.0.0.1:1/v1,http://127.0.0.1:1/v1#m", "listed twice"),
    ("openai-compatible:http://127.0.0.1:1/v1,,http://127.0.0.1:2/v1#m", "empty server URL"),
    ("openai-compatible:http://127.0.0.1:1/v1,https://api.openai.com/v1#m", "api.openai.com cannot be one of"),
    ("openai-compatible:http://127.0.0.1:1/v1,http://10.0.0.5/v1#m", "plain http:// to 10.0.0.5"),
    ("openai-compatible:http://127.0.0.1:1/v1#+logprobs", "missing MODEL"),
])
def test_bad_server_lists_are_refused(name, msg):
    with pytest.raises(SSUIError, match=msg):
        parse_model_name(name)


def test_split_base_urls():
    assert split_base_urls(None, "m") == ["https://api.openai.com/v1"]
    assert split_base_urls(["http://127.0.0.1:1/v1/", "http://localhost:2/v1"], "m") == [
        "http://127.0.0.1:1/v1", "http://localhost:2/v1"]


def test_logprobs_off_by_default_says_how_to_turn_them_on():
    m = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1")
    assert not m.supports_logprobs
    with pytest.raises(SSUIError, match=r"\+logprobs"):
        m.logprobs([user("q")], ["a"])


# ----------------------------------------------------------------------------- scoring

def test_logprobs_score_the_continuation_after_prompt_and_prefix(tmp_path):
    with FakeOpenAIServer() as srv:
        m = OpenAIChatModel("fake", base_url=srv.base_url, logprobs=True, cache=JsonlCache(tmp_path / "c.jsonl"), **FAST)
        lps = m.logprobs([user("is it safe?"), user("hello")], [" unsafe", " ok"], prefixes=["Step 1: look.", ""])
        ctx0 = render_chat(user("is it safe?") + [{"role": "assistant", "content": "Step 1: look."}],
                           add_generation_prompt=False, continue_final_message=True)
        ctx1 = render_chat(user("hello"))
        assert lps == [expected_logprobs(ctx0, " unsafe"), expected_logprobs(ctx1, " ok")]
        tok = [b for b, p in zip(srv.requests, srv.paths) if p == "/tokenize" and "messages" in b]
        assert {b.get("continue_final_message", False) for b in tok} == {True, False}
        echo = [b for b, p in zip(srv.requests, srv.paths) if p == "/v1/completions"]
        assert len(echo) == 2 and all(b["echo"] and b["logprobs"] == 0 and isinstance(b["prompt"], list) for b in echo)
        before = srv.n_calls
        assert m.logprobs([user("is it safe?")], [" unsafe"], prefixes=["Step 1: look."]) == lps[:1]
        assert srv.n_calls == before  # from the cache


@pytest.mark.parametrize("fault", ["500", "bad_shape", "garbage", "hang"])
def test_scoring_requests_are_retried(fault):
    with FakeOpenAIServer(faults=[fault]) as srv:
        m = OpenAIChatModel("fake", base_url=srv.base_url, logprobs=True, **FAST)
        assert m.logprobs([user("q")], ["ab"]) == [expected_logprobs(render_chat(user("q")), "ab")]
        assert srv.faults_played[0] == fault


def test_scoring_failure_is_a_transport_error_naming_the_prompt():
    with FakeOpenAIServer(after_faults="503") as srv:
        m = OpenAIChatModel("fake", base_url=srv.base_url, logprobs=True, **{**FAST, "max_retries": 1})
        with pytest.raises(SSUIError, match=r"prompt 0: failed after 2 tries: HTTP 503"):
            m.logprobs([user("q")], ["ab"])


def test_read_echo_logprobs_rejects_short_answers():
    class R:
        class C:
            class L:
                token_logprobs = [None, -0.5]
            logprobs = L
        choices = [C]

    assert read_echo_logprobs(R, 2, 1) == [-0.5]
    from ssui_lib.models.openai_compat import MalformedResponse

    with pytest.raises(MalformedResponse, match="2 token log-probabilities for a prompt of 5"):
        read_echo_logprobs(R, 5, 2)


def test_sampled_token_logprobs_in_generations():
    with FakeOpenAIServer(responder=lambda body: "abcd") as srv:
        m = OpenAIChatModel("fake", base_url=srv.base_url, logprobs=True, **FAST)
        g = m.generate([user("q")], SamplingParams(), prefixes=["Step 1:"])[0][0]
        assert g.text == "abcd" and g.n_tokens == 4 and g.logprob == pytest.approx(4 * CHAT_TOKEN_LOGPROB)
        body = srv.requests[0]
        assert body["logprobs"] is True and body["continue_final_message"] is True
        assert body["messages"][-1] == {"role": "assistant", "content": "Step 1:"}


# ----------------------------------------------------------------------------- several servers

def test_requests_spread_across_three_servers(tmp_path):
    stack, srvs = servers(3)
    with stack:
        m = OpenAIChatModel("fake", base_url=[s.base_url for s in srvs], concurrency=3, **FAST)
        out = m.generate([user(f"q{i}") for i in range(9)])
        assert [o[0].text for o in out] == [f"echo: q{i}" for i in range(9)]
        assert [s.n_calls for s in srvs] == [3, 3, 3]
        assert sorted(json.dumps(r["messages"]) for s in srvs for r in s.requests) == sorted(
            json.dumps(user(f"q{i}")) for i in range(9))  # each prompt sent once


def test_a_failing_server_costs_a_retry_not_the_run(tmp_path):
    stack, srvs = servers(2)
    with stack:
        bad = stack.enter_context(FakeOpenAIServer(after_faults="500"))
        urls = [srvs[0].base_url, bad.base_url, srvs[1].base_url]
        cache = JsonlCache(tmp_path / "c.jsonl")
        m = OpenAIChatModel("fake", base_url=urls, cache=cache, logprobs=True, **FAST)
        out = m.generate([user(f"q{i}") for i in range(6)])
        assert [o[0].text for o in out] == [f"echo: q{i}" for i in range(6)]
        assert bad.n_calls == 2  # prompts 1 and 4 went there first, then on to the next server
        lps = m.logprobs([user("a"), user("b"), user("c")], ["x", "y", "z"])
        assert lps == [expected_logprobs(render_chat(user(t)), c) for t, c in zip("abc", "xyz")]
        n = [s.n_calls for s in (*srvs, bad)]
        m2 = OpenAIChatModel("fake", base_url=urls, cache=JsonlCache(tmp_path / "c.jsonl"), logprobs=True, **FAST)
        assert m2.generate([user(f"q{i}") for i in range(6)])[0][0].text == "echo: q0"
        assert [s.n_calls for s in (*srvs, bad)] == n  # a rerun is answered from the cache


def test_every_server_down_is_a_transport_error():
    stack, srvs = servers(3, after_faults="502")
    with stack:
        m = OpenAIChatModel("fake", base_url=[s.base_url for s in srvs], **{**FAST, "max_retries": 2})
        with pytest.raises(SSUIError, match="failed after 3 tries: HTTP 502"):
            m.generate([user("q")])
        assert [s.n_calls for s in srvs] == [1, 1, 1]


# ----------------------------------------------------------------------------- forced verdicts

def verdict_scorer(ids: list[int]) -> list[float]:
    """Prefers " unsafe" after "Final verdict:" when the chain says DANGER, else " safe"."""
    text = "".join(chr(i) for i in ids)
    out = []
    for k in range(len(ids)):
        head = text[:k + 1]
        if head.endswith("Final verdict: u"):
            out.append(-0.1 if "DANGER" in head else -4.0)
        elif head.endswith("Final verdict: s"):
            out.append(-4.0 if "DANGER" in head else -0.1)
        else:
            out.append(-0.01)
    return out


def test_forced_verdicts_through_openai_compatible(tmp_path):
    from ssui_lib.eval.heldout import force_verdicts

    samples = load_dataset("bundled:test")[:4]
    responses = {s.id: f"Step 1: the picture.\nStep 4: {'DANGER' if k % 2 == 0 else 'harmless'}."
                 for k, s in enumerate(samples)}
    stack, srvs = servers(3, scorer=verdict_scorer)
    with stack:
        name = f"openai-compatible:{','.join(s.base_url for s in srvs)}#fake+logprobs"
        out = force_verdicts(resolve_model(name, **FAST), samples, responses, tmp_path / "forced.jsonl")
        assert all(s.n_calls > 0 for s in srvs)
    assert [out[s.id] for s in samples] == ["Final verdict: unsafe", "Final verdict: safe"] * 2
    rows = [json.loads(x) for x in (tmp_path / "forced.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} == {"likelihood"}
    assert rows[0]["logp"]["unsafe"] > rows[0]["logp"]["safe"] and rows[1]["logp"]["safe"] > rows[1]["logp"]["unsafe"]


# ----------------------------------------------------------------------------- exploration

def continuations(body) -> list[str]:
    n = int(body.get("n") or 1)
    h = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()[:6]
    return [f" Considered {h}.\nFinal verdict: {'unsafe' if i % 2 == 0 else 'safe'}\nAnswer: ok {i}" for i in range(n)]


def test_exploration_through_openai_compatible_on_three_servers():
    from ssui_lib.srpo.explore import ExploreConfig, explore

    samples = [s for s in load_dataset("bundled:train") if s.reasoning][:2]
    cfg = ExploreConfig(mode="fixed_k", k=2, steps=(5, 6), shots=0, batch_samples=2, max_new_tokens=48)
    with FakeOpenAIServer(responder=continuations) as one:
        ref = list(explore(resolve_model(f"openai-compatible:{one.base_url}#m+logprobs", **FAST), samples, cfg,
                           progress=False))
    stack, srvs = servers(3, responder=continuations)
    with stack:
        m = resolve_model(f"openai-compatible:{','.join(s.base_url for s in srvs)}#m+logprobs", **FAST)
        trees = list(explore(m, samples, cfg, progress=False, settings="same"))
        assert sum(s.n_calls for s in srvs) >= 4 and all(s.n_calls for s in srvs)
        assert all(r["continue_final_message"] and r["logprobs"] for s in srvs for r in s.requests)
    assert all(t["pairs"] for t in trees)
    branches = [b for t in trees for st in t["steps"] for b in st["branches"]]
    assert branches and all(b["logprob"] == pytest.approx(CHAT_TOKEN_LOGPROB * len(b["text"])) for b in branches)
    strip = lambda ts: [{k: v for k, v in t.items() if k not in ("settings", "wall_s", "stats")} for t in ts]  # noqa: E731
    assert strip(trees) == strip(ref)  # three servers explore exactly what one does
