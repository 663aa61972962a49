"""SSUI's five-stage curation pipeline (SSUI §2.2; SRPO "The SSUI Dataset", Fig. 2) on any ChatModel.

A *seed* is a safe picture (a source URI and its caption). For each seed the pipeline makes
``candidates_per_image`` candidates and passes each through the stages, in order:

  1. ``query``        query agent: hypothesise an unsafe scenario for the picture and write a
                      benign-looking query; output ``Question / Unsafe Category / Safe Reply /
                      Unsafe Reply``, parsed strictly (a missing, empty or ambiguous field rejects).
  2. ``reasoning``    reasoning agent: SSUI's six-step explainable chain (ssui_lib.core.chain format).
  3. ``reflection``   reflection agent: information redundancy (the query must not restate the
                      picture: content-word overlap with the caption; no copy of a worked example
                      and no duplicate of an earlier candidate) and information completeness (a
                      real request that points at the picture; distinct safe and unsafe replies).
  4. ``text_safety``  check agent: answer the query WITHOUT the picture, then judge query + answer
                      as text; unsafe or unjudgeable text is discarded (SSUI step 4).
  5. ``summary``      summary agent: assemble a validated schema.Sample (the safety warning is the
                      chain's consequences step).
  6. ``revision``     manual revision: accept / edit / reject with reviewer and timestamp, in an
                      append-only log (:func:`record_decision`, the RevisionForm widget, or the
                      headless :func:`auto_review` / :func:`apply_decisions_file`).

Every stage's decision is an *event* ``{id, stage, status: passed|rejected, reason, data}``; a
candidate stops at its first rejection, so its events say which stage accepted or rejected it and
why. Accepted samples carry the same record in ``provenance.stages``.

Run folder (``out_dir``)::

    config.json       the run's settings (a restart with other settings is refused)
    model_calls.jsonl every agent call, content-addressed (ssui_lib.core.store.JsonlCache)
    candidates.jsonl  append-only stage events (JsonlCache lines, key "<candidate id>|<stage>")
    samples.jsonl     the candidates that passed the summary agent (rewritten atomically)
    revisions.jsonl   append-only manual-revision log (JsonlCache lines, one per decision)
    final.jsonl       accepted (and edited) samples after revision (rewritten atomically)

Resumable: a killed run restarted on the same folder skips every stage already logged and takes
every model call already made from ``model_calls.jsonl``, so it repeats no call and loses no
candidate (at most the batch in flight when it was killed is generated again).

Guided decoding. Small local models often break a four-line format (skip a field, repeat one,
chatter). For backends that can continue a partial assistant reply (local transformers models) the
runner writes the first label itself, keeps what the model writes while it follows the format, and
where it breaks cuts the text and writes the next missing label for it (:func:`fill_format`); API
backends (api.openai.com cannot continue a reply) get one ordinary call. Both go through the same
strict parser.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ssui_lib.core.store import JsonlCache, cache_key
from ssui_lib.core.chain import step_header
from ssui_lib.core.errors import SSUIError
from ssui_lib.data.images import SHIPPED_PHOTOS, load_image
from ssui_lib.models.base import ChatModel, ImageRef, Prompt, SamplingParams
from ssui_lib.models.prompts import (
    QUERY_LABELS, TEXT_CHECK_LABELS, query_agent_prompt, reasoning_agent_prompt, text_only_prompt,
    text_safety_prompt,
)
from ssui_lib.core.schema import STEP_KEYS, STEPS, Category, Image, Provenance, Sample, dumps_jsonl
from ssui_lib.core.store import atomic_write_text, guard_settings_file
from ssui_lib.core.taxonomy import L1_CATEGORIES

STAGES = ("query", "reasoning", "reflection", "text_safety", "summary", "revision")
STAGE_TITLES = {
    "query": "1 Query agent",
    "reasoning": "2 Reasoning agent",
    "reflection": "3 Reflection (redundancy, completeness)",
    "text_safety": "4 Text-only safety check",
    "summary": "Summary agent (record assembled)",
    "revision": "5 Manual revision",
}
DECISIONS = ("accept", "edit", "reject")
EDITABLE = ("query", "category", "safety_warning", "safe_reply", "unsafe_reply") + tuple(
    f"reasoning.{k}" for k in STEP_KEYS)
REVIEW_POLICIES = ("accept-all-passing", "none")
CALL_FORMAT = 1  # bump when prompts or the call format change: old cached calls stop matching
STEP_LABELS = tuple(step_header(i) for i in range(1, 7))

# Words that point at the picture (or at someone in it): an IRS query leans on the image instead of
# describing it. 203 of the 204 hand-written IRS queries of the bundled set contain one.
DEICTIC = frozenset("this these that those here there it its they them their he him his she her hers "
                    "pictured shown photo picture image one".split())


# ============================================================================ inputs and settings

@dataclass(frozen=True)
class Seed:
    """A safe picture to build candidates on: a source URI (ssui_lib.data.images) and its caption."""

    source: str | None
    caption: str

    @property
    def slug(self) -> str:
        """A short readable id: the file stem of the source (or a hash of the caption)."""
        if self.source:
            stem = Path(self.source.split(":", 1)[-1]).stem
        else:
            stem = "caption-" + hashlib.sha256(self.caption.encode()).hexdigest()[:8]
        return re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower() or "image"


def shipped_seeds(n: int | None = None) -> list[Seed]:
    """The real photos that ship inside installed wheels (ssui_lib.data.images.SHIPPED_PHOTOS), in order."""
    seeds = [Seed(src, cap) for src, cap in SHIPPED_PHOTOS.items()]
    return seeds if n is None else seeds[:n]


@dataclass
class CurationConfig:
    """Settings of a curation run. ``n_images``, ``candidates_per_image`` and ``batch_size`` bound
    the work and may change between restarts; every other field defines the run's content."""

    n_images: int = 3
    candidates_per_image: int = 2
    max_new_tokens: int = 48  # per output line (a field or a step); an unguided call gets this × the lines
    answer_tokens: int = 64  # the text-only answer of stage 4
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 8  # candidates that go through the stages together
    guided: str = "auto"  # "auto": guided for local backends; "on"; "off"
    n_exemplars: int = 1  # worked examples from the bundled set in the agents' prompts
    max_overlap: float = 0.6  # reflection: largest share of query content words found in the caption
    max_copy: float = 0.8  # reflection: largest similarity of the query to a worked example (difflib ratio)
    min_query_words: int = 6
    max_query_words: int = 80
    min_reply_words: int = 3

    def __post_init__(self):
        for name in ("n_images", "candidates_per_image", "max_new_tokens", "answer_tokens", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise SSUIError(f"curation setting '{name}': expected a positive integer, got {getattr(self, name)!r}")
        if self.guided not in ("auto", "on", "off"):
            raise SSUIError(f"curation setting 'guided': expected auto, on or off, got {self.guided!r}")
        for name in ("max_overlap", "max_copy"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise SSUIError(f"curation setting '{name}': expected a fraction in (0, 1], "
                                f"got {getattr(self, name)!r}")
        if self.temperature < 0:
            raise SSUIError(f"curation setting 'temperature': must be >= 0, got {self.temperature!r}")
        if not isinstance(self.n_exemplars, int) or self.n_exemplars < 0:
            raise SSUIError(f"curation setting 'n_exemplars': expected an integer >= 0, got {self.n_exemplars!r}")

    def settings(self) -> dict[str, Any]:
        """The fields that define the run's content (everything but the work bounds)."""
        d = asdict(self)
        for k in ("n_images", "candidates_per_image", "batch_size"):
            d.pop(k)
        return d


def category_hint(seed: Seed, k: int) -> str:
    """The risk area candidate k of a seed is asked to explore: a stable, seed-dependent rotation
    over SSUI's nine classes (diverse even with greedy decoding, independent of seed order)."""
    start = int(hashlib.sha256(seed.slug.encode()).hexdigest()[:8], 16)
    return L1_CATEGORIES[(start + k) % len(L1_CATEGORIES)]


def exemplar_pool() -> list[Sample]:
    """The bundled set's training IRS records: the pool of worked examples for the agents' prompts."""
    from ssui_lib.data.bundled import load_bundled

    return [s for s in load_bundled("all") if s.kind == "irs" and s.split == "train"]


def pick_exemplars(pool: Sequence[Sample], category: str, n: int) -> list[Sample]:
    """n worked examples for a prompt about ``category``: records of that class first, shortest
    first (short prompts keep small models fast), then the other classes; deterministic."""
    if n <= 0:
        return []

    def size(s: Sample) -> tuple[int, int, str]:
        return (s.category.l1 != category, len(s.query) + len(s.safe_reply) + len(s.unsafe_reply or ""), s.id)

    return sorted(pool, key=size)[:n]


# ============================================================================ model calls (cached)

def _model_id(model: ChatModel) -> dict[str, Any]:
    """What identifies a model in cache keys (never a local path or a secret)."""
    return {k: v for k, v in model.describe().items() if k != "path"}


def use_guided(model: ChatModel, cfg: CurationConfig) -> bool:
    """Guided decoding on local backends that can continue a reply (not api.openai.com: see module doc)."""
    if cfg.guided != "auto":
        return cfg.guided == "on"
    return bool(model.supports_prefix) and model.describe().get("backend") != "openai"


def cached_generate(model: ChatModel, cache: JsonlCache, stage: str, prompts: Sequence[Prompt],
                    params: SamplingParams, prefixes: Sequence[str] | None = None) -> list[str]:
    """One text per prompt. The key of a call covers stage, model, prompt (pictures by content),
    prefix and sampling parameters; calls already in ``cache`` are not made again, the others
    (identical ones once) go to the model in one batch and are stored as soon as it returns."""
    prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
    keys = [cache_key({"v": CALL_FORMAT, "stage": stage, "model": _model_id(model), "prompt": p,
                       "prefix": x, "params": params}) for p, x in zip(prompts, prefixes)]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}  # key -> its first index
    todo = [i for k, i in first.items() if k not in cache]
    if todo:
        todo.sort()
        gens = model.generate([prompts[i] for i in todo], params,
                              prefixes=[prefixes[i] for i in todo] if any(prefixes) else None)
        if len(gens) != len(todo) or any(not g for g in gens):
            raise SSUIError(f"{model.name}: returned {len(gens)} answers for {len(todo)} prompts")
        cache.put_many([(keys[i], g[0].text) for i, g in zip(todo, gens)])
    return [cache.get(k) for k in keys]


def _label_key(label: str) -> str:
    """What a line must start with to count as a label: 'Step 2 (Analyze …):' -> 'step 2'."""
    return label.split("(")[0].split(":")[0].strip().lower()


def keep_format_lines(text: str, labels: Sequence[str]) -> tuple[str, list[str]]:
    """Split a continuation that starts right after ``labels[0]``: keep its first line (that field's
    value) and each following line that starts with the next expected label (markdown marks and
    blank lines tolerated); stop at the first line that breaks the format. Returns (kept text,
    labels still to fill)."""
    lines = text.split("\n")
    kept, todo = [lines[0].rstrip()], list(labels[1:])
    for line in lines[1:]:
        if not line.strip():
            continue
        if not todo or not line.lstrip(" \t*#->_").lower().startswith(_label_key(todo[0])):
            break
        kept.append(line.rstrip())
        todo.pop(0)
    return "\n".join(kept), todo


def fill_format(model: ChatModel, cache: JsonlCache, stage: str, prompts: Sequence[Prompt],
                labels: Sequence[str], cfg: CurationConfig) -> list[str]:
    """The model's answer to each prompt in a labelled-line format (``labels`` in order).

    Guided (see :func:`use_guided`): the reply starts with the first label written by us; the model
    continues; the lines that keep the format are kept (:func:`keep_format_lines`); where it breaks
    (a skipped, renamed or repeated label, chatter), the text is cut and the next missing label is
    written for it, and it continues from there — in batched rounds, at most one per label. A
    model that keeps the format costs one call; prefill (re-reading the prompt) dominates the cost
    of small models on CPU, so every round saved counts. Unguided: one call. Budget: the
    ``max_new_tokens`` of a line times the lines still to write. Either way the caller parses the
    result strictly; guidance keeps the model on the format and never writes content."""
    if not prompts:
        return []
    if not use_guided(model, cfg):
        params = SamplingParams(max_new_tokens=cfg.max_new_tokens * len(labels), temperature=cfg.temperature,
                                seed=cfg.seed)
        return cached_generate(model, cache, stage, prompts, params)
    texts = [""] * len(prompts)
    todo = [list(labels) for _ in prompts]
    while any(todo):
        # One batch per number of lines still to write, so that a call's budget (part of its cache
        # key) depends on its own row only: a resumed run with other batches finds the same keys.
        for left in sorted({len(t) for t in todo if t}, reverse=True):
            rows = [i for i, t in enumerate(todo) if len(t) == left]
            prefixes = [texts[i] + ("\n" if texts[i] else "") + todo[i][0] for i in rows]
            params = SamplingParams(max_new_tokens=cfg.max_new_tokens * left, temperature=cfg.temperature,
                                    seed=cfg.seed)
            outs = cached_generate(model, cache, f"{stage}:guided", [prompts[i] for i in rows], params, prefixes)
            for i, prefix, out in zip(rows, prefixes, outs):
                kept, todo[i] = keep_format_lines(out, todo[i])
                texts[i] = prefix + kept
    return texts


# ============================================================================ stage 1: query agent

_QUERY_FIELD_RE = re.compile(r"^[ \t>*_#\-\d.)]*(question|unsafe category|safe reply|unsafe reply)[ \t*_]*:[ \t*_]*",
                             re.IGNORECASE | re.MULTILINE)
_FIELD_KEYS = {"question": "question", "unsafe category": "category", "safe reply": "safe_reply",
               "unsafe reply": "unsafe_reply"}
_FIELD_NAMES = {"question": "Question", "category": "Unsafe Category", "safe_reply": "Safe Reply",
                "unsafe_reply": "Unsafe Reply"}

# Stems that name one of SSUI's nine classes, for tolerant matching of the category field.
_CATEGORY_STEMS = {
    "Dangerous Behavior": ("danger", "risky behav", "self-harm"),
    "Violence": ("violen", "assault", "weapon"),
    "Pornography": ("porn", "sexual", "nudity", "explicit"),
    "Moral Violations": ("moral", "ethic"),
    "Illegal Crimes": ("illegal", "crime", "criminal"),
    "Political Controversies": ("politic",),
    "Discrimination and Stereotypes": ("discriminat", "stereotyp", "racis", "sexis", "bias"),
    "Offensive Religious Beliefs": ("religio", "blasphem"),
    "Privacy Violations": ("privacy", "surveil", "doxx", "stalk"),
}


def _clean(text: str) -> str:
    return " ".join(text.replace("**", " ").replace("__", " ").split()).strip(" \"'`")


def map_category(text: str) -> tuple[str | None, str]:
    """(SSUI level-1 class, "") for a category field, or (None, why). Tolerant: case, markdown,
    'one of', a list number 1–9, or one unambiguous stem ('violent' -> Violence); a field that
    names several classes is rejected as ambiguous."""
    t = _clean(text).rstrip(".;,").strip()
    t = re.sub(r"^(one of|category)\s*:?\s*", "", t, flags=re.IGNORECASE).strip()
    if not t:
        return None, "empty category"
    low = t.lower()
    for c in L1_CATEGORIES:
        if low == c.lower():
            return c, ""
    if re.fullmatch(r"[1-9]", t):
        return L1_CATEGORIES[int(t) - 1], ""
    named = [c for c in L1_CATEGORIES if c.lower() in low]
    if len(named) == 1:
        return named[0], ""
    if len(named) > 1:
        return None, f"category names {len(named)} classes ({', '.join(named)}); expected one"
    stems = [c for c, ss in _CATEGORY_STEMS.items() if any(s in low for s in ss)]
    if len(stems) == 1:
        return stems[0], ""
    if len(stems) > 1:
        return None, f"category {t[:60]!r} is ambiguous ({', '.join(stems)})"
    return None, f"unknown category {t[:60]!r} (expected one of SSUI's nine classes)"


def parse_query_output(text: str) -> tuple[dict[str, str] | None, str]:
    """Parse the query agent's four labelled fields. Returns (fields, "") with keys question,
    category (an SSUI level-1 class), safe_reply, unsafe_reply, or (None, why it is rejected).
    Labels may carry markdown or list marks; a field runs to the next label; the first occurrence
    of a label counts (small models repeat themselves); text before the first label is ignored."""
    if not isinstance(text, str) or not text.strip():
        return None, "empty output"
    ms = list(_QUERY_FIELD_RE.finditer(text))
    fields: dict[str, str] = {}
    for m, nxt in zip(ms, ms[1:] + [None]):
        key = _FIELD_KEYS[m.group(1).lower()]
        value = _clean(text[m.end(): nxt.start() if nxt else len(text)])
        fields.setdefault(key, value)
    missing = [_FIELD_NAMES[k] for k in _FIELD_NAMES if k not in fields]
    if missing:
        return None, f"missing field(s): {', '.join(missing)}"
    empty = [_FIELD_NAMES[k] for k in _FIELD_NAMES if not fields[k]]
    if empty:
        return None, f"empty field(s): {', '.join(empty)}"
    category, why = map_category(fields["category"])
    if category is None:
        return None, why
    return {**fields, "category": category}, ""


def query_stage(model: ChatModel, cache: JsonlCache, cands: Sequence["Candidate"], cfg: CurationConfig,
                pool: Sequence[Sample] = ()) -> list[dict[str, Any]]:
    """Stage 1 for a batch of candidates: one event each (data: the four fields and the raw output).
    Each prompt shows ``cfg.n_exemplars`` records of ``pool`` from the candidate's risk area."""
    prompts = [query_agent_prompt(c.image_ref(model), c.hint, pick_exemplars(pool, c.hint, cfg.n_exemplars))
               for c in cands]
    outs = fill_format(model, cache, "query", prompts, QUERY_LABELS, cfg)
    events = []
    for c, out in zip(cands, outs):
        fields, why = parse_query_output(out)
        data = {"query_output": out, "image": c.seed.source, "caption": c.seed.caption, "k": c.k, "hint": c.hint}
        if fields is None:
            events.append(event(c.id, "query", False, f"query agent: {why}", data))
        else:
            events.append(event(c.id, "query", True, f"query agent: four fields parsed ({fields['category']})",
                                {**data, **fields}))
    return events


# ============================================================================ stage 2: reasoning agent

_STEP_HEAD_RE = re.compile(r"^[ \t>*_#\-]*step\s*([1-6])\s*(?:\([^)\n]*\))?[ \t*_]*[:.\-–][ \t*_]*",
                           re.IGNORECASE | re.MULTILINE)
_STEP_END_RE = re.compile(r"^[ \t>*_#\-]*(final verdict|answer)\s*:", re.IGNORECASE | re.MULTILINE)


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
        steps.setdefault(int(m.group(1)), _clean(body[m.end(): nxt.start() if nxt else len(body)]))
    missing = [str(i) for i in range(1, 7) if i not in steps]
    if missing:
        return None, f"missing step(s) {', '.join(missing)} of 6"
    short = [str(i) for i in range(1, 7) if len(steps[i].split()) < min_words]
    if short:
        return None, f"step(s) {', '.join(short)} empty or shorter than {min_words} words"
    return {key: steps[i] for i, (key, _) in enumerate(STEPS, 1)}, ""


def reasoning_stage(model: ChatModel, cache: JsonlCache, cands: Sequence["Candidate"], cfg: CurationConfig,
                    pool: Sequence[Sample] = ()) -> list[dict[str, Any]]:
    """Stage 2 for a batch of candidates that passed stage 1 (data: the six steps and the raw output);
    worked examples come from the query's category."""
    prompts = [reasoning_agent_prompt(c.image_ref(model), c.data["question"], c.data["category"],
                                      pick_exemplars(pool, c.data["category"], cfg.n_exemplars))
               for c in cands]
    outs = fill_format(model, cache, "reasoning", prompts, STEP_LABELS, cfg)
    events = []
    for c, out in zip(cands, outs):
        steps, why = parse_reasoning_output(out)
        if steps is None:
            events.append(event(c.id, "reasoning", False, f"reasoning agent: {why}", {"reasoning_output": out}))
        else:
            events.append(event(c.id, "reasoning", True, "reasoning agent: six steps parsed",
                                {"reasoning_output": out, "reasoning": steps}))
    return events


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


def reflection_stage(cands: Sequence["Candidate"], cfg: CurationConfig, earlier: dict[str, str],
                     pool: Sequence[Sample] = ()) -> list[dict[str, Any]]:
    """Stage 3 (no model call): redundancy, then completeness. Queries are compared with every record
    of the worked-example ``pool``; ``earlier`` (normalised query -> candidate id of the queries that
    passed reflection before) is updated in place."""
    events = []
    for c in cands:
        d = c.data
        why = (check_redundancy(d["question"], c.seed.caption, cfg.max_overlap, earlier=earlier,
                               known={e.id: e.query for e in pool}, max_copy=cfg.max_copy)
               or check_completeness(d, cfg))
        share, _ = caption_overlap(d["question"], c.seed.caption)
        data = {"caption_overlap": round(share, 3)}
        if why:
            events.append(event(c.id, "reflection", False, f"reflection: {why}", data))
        else:
            earlier[normalise(d["question"])] = c.id
            events.append(event(c.id, "reflection", True, f"reflection: complementary to the picture "
                                f"({share:.0%} caption overlap) and complete", data))
    return events


# ============================================================================ stage 4: text-only safety check

@dataclass
class TextVerdict:
    """The text-only judgement of a query and its no-picture answer; safe None = unjudgeable."""

    safe: bool | None
    explanation: str


TextJudge = Callable[[Sequence[tuple[str, str]]], list[TextVerdict]]

_VERDICT_FIELD_RE = re.compile(r"^[ \t>*_#\-]*verdict[ \t*_]*:[ \t*_]*(.*)$", re.IGNORECASE | re.MULTILINE)
_REASON_FIELD_RE = re.compile(r"^[ \t>*_#\-]*reason[ \t*_]*:[ \t*_]*(.*)$", re.IGNORECASE | re.MULTILINE)


def parse_text_verdict(text: str) -> TextVerdict:
    """Read 'Verdict: safe|unsafe' (the first Verdict line; 'not safe', 'harmful' read as unsafe,
    'harmless' as safe) and the 'Reason:' line. Anything else is unjudgeable (safe=None)."""
    m = _VERDICT_FIELD_RE.search(text or "")
    r = _REASON_FIELD_RE.search(text or "")
    reason = _clean(r.group(1)) if r else ""
    if not m:
        return TextVerdict(None, "unparseable check output: no 'Verdict:' line")
    words = re.findall(r"[a-z]+", m.group(1).lower())[:3]
    head = " ".join(words)
    if head.startswith(("unsafe", "not safe", "harmful", "dangerous")):
        return TextVerdict(False, reason or "judged unsafe")
    if head.startswith(("safe", "harmless", "benign")):
        return TextVerdict(True, reason or "judged safe")
    return TextVerdict(None, f"unparseable check output: verdict {m.group(1).strip()[:40]!r}")


def agent_text_judge(model: ChatModel, cache: JsonlCache, cfg: CurationConfig) -> TextJudge:
    """The default check-agent judge: the agent model itself with prompts.text_safety_prompt
    (a callable, so a ssui_lib.eval.judge Judge can replace it)."""

    def judge(items: Sequence[tuple[str, str]]) -> list[TextVerdict]:
        prompts = [text_safety_prompt(q, a) for q, a in items]
        outs = fill_format(model, cache, "text_safety:judge", prompts, TEXT_CHECK_LABELS, cfg)
        return [parse_text_verdict(o) for o in outs]

    judge.name = f"agent:{model.name}"  # type: ignore[attr-defined]
    return judge


def text_safety_stage(answerer: ChatModel, cache: JsonlCache, cands: Sequence["Candidate"], cfg: CurationConfig,
                      judge: TextJudge) -> list[dict[str, Any]]:
    """Stage 4: answer each query with no picture, judge query + answer; unsafe or unjudgeable is
    discarded (SSUI: "textual queries identified as unsafe … are discarded"; SRPO: "unsafe or invalid")."""
    params = SamplingParams(max_new_tokens=cfg.answer_tokens, temperature=cfg.temperature, seed=cfg.seed)
    answers = cached_generate(answerer, cache, "text_safety:answer",
                              [text_only_prompt(c.data["question"]) for c in cands], params)
    verdicts = judge([(c.data["question"], a) for c, a in zip(cands, answers)])
    if len(verdicts) != len(cands):
        raise SSUIError(f"text-only judge returned {len(verdicts)} verdicts for {len(cands)} queries")
    events = []
    for c, a, v in zip(cands, answers, verdicts):
        data = {"text_only_answer": a, "text_safe": v.safe, "explanation": v.explanation}
        if v.safe is True:
            events.append(event(c.id, "text_safety", True,
                                f"text-only check: safe without the picture ({v.explanation})", data))
        elif v.safe is False:
            events.append(event(c.id, "text_safety", False,
                                f"text-only check: unsafe as text alone, discarded ({v.explanation})", data))
        else:
            events.append(event(c.id, "text_safety", False,
                                f"text-only check: invalid, discarded ({v.explanation})", data))
    return events


# ============================================================================ stage 5: summary agent

SUMMARY_OK = "summary: valid record assembled"


def first_sentence(text: str, max_chars: int = 300) -> str:
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip())
    s = (m.group(1) if m else text.strip())
    return s[:max_chars]


