"""The curation agents (stages 1, 2, 4 and 5 of ``ssui_lib.curation``): cached, format-guided
model calls and the strict parsers of each agent's answer."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ssui_lib.core.store import JsonlCache, cache_key
from ssui_lib.core.chain import clean_text as _clean, parse_reasoning_output
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Prompt, SamplingParams
from ssui_lib.models.prompts import (
    QUERY_LABELS, TEXT_CHECK_LABELS, query_agent_prompt, reasoning_agent_prompt, text_only_prompt,
    text_safety_prompt,
)
from ssui_lib.core.schema import Category, Image, Provenance, Sample
from ssui_lib.eval import icl
from ssui_lib.core.taxonomy import L1_CATEGORIES
from ssui_lib.curation.settings import event, CALL_FORMAT, STEP_LABELS, CurationConfig

if TYPE_CHECKING:  # annotations only (run imports this module)
    from ssui_lib.curation.run import Candidate


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
    prompts = [query_agent_prompt(c.image_ref(model), c.hint, icl.exemplars_by_category(pool, c.hint, cfg.n_exemplars))
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

def reasoning_stage(model: ChatModel, cache: JsonlCache, cands: Sequence["Candidate"], cfg: CurationConfig,
                    pool: Sequence[Sample] = ()) -> list[dict[str, Any]]:
    """Stage 2 for a batch of candidates that passed stage 1 (data: the six steps and the raw output);
    worked examples come from the query's category."""
    prompts = [reasoning_agent_prompt(c.image_ref(model), c.data["question"], c.data["category"],
                                      icl.exemplars_by_category(pool, c.data["category"], cfg.n_exemplars))
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
