"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (a helper, not a test file).

It speaks ``POST /v1/chat/completions`` (and ``GET /v1/models``), and the vLLM parts the scoring
path uses: ``POST /tokenize`` and ``POST /v1/completions`` with ``echo`` and ``logprobs`` (see
"vLLM scoring" below). It records every request, answers
through a pluggable *responder*, and can play a *fault script* first, so the client's retry,
timeout and parsing paths run over real sockets::

    from fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer(responder=lambda body: "I can't help with that.",
                          faults=["429", "500", "hang", "garbage", "ok"]) as srv:
        model = OpenAIChatModel("fake-model", base_url=srv.base_url, timeout=0.5)
        ...
        srv.requests        # every request body (parsed JSON), in arrival order, faults included
        srv.headers         # the matching request headers (lower-case names)
        srv.n_calls         # len(srv.requests)
        srv.max_concurrent  # the most requests that were in flight at once

Responder: ``fn(body: dict) -> str | list[str] | dict``. A string is every choice's text, a list
gives one text per choice (its length must equal the request's ``n``), a dict is sent as the whole
JSON body. The default :func:`echo_responder` is deterministic: ``"echo: <last text>"``.

Faults are consumed in order, one per request; when the script is used up every request gets
``after_faults`` (default ``"ok"``, use e.g. ``"500"`` for a persistent fault):
  ``"ok"``            a normal answer from the responder
  ``"429"``, ``"500"``, any 3-digit status   an OpenAI-style JSON error with that status
  ``"hang"``          never answer (until ``hang_s`` passes or the server stops): a client timeout
  ``"garbage"``       status 200, ``application/json``, a body that is not JSON
  ``"truncated"``     status 200, a JSON body cut in half
  ``"bad_shape"``     status 200, valid JSON without ``choices``
  ``"wrong_n"``       status 200, a valid completion with one choice too few
  ``"disconnect"``    close the socket without any answer
  ``"echo_auth"``     status 401 whose error message repeats the request's Authorization header
                      (a hostile server, to prove the client never leaks a key it is shown)

vLLM scoring (faults apply to these requests too; ``srv.paths`` lists each request's path):
  * a character tokenizer: token id = ``ord(char)``; ``/tokenize`` with ``messages`` renders the
    template :func:`render_chat` (``add_generation_prompt`` / ``continue_final_message`` as vLLM),
    with ``prompt`` tokenizes the text; the answer is ``{"tokens", "count", "max_model_len"}``;
  * ``/v1/completions`` takes a prompt of token ids (or a string), generates ``max_tokens`` dots
    and, with ``logprobs`` set, answers per-token log-probabilities from ``scorer(ids)`` (a list
    of ``len(ids)`` floats, the value of each token given the ones before it; default
    :func:`default_scorer`), the prompt's included when ``echo`` (the first is None, as vLLM);
  * a chat request with ``"logprobs": true`` gets ``choices[i].logprobs.content`` with one entry
    per character of the answer, each ``-0.25``.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Responder = Callable[[dict], "str | list[str] | dict"]
Scorer = Callable[[list[int]], list[float]]
CHAT_TOKEN_LOGPROB = -0.25


def render_chat(messages: list[dict], add_generation_prompt: bool = True, continue_final_message: bool = False) -> str:
    """The fake chat template: ``<|role|>\ncontent\n`` per message; then ``<|assistant|>\n``
    (generation prompt), or the final assistant message left open (continue_final_message)."""
    out = []
    for k, m in enumerate(messages):
        c = m.get("content")
        text = c if isinstance(c, str) else "\n".join(p.get("text", "") for p in c or [] if p.get("type") == "text")
        last_open = continue_final_message and k == len(messages) - 1
        out.append(f"<|{m.get('role')}|>\n{text}" + ("" if last_open else "\n"))
    if add_generation_prompt and not continue_final_message:
        out.append("<|assistant|>\n")
    return "".join(out)


def default_scorer(ids: list[int]) -> list[float]:
    """A deterministic log-probability per token: ``-(1 + id mod 5) / 10``."""
    return [-(1 + i % 5) / 10 for i in ids]


def last_user_text(body: dict) -> str:
    """The text parts of the last user message of a chat-completions request body."""
    for m in reversed(body.get("messages", [])):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        return "\n".join(p.get("text", "") for p in c or [] if p.get("type") == "text")
    return ""


def echo_responder(body: dict) -> list[str]:
    """Deterministic default: ``echo: <last user text>`` (``#i`` appended when n > 1)."""
    text = "echo: " + last_user_text(body)
    n = int(body.get("n") or 1)
    return [text] if n == 1 else [f"{text} #{i}" for i in range(n)]


def completion_body(model: str, texts: list[str], finish_reason: str = "stop", logprobs: bool = False) -> dict:
    """A chat.completion JSON body with one choice per text (``logprobs``: one entry per character)."""
    n_tokens = sum(len(t.split()) for t in texts)
    if logprobs:
        return {**completion_body(model, texts, finish_reason), "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish_reason,
             "logprobs": {"content": [{"token": ch, "logprob": CHAT_TOKEN_LOGPROB, "bytes": None, "top_logprobs": []}
                                      for ch in t]}}
            for i, t in enumerate(texts)]}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish_reason}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": n_tokens, "total_tokens": n_tokens + 1},
    }


