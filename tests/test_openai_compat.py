"""The OpenAI-compatible backend against a real local HTTP server with injected faults."""
from __future__ import annotations

import base64
import io
import logging
import time
import traceback

import pytest
from PIL import Image

from fake_openai_server import FakeOpenAIServer, completion_body, last_user_text
from ssui_lib.core.store import JsonlCache
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ImageRef, SamplingParams
from ssui_lib.models.openai_compat import OpenAIChatModel, backoff_delay

SECRET = "sk-test-SECRET123"
FAST = dict(timeout=0.5, max_retries=4, backoff_base=0.001, backoff_max=0.01)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def model_for(srv: FakeOpenAIServer, **kw) -> OpenAIChatModel:
    return OpenAIChatModel("fake-model", base_url=srv.base_url, **{**FAST, **kw})


def texts(results) -> list[list[str]]:
    return [[g.text for g in gens] for gens in results]


# ----------------------------------------------------------------------------- faults

@pytest.mark.parametrize(
    "fault", ["429", "500", "502", "503", "hang", "garbage", "truncated", "bad_shape", "wrong_n", "disconnect"]
)
def test_each_fault_recovers(fault):
    with FakeOpenAIServer(faults=[fault]) as srv:
        out = model_for(srv).generate([user("hello")])
        assert texts(out) == [["echo: hello"]]
        assert srv.faults_played == [fault, "ok"]


def test_fault_script_recovers_in_one_request(caplog):
    caplog.set_level(logging.WARNING, logger="ssui_lib")
    with FakeOpenAIServer(faults=["429", "500", "hang", "garbage", "ok"]) as srv:
        out = model_for(srv).generate([user("q")])
        assert texts(out) == [["echo: q"]] and srv.n_calls == 5
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 4 and "HTTP 429" in retries[0] and "timed out" in retries[2] and "malformed" in retries[3]


def test_persistent_fault_ends_in_a_clear_error():
    with FakeOpenAIServer(after_faults="500") as srv:
        m = model_for(srv, max_retries=2)
        with pytest.raises(SSUIError) as e:
            m.generate([user("q")])
        assert srv.n_calls == 3  # first try + 2 retries, then give up
    msg = str(e.value)
    assert "fake-model" in msg and "prompt 0" in msg and "3 tries" in msg and "HTTP 500" in msg


def test_persistent_hang_times_out_instead_of_hanging():
    with FakeOpenAIServer(after_faults="hang") as srv:
        m = model_for(srv, timeout=0.3, max_retries=1)
        t0 = time.monotonic()
        with pytest.raises(SSUIError, match=r"prompt 0: failed after 2 tries: request timed out"):
            m.generate([user("q")])
        assert time.monotonic() - t0 < 3
        assert srv.n_calls == 2


def test_persistent_garbage_names_the_prompt_index():
    def responder(body):  # prompt "bad" always gets a body without choices
        return {"oops": True} if last_user_text(body) == "bad" else "fine"

    with FakeOpenAIServer(responder=responder) as srv:
        m = model_for(srv, max_retries=1, concurrency=1)
        with pytest.raises(SSUIError, match=r"prompt 2: failed after 2 tries: malformed response body"):
            m.generate([user("a"), user("b"), user("bad")])


def test_client_errors_are_not_retried():
    with FakeOpenAIServer(faults=["400"]) as srv:
        with pytest.raises(SSUIError, match=r"prompt 0: HTTP 400: .*not retried"):
            model_for(srv).generate([user("q")])
        assert srv.n_calls == 1


def test_backoff_is_exponential_with_jitter_and_honours_retry_after():
    import random

    rng = random.Random(0)
    ds = [backoff_delay(a, 1.0, 100.0, rng=rng) for a in range(5)]
    for a, d in enumerate(ds):
        assert 2 ** a / 2 <= d <= 2 ** a
    assert backoff_delay(10, 1.0, 8.0, rng=rng) <= 8.0
    assert backoff_delay(0, 0.01, 30.0, retry_after=5.0) == 5.0
    assert backoff_delay(0, 0.01, 2.0, retry_after=60.0) == 2.0


# ----------------------------------------------------------------------------- requests

def _pixels() -> Image.Image:
    im = Image.new("RGB", (12, 9), (200, 30, 40))
    im.putpixel((3, 4), (1, 2, 3))
    return im