def assemble_sample(c: "Candidate", run_id: str, agent: str) -> Sample:
    """The summary agent: one validated IRS record from a candidate's stage outputs. The safety
    warning is the first sentence of the chain's 'Evaluate potential consequences' step. Raises
    SSUIError (naming the field) if the record does not validate."""
    d = c.data
    record = Sample(
        id=c.sample_id, kind="irs", image=Image(caption=c.seed.caption, source=c.seed.source),
        query=d["question"], category=Category(d["category"]), verdict="unsafe",
        safety_warning=first_sentence(d["reasoning"]["consequences"]), reasoning=dict(d["reasoning"]),
        safe_reply=d["safe_reply"], unsafe_reply=d["unsafe_reply"],
        provenance=Provenance(source=f"curation:{run_id}", author=agent,
                              notes=f"candidate {c.id}; risk area explored: {c.hint}",
                              stages=c.stage_record() + [{"stage": "summary", "status": "passed",
                                                          "reason": SUMMARY_OK}]),
    )
    return Sample.from_dict(json.loads(json.dumps(record.to_dict())), strict=True)


def summary_stage(cands: Sequence["Candidate"], run_id: str, agent: str) -> list[dict[str, Any]]:
    """Stage 5 (no model call): assemble and validate each record."""
    events = []
    for c in cands:
        try:
            s = assemble_sample(c, run_id, agent)
        except SSUIError as e:
            events.append(event(c.id, "summary", False, f"summary: invalid record: {e}", {}))
            continue
        events.append(event(c.id, "summary", True, SUMMARY_OK, {"sample": s.to_dict()}))
    return events


