"""A curation run (``ssui_lib.curation``): candidates, their append-only event log, and the
resumable run loop that passes them through the stages."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ssui_lib.core.store import JsonlCache, cache_key
from ssui_lib.core.errors import SSUIError
from ssui_lib.data.images import load_image
from ssui_lib.models.base import ChatModel, ImageRef
from ssui_lib.core.schema import Sample, dumps_jsonl
from ssui_lib.core.store import atomic_write_text, guard_settings_file
from ssui_lib.curation.settings import STAGES, CALL_FORMAT, Seed, CurationConfig, category_hint, exemplar_pool
from ssui_lib.curation.agents import (
    _model_id, query_stage, reasoning_stage, TextJudge, agent_text_judge, text_safety_stage, summary_stage,
)
from ssui_lib.curation.reflection import normalise, reflection_stage
from ssui_lib.models import prompts as P


# ============================================================================ candidates and the event log

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
    texts = [P.CURATION_SYSTEM, P.TEXT_ONLY_SYSTEM, P.query_agent_instructions("<hint>"),
             P.reasoning_agent_instructions("<question>", "<category>"),
             P.reflection_agent_instructions("<question>", "<category>"), json.dumps(P.text_safety_prompt("<q>", "<a>"))]
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
        _advance(chunk, "reflection", lambda cs: reflection_stage(cs, cfg, earlier, pool, model=model, cache=cache), log)
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