def test_images_arrive_as_png_data_urls():
    pil = _pixels()
    prompt = [
        {"role": "system", "content": "be safe"},
        {"role": "user", "content": [{"type": "image", "image": ImageRef("a red card", pil)},
                                     {"type": "text", "text": "what is this?"}]},
    ]
    with FakeOpenAIServer() as srv:
        model_for(srv).generate([prompt])
        body = srv.requests[0]
    parts = body["messages"][1]["content"]
    assert body["messages"][0] == {"role": "system", "content": "be safe"}
    assert parts[1] == {"type": "text", "text": "what is this?"}
    assert parts[0]["type"] == "image_url"
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    raw = base64.b64decode(url.split(",", 1)[1])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(raw)) as back:
        assert back.size == (12, 9) and back.convert("RGB").tobytes() == pil.tobytes()


def test_text_only_endpoint_gets_captions():
    prompt = [{"role": "user", "content": [{"type": "image", "image": ImageRef("a red card", _pixels())},
                                           {"type": "text", "text": "what is this?"}]}]
    with FakeOpenAIServer() as srv:
        model_for(srv, supports_images=False).generate([prompt])
        assert srv.requests[0]["messages"] == [{"role": "user", "content": "[Image: a red card]\nwhat is this?"}]


def test_sampling_params_and_n_pass_through():
    params = SamplingParams(n=3, temperature=0.7, max_new_tokens=17, stop=("\n\n", "END"), seed=5, top_p=0.9)
    with FakeOpenAIServer() as srv:
        out = model_for(srv).generate([user("x")], params)
        body = srv.requests[0]
    assert texts(out) == [["echo: x #0", "echo: x #1", "echo: x #2"]]
    assert body["n"] == 3 and body["temperature"] == 0.7 and body["max_tokens"] == 17
    assert body["stop"] == ["\n\n", "END"] and body["seed"] == 5 and body["top_p"] == 0.9
    assert body["model"] == "fake-model"
    assert "continue_final_message" not in body


def test_choices_are_put_in_index_order_and_finish_reasons_mapped():
    def responder(body):
        b = completion_body(body["model"], ["first", "second"])
        b["choices"].reverse()
        b["choices"][0]["finish_reason"] = "length"  # "second"
        return b

    with FakeOpenAIServer(responder=responder) as srv:
        (gens,) = model_for(srv).generate([user("x")], SamplingParams(n=2))
    assert [g.text for g in gens] == ["first", "second"]
    assert [g.finish_reason for g in gens] == ["stop", "length"]


def test_prefix_is_a_final_assistant_message_to_continue():
    with FakeOpenAIServer(responder=lambda body: " and then step 2.") as srv:
        out = model_for(srv).generate([user("q1"), user("q2")], prefixes=["Step 1: the image shows", None])
        with_prefix = next(b for b in srv.requests if last_user_text(b) == "q1")
        without = next(b for b in srv.requests if last_user_text(b) == "q2")
    assert out[0][0].text == " and then step 2."  # the continuation only
    assert with_prefix["messages"][-1] == {"role": "assistant", "content": "Step 1: the image shows"}
    assert with_prefix["continue_final_message"] is True and with_prefix["add_generation_prompt"] is False
    assert without["messages"] == user("q2") and "continue_final_message" not in without


def test_prefixes_must_match_prompts():
    with FakeOpenAIServer() as srv:
        with pytest.raises(SSUIError, match="2 prefixes for 1 prompts"):
            model_for(srv).generate([user("x")], prefixes=["a", "b"])
        with pytest.raises(SSUIError, match="prompt 0: malformed prompt"):
            model_for(srv).generate([[{"role": "user", "content": [{"type": "audio"}]}]])
        assert srv.n_calls == 0


# ----------------------------------------------------------------------------- concurrency and cache

def test_concurrency_is_bounded_and_keeps_order():
    def responder(body):  # later prompts answer first
        i = int(last_user_text(body))
        time.sleep(0.02 * (10 - i))
        return f"answer {i}"

    with FakeOpenAIServer(responder=responder) as srv:
        out = model_for(srv, concurrency=4).generate([user(str(i)) for i in range(10)], progress=True)
        assert 2 <= srv.max_concurrent <= 4
    assert texts(out) == [[f"answer {i}"] for i in range(10)]