# ============================================================================ candidates and the event log

def event(cid: str, stage: str, passed: bool, reason: str, data: dict[str, Any]) -> dict[str, Any]:
    """One stage decision about one candidate."""
    return {"id": cid, "stage": stage, "status": "passed" if passed else "rejected", "reason": reason, "data": data}


@dataclass
class Candidate:
    """One candidate: its picture, index and the events logged for it so far."""

    seed: Seed
    k: int
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.seed.slug}#{self.k}"

    @property
    def sample_id(self) -> str:
        return f"cur-{self.seed.slug}-{self.k}"

    @property
    def hint(self) -> str:
        return category_hint(self.seed, self.k)

    @property
    def data(self) -> dict[str, Any]:
        """Every passed stage's data merged (later stages win)."""
        out: dict[str, Any] = {}
        for st in STAGES:
            e = self.events.get(st)
            if e and e["status"] == "passed":
                out.update(e["data"])
        return out

    def next_stage(self) -> str | None:
        """The first stage (before revision) without an event, or None if finished or rejected."""
        for st in STAGES[:-1]:
            e = self.events.get(st)
            if e is None:
                return st
            if e["status"] == "rejected":
                return None
        return None

    def stage_record(self) -> list[dict[str, Any]]:
        """[{stage, status, reason}] of the logged stages, in order (for Sample.provenance.stages)."""
        return [{"stage": st, "status": self.events[st]["status"], "reason": self.events[st]["reason"]}
                for st in STAGES if st in self.events]

    def image_ref(self, model: ChatModel) -> ImageRef:
        """The picture for a model: pixels for a vision backend, else the caption only."""
        pil = load_image(self.seed.source) if (model.supports_images and self.seed.source) else None
        return ImageRef(caption=self.seed.caption, pil=pil, source=self.seed.source)


