"""OpenAI-compatible chat backend: api.openai.com (GPT-4o agents and judge) or any server that
speaks ``/v1/chat/completions`` (vLLM, llama.cpp server, …), on the official ``openai`` client.

What it adds to the bare client:
  * images: an ``ImageRef`` with pixels becomes an ``image_url`` part holding a PNG data URL; a
    text-only endpoint (``supports_images=False``) or a caption-only record gets the caption;
  * SRPO prefixes: the prefix goes in as a final assistant message with vLLM's
    ``continue_final_message=True, add_generation_prompt=False`` (sent as ``extra_body``). Only
    vLLM-style servers honour this; **api.openai.com does not support continuing a partial
    assistant message** (it answers the conversation afresh), so use a local server for
    exploration;
  * retries with exponential backoff and jitter on HTTP 408/409/429/5xx, timeouts, connection
    errors and malformed bodies (non-JSON, wrong shape, wrong number of choices) — the client's
    own retry is turned off so every case goes through one loop; after the last try the error is
    an ``SSUIError`` naming the model, the prompt index and the cause. A request is never dropped
    and never answered with a placeholder;
  * bounded concurrency (a thread pool), results in input order, optional tqdm progress;
  * a content-addressed cache (:class:`~ssui_lib.core.store.JsonlCache`): the key covers model,
    base URL, messages (images by content hash), every sampling parameter and the prefix, so a
    rerun of the same requests makes no HTTP call. Identical requests within a batch are sent once
    (the cache would make a rerun return one answer for them anyway).

Data parallel over several servers (vLLM on every GPU or machine): ``base_url`` may be a list, or
one string of URLs joined by commas (``openai-compatible:URL1,URL2#MODEL``). Request ``i`` of a
batch goes to server ``i mod N``; each retry moves on to the next server, so one server down costs
a retry, not the run. The retries, the cache (its key holds the whole URL list) and the unscored
rule are the same as for one server.

Token log-probabilities (``logprobs=True``, the name suffix ``+logprobs``: ``openai-compatible:URL#MODEL+logprobs``)
for a vLLM server: generation asks the chat endpoint for the sampled tokens' log-probabilities
(``Generation.logprob``, recorded by exploration), and :meth:`OpenAIChatModel.logprobs` scores a
given continuation after a prompt and prefix through the completions endpoint with the raw
prompt's token ids, ``echo`` and ``logprobs`` (``models/server_scoring.py``) — what forced
verdicts, the logprobs judge and branch re-scoring need. Off by default: api.openai.com and
llama.cpp servers do not offer it.

Keys go only where they belong. ``OPENAI_API_KEY`` is sent to https://api.openai.com and nowhere
else. An ``openai-compatible:`` server gets the key in ``SSUI_API_KEY`` (or in the variable that
``SSUI_API_KEY_ENV`` names), and none ("EMPTY") when that is unset. Plain ``http://`` is allowed only
to loopback addresses unless ``SSUI_ALLOW_INSECURE_HTTP=1``. A key is stripped and must be
printable ASCII. It never appears in ``describe()``, ``repr()``, the cache, error messages or log
lines.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Callable, Sequence

from ssui_lib.core import ledger
from ssui_lib.core.store import JsonlCache, cache_key, hash_image
from ssui_lib.models.api_keys import (  # noqa: F401  (re-exported: the backend's key rules)
    ALLOW_HTTP_ENV, COMPAT_KEY_ENV, COMPAT_KEY_ENV_SELECTOR, LOCAL_PLACEHOLDER_KEY, OPENAI_KEY_ENV, _Secret,
    check_base_url, check_key, is_loopback, is_openai_endpoint, key_variable, resolve_api_key)
from ssui_lib.core.errors import SSUIError, TransportError
from ssui_lib.models.base import ChatModel, Generation, ImageRef, Prompt, SamplingParams, caption_text, flatten_for_text

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
CACHE_FORMAT = 1  # bump to invalidate cached generations if the request/answer format changes


class MalformedResponse(Exception):
    """A 200 answer whose body is not a usable chat completion (retried)."""


# ----------------------------------------------------------------------------- requests

def png_data_url(pil: Any) -> str:
    """A ``data:image/png;base64,…`` URL with the image's PNG bytes."""
    buf = io.BytesIO()
    img = pil if pil.mode in ("RGB", "RGBA", "L", "LA") else pil.convert("RGB")
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _image_part(ref: ImageRef, supports_images: bool, for_key: bool) -> dict[str, Any]:
    if not supports_images or ref.pil is None:  # caption mode (or a caption-only record)
        return {"type": "text", "text": caption_text(ref)}
    if for_key:
        return {"type": "image", "sha256": hash_image(ref.pil)}
    return {"type": "image_url", "image_url": {"url": png_data_url(ref.pil)}}


