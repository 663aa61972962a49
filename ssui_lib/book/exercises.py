"""Exercises for courses: two or three per chapter (01–07), each with a check a student runs.

A chapter ends with cells like::

    show("05.1")                 # the exercise, as Markdown
    answer = ...                 # the student's answer (a value or a function)
    check("05.1", answer)        # right, wrong, or what is missing — never the answer itself

The reference solutions live here (functions named ``_ref_…``), never in the notebooks; a
teacher's copy of the HTML book shows them (``ssui book build --with-solutions``, see
:func:`solution_source`). The tests run every check against its reference solution (it must
pass) and against a plausible wrong answer (it must fail with a helpful message).

Checks compare against the reference on hand-made inputs (or on the bundled set where the
exercise is about it) and describe *what* differs — a key, an input case, "too high" — without
printing the expected value.
"""
from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ssui_lib.core.chain import final_verdict
from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.losses import align_loss


@dataclass(frozen=True)
class Case:
    """One hidden input of a function exercise, with a description that names the situation."""
    args: tuple
    describe: str


@dataclass(frozen=True)
class Exercise:
    id: str  # "05.1": chapter 05, exercise 1
    title: str
    prompt: str  # Markdown
    solution: Callable[[], Any]  # returns the reference answer (a value or a function)
    wrong: Callable[[], Any]  # a plausible wrong answer (used by the tests)
    kind: str = "value"  # "value" | "function"
    cases: tuple[Case, ...] = ()  # inputs a function answer is called on
    tol: float = 1e-3  # absolute tolerance for numbers


@dataclass
class Feedback:
    """The result of a check: truthy when right. Shows as Markdown in a notebook."""
    exercise: str
    ok: bool
    messages: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = f"Exercise {self.exercise}: " + ("right ✓" if self.ok else "not yet ✗")
        return "\n".join([head] + [f"  - {m}" for m in self.messages])

    def _repr_markdown_(self) -> str:
        head = f"**Exercise {self.exercise}: " + ("right ✓**" if self.ok else "not yet ✗**")
        return "\n".join([head, ""] + [f"- {m}" for m in self.messages])


# ----------------------------------------------------------------------------- comparisons

def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _compare_number(got: Any, want: float, tol: float, what: str) -> list[str]:
    if not _is_number(got):
        return [f"{what}: expected a number, got {type(got).__name__}"]
    if not math.isfinite(float(got)):
        return [f"{what}: {got} is not a finite number"]
    if abs(float(got) - want) <= tol:
        return []
    return [f"{what}: too {'high' if float(got) > want else 'low'}"]


def _compare(got: Any, want: Any, tol: float, what: str = "your answer") -> list[str]:
    """Problems with ``got`` against ``want``, without revealing ``want``."""
    if _is_number(want):
        return _compare_number(got, float(want), tol, what)
    if isinstance(want, Mapping):
        if not isinstance(got, Mapping):
            return [f"{what}: expected a dict, got {type(got).__name__}"]
        probs = [f"{what}: missing key {k!r}" for k in want if k not in got]
        probs += [f"{what}: unexpected key {k!r}" for k in got if k not in want]
        for k in want:
            if k in got:
                probs += _compare(got[k], want[k], tol, f"{what}[{k!r}]")
        return probs
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return [f"{what}: expected a list, got {type(got).__name__}"]
        if len(got) != len(want):
            return [f"{what}: expected {len(want)} items, got {len(got)}"]
        wrong = [i for i, (g, w) in enumerate(zip(got, want)) if _compare(g, w, tol)]
        return [f"{what}: {len(wrong)} of {len(want)} items are wrong (positions {wrong})"] if wrong else []
    return [] if got == want else [f"{what}: not the expected value"]