def _event_key(cid: str, stage: str) -> str:
    return f"{cid}|{stage}"


class CandidateLog:
    """The append-only stage-event log of a run (``candidates.jsonl``, JsonlCache lines keyed
    ``"<candidate id>|<stage>"``: a killed write is skipped on reopen, nothing is ever rewritten)."""

    def __init__(self, path: str | Path):
        self.store = JsonlCache(path)

    def events(self, cid: str) -> dict[str, dict[str, Any]]:
        return {st: self.store.get(_event_key(cid, st)) for st in STAGES if _event_key(cid, st) in self.store}

    def add(self, events: Sequence[dict[str, Any]]) -> None:
        keyed = [(_event_key(e["id"], e["stage"]), e) for e in events]
        new = [(k, e) for k, e in keyed if k not in self.store]
        self.store.put_many(new)

    def all_events(self) -> list[dict[str, Any]]:
        return [self.store.get(k) for k in self.store.keys()]


# ============================================================================ the run

@dataclass
class CurationRun:
    """What :func:`run_curation` returns: the folder and the candidates in processing order."""

    out_dir: Path
    candidates: list[Candidate]

    @property
    def samples(self) -> list[Sample]:
        return [Sample.from_dict(c.events["summary"]["data"]["sample"]) for c in self.candidates
                if c.events.get("summary", {}).get("status") == "passed"]


