"""Every prompt template of the book, in one place (agents, ICL, judges, exploration)."""
from __future__ import annotations

from .models.base import ImageRef, Prompt

SYSTEM = "You are a helpful assistant. You see an image (or its description) and a user request."


def user_turn(image: ImageRef, text: str) -> dict:
    """A user message carrying an image part and a text part."""
    return {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}


def zero_shot(image: ImageRef, query: str, system: str = SYSTEM) -> Prompt:
    """The plain request, as a user would send it: the image and the query, nothing else."""
    return [{"role": "system", "content": system}, user_turn(image, query)]
