"""The one model interface every backend implements (embedded, transformers LM/VLM,
OpenAI-compatible).

A *prompt* is a list of chat messages in OpenAI style::

    [{"role": "system", "content": "..."},
     {"role": "user", "content": [{"type": "image", "image": ImageRef}, {"type": "text", "text": "..."}]}]

``content`` is a string or a list of parts. An image part carries an ``ImageRef`` (a PIL image
plus its caption); text-only backends receive ``[Image: caption]`` instead ("caption mode"),
vision backends receive the pixels.

``prefix`` (optional, per prompt) is the beginning of the assistant's reply that the model must
continue — SRPO's τ1:i−1 — without an end-of-turn in between.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

from ssui_lib.data.images import ImageRef, caption_text  # noqa: F401  (part of the model interface)

Message = dict[str, Any]
Prompt = list[Message]


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # samples per prompt
    temperature: float = 0.0  # 0 = greedy
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()  # generation of a sequence ends at the first stop string (excluded)
    seed: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if self.n < 1:
            raise ValueError("n must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")


@dataclass
class Generation:
    text: str
    n_tokens: int = 0  # generated tokens (after stop-string truncation where known)
    finish_reason: str = "length"  # "stop" (end of turn or stop string) | "length"
    logprob: float | None = None  # sum of the sampled tokens' log-probabilities, if known
    extra: dict[str, Any] = field(default_factory=dict)


class ChatModel(ABC):
    """Generate for a batch of chat prompts; score continuations."""

    name: str = "model"
    supports_images: bool = False
    supports_prefix: bool = True
    trainable: bool = False
    supports_logprobs: bool = False  # logprobs(prompts, continuations, prefixes=...) is implemented

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams = SamplingParams(),
        prefixes: Sequence[str] | None = None,
        progress: bool = False,
    ) -> list[list[Generation]]:
        """Return, for each prompt, ``params.n`` generations (continuations of its prefix)."""

    def logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str],
                 prefixes: Sequence[str] | None = None) -> list[list[float]]:
        """Per-token log-probabilities of each assistant continuation given its prompt and the
        assistant text ``prefixes`` before it (prompt, image and prefix tokens masked out).
        Backends that implement it set ``supports_logprobs = True``."""
        raise NotImplementedError(f"{self.name} does not provide token log-probabilities")

    def describe(self) -> dict[str, Any]:
        """What a manifest records about this model (never a secret)."""
        return {"name": self.name}


def flatten_for_text(prompt: Prompt) -> list[dict[str, str]]:
    """Messages with every image part replaced by its caption (caption mode)."""
    out = []
    for m in prompt:
        c = m["content"]
        if isinstance(c, str):
            out.append({"role": m["role"], "content": c})
            continue
        parts = []
        for p in c:
            if p.get("type") == "image":
                parts.append(caption_text(p["image"]))
            elif p.get("type") == "text":
                parts.append(p["text"])
            else:
                raise ValueError(f"unknown content part type {p.get('type')!r}")
        out.append({"role": m["role"], "content": "\n".join(parts)})
    return out