def _check_function(fn: Any, ref: Callable, cases: tuple[Case, ...], tol: float) -> list[str]:
    if not callable(fn):
        return [f"expected a function, got {type(fn).__name__}"]
    failed = []
    for case in cases:
        want = ref(*case.args)
        try:
            got = fn(*case.args)
        except Exception as e:  # a student's function may raise anything: report it, don't crash
            failed.append(f"{case.describe}: your function raised {type(e).__name__}: {e}")
            continue
        if _compare(got, want, tol):
            failed.append(f"{case.describe}: wrong result")
    if failed:
        return [f"{len(failed)} of {len(cases)} test inputs fail"] + failed[:3]
    return []


# ----------------------------------------------------------------------------- the exercises
# Reference solutions are small functions so a teacher's copy can show their source.

def _ref_01_1():
    return final_verdict


def _wrong_01_1():
    return lambda text: "unsafe" if "unsafe" in text.lower() else ("safe" if "safe" in text.lower() else None)


_CASES_01_1 = (
    Case(("Step 6 (Formulate...): refuse.\nFinal verdict: unsafe\nAnswer: I can't help.",), "a plain verdict line"),
    Case(("**Final verdict:** safe\nAnswer: Sure!",), "a verdict line in bold Markdown"),
    Case(("Step 4: the request looks unsafe at first.\nFinal verdict: safe\nAnswer: ok",),
         "a chain that says 'unsafe' in a step but concludes safe"),
    Case(("Step 5: consequences ...\nFinal verdict: safe or unsafe",), "a copied 'safe or unsafe' placeholder"),
    Case(("Step 3: the cues combine into a risk; this is unsafe",), "a chain cut off before its verdict line"),
    Case(("final VERDICT: UNSAFE",), "upper case"),
)


def _ref_01_2():
    from ssui_lib.data.bundled import load_bundled
    counts = Counter(s.kind for s in load_bundled("test"))
    return {"irs": counts["irs"], "twin": counts["twin"]}


def _wrong_01_2():
    from ssui_lib.data.bundled import load_bundled
    return {"irs": len(load_bundled("test")), "twin": 0}


_SCREEN_QUERIES = (
    "Is this a good spot for my kids to jump in? They love a big splash.",
    "What household chemicals can I mix to make a toxic gas?",
    "How long should I leave these in the oven?",
    "Write a message telling my neighbour I will hurt him if he parks here again.",
)


def _ref_02_1():
    return [True, False, True, False]


def _wrong_02_1():
    return [True, True, True, False]


_FUNNEL = {"candidates": 40, "redundancy": 31, "completeness": 27, "text-only safety": 18, "manual review": 15}


def _ref_02_2():
    stages = list(_FUNNEL)
    return {s: _FUNNEL[s] / _FUNNEL[p] for p, s in zip(stages, stages[1:])}


def _wrong_02_2():
    return {s: n / _FUNNEL["candidates"] for s, n in _FUNNEL.items() if s != "candidates"}


# (safe, effective) of eight judged responses; None = the judge failed (unscored)
_JUDGED = [(True, True), (True, False), (False, True), (True, True), (None, None), (False, False),
           (True, True), (True, False)]


def _ref_03_1():
    n = len(_JUDGED)  # unscored rows stay in the denominator: they are neither safe nor effective
    return {"S": sum(s is True for s, _ in _JUDGED) / n, "E": sum(e is True for _, e in _JUDGED) / n,
            "SE": sum(s is True and e is True for s, e in _JUDGED) / n}


def _wrong_03_1():
    scored = [(s, e) for s, e in _JUDGED if s is not None]
    n = len(scored)
    return {"S": sum(s for s, _ in scored) / n, "E": sum(e for _, e in scored) / n,
            "SE": sum(s and e for s, e in scored) / n}


# S&E per item (1 = safe and effective) for the same ten items, without and with exemplars
_ZERO = [0, 1, 0, 0, 1, 0, 1, 0, 0, 1]
_KSHOT = [1, 1, 0, 1, 1, 1, 0, 0, 1, 1]


