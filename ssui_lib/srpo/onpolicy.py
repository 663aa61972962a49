"""On-policy prefixes for SRPO exploration (Eq. 2 and 4 read literally).

By default exploration branches the reference path τ* itself (off-policy, see
:mod:`ssui_lib.srpo.explore`). Eq. 2 instead samples a path τ ~ B(· | Q, D_c, τ*) — the model writes
its own six steps with the reference in context — and Eq. 4 branches *that* path: the prefix of
step i is the model's own τ_1:i−1. This module holds the two pieces that option needs:

* :func:`guided_prompt` — D_c + Q with τ* shown in the question's turn (the prompt the path is
  sampled from; the branches themselves continue the plain D_c + Q prompt, as in Eq. 4);
* :func:`sampled_prefix` — τ_1:i−1 of a sampled path followed by the header of step i, or None
  when the path does not write steps 1..i−1 in order (that branch point is skipped and counted).
"""
from __future__ import annotations

import copy

from ssui_lib.core.chain import split_steps, step_header
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import STEPS
from ssui_lib.models.base import Prompt

PREFIXES = ("reference", "sampled")
GUIDE = ("\n\nA reference reasoning path for this question, for guidance:\n{reference}\n\n"
         "Now write your own reasoning path in the same six steps, then the final verdict and the answer.")
PATH_STOP = ("\nFinal verdict:",)  # the branches need the sampled steps only


def guided_prompt(prompt: Prompt, reference: str) -> Prompt:
    """A copy of ``prompt`` (D_c + Q) whose last user turn also shows the reference path τ*."""
    if not prompt or prompt[-1].get("role") != "user":
        raise SSUIError("guided_prompt: the prompt must end with the question's user turn")
    if not reference.strip():
        raise SSUIError("guided_prompt: empty reference path")
    out = copy.deepcopy(prompt)
    content = out[-1]["content"]
    text = GUIDE.format(reference=reference.strip())
    if isinstance(content, str):
        out[-1]["content"] = content + text
    else:
        parts = [p for p in content if p.get("type") == "text"]
        if not parts:
            content.append({"type": "text", "text": text.lstrip()})
        else:
            parts[-1]["text"] = parts[-1]["text"] + text
    return out


def sampled_prefix(path: str, i: int, with_header: bool = True, *, complete: bool = True) -> str | None:
    """τ_1:i−1 of a sampled path for branch point i (1..6): its first i−1 step blocks, each ending
    with a newline, then the header of step i; None when the path lacks one of steps 1..i−1 (or
    writes them out of order). Step 1's prefix is the header alone, as for the reference path.
    ``complete=False`` (the path was cut by the token limit): its last step block is unfinished
    and is not used."""
    if not 1 <= i <= len(STEPS):
        raise SSUIError(f"sampled_prefix: step {i}: expected 1..{len(STEPS)} (the verdict branch uses the reference)")
    segs = [s for s in split_steps(path) if not s.lstrip(" *").lower().startswith("final verdict")]
    if not complete:
        segs = segs[:-1]
    if len(segs) < i - 1:
        return None
    out = []
    for k, seg in enumerate(segs[:i - 1], 1):
        if not seg.lstrip(" *").lower().startswith(f"step {k}"):
            return None
        out.append(seg if seg.endswith("\n") else seg + "\n")
    return "".join(out) + (step_header(i) if with_header else "")