def test_cache_makes_a_rerun_free(tmp_path):
    path = tmp_path / "gen.jsonl"
    pil = _pixels()
    prompts = [user("a"), user("b"),
               [{"role": "user", "content": [{"type": "image", "image": ImageRef("card", pil)},
                                             {"type": "text", "text": "c"}]}]]
    params = SamplingParams(n=2, temperature=0.5)
    with FakeOpenAIServer() as srv:
        first = model_for(srv, cache=JsonlCache(path)).generate(prompts, params, prefixes=[None, "so", None])
        assert srv.n_calls == 3
        # same requests, a new process's worth of objects: zero HTTP calls
        again = model_for(srv, cache=JsonlCache(path)).generate(prompts, params, prefixes=[None, "so", None])
        assert srv.n_calls == 3
        assert texts(again) == texts(first) and again[0][0].finish_reason == first[0][0].finish_reason
        # anything that changes the request misses the cache
        m = model_for(srv, cache=JsonlCache(path))
        m.generate(prompts[:1], SamplingParams(n=2, temperature=0.6))
        m.generate(prompts[1:2], params)  # no prefix now
        other = pil.copy()
        other.putpixel((0, 0), (0, 0, 0))
        m.generate([[{"role": "user", "content": [{"type": "image", "image": ImageRef("card", other)},
                                                  {"type": "text", "text": "c"}]}]], params)
        assert srv.n_calls == 6
        # the same pixels in a different object hit the cache (content-addressed)
        m.generate([[{"role": "user", "content": [{"type": "image", "image": ImageRef("card", pil.copy())},
                                                  {"type": "text", "text": "c"}]}]], params)
        assert srv.n_calls == 6
    assert len(JsonlCache(path)) == 6


def test_identical_requests_in_a_batch_are_sent_once():
    with FakeOpenAIServer() as srv:
        out = model_for(srv).generate([user("same"), user("other"), user("same")])
        assert srv.n_calls == 2
    assert texts(out) == [["echo: same"], ["echo: other"], ["echo: same"]]
    assert out[0][0] is not out[2][0]


def test_failed_requests_are_not_cached_and_answered_ones_are(tmp_path):
    def responder(body):
        return {"broken": 1} if last_user_text(body) == "bad" else "ok"

    path = tmp_path / "c.jsonl"
    with FakeOpenAIServer(responder=responder) as srv:
        with pytest.raises(SSUIError, match="prompt 1"):
            model_for(srv, cache=JsonlCache(path), max_retries=0, concurrency=1).generate([user("good"), user("bad")])
    cache = JsonlCache(path)
    assert len(cache) == 1 and cache.get(cache.keys()[0])[0]["text"] == "ok"


# ----------------------------------------------------------------------------- keys and secrets