class FakeOpenAIServer:
    """A threaded OpenAI-compatible server on a random free port of 127.0.0.1 (a context manager)."""

    def __init__(
        self,
        responder: Responder | None = None,
        faults: list[str] | None = None,
        after_faults: str = "ok",
        hang_s: float = 10.0,
        scorer: Scorer | None = None,
    ):
        self.responder = responder or echo_responder
        self.scorer = scorer or default_scorer
        self.paths: list[str] = []
        self.faults = list(faults or [])
        self.after_faults = after_faults
        self.hang_s = hang_s
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.faults_played: list[str] = []
        self.max_concurrent = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` — what an OpenAI client takes as ``base_url``."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def n_calls(self) -> int:
        return len(self.requests)

    def start(self) -> "FakeOpenAIServer":
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, body: dict, headers: dict[str, str], path: str = "/v1/chat/completions") -> str:
        """Record a request and return the fault it gets (next in the script, else after_faults)."""
        with self._lock:
            self.requests.append(body)
            self.paths.append(path)
            self.headers.append(headers)
            fault = self.faults.pop(0) if self.faults else self.after_faults
            self.faults_played.append(fault)
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
            return fault

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _error_body(status: int, message: str) -> dict:
    return {"error": {"message": message, "type": "fake_error", "param": None, "code": str(status)}}


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _send_json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode("utf-8"))

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            else:
                self._send_json(404, _error_body(404, f"no route {self.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            route = self.path.rstrip("/")
            if route not in ("/v1/chat/completions", "/v1/completions", "/tokenize"):
                self._send_json(404, _error_body(404, f"no route {self.path}"))
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._send_json(400, _error_body(400, "request body is not JSON"))
                return
            fault = server._record(body, {k.lower(): v for k, v in self.headers.items()}, route)
            try:
                if route != "/v1/chat/completions" and fault == "ok":
                    self._send_json(200, tokenize_answer(body) if route == "/tokenize" else
                                    text_completion_body(body, server.scorer))
                    return
                self._answer(body, fault)
            finally:
                server._done()

        def _answer(self, body: dict, fault: str) -> None:
            model = body.get("model", "fake-model")
            n = int(body.get("n") or 1)
            if fault == "hang":
                server._stopping.wait(server.hang_s)
                self.close_connection = True
                return
            if fault == "disconnect":
                self.close_connection = True
                return
            if fault == "garbage":
                self._send(200, b"<html>this is not JSON at all")
                return
            if fault == "truncated":
                self._send(200, json.dumps(completion_body(model, ["cut"] * n)).encode()[:40])
                return
            if fault == "bad_shape":
                self._send_json(200, {"id": "x", "object": "chat.completion", "note": "no choices here"})
                return
            if fault == "wrong_n":
                self._send_json(200, completion_body(model, ["too few"] * (n - 1)))
                return
            if fault == "echo_auth":
                msg = f"Incorrect API key provided: {self.headers.get('Authorization', '')}"
                self._send_json(401, _error_body(401, msg))
                return
            if fault.isdigit() and len(fault) == 3:
                self._send_json(int(fault), _error_body(int(fault), f"injected fault {fault}"))
                return
            if fault != "ok":
                raise ValueError(f"unknown fault {fault!r}")
            out = server.responder(body)
            if isinstance(out, dict):
                self._send_json(200, out)
                return
            texts = [out] * n if isinstance(out, str) else list(out)
            self._send_json(200, completion_body(model, texts, logprobs=bool(body.get("logprobs"))))

    return Handler



def tokenize_answer(body: dict) -> dict:
    """vLLM's ``/tokenize`` answer under the fake character tokenizer."""
    if "messages" in body:
        text = render_chat(body["messages"], bool(body.get("add_generation_prompt", True)),
                           bool(body.get("continue_final_message", False)))
    else:
        text = str(body.get("prompt", ""))
    ids = [ord(ch) for ch in text]
    return {"tokens": ids, "count": len(ids), "max_model_len": 1 << 20}


def text_completion_body(body: dict, scorer: Scorer) -> dict:
    """A text_completion answer: ``max_tokens`` dots, with legacy ``logprobs`` when asked
    (the prompt's too under ``echo``; the first prompt token's is None)."""
    prompt = body.get("prompt")
    ids = [ord(ch) for ch in prompt] if isinstance(prompt, str) else [int(i) for i in prompt]
    gen = [ord(".")] * int(body.get("max_tokens") or 16)
    echo = bool(body.get("echo"))
    shown = (ids if echo else []) + gen
    choice = {"index": 0, "text": "".join(chr(i) for i in shown), "finish_reason": "length", "logprobs": None}
    if body.get("logprobs") is not None:
        lps = list(scorer(ids + gen))
        if len(lps) != len(ids) + len(gen):
            raise ValueError("scorer returned the wrong number of values")
        lps = ([None] + lps[1:len(ids)] if echo else []) + lps[len(ids):]
        offsets, pos = [], 0
        for i in shown:
            offsets.append(pos)
            pos += 1
        choice["logprobs"] = {"tokens": [chr(i) for i in shown], "token_logprobs": lps, "text_offset": offsets,
                              "top_logprobs": None}
    return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": body.get("model", "fake-model"),
            "choices": [choice],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": len(gen), "total_tokens": len(ids) + len(gen)}}