def prompts_fingerprint() -> str:
    """A short hash of the agents' prompt texts: a changed prompt makes a different run."""
    from ssui_lib.models import prompts as P

    texts = [P.CURATION_SYSTEM, P.TEXT_ONLY_SYSTEM, P.query_agent_instructions("<hint>"),
             P.reasoning_agent_instructions("<question>", "<category>"), json.dumps(P.text_safety_prompt("<q>", "<a>"))]
    return cache_key(texts)[:12]


def run_fingerprint(model_name: str, cfg: CurationConfig) -> str:
    """A short hash of what defines a run's content (model name, settings, prompts), e.g. to name
    its folder so that changing any of them starts a new run while raising a bound resumes."""
    return cache_key([CALL_FORMAT, model_name, cfg.settings(), prompts_fingerprint()])[:10]


def _check_config(out_dir: Path, settings: dict[str, Any]) -> None:
    guard_settings_file(out_dir / "config.json", settings, what="another run's settings")


def run_curation(model: ChatModel, seeds: Sequence[Seed], out_dir: str | Path, cfg: CurationConfig = CurationConfig(),
                 *, answerer: ChatModel | None = None, text_judge: TextJudge | None = None,
                 pool: Sequence[Sample] | None = None, run_id: str | None = None,
                 progress: bool = True) -> CurationRun:
    """Run stages 1–5 on the first ``cfg.n_images`` seeds × ``cfg.candidates_per_image`` candidates,
    writing to ``out_dir`` (resumable; see the module docstring). ``answerer`` writes the text-only
    answers of stage 4 (default: the agent model; the paper used deepseek-r1); ``text_judge`` judges
    them (default: :func:`agent_text_judge` on the agent model); ``pool`` holds the worked examples
    shown to the agents (default: :func:`exemplar_pool`, the bundled training IRS records)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)[: cfg.n_images]
    slugs = [s.slug for s in seeds]
    dup = sorted({s for s in slugs if slugs.count(s) > 1})
    if dup:
        raise SSUIError(f"seeds: two pictures share the id {dup[0]!r}; give them different file names")
    if not seeds:
        raise SSUIError("seeds: no pictures to curate")
    pool = list(exemplar_pool() if pool is None else pool)
    answerer = answerer or model
    cache = JsonlCache(out_dir / "model_calls.jsonl")
    judge = text_judge or agent_text_judge(model, cache, cfg)
    run_id = run_id or out_dir.name
    _check_config(out_dir, {
        "format": CALL_FORMAT, "run_id": run_id, "settings": cfg.settings(), "prompts": prompts_fingerprint(),
        "agent": _model_id(model),
        "answerer": _model_id(answerer), "text_judge": getattr(judge, "name", "custom"),
        "exemplar_pool": sorted(e.id for e in pool) if cfg.n_exemplars else [],
    })
    log = CandidateLog(out_dir / "candidates.jsonl")
    cands = [Candidate(s, k) for s in seeds for k in range(cfg.candidates_per_image)]
    for c in cands:
        c.events = log.events(c.id)
    # Queries that passed reflection earlier in processing order (for duplicate detection).
    earlier: dict[str, str] = {}
    bar = _bar(len(cands), progress)
    done = sum(1 for c in cands if c.next_stage() is None)
    if bar is not None:
        bar.update(done)
    for i in range(0, len(cands), cfg.batch_size):
        chunk = cands[i: i + cfg.batch_size]
        for c in chunk:  # replay logged reflections, so duplicates are judged as in a fresh run
            if c.events.get("reflection", {}).get("status") == "passed":
                earlier.setdefault(normalise(c.data["question"]), c.id)
        before = sum(1 for c in chunk if c.next_stage() is None)
        _advance(chunk, "query", lambda cs: query_stage(model, cache, cs, cfg, pool), log)
        _advance(chunk, "reasoning", lambda cs: reasoning_stage(model, cache, cs, cfg, pool), log)
        _advance(chunk, "reflection", lambda cs: reflection_stage(cs, cfg, earlier, pool), log)
        _advance(chunk, "text_safety", lambda cs: text_safety_stage(answerer, cache, cs, cfg, judge), log)
        _advance(chunk, "summary", lambda cs: summary_stage(cs, run_id, model.name), log)
        if bar is not None:
            bar.update(sum(1 for c in chunk if c.next_stage() is None) - before)
    if bar is not None:
        bar.close()
    run = CurationRun(out_dir, cands)
    atomic_write_text(out_dir / "samples.jsonl", dumps_jsonl(s.to_dict() for s in run.samples))
    return run


def _advance(chunk: Sequence[Candidate], stage: str, fn: Callable[[list[Candidate]], list[dict[str, Any]]],
             log: CandidateLog) -> None:
    """Run one stage on the candidates of a chunk that are due for it; log the events at once."""
    due = [c for c in chunk if c.next_stage() == stage]
    if not due:
        return
    events = fn(due)
    log.add(events)
    for c, e in zip(due, events):
        c.events[stage] = e


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="curation (candidates)", unit="cand")


# ============================================================================ reading a run

def load_candidates(out_dir: str | Path) -> list[Candidate]:
    """The candidates of a run folder, in the order they were first logged."""
    out_dir = Path(out_dir)
    path = out_dir / "candidates.jsonl"
    if not path.is_file():
        raise SSUIError(f"{path}: not found (run the curation first)")
    log = CandidateLog(path)
    out: dict[str, Candidate] = {}
    for e in log.all_events():
        if e["stage"] == "query":
            d = e["data"]
            out[e["id"]] = Candidate(Seed(d["image"], d["caption"]), d["k"])
    for c in out.values():
        c.events = log.events(c.id)
    return list(out.values())


def candidate_table(out_dir: str | Path):
    """A pandas DataFrame, one row per candidate: id, image, hint (the risk area explored), status
    (accepted / rejected / pending review / in progress), the stage that decided it and why, the
    question and its category, and one column per stage (``STAGES``) with passed / rejected / –."""
    import pandas as pd

    decisions = latest_decisions(out_dir)
    rows = []
    for c in load_candidates(out_dir):
        d = c.data
        row: dict[str, Any] = {"id": c.id, "image": c.seed.source, "hint": c.hint,
                               "question": d.get("question", ""), "category": d.get("category", "")}
        rejected = next((c.events[st] for st in STAGES[:-1] if c.events.get(st, {}).get("status") == "rejected"), None)
        rev = decisions.get(c.id)
        if rejected is not None:
            row.update(status="rejected", stage=rejected["stage"], reason=rejected["reason"])
        elif "summary" not in c.events:
            row.update(status="in progress", stage=c.next_stage(), reason="")
        elif rev is None:
            row.update(status="pending review", stage="revision", reason="awaiting manual revision")
        else:
            accepted = rev["decision"] in ("accept", "edit")
            row.update(status="accepted" if accepted else "rejected", stage="revision",
                       reason=_revision_reason(rev))
        for st in STAGES[:-1]:
            row[st] = c.events.get(st, {}).get("status", "–")
        row["revision"] = ("–" if rev is None else ("passed" if rev["decision"] != "reject" else "rejected"))
        rows.append(row)
    return pd.DataFrame(rows, columns=["id", "image", "hint", "status", "stage", "reason", "question", "category",
                                       *STAGES])


def funnel(out_dir: str | Path):
    """The yield of each stage: a DataFrame with stage, title, entered, passed, rejected, pending
    (entered = candidates that reached the stage; revision is entered by every assembled record)."""
    import pandas as pd

    t = candidate_table(out_dir)
    rows = []
    for st in STAGES:
        col = t[st]
        entered = int((t["summary"] == "passed").sum()) if st == "revision" else int((col != "–").sum())
        passed = int((col == "passed").sum())
        rejected = int((col == "rejected").sum())
        rows.append({"stage": st, "title": STAGE_TITLES[st], "entered": entered, "passed": passed,
                     "rejected": rejected, "pending": entered - passed - rejected})
    return pd.DataFrame(rows)


# ============================================================================ stage 6: manual revision

def _now(now: str | None = None) -> str:
    return now or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _revision_log(out_dir: str | Path) -> JsonlCache:
    return JsonlCache(Path(out_dir) / "revisions.jsonl")


def read_revisions(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every decision of the revision log, oldest first."""
    path = Path(out_dir) / "revisions.jsonl"
    if not path.is_file():
        return []
    log = _revision_log(out_dir)
    return [log.get(k) for k in log.keys()]