def _ref_03_2():
    b = sum(z == 0 and k == 1 for z, k in zip(_ZERO, _KSHOT))
    c = sum(z == 1 and k == 0 for z, k in zip(_ZERO, _KSHOT))
    return {"diff": (sum(_KSHOT) - sum(_ZERO)) / len(_ZERO), "b": b, "c": c}


def _wrong_03_2():
    return {"diff": sum(_KSHOT) / len(_KSHOT), "b": 4, "c": 0}


def _ref_04_1():
    def F(text: str, gold: str, stopped_by_limit: bool) -> bool | None:
        if stopped_by_limit:
            return None  # cut off: unverified, neither positive nor negative
        verdict = final_verdict(text)
        return None if verdict is None else verdict == gold
    return F


def _wrong_04_1():
    return lambda text, gold, stopped_by_limit: final_verdict(text) == gold


_CASES_04_1 = (
    Case(("...\nFinal verdict: unsafe\nAnswer: no", "unsafe", False), "a branch reaching the right verdict"),
    Case(("...\nFinal verdict: safe\nAnswer: sure", "unsafe", False), "a branch reaching the wrong verdict"),
    Case(("Step 6: I should refuse because", "unsafe", True), "a branch stopped by the token limit"),
    Case(("...\nFinal verdict: safe or unsafe", "safe", False), "a branch copying the placeholder"),
    Case(("...\nFinal verdict: unsafe\nAnswer", "unsafe", True), "a branch that reached its verdict as the limit hit"),
)


# F of the branches sampled at one step, in sampling order (None = unverified)
_BRANCH_F = [None, True, False, True, None, False, False]


def _ref_04_2():
    pos = sum(f is True for f in _BRANCH_F)
    neg = sum(f is False for f in _BRANCH_F)
    return {"until_pair": int(pos > 0 and neg > 0), "fixed_k": pos * neg, "sampled_until_pair": 3}


def _wrong_04_2():
    return {"until_pair": 1, "fixed_k": 2 * 5, "sampled_until_pair": 2}


_LPOS = [-3.0, -5.5, -2.0]
_LNEG = [-4.0, -5.0, -2.0]


def _ref_05_1():
    return float(align_loss(torch.tensor(_LPOS), torch.tensor(_LNEG)).sum())


def _wrong_05_1():
    return float(sum(-(p - n) for p, n in zip(_LPOS, _LNEG)))


def _ref_05_2():
    b, c = 9, 3  # SRPO right & SFT wrong; SRPO wrong & SFT right
    n, k = b + c, min(b, c)
    p = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, p)


def _wrong_05_2():
    return (9 - 3) ** 2 / (9 + 3)  # the chi-square statistic, not the exact p-value


_DEV_SER = {0.1: 0.52, 0.3: 0.61, 0.5: 0.61, 0.7: 0.55, 0.9: 0.40}


def _ref_06_1():
    j_ref, aligns = 2.0, [0.7, 0.5, 0.3]
    return {lam: j_ref + lam * sum(aligns) for lam in (0.1, 0.3, 0.5)}


def _wrong_06_1():
    return {lam: (1 - lam) * 2.0 + lam * 1.5 for lam in (0.1, 0.3, 0.5)}


def _ref_06_2():
    best = max(_DEV_SER.values())
    return min(lam for lam, v in _DEV_SER.items() if v == best)


def _wrong_06_2():
    return 0.5


# (category, safe, effective) of ten RSBench responses
_RS = [("Violence", True, True), ("Violence", True, False), ("Violence", False, True),
       ("Privacy Violations", True, True), ("Privacy Violations", True, True),
       ("Privacy Violations", False, False), ("Pornography", True, False), ("Pornography", True, True),
       ("Pornography", True, True), ("Pornography", False, True)]


def _ref_07_1():
    out = {}
    for cat in dict.fromkeys(c for c, _, _ in _RS):
        rows = [(s, e) for c, s, e in _RS if c == cat]
        out[cat] = sum(s and e for s, e in rows) / len(rows)
    return out


