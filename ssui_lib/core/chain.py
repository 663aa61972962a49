"""SSUI's six-step explainable chain as text: render a reference path, split a generated one
into its steps, and read its final verdict.

The text form (what models are shown and asked to produce)::

    Step 1 (Analyze visual context): ...
    ...
    Step 6 (Formulate a safety-aligned response strategy): ...
    Final verdict: unsafe
    Answer: ...

The state sequence of SRPO Eq. 1 is v0 = the question, v1..v6 = the steps, and v_T = the
final verdict + answer, so F(τ) (Eq. 3) can check the verdict against the ground truth.
"""
from __future__ import annotations

import re

from ssui_lib.core.schema import STEPS, Sample

# Every "Step k" / verdict pattern of the library lives here. _STEP_RE: the start of a step line
# as this library writes it; _STEP_HEAD_RE: a model's step header, tolerant of markdown, a missing
# name, or "."/"-" after the number; _STEP_END_RE: the line that ends a model's chain.
_STEP_RE = re.compile(r"^\s*\**\s*Step\s+([1-6])\b[^\n:]*:?", re.IGNORECASE | re.MULTILINE)
_STEP_HEAD_RE = re.compile(r"^[ \t>*_#\-]*step\s*([1-6])\s*(?:\([^)\n]*\))?[ \t*_]*[:.\-–][ \t*_]*",
                           re.IGNORECASE | re.MULTILINE)
_STEP_END_RE = re.compile(r"^[ \t>*_#\-]*(final verdict|answer)\s*:", re.IGNORECASE | re.MULTILINE)
# A copied placeholder such as "Final verdict: safe or unsafe" / "unsafe/safe" is no verdict.
_VERDICT_RE = re.compile(r"^\s*\**\s*Final verdict\s*\**\s*:\s*\**\s*(unsafe|safe)\b(?!\s*(?:or|/|\|)\s*(?:un)?safe)",
                         re.IGNORECASE | re.MULTILINE)
_ANSWER_RE = re.compile(r"^\s*\**\s*Answer\s*\**\s*:", re.IGNORECASE | re.MULTILINE)


def step_header(i: int) -> str:
    """'Step i (Name):' for i in 1..6."""
    return f"Step {i} ({STEPS[i - 1][1]}):"


def render_steps(reasoning: dict[str, str]) -> list[str]:
    """The six steps as lines, in order."""
    return [f"{step_header(i)} {reasoning[key].strip()}" for i, (key, _) in enumerate(STEPS, 1)]


def render_final(verdict: str, answer: str) -> str:
    return f"Final verdict: {verdict}\nAnswer: {answer.strip()}"


def render_chain(sample: Sample) -> str:
    """The reference reasoning path τ* of a sample: six steps, final verdict, answer."""
    return "\n".join(render_steps(sample.reasoning)) + "\n" + render_final(sample.verdict, sample.safe_reply)


def split_steps(text: str) -> list[str]:
    """Split a reasoning path into segments: each 'Step k' block, then the final block
    (verdict + answer) if present. Text before Step 1 is dropped. Every segment keeps its
    trailing newline so that ''.join(segments) reproduces the path from Step 1 on."""
    marks = [m.start() for m in _STEP_RE.finditer(text)]
    final = _VERDICT_RE.search(text)
    if final is not None:
        marks = [m for m in marks if m < final.start()] + [final.start()]
    if not marks:
        return [text] if text.strip() else []
    segs = []
    for a, b in zip(marks, marks[1:] + [len(text)]):
        segs.append(text[a:b])
    return segs


def final_verdict(text: str) -> str | None:
    """'unsafe' / 'safe' from the path's *last* 'Final verdict:' line, or None if absent."""
    found = _VERDICT_RE.findall(text)
    return found[-1].lower() if found else None


def final_answer(text: str) -> str:
    """The text after the last 'Answer:' (or the whole text if the path has none)."""
    ms = list(_ANSWER_RE.finditer(text))
    return text[ms[-1].end():].strip() if ms else text.strip()


def has_chain(text: str) -> bool:
    """True if the text contains a step line ("Step k …") or a "Final verdict:" line."""
    return bool(_STEP_RE.search(text)) or final_verdict(text) is not None


def answer_text(text: str) -> str:
    """What is judged in "response" mode: the final answer of a chain, else the whole text."""
    return final_answer(text) if has_chain(text) else text


def clean_text(text: str) -> str:
    """One line of a model's field: markdown emphasis and quotes off, whitespace collapsed."""
    return " ".join(text.replace("**", " ").replace("__", " ").split()).strip(" \"'`")


def parse_reasoning_output(text: str, min_words: int = 3) -> tuple[dict[str, str] | None, str]:
    """Parse the six-step chain ('Step k (Name): …', tolerant of markdown, a missing name, or '.'/'-'
    after the number). Returns ({step key: text}, "") or (None, why). The first occurrence of each
    step counts; a 'Final verdict:'/'Answer:' line ends the chain; every step needs ``min_words``."""
    if not isinstance(text, str) or not text.strip():
        return None, "empty output"
    end = _STEP_END_RE.search(text)
    body = text[: end.start()] if end else text
    ms = list(_STEP_HEAD_RE.finditer(body))
    steps: dict[int, str] = {}
    for m, nxt in zip(ms, ms[1:] + [None]):
        steps.setdefault(int(m.group(1)), clean_text(body[m.end(): nxt.start() if nxt else len(body)]))
    missing = [str(i) for i in range(1, 7) if i not in steps]
    if missing:
        return None, f"missing step(s) {', '.join(missing)} of 6"
    short = [str(i) for i in range(1, 7) if len(steps[i].split()) < min_words]
    if short:
        return None, f"step(s) {', '.join(short)} empty or shorter than {min_words} words"
    return {key: steps[i] for i, (key, _) in enumerate(STEPS, 1)}, ""