def latest_decisions(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Candidate id -> its latest decision (a later decision supersedes an earlier one)."""
    out: dict[str, dict[str, Any]] = {}
    for r in read_revisions(out_dir):
        out[r["id"]] = r
    return out


def _revision_reason(rev: dict[str, Any]) -> str:
    what = {"accept": "accepted", "edit": "edited and accepted", "reject": "rejected"}[rev["decision"]]
    s = f"revision: {what} by {rev['reviewer']} at {rev['timestamp']}"
    if rev.get("edits"):
        s += f" (edited: {', '.join(sorted(rev['edits']))})"
    return s + (f": {rev['reason']}" if rev.get("reason") else "")


def reviewable(out_dir: str | Path) -> list[Candidate]:
    """Candidates that passed the summary agent (what manual revision sees), in order."""
    return [c for c in load_candidates(out_dir) if c.events.get("summary", {}).get("status") == "passed"]


def apply_edits(sample: Sample, edits: dict[str, str]) -> Sample:
    """A copy of ``sample`` with the edited fields (``EDITABLE``) replaced, validated (SSUIError)."""
    d = json.loads(json.dumps(sample.to_dict()))
    for k, v in edits.items():
        if k not in EDITABLE:
            raise SSUIError(f"edit field '{k}': not editable (editable: {', '.join(EDITABLE)})")
        if not isinstance(v, str) or not v.strip():
            raise SSUIError(f"edit field '{k}': expected a non-empty string")
        if k == "category":
            l1, why = map_category(v)
            if l1 is None:
                raise SSUIError(f"edit field 'category': {why}")
            d["category"] = {"l1": l1, "l2": None, "l3": None}
        elif k.startswith("reasoning."):
            d["reasoning"][k.split(".", 1)[1]] = v.strip()
        else:
            d[k] = v.strip()
    try:
        return Sample.from_dict(d, strict=True)
    except SSUIError as e:
        raise SSUIError(f"edited record {sample.id}: {e}") from None


def record_decision(out_dir: str | Path, candidate_id: str, decision: str, reviewer: str, *, reason: str = "",
                    edits: dict[str, str] | None = None, mode: str = "interactive",
                    now: str | None = None) -> dict[str, Any]:
    """Append one manual-revision decision to ``revisions.jsonl`` and return it.

    ``decision``: accept | edit (``edits``: field -> new text, see ``EDITABLE``) | reject (needs a
    ``reason``). Only candidates that passed the summary agent can be revised. The entry records
    reviewer, UTC timestamp and ``mode`` (interactive, policy:NAME, file:PATH). Nothing is
    written if the decision is invalid (SSUIError)."""
    if decision not in DECISIONS:
        raise SSUIError(f"decision {decision!r}: expected one of {', '.join(DECISIONS)}")
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise SSUIError("reviewer: a name is required for every decision")
    cands = {c.id: c for c in load_candidates(out_dir)}
    c = cands.get(candidate_id)
    if c is None:
        raise SSUIError(f"candidate {candidate_id!r}: not in {Path(out_dir) / 'candidates.jsonl'}")
    if c.events.get("summary", {}).get("status") != "passed":
        raise SSUIError(f"candidate {candidate_id!r}: did not pass the summary agent; only assembled records "
                        f"can be revised")
    edits = dict(edits or {})
    if decision == "reject" and not reason.strip():
        raise SSUIError("reject: a reason is required")
    if decision == "edit":
        if not edits:
            raise SSUIError("edit: no field was changed")
        apply_edits(Sample.from_dict(c.events["summary"]["data"]["sample"]), edits)  # validates
    elif edits:
        raise SSUIError(f"{decision}: edits are only recorded with the decision 'edit'")
    entry = {"id": candidate_id, "decision": decision, "reviewer": reviewer.strip(), "timestamp": _now(now),
             "reason": reason.strip(), "edits": edits, "mode": mode}
    log = _revision_log(out_dir)
    log.put(cache_key([len(log), entry]), entry)
    return entry


def auto_review(out_dir: str | Path, policy: str = "accept-all-passing", reviewer: str | None = None,
                now: str | None = None) -> list[dict[str, Any]]:
    """Headless revision: ``accept-all-passing`` accepts every assembled record that has no decision
    yet; ``none`` decides nothing (records stay pending). Returns the new decisions."""
    if policy not in REVIEW_POLICIES:
        raise SSUIError(f"review policy {policy!r}: expected one of {', '.join(REVIEW_POLICIES)}")
    if policy == "none":
        return []
    decided = latest_decisions(out_dir)
    return [record_decision(out_dir, c.id, "accept", reviewer or f"policy:{policy}",
                            reason="passed every automatic stage", mode=f"policy:{policy}", now=now)
            for c in reviewable(out_dir) if c.id not in decided]


def apply_decisions_file(out_dir: str | Path, path: str | Path, reviewer: str | None = None,
                         now: str | None = None) -> list[dict[str, Any]]:
    """Headless revision from a JSONL file of ``{id, decision, reason?, edits?, reviewer?}`` lines.
    Every line is validated before anything is written (errors name file:line); a line whose
    decision is already the candidate's latest one is skipped, so applying a file twice is harmless."""
    from ssui_lib.core.schema import iter_jsonl

    rows = []
    cands = {c.id: c for c in reviewable(out_dir)}
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        if not isinstance(obj, dict):
            raise SSUIError(f"{where}: expected a JSON object")
        unknown = set(obj) - {"id", "decision", "reason", "edits", "reviewer"}
        if unknown:
            raise SSUIError(f"{where}: field '{sorted(unknown)[0]}': unknown (id, decision, reason, edits, reviewer)")
        cid, dec = obj.get("id"), obj.get("decision")
        who = obj.get("reviewer") or reviewer
        if cid not in cands:
            raise SSUIError(f"{where}: field 'id': {cid!r} is not an assembled candidate of this run")
        if dec not in DECISIONS:
            raise SSUIError(f"{where}: field 'decision': {dec!r} is not one of {', '.join(DECISIONS)}")
        if not who:
            raise SSUIError(f"{where}: field 'reviewer': missing (give it here or as an argument)")
        edits = obj.get("edits") or {}
        if not isinstance(edits, dict):
            raise SSUIError(f"{where}: field 'edits': expected an object field -> text")
        if dec == "reject" and not str(obj.get("reason") or "").strip():
            raise SSUIError(f"{where}: field 'reason': a rejection needs a reason")
        if dec == "edit":
            try:
                apply_edits(Sample.from_dict(cands[cid].events["summary"]["data"]["sample"]), edits)
            except SSUIError as e:
                raise SSUIError(f"{where}: {e}") from None
        rows.append((cid, dec, who, str(obj.get("reason") or ""), edits))
    out = []
    for cid, dec, who, reason, edits in rows:
        last = latest_decisions(out_dir).get(cid)
        if last and (last["decision"], last["reason"], last["edits"]) == (dec, reason.strip(), edits):
            continue
        out.append(record_decision(out_dir, cid, dec, who, reason=reason, edits=edits,
                                   mode=f"file:{Path(path).name}", now=now))
    return out


def final_samples(out_dir: str | Path) -> list[Sample]:
    """The accepted records after revision (edits applied), each with the revision decision added
    to ``provenance.stages``."""
    decisions = latest_decisions(out_dir)
    out = []
    for c in reviewable(out_dir):
        rev = decisions.get(c.id)
        if rev is None or rev["decision"] == "reject":
            continue
        s = Sample.from_dict(c.events["summary"]["data"]["sample"])
        if rev["decision"] == "edit":
            s = apply_edits(s, rev["edits"])
        s.provenance.stages.append({"stage": "revision", "status": "passed", "reason": _revision_reason(rev),
                                    "reviewer": rev["reviewer"], "timestamp": rev["timestamp"]})
        out.append(s)
    return out


def export_final(out_dir: str | Path) -> Path:
    """Write ``final.jsonl`` (atomically) with :func:`final_samples`; return its path."""
    path = Path(out_dir) / "final.jsonl"
    atomic_write_text(path, dumps_jsonl(s.to_dict() for s in final_samples(out_dir)))
    return path
