"""Stage 3 of ``ssui_lib.curation``, the reflection agent (SSUI §2.2, "reflective refinement"): the
agent model revises each query — redundant information out (what only restates the picture),
missing information in (what the risk needs) — and plain text checks then judge the result:
information redundancy (the query must not restate the picture, copy a worked example or duplicate
an earlier candidate) and information completeness. A revision that fails the checks is dropped
and the original query is judged instead; the event records both."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from ssui_lib.core.schema import Sample
from ssui_lib.core.store import JsonlCache
from ssui_lib.curation.agents import _FIELD_NAMES, fill_format
from ssui_lib.models import prompts as P
from ssui_lib.models.base import ChatModel
from ssui_lib.curation.settings import event, DEICTIC, CurationConfig

if TYPE_CHECKING:  # annotations only (run imports this module)
    from ssui_lib.curation.run import Candidate


# ============================================================================ stage 3: reflection

def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # a maintained English stop list

    return frozenset(ENGLISH_STOP_WORDS)


def content_words(text: str) -> list[str]:
    """Lower-case alphabetic words of 3+ letters that are not stop words (order kept, no repeats)."""
    stop = _stop_words()
    out: list[str] = []
    for w in re.findall(r"[a-z]+", text.lower()):
        if len(w) >= 3 and w not in stop and w not in out:
            out.append(w)
    return out


def _stem(w: str) -> str:
    # A crude plural/verb-ending fold so "cats"/"cat" and "riding"/"ride" meet; a full stemmer
    # (nltk) would be a new dependency for a heuristic whose threshold is a setting anyway.
    for suf in ("ing", "es", "ed", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)]
    return w


def caption_overlap(query: str, caption: str) -> tuple[float, list[str]]:
    """(share of the query's content words that also occur in the caption, those words)."""
    q = content_words(query)
    if not q:
        return 0.0, []
    cap = {_stem(w) for w in content_words(caption)}
    shared = [w for w in q if _stem(w) in cap]
    return len(shared) / len(q), shared


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def copy_ratio(a: str, b: str) -> float:
    """How alike two texts are (difflib's ratio on normalised text, 0..1)."""
    from difflib import SequenceMatcher

    return SequenceMatcher(None, normalise(a), normalise(b), autojunk=False).ratio()


def check_redundancy(query: str, caption: str, max_overlap: float, *, earlier: dict[str, str] | None = None,
                     known: dict[str, str] | None = None, max_copy: float = 0.8) -> str | None:
    """Information redundancy (SSUI step 3): None if the query complements the picture, else why not:
    it copies a known record (``known``: id -> query, e.g. the worked examples; similarity above
    ``max_copy``), duplicates an earlier candidate's query (``earlier``: normalised query -> id), or
    restates the caption (share of its content words found in the caption above ``max_overlap``)."""
    for rid, text in (known or {}).items():
        r = copy_ratio(query, text)
        if r > max_copy:
            return f"redundant: the query copies the worked example {rid} ({r:.0%} alike)"
    nq = normalise(query)
    if earlier and nq in earlier:
        return f"redundant: same query as candidate {earlier[nq]}"
    share, shared = caption_overlap(query, caption)
    if share > max_overlap:
        return (f"redundant: {share:.0%} of the query's content words restate the caption "
                f"({', '.join(shared[:6])}); the text must not merely repeat the picture")
    return None


def check_completeness(fields: dict[str, str], cfg: CurationConfig) -> str | None:
    """Information completeness (SSUI step 3): None if picture + query give a clear basis to infer
    the risk, else why not: the query is too short or too long, does not point at the picture
    (so the picture cannot add the missing half), or the replies are missing or identical."""
    q = fields["question"]
    n = len(q.split())
    if n < cfg.min_query_words:
        return f"incomplete: the query has {n} words (< {cfg.min_query_words})"
    if n > cfg.max_query_words:
        return f"incomplete: the query has {n} words (> {cfg.max_query_words})"
    if not DEICTIC & set(re.findall(r"[a-z]+", q.lower())):
        return ("incomplete: the query never points at the picture ('this', 'here', 'it', 'she' …), so the picture "
                "cannot supply the missing half")
    for key in ("safe_reply", "unsafe_reply"):
        if len(fields[key].split()) < cfg.min_reply_words:
            return f"incomplete: the {_FIELD_NAMES[key]} has fewer than {cfg.min_reply_words} words"
    if normalise(fields["safe_reply"]) == normalise(fields["unsafe_reply"]):
        return "incomplete: the safe and the unsafe reply are identical"
    return None


_REFLECTION_RE = re.compile(r"^[ \t>*_#\-]*(redundant|missing|revised question)[ \t*_]*:[ \t*_]*",
                            re.IGNORECASE | re.MULTILINE)


def parse_reflection_output(text: str) -> dict[str, str] | None:
    """The reflection agent's three lines as {"redundant", "missing", "revised"} (markdown marks
    tolerated; the revised question ends at its line), or None without a non-empty revised question."""
    found: dict[str, str] = {}
    marks = list(_REFLECTION_RE.finditer(text))
    for m, nxt in zip(marks, marks[1:] + [None]):
        key = {"redundant": "redundant", "missing": "missing", "revised question": "revised"}[m.group(1).lower()]
        value = text[m.end(): nxt.start() if nxt else len(text)]
        value = value.strip().split("\n")[0].strip(" \t*_\"") if key == "revised" else " ".join(value.split())
        found.setdefault(key, value)
    if not found.get("revised"):
        return None
    return {"redundant": found.get("redundant", ""), "missing": found.get("missing", ""), "revised": found["revised"]}


def revise_queries(model: ChatModel, cache: JsonlCache, cands: Sequence["Candidate"],
                   cfg: CurationConfig) -> list[tuple[str, dict[str, str] | None]]:
    """The reflection agent's answer for each candidate: (raw output, parsed fields or None)."""
    prompts = [P.reflection_agent_prompt(c.image_ref(model), c.data["question"], c.data["category"]) for c in cands]
    outs = fill_format(model, cache, "reflection", prompts, P.REFLECTION_LABELS, cfg)
    return [(out, parse_reflection_output(out)) for out in outs]


def _check(question: str, c: "Candidate", cfg: CurationConfig, earlier: dict[str, str],
           pool: Sequence[Sample]) -> str | None:
    return (check_redundancy(question, c.seed.caption, cfg.max_overlap, earlier=earlier,
                             known={e.id: e.query for e in pool}, max_copy=cfg.max_copy)
            or check_completeness({**c.data, "question": question}, cfg))


def reflection_stage(cands: Sequence["Candidate"], cfg: CurationConfig, earlier: dict[str, str],
                     pool: Sequence[Sample] = (), *, model: ChatModel | None = None,
                     cache: JsonlCache | None = None) -> list[dict[str, Any]]:
    """Stage 3: with ``model`` (and ``cfg.revise_queries``) the agent revises each query first;
    then redundancy and completeness checks. The revised query is kept when it passes them, else the
    original is judged (the event says which, and why). Queries are compared with every record of
    the worked-example ``pool``; ``earlier`` (normalised query -> candidate id of the queries that
    passed reflection before) is updated in place. Event data: the kept ``question``, the
    ``query_before`` revision, the agent's ``redundant`` / ``missing`` notes and ``revision``."""
    revisions = (revise_queries(model, cache, cands, cfg) if model is not None and cfg.revise_queries
                 else [(None, None)] * len(cands))
    events = []
    for c, (raw, rev) in zip(cands, revisions):
        original = c.data["question"]
        data: dict[str, Any] = {"query_before": original}
        if raw is not None:
            data["reflection_output"] = raw
        why_revised = None
        question, revision = original, "not asked" if raw is None else "unparsed: no revised question"
        if rev is not None:
            data.update(redundant=rev["redundant"], missing=rev["missing"])
            if normalise(rev["revised"]) == normalise(original):
                revision = "unchanged"
            else:
                why_revised = _check(rev["revised"], c, cfg, earlier, pool)
                if why_revised is None:
                    question, revision = rev["revised"], "revised"
                else:
                    revision = f"revision dropped ({why_revised})"
        why = _check(question, c, cfg, earlier, pool) if question is original else None
        share, _ = caption_overlap(question, c.seed.caption)
        data.update(question=question, revision=revision, caption_overlap=round(share, 3))
        if why:
            events.append(event(c.id, "reflection", False, f"reflection: {why}", data))
        else:
            earlier[normalise(question)] = c.id
            what = "revised query" if question is not original else "query"
            events.append(event(c.id, "reflection", True, f"reflection: {what} complementary to the picture "
                                f"({share:.0%} caption overlap) and complete", data))
    return events