def to_api_messages(prompt: Prompt, supports_images: bool, *, for_key: bool = False) -> list[dict[str, Any]]:
    """Chat messages in the API's format. ``for_key=True`` puts image content hashes where the
    data URLs would go (what the cache key is built from; cheap, no PNG encoding)."""
    if not supports_images:
        return flatten_for_text(prompt)
    out: list[dict[str, Any]] = []
    for m in prompt:
        c = m["content"]
        if isinstance(c, str):
            out.append({"role": m["role"], "content": c})
            continue
        parts = []
        for p in c:
            if p.get("type") == "text":
                parts.append({"type": "text", "text": p["text"]})
            elif p.get("type") == "image":
                parts.append(_image_part(p["image"], supports_images, for_key))
            else:
                raise ValueError(f"unknown content part type {p.get('type')!r}")
        out.append({"role": m["role"], "content": parts})
    return out


def with_prefix(messages: list[dict[str, Any]], prefix: str | None) -> list[dict[str, Any]]:
    """Append the prefix as the assistant message the model must continue (if any)."""
    return messages + [{"role": "assistant", "content": prefix}] if prefix else messages


def request_kwargs(model: str, messages: list[dict[str, Any]], params: SamplingParams, prefix: str | None,
                   response_format: dict[str, Any] | None = None, logprobs: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.completions.create`` (``response_format``: structured
    output, e.g. ``{"type": "json_schema", ...}``, sent only when given; ``logprobs``: ask for the
    sampled tokens' log-probabilities)."""
    kw: dict[str, Any] = {
        "model": model,
        "messages": with_prefix(messages, prefix),
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "seed": params.seed,
    }
    if params.stop:
        kw["stop"] = list(params.stop)
    if response_format is not None:
        kw["response_format"] = response_format
    if logprobs:
        kw["logprobs"] = True
    if prefix:
        # vLLM's chat-template switches; api.openai.com does not support them (see module doc).
        kw["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
    return kw


# ----------------------------------------------------------------------------- responses

def parse_completion(resp: Any, n: int) -> list[Generation]:
    """``n`` Generations from a chat completion; MalformedResponse if it is not one."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list):
        raise MalformedResponse(f"malformed response body: no 'choices' list (got {type(resp).__name__})")
    if len(choices) != n:
        raise MalformedResponse(f"malformed response body: expected {n} choices, got {len(choices)}")
    try:
        choices = sorted(choices, key=lambda c: c.index)
        usage = getattr(resp, "usage", None)
        # Per-choice token counts are not reported; the total is exact only when n == 1.
        n_tokens = int(usage.completion_tokens) if (usage is not None and n == 1 and usage.completion_tokens) else 0
        gens = []
        for c in choices:
            msg = c.message
            raw_reason = c.finish_reason
            extra: dict[str, Any] = {}
            if raw_reason not in ("stop", "length"):
                extra["api_finish_reason"] = raw_reason
            text = msg.content
            if text is None:
                if getattr(msg, "refusal", None):
                    text, extra["refusal"] = msg.refusal, True
                elif raw_reason == "content_filter":
                    text = ""
                else:
                    raise MalformedResponse("malformed response body: a choice without content")
            lp = getattr(getattr(c, "logprobs", None), "content", None)
            gens.append(Generation(
                text=text, n_tokens=len(lp) if lp else n_tokens,
                logprob=float(sum(t.logprob for t in lp)) if lp else None,
                finish_reason="length" if raw_reason == "length" else "stop", extra=extra,
            ))
        return gens
    except AttributeError as e:
        raise MalformedResponse(f"malformed response body: {e}") from None


def _generations_from_cache(value: Any, where: str) -> list[Generation]:
    try:
        return [Generation(**d) for d in value]
    except TypeError as e:
        raise SSUIError(f"{where}: unreadable cached generation ({e}); delete the cache file") from None


# ----------------------------------------------------------------------------- errors

def classify_error(exc: BaseException, timeout: float) -> tuple[str, bool] | None:
    """(cause, retryable) for a failed call, or None for an exception that is a bug, not a
    backend failure (it propagates unchanged)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"request timed out (timeout={timeout:g}s)", True
    if isinstance(exc, openai.APIConnectionError):
        return f"connection error ({exc})", True
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry = status in RETRY_STATUS or status >= 500
        return f"HTTP {status}: {exc.message}", retry
    if isinstance(exc, (MalformedResponse, openai.APIResponseValidationError)):
        return str(exc), True
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return f"malformed response body: not JSON ({exc})", True
    if exc.__class__.__name__ == "ValidationError":  # pydantic, on a body of the wrong shape
        return f"malformed response body: {str(exc).splitlines()[0]}", True
    return None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a Retry-After header (429/503), if the server sent one."""
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("retry-after")) if response is not None else None
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d] for d = min(cap, base·2^attempt);
    never shorter than a server's Retry-After (itself capped)."""
    d = min(cap, base * (2 ** attempt))
    d = d * (0.5 + 0.5 * (rng or random).random())
    if retry_after is not None:
        d = max(d, min(retry_after, cap))
    return d


# ----------------------------------------------------------------------------- settings and faults

# Retry settings: an argument wins, else the environment variable, else the default.
SETTINGS: dict[str, tuple[str, float]] = {
    "timeout": ("SSUI_API_TIMEOUT", 60.0),  # seconds per request
    "max_retries": ("SSUI_API_MAX_RETRIES", 4),  # retries after the first try
    "backoff_base": ("SSUI_API_BACKOFF_BASE", 1.0),  # first wait (seconds), doubled per retry
    "backoff_max": ("SSUI_API_BACKOFF_MAX", 30.0),  # longest wait (seconds)
}


def setting(name: str, value: float | None) -> float:
    """A retry setting: ``value`` if given, else its environment variable, else the default."""
    if value is not None:
        return value
    var, default = SETTINGS[name]
    text = os.environ.get(var, "").strip()
    if not text:
        return default
    try:
        v = float(text)
    except ValueError:
        raise SSUIError(f"{var}={text!r}: expected a number") from None
    if v < 0 or (name == "max_retries" and v != int(v)):
        raise SSUIError(f"{var}={text!r}: expected a {'whole ' if name == 'max_retries' else ''}number >= 0")
    return v


_FAULTS: dict[str, int] = {}  # fault kind -> times seen in this process (every try, retried or not)
_GAVE_UP: list[int] = [0]  # requests that failed after all their tries
_FAULTS_LOCK = threading.Lock()


def fault_kind(cause: str) -> str:
    """A short class for a failed try's cause: "HTTP 429", "timeout", "connection", "malformed"."""
    if cause.startswith("HTTP "):
        return cause.split(":", 1)[0]
    if cause.startswith("request timed out"):
        return "timeout"
    if cause.startswith("connection error"):
        return "connection"
    return "malformed"


def _record_fault(cause: str) -> None:
    with _FAULTS_LOCK:
        k = fault_kind(cause)
        _FAULTS[k] = _FAULTS.get(k, 0) + 1


def _record_gave_up() -> None:
    with _FAULTS_LOCK:
        _GAVE_UP[0] += 1


def fault_counts() -> dict[str, int]:
    """Faults seen by every API model of this process, by kind, plus ``gave_up`` (requests that
    failed after all their tries)."""
    with _FAULTS_LOCK:
        return {**dict(sorted(_FAULTS.items())), "gave_up": _GAVE_UP[0]}


def reset_faults() -> None:
    with _FAULTS_LOCK:
        _FAULTS.clear()
        _GAVE_UP[0] = 0


def fault_summary() -> str | None:
    """One line for the end of a command ("API faults seen: …"), or None when there were none."""
    c = fault_counts()
    gave_up = c.pop("gave_up")
    if not c and not gave_up:
        return None
    seen = ", ".join(f"{k} x{n}" for k, n in c.items())
    return (f"API faults seen: {seen or 'none'}; {gave_up} request(s) failed after all retries"
            + (" (their items are unscored or missing and are retried on the next run)" if gave_up else
               " (every one recovered on a retry)"))


# ----------------------------------------------------------------------------- model

def split_base_urls(base_url: str | Sequence[str] | None, name: str) -> list[str]:
    """The server URLs of ``base_url`` (one URL, a comma-joined string or a list), each checked
    (:func:`check_base_url`); the OpenAI API when None. api.openai.com is never one of several."""
    urls = ([OPENAI_BASE_URL] if base_url is None else
            [u.strip() for u in base_url.split(",")] if isinstance(base_url, str) else [str(u).strip() for u in base_url])
    if not urls or any(not u for u in urls):
        raise SSUIError(f"{name}: empty server URL in {base_url!r} (expected URL or URL1,URL2,...)")
    urls = [check_base_url(u.rstrip("/"), name) for u in urls]
    if len(urls) > 1 and any(is_openai_endpoint(u) for u in urls):
        raise SSUIError(f"{name}: api.openai.com cannot be one of several servers ({', '.join(urls)})")
    if len(set(urls)) != len(urls):
        raise SSUIError(f"{name}: a server is listed twice in {', '.join(urls)}")
    return urls


class OpenAIChatModel(ChatModel):
    """A chat model behind an OpenAI-compatible endpoint (see the module docstring).

    ``max_retries`` is the number of retries after the first try. ``backoff_base`` and
    ``backoff_max`` (seconds) shape the waits between tries; tests make them tiny. Each of these and
``timeout`` defaults to its environment variable (``SSUI_API_MAX_RETRIES``, ``SSUI_API_BACKOFF_BASE``,
``SSUI_API_BACKOFF_MAX``, ``SSUI_API_TIMEOUT``), else 4 retries, 1 s, 30 s and 60 s. Every failed
try is tallied by kind for the process (:func:`fault_summary`, printed by the command line).
    """

    supports_prefix = True  # through vLLM's continue_final_message; not on api.openai.com
    trainable = False
    supports_response_format = True  # generate(..., response_format=...) (the server may still refuse it)

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 4,
        max_retries: int | None = None,
        timeout: float | None = None,
        cache: JsonlCache | None = None,
        supports_images: bool = True,
        *,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        logprobs: bool = False,
    ):
        max_retries = int(setting("max_retries", max_retries))
        timeout, backoff_base, backoff_max = (setting(k, v) for k, v in (
            ("timeout", timeout), ("backoff_base", backoff_base), ("backoff_max", backoff_max)))
        if not model:
            raise SSUIError("OpenAIChatModel: 'model' is empty")
        if concurrency < 1:
            raise SSUIError(f"OpenAIChatModel: concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise SSUIError(f"OpenAIChatModel: max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise SSUIError(f"OpenAIChatModel: timeout must be > 0, got {timeout}")
        self.model = model
        self.base_urls = split_base_urls(base_url, f"model {model!r}")
        self.base_url = ",".join(self.base_urls)  # one server: its URL (the cache key's field)
        base_url = self.base_urls[0]  # which key rules apply (a pool never holds api.openai.com)
        self.supports_logprobs = bool(logprobs)
        self.name = (f"openai:{model}" if is_openai_endpoint(base_url) else
                     f"openai-compatible:{self.base_url}#{model}" + ("+logprobs" if logprobs else ""))
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.cache = cache
        self.supports_images = supports_images
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._secret = _Secret(resolve_api_key(api_key, api_key_env, base_url, self.name))
        self._clients: dict[tuple[int, bool], Any] = {}
        self._client_lock = threading.Lock()

    # -- the clients (one per server, created on first use; explicit base_url so OPENAI_BASE_URL is never read)
    def _get_client(self, server: int = 0, root: bool = False):
        """The client of server ``server``; ``root=True``: one whose base URL is the server's root
        (without ``/v1``), for vLLM's ``/tokenize``."""
        with self._client_lock:
            if (server, root) not in self._clients:
                import openai

                url = self.base_urls[server]
                self._clients[(server, root)] = openai.OpenAI(
                    api_key=self._secret.reveal(), base_url=url.removesuffix("/v1") if root else url,
                    timeout=self.timeout, max_retries=0,  # retries are ours: one loop for every case
                )
            return self._clients[(server, root)]

    def close(self) -> None:
        """Close the HTTP connections (the model can still be used: new clients are made)."""
        with self._client_lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r})"

    def describe(self) -> dict[str, Any]:
        d = {"name": self.name, "backend": "openai", "model": self.model, "base_url": self.base_url}
        if len(self.base_urls) > 1:
            d["servers"] = len(self.base_urls)
        if self.supports_logprobs:
            d["logprobs"] = True
        return d

    @ledger.timed("scoring")
    def logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str],
                 prefixes: Sequence[str] | None = None) -> list[list[float]]:
        """Per-token log-probabilities of each continuation after its prompt and prefix, from a
        vLLM server (``logprobs=True``; see ``models/server_scoring.py``)."""
        if not self.supports_logprobs:
            raise SSUIError(
                f"{self.name}: token log-probabilities are off for this backend; for a vLLM server add "
                "'+logprobs' to the name (openai-compatible:URL#MODEL+logprobs). Other API backends serve as agents and "
                "judges: score paths (SRPO, DPO, metrics) with a vLLM server or a transformers model.")
        from ssui_lib.models.server_scoring import score_continuations

        return score_continuations(self, prompts, continuations, prefixes)

    # -- generation
    def _cache_key(self, key_messages: list[dict[str, Any]], params: SamplingParams, prefix: str | None,
                   response_format: dict[str, Any] | None = None) -> str:
        key = {
            "format": CACHE_FORMAT, "backend": "openai", "model": self.model, "base_url": self.base_url,
            "messages": key_messages, "params": dataclasses.asdict(params), "prefix": prefix or None,
            "n": params.n,
        }
        if response_format is not None:  # absent otherwise: keys of earlier caches stay valid
            key["response_format"] = response_format
        if self.supports_logprobs:
            key["logprobs"] = True
        return cache_key(key)

    def _call(self, index: int, prompt: Prompt, params: SamplingParams, prefix: str | None,
              response_format: dict[str, Any] | None = None) -> list[Generation]:
        """One chat request with retries; TransportError (model, prompt index, cause) when all tries fail."""
        kwargs = request_kwargs(self.model, to_api_messages(prompt, self.supports_images), params, prefix,
                                response_format, logprobs=self.supports_logprobs)
        return self.with_retries(index, lambda server: parse_completion(
            self._count(self._get_client(server).chat.completions.create(**kwargs)), params.n))

    @staticmethod
    def _count(resp: Any) -> Any:
        """Tally one answered call in the ledger (calls, prompt and completion tokens)."""
        ledger.count("api_calls")
        usage = getattr(resp, "usage", None)
        for key, field in (("api_tokens_in", "prompt_tokens"), ("api_tokens_out", "completion_tokens")):
            value = getattr(usage, field, None)
            if isinstance(value, int):
                ledger.count(key, value)
        return resp

    def with_retries(self, index: int, send: Callable[[int], Any]) -> Any:
        """``send(server)`` with the retry rules: try ``t`` of request ``index`` goes to server
        ``(index + t) mod N``; TransportError (model, index, cause) when every try fails."""
        cause = "no try made"
        for attempt in range(self.max_retries + 1):
            try:
                return send((index + attempt) % len(self.base_urls))
            except Exception as exc:  # noqa: BLE001 - classified below; bugs re-raised unchanged
                verdict = classify_error(exc, self.timeout)
                if verdict is None:
                    raise
                cause, retryable = self._secret.scrub(verdict[0])[:500], verdict[1]
                wait_s = _retry_after(exc)
            # Outside the except block: no exception (which may quote the key) is chained.
            _record_fault(cause)
            if not retryable:
                _record_gave_up()
                raise TransportError(f"{self.name}: prompt {index}: {cause} (not retried)")
            if attempt < self.max_retries:
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, wait_s)
                log.warning("%s: prompt %d: %s; retry %d/%d in %.2fs",
                            self.name, index, cause, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        _record_gave_up()
        raise TransportError(f"{self.name}: prompt {index}: failed after {self.max_retries + 1} tries: {cause}")

    @ledger.timed("generation")
    def generate(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams = SamplingParams(),
        prefixes: Sequence[str | None] | None = None,
        progress: bool = False,
        response_format: dict[str, Any] | None = None,
    ) -> list[list[Generation]]:
        """``params.n`` generations per prompt, in input order (continuations of the prefixes).
        ``response_format`` asks the server for structured output (part of the cache key)."""
        prompts = list(prompts)
        if prefixes is None:
            prefixes = [None] * len(prompts)
        elif len(prefixes) != len(prompts):
            raise SSUIError(f"{self.name}: {len(prefixes)} prefixes for {len(prompts)} prompts")
        results: list[list[Generation] | None] = [None] * len(prompts)
        todo: dict[str, list[int]] = {}  # cache key -> prompt indices that share the request
        for i, (prompt, prefix) in enumerate(zip(prompts, prefixes)):
            try:
                key = self._cache_key(to_api_messages(prompt, self.supports_images, for_key=True), params, prefix,
                                      response_format)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise SSUIError(f"{self.name}: prompt {i}: malformed prompt ({e})") from None
            if self.cache is not None and key in self.cache:
                results[i] = _generations_from_cache(self.cache.get(key), f"{self.cache.path} (prompt {i})")
                ledger.count("api_cache_hits")
            else:
                todo.setdefault(key, []).append(i)
        if todo:
            self._run_requests(todo, prompts, prefixes, params, results, progress, response_format)
        return results  # type: ignore[return-value]

    def _run_requests(self, todo: dict[str, list[int]], prompts: list[Prompt], prefixes: Sequence[str | None],
                      params: SamplingParams, results: list, progress: bool,
                      response_format: dict[str, Any] | None = None) -> None:
        """Send the missing requests through a bounded pool; cache each answer as it arrives."""
        from tqdm.auto import tqdm

        def work(key: str, i: int) -> tuple[str, list[Generation]]:
            gens = self._call(i, prompts[i], params, prefixes[i], response_format)
            if self.cache is not None:
                self.cache.put(key, [dataclasses.asdict(g) for g in gens])
            return key, gens

        with tqdm(total=len(todo), desc=self.name, disable=not progress) as bar, \
                ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
            pending = {pool.submit(work, key, idx[0]) for key, idx in todo.items()}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    if fut.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise fut.exception()
                    key, gens = fut.result()
                    for i in todo[key]:
                        results[i] = [dataclasses.replace(g, extra=dict(g.extra)) for g in gens]
                    bar.update(1)