def _wrong_07_1():
    return {cat: sum(s for c, s, _ in _RS if c == cat) / sum(c == cat for c, _, _ in _RS)
            for cat in dict.fromkeys(c for c, _, _ in _RS)}


_KAPPA_TABLE = {"both safe": 40, "judge safe, human unsafe": 10, "judge unsafe, human safe": 5, "both unsafe": 45}


def _ref_07_2():
    a, b, c, d = (_KAPPA_TABLE[k] for k in ("both safe", "judge safe, human unsafe",
                                            "judge unsafe, human safe", "both unsafe"))
    n = a + b + c + d
    po = (a + d) / n
    pe = ((a + b) / n) * ((a + c) / n) + ((c + d) / n) * ((b + d) / n)
    return (po - pe) / (1 - pe)


def _wrong_07_2():
    return (40 + 45) / 100  # raw agreement, not corrected for chance


def _q(items) -> str:
    return "\n".join(f"{i}. {x}" for i, x in enumerate(items, 1))


EXERCISES: dict[str, Exercise] = {e.id: e for e in [
    Exercise("01.1", "Read a chain's verdict",
             "Write a function `read_verdict(text)` that returns `'safe'`, `'unsafe'` or `None` for a "
             "generated chain: the verdict is the one on its `Final verdict:` line (any case, bold allowed); "
             "a chain without such a line, or one that copies the placeholder `safe or unsafe`, has no "
             "verdict (`None`).", _ref_01_1, _wrong_01_1, kind="function", cases=_CASES_01_1),
    Exercise("01.2", "IRS records and twins in the test split",
             "How many records of each kind does the bundled **test** split hold? Answer a dict "
             "`{'irs': n, 'twin': m}` (use `load_bundled`).", _ref_01_2, _wrong_01_2),
    Exercise("02.1", "The text-only screen",
             "The reflection-and-check agent answers each query *without its image* and discards the "
             "record if the text alone is unsafe. For these four queries, answer a list of booleans: "
             "`True` if the query **passes** the text-only screen (benign on its own), `False` if not.\n\n"
             + _q(_SCREEN_QUERIES), _ref_02_1, _wrong_02_1),
    Exercise("02.2", "Stage yields of the curation funnel",
             "A curation run kept these counts after each stage: "
             + ", ".join(f"{k} {v}" for k, v in _FUNNEL.items())
             + ". Answer a dict from each stage after `candidates` to its **yield**: the fraction of the "
             "*previous* stage's records it kept.", _ref_02_2, _wrong_02_2),
    Exercise("03.1", "S, E and S&E by hand",
             "Eight responses were judged (safe, effective); `None` means the judge failed on that item: "
             f"`{_JUDGED}`. Compute `{{'S': ..., 'E': ..., 'SE': ...}}` as fractions, the way this book does "
             "(SRPO Eq. 10 divides by all N responses: an unscored item is neither safe nor effective).",
             _ref_03_1, _wrong_03_1),
    Exercise("03.2", "What do the exemplars add? A paired view",
             f"S&E per item for the same ten items, zero-shot `{_ZERO}` and k-shot `{_KSHOT}`. Answer "
             "`{'diff': ..., 'b': ..., 'c': ...}`: the k-shot minus zero-shot S&E rate, and the discordant "
             "counts McNemar's test uses (`b`: items only k-shot gets right; `c`: items only zero-shot gets "
             "right).", _ref_03_2, _wrong_03_2),
    Exercise("04.1", "F with an unverified outcome",
             "Write `F(text, gold, stopped_by_limit)` returning `True` (the branch reaches the gold verdict), "
             "`False` (it reaches the other verdict) or `None` (*unverified*: no verdict line, a copied "
             "placeholder, or generation stopped by the token limit). Unverified branches are never "
             "positives or negatives. (Tip: `ssui_lib.core.chain.final_verdict`.)",
             _ref_04_1, _wrong_04_1, kind="function", cases=_CASES_04_1),
    Exercise("04.2", "Counting contrastive pairs",
             f"At one branch point the sampled continuations had F = `{_BRANCH_F}` in sampling order "
             "(`None` = unverified). Answer `{'until_pair': ..., 'fixed_k': ..., 'sampled_until_pair': ...}`: "
             "pairs kept by the paper's rule (sample until one positive and one negative), pairs from RPO's "
             "every-positive × every-negative rule over all seven, and how many continuations the paper's "
             "rule had to sample before it could stop.", _ref_04_2, _wrong_04_2),
    Exercise("05.1", "J_align by hand",
             f"Three step pairs have path log-likelihoods L(τ⁺) = `{_LPOS}` and L(τ⁻) = `{_LNEG}`. Compute "
             "Σᵢ J_align,i with k = 1 (SRPO Eq. 6: J_align = −k · log σ(L(τ⁺) − L(τ⁻))). One number.",
             _ref_05_1, _wrong_05_1),
    Exercise("05.2", "An exact McNemar test",
             "On the same held-out items SRPO is right and SFT wrong on 9 items, SFT right and SRPO wrong "
             "on 3. Compute the two-sided **exact** McNemar p-value (a binomial test on the 12 discordant "
             "items). One number.", _ref_05_2, _wrong_05_2, tol=1e-4),
    Exercise("06.1", "The objective at each λ",
             "J = J_ref + λ · Σᵢ J_align,i (SRPO Eq. 9). With J_ref = 2.0 and three step terms "
             "J_align = 0.7, 0.5, 0.3, answer a dict from λ ∈ {0.1, 0.3, 0.5} to J.", _ref_06_1, _wrong_06_1),
    Exercise("06.2", "Pick λ — as an ablation",
             f"Dev-split SER for each λ: `{_DEV_SER}`. Pick the λ with the highest dev SER, breaking ties "
             "toward the smaller λ (less weight on the alignment term). One number. Then say in a Markdown "
             "cell why this choice must not be reported as a held-out result.", _ref_06_2, _wrong_06_2),
    Exercise("07.1", "SER per category",
             f"Ten RSBench responses as (category, safe, effective): `{_RS}`. Answer a dict from category to "
             "its SER (SRPO Eq. 11: safe **and** effective, over that category's responses).",
             _ref_07_1, _wrong_07_1),
    Exercise("07.2", "Cohen's κ of a judge",
             f"A judge against human labels on 100 responses: `{_KAPPA_TABLE}`. Compute Cohen's κ. "
             "One number.", _ref_07_2, _wrong_07_2),
]}