def test_secret_never_leaks(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the openai client's included
    monkeypatch.setenv("SSUI_TEST_KEY", SECRET)
    path = tmp_path / "c.jsonl"
    with FakeOpenAIServer(faults=["429"]) as srv:
        m = model_for(srv, api_key_env="SSUI_TEST_KEY", cache=JsonlCache(path))
        m.generate([user("hi")])
        assert srv.headers[0]["authorization"] == f"Bearer {SECRET}"  # the key is really used
    with FakeOpenAIServer(after_faults="echo_auth") as srv:  # a server that quotes the key back
        bad = model_for(srv, api_key=SECRET)
        with pytest.raises(SSUIError) as e:
            bad.generate([user("hi")])
        assert srv.n_calls == 1  # 401 is not retried
    with FakeOpenAIServer(faults=["echo_auth", "500"], after_faults="500") as srv:
        with pytest.raises(SSUIError) as e2:
            model_for(srv, api_key=SECRET, max_retries=1).generate([user("hi")])
    seen = [
        str(m.describe()), repr(m), str(vars(m)), path.read_text(encoding="utf-8"),
        str(e.value), "".join(traceback.format_exception(e.value)),
        str(e2.value), "".join(traceback.format_exception(e2.value)),
        caplog.text, *(r.getMessage() for r in caplog.records),
    ]
    for text in seen:
        assert SECRET not in text and "SECRET123" not in text
    assert "HTTP 401" in str(e.value) and "***" in str(e.value)


def test_missing_key_for_api_openai_com_names_the_variable(monkeypatch):
    monkeypatch.delenv("SSUI_TEST_KEY", raising=False)
    with pytest.raises(SSUIError, match="set the environment variable SSUI_TEST_KEY"):
        OpenAIChatModel("gpt-4o", api_key_env="SSUI_TEST_KEY")
    with pytest.raises(SSUIError, match="SSUI_TEST_KEY"):
        OpenAIChatModel("gpt-4o", base_url="https://api.openai.com/v1", api_key_env="SSUI_TEST_KEY")
    m = OpenAIChatModel("gpt-4o", api_key="sk-x")  # an explicit key is enough (no call made)
    assert m.describe() == {"name": "openai:gpt-4o", "backend": "openai", "model": "gpt-4o",
                            "base_url": "https://api.openai.com/v1"}


def test_local_server_without_key_sends_empty(monkeypatch):
    monkeypatch.delenv("SSUI_TEST_KEY", raising=False)
    with FakeOpenAIServer() as srv:
        m = model_for(srv, api_key_env="SSUI_TEST_KEY")
        m.generate([user("x")])
        assert srv.headers[0]["authorization"] == "Bearer EMPTY"
        assert m.describe() == {"name": f"openai-compatible:{srv.base_url}#fake-model", "backend": "openai",
                                "model": "fake-model", "base_url": srv.base_url}


def test_logprobs_is_refused_with_a_reason():
    m = OpenAIChatModel("fake", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(SSUIError, match="agents and judges"):
        m.logprobs([user("x")], ["y"])


def test_empty_batch_makes_no_call():
    with FakeOpenAIServer() as srv:
        assert model_for(srv).generate([]) == []
        assert srv.n_calls == 0


# ----------------------------------------------------------------------------- where keys go

REAL = "sk-REAL-openai-key-0123456789"


def test_openai_key_never_reaches_an_openai_compatible_server(monkeypatch):
    from ssui_lib.eval.judge import resolve_judge
    from ssui_lib.models import resolve_model

    monkeypatch.setenv("OPENAI_API_KEY", REAL)
    for var in ("SSUI_API_KEY", "SSUI_API_KEY_ENV"):
        monkeypatch.delenv(var, raising=False)
    with FakeOpenAIServer() as srv:
        resolve_model(f"openai-compatible:{srv.base_url}#m").generate([user("a")])
        judge = resolve_judge(f"openai-compatible:{srv.base_url}#j")
        judge.model.generate([user("b")])
        OpenAIChatModel("m", base_url=srv.base_url).generate([user("c")])
        assert [h["authorization"] for h in srv.headers] == ["Bearer EMPTY"] * 3
        assert all(REAL not in str(h) for h in srv.headers)


def test_compatible_server_key_comes_from_the_variable_the_user_names(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", REAL)
    monkeypatch.setenv("SSUI_API_KEY", "  sk-server-key\n")  # stripped
    with FakeOpenAIServer() as srv:
        OpenAIChatModel("m", base_url=srv.base_url).generate([user("a")])
        monkeypatch.setenv("SSUI_API_KEY_ENV", "MY_VLLM_KEY")
        monkeypatch.setenv("MY_VLLM_KEY", "vllm-secret")
        OpenAIChatModel("m", base_url=srv.base_url).generate([user("b")])
        assert [h["authorization"] for h in srv.headers] == ["Bearer sk-server-key", "Bearer vllm-secret"]
    monkeypatch.setenv("SSUI_API_KEY_ENV", "OPENAI_API_KEY")
    with pytest.raises(SSUIError, match="OPENAI_API_KEY is sent only to https://api.openai.com"):
        OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(SSUIError, match="sent only to"):
        OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", api_key_env="OPENAI_API_KEY")


def test_only_https_api_openai_com_is_the_openai_endpoint():
    from ssui_lib.models.openai_compat import is_loopback, is_openai_endpoint

    assert is_openai_endpoint(None) and is_openai_endpoint("https://api.openai.com/v1")
    for url in ("http://api.openai.com/v1", "https://evil.openai.com.example.org/v1", "https://x.openai.com/v1",
                "https://api.openai.com.evil.net/v1"):
        assert not is_openai_endpoint(url), url
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.0.1")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")


def test_plain_http_only_to_loopback_unless_allowed(monkeypatch):
    from ssui_lib.models import parse_model_name

    monkeypatch.delenv("SSUI_ALLOW_INSECURE_HTTP", raising=False)
    with pytest.raises(SSUIError, match=r"plain http:// to 10\.1\.2\.3 .*SSUI_ALLOW_INSECURE_HTTP=1"):
        parse_model_name("openai-compatible:http://10.1.2.3:8000/v1#m")
    with pytest.raises(SSUIError, match="not a loopback"):
        OpenAIChatModel("m", base_url="http://example.com/v1")
    assert parse_model_name("openai-compatible:https://example.com/v1#m").base_url == "https://example.com/v1"
    assert parse_model_name("openai-compatible:http://localhost:8000/v1#m").model == "m"
    monkeypatch.setenv("SSUI_ALLOW_INSECURE_HTTP", "1")
    assert OpenAIChatModel("m", base_url="http://example.com/v1").base_url == "http://example.com/v1"


def test_keys_are_stripped_and_must_be_printable_ascii(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc\n")
    m = OpenAIChatModel("gpt-4o")
    assert m._secret.reveal() == "sk-abc"
    for bad in ("sk-caf\u00e9", "sk-a\x07b", "sk-\u200bx"):
        monkeypatch.setenv("OPENAI_API_KEY", bad)
        with pytest.raises(SSUIError, match="API key in OPENAI_API_KEY has a non-printable or non-ASCII") as e:
            OpenAIChatModel("gpt-4o")
        assert bad not in str(e.value) and "sk-" not in str(e.value)
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    with pytest.raises(SSUIError, match="no API key: set the environment variable OPENAI_API_KEY"):
        OpenAIChatModel("gpt-4o")
