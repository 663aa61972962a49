"""Scoring a given continuation on a vLLM server: per-token log-probabilities of ``continuation``
after ``prompt`` + assistant ``prefix``, what forced verdicts, the log-probability judge and branch
re-scoring ask of ``ChatModel.logprobs``.

The server does the work the transformers backend does locally (``hf_lm.HFCausalChatModel.encode``):
  1. ``POST /tokenize`` (vLLM, at the server's root) renders the chat template and tokenizes it:
     with ``add_generation_prompt=True`` when there is no prefix, else with the prefix as a final
     assistant message and ``continue_final_message=True`` (the same rendering generation uses);
     the continuation is tokenized on its own (``add_special_tokens=False``), as ``encode`` does;
  2. ``POST /v1/completions`` with the raw prompt as token ids (context ⊕ continuation),
     ``echo=True``, ``logprobs=0`` and ``max_tokens=1``: the answer's ``logprobs.token_logprobs``
     holds one value per prompt token (the first is None), then the one generated token's;
  3. the continuation's slice of those values is its scores.
Every request runs through the model's retry loop (and server rotation); answers are cached in the
model's response cache, keyed by model, servers, messages, prefix and continuation.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import cache_key
from ssui_lib.models.base import Prompt

SCORE_FORMAT = 1  # bump if the scoring requests or their reading change


def tokenize_body(model: str, messages: list[dict[str, Any]], prefix: str | None) -> dict[str, Any]:
    """The ``/tokenize`` request for a prompt (and an assistant prefix to continue)."""
    if prefix:
        return {"model": model, "messages": messages + [{"role": "assistant", "content": prefix}],
                "add_generation_prompt": False, "continue_final_message": True, "add_special_tokens": False}
    return {"model": model, "messages": messages, "add_generation_prompt": True, "add_special_tokens": False}


def text_tokenize_body(model: str, text: str) -> dict[str, Any]:
    """The ``/tokenize`` request for a bare continuation (no special tokens)."""
    return {"model": model, "prompt": text, "add_special_tokens": False}


def read_tokens(answer: Any, what: str) -> list[int]:
    """The token ids of a ``/tokenize`` answer; MalformedResponse when it has none."""
    from ssui_lib.models.openai_compat import MalformedResponse

    ids = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise MalformedResponse(f"malformed /tokenize answer for {what}: no 'tokens' list of integers")
    return ids


def echo_request(model: str, ids: list[int]) -> dict[str, Any]:
    """Keyword arguments for ``client.completions.create``: score the token ids ``ids``."""
    return {"model": model, "prompt": ids, "max_tokens": 1, "echo": True, "logprobs": 0, "temperature": 0.0}


def read_echo_logprobs(resp: Any, n_prompt: int, n_cont: int) -> list[float]:
    """The last ``n_cont`` prompt-token log-probabilities of an echoed completion of ``n_prompt``
    prompt tokens; MalformedResponse (retried) when the answer does not hold them."""
    from ssui_lib.models.openai_compat import MalformedResponse

    try:
        lps = resp.choices[0].logprobs.token_logprobs
    except (AttributeError, IndexError, TypeError):
        raise MalformedResponse("malformed completions answer: no choices[0].logprobs.token_logprobs "
                                "(does the server support echo with logprobs?)") from None
    if not isinstance(lps, list) or len(lps) < n_prompt:
        raise MalformedResponse(f"malformed completions answer: {len(lps) if isinstance(lps, list) else 0} "
                                f"token log-probabilities for a prompt of {n_prompt} tokens")
    out = lps[n_prompt - n_cont: n_prompt]
    if any(not isinstance(v, (int, float)) for v in out):
        raise MalformedResponse("malformed completions answer: a continuation token without a log-probability")
    return [float(v) for v in out]


def score_continuations(model, prompts: Sequence[Prompt], continuations: Sequence[str],
                        prefixes: Sequence[str] | None = None) -> list[list[float]]:
    """Per-token log-probabilities of each continuation (see the module doc); ``model`` is an
    :class:`~ssui_lib.models.openai_compat.OpenAIChatModel` with ``logprobs=True``."""
    from ssui_lib.models.openai_compat import to_api_messages

    if len(prompts) != len(continuations):
        raise SSUIError(f"{model.name}: logprobs: {len(prompts)} prompts for {len(continuations)} continuations")
    prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
    if len(prefixes) != len(prompts):
        raise SSUIError(f"{model.name}: logprobs: {len(prefixes)} prefixes for {len(prompts)} prompts")
    if any(not c for c in continuations):
        raise SSUIError(f"{model.name}: logprobs: an empty continuation (nothing to score)")
    rows = []
    for i, (p, c, x) in enumerate(zip(prompts, continuations, prefixes)):
        try:
            msgs = to_api_messages(p, model.supports_images)
            key_msgs = to_api_messages(p, model.supports_images, for_key=True)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SSUIError(f"{model.name}: prompt {i}: malformed prompt ({e})") from None
        key = cache_key({"format": SCORE_FORMAT, "kind": "logprobs", "model": model.model, "base_url": model.base_url,
                         "messages": key_msgs, "prefix": x or None, "continuation": c})
        rows.append((i, msgs, x or None, c, key))
    cache = model.cache
    out: list[list[float] | None] = [None] * len(rows)
    todo = []
    for r in rows:
        hit = cache.get(r[4]) if cache is not None and r[4] in cache else None
        if isinstance(hit, list) and all(isinstance(v, (int, float)) for v in hit):
            out[r[0]] = [float(v) for v in hit]
            ledger.count("api_cache_hits")
        else:
            todo.append(r)

    def one(r) -> tuple[int, list[float]]:
        i, msgs, prefix, cont, key = r
        ctx = model.with_retries(i, lambda s: read_tokens(model._get_client(s, root=True).post(
            "/tokenize", cast_to=object, body=tokenize_body(model.model, msgs, prefix)), f"prompt {i}"))
        ids = model.with_retries(i, lambda s: read_tokens(model._get_client(s, root=True).post(
            "/tokenize", cast_to=object, body=text_tokenize_body(model.model, cont)), f"continuation {i}"))
        if not ids:
            raise SSUIError(f"{model.name}: continuation {i} tokenizes to nothing: nothing to score")
        full = ctx + ids
        lps = model.with_retries(i, lambda s: read_echo_logprobs(model._count(
            model._get_client(s).completions.create(**echo_request(model.model, full))), len(full), len(ids)))
        if cache is not None:
            cache.put(key, lps)
        return i, lps

    if todo:
        with ThreadPoolExecutor(max_workers=min(model.concurrency, len(todo))) as pool:
            for i, lps in pool.map(one, todo):
                out[i] = lps
    return out  # type: ignore[return-value]