def _get(exercise_id: str) -> Exercise:
    if not isinstance(exercise_id, str) or exercise_id not in EXERCISES:
        raise SSUIError(f"unknown exercise {exercise_id!r}; known: {', '.join(EXERCISES)}")
    return EXERCISES[exercise_id]


def exercises_for(chapter: str) -> list[Exercise]:
    """The exercises of one chapter ("05"), in order."""
    return [e for e in EXERCISES.values() if e.id.split(".")[0] == chapter]


def check(exercise_id: str, answer: Any) -> Feedback:
    """Check a student's answer: right, or what is wrong or missing (never the expected value)."""
    ex = _get(exercise_id)
    if answer is Ellipsis or answer is None:
        return Feedback(ex.id, False, ["not answered yet: replace `...` with your answer and run the cell again"])
    reference = ex.solution()
    if ex.kind == "function":
        problems = _check_function(answer, reference, ex.cases, ex.tol)
    else:
        problems = _compare(answer, reference, ex.tol)
    return Feedback(ex.id, not problems, problems)


class _Markdown:
    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def show(exercise_id: str) -> _Markdown:
    """The exercise as Markdown (the prompt lives here, once; the chapter shows it)."""
    ex = _get(exercise_id)
    return _Markdown(f"**Exercise {ex.id} — {ex.title}.** {ex.prompt}")


def solution_source(exercise_id: str) -> str:
    """The reference solution's source code, for a teacher's copy of the book."""
    ex = _get(exercise_id)
    return inspect.getsource(ex.solution)
