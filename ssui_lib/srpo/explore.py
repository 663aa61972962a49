"""SRPO generative exploration (SRPO Eq. 1–4): branch the reference path at every step and keep
contrastive pairs of continuations.

The states of a path (Eq. 1) are v0 = the question Q, v1..v6 = the six steps of SSUI's chain and
v_T = v7 = the final verdict + answer; the reference path τ* is ``chain.render_chain(sample)``.
The model B sees SRPO's CoT prompt D_c + Q (Eq. 2: ``prompts.chain_prompt`` with ``m`` ground-truth
exemplars from the train split, never the sample itself nor its twin). At step i the reference
prefix τ1:i−1 — followed by the header of step i, so the continuation starts where the step does —
is continued at temperature T to the end of the path (Eq. 4). The branch points are the
intermediate states i = 1..T−1 (Eq. 8's range); branching at the verdict itself (i = T, where a
"pair" is the single token " unsafe" vs " safe") is the opt-in setting ``verdict_branch``.
By default the prefix is the reference path τ* itself (off-policy); ``prefix="sampled"`` reads
Eq. 2 literally: B first samples its own path with τ* and D_c in context, and the branches continue
*that* path's steps (:mod:`ssui_lib.srpo.onpolicy`; the tree then records it as ``path``, and a
branch point the sampled path does not reach is skipped and listed in ``stats.skipped_steps``).

F is three-valued (Eq. 3 as a verifier): a continuation is positive (1) iff its final state
reaches the ground-truth answer A (``chain.final_verdict`` == ``sample.verdict``), negative (0) iff
it reaches the other verdict, and **unverified** (None) when it has no verdict line or was stopped
by the token limit (finish reason ``"length"``): kept in the tree and counted in the statistics,
never a positive or a negative. Any ``F(sample, full_path) -> bool | None`` may replace the default.

Two modes: ``until_pair`` (the paper) samples rounds of ``k`` continuations until one positive and
one negative are found or ``max_samples`` are spent, and keeps ``pairs_per_step`` pairs a step;
``fixed_k`` (the RPO code the hyperparameters come from) samples exactly ``k`` per step and keeps
every positive × negative pair, as RPO does. RPO uses k = 10; here ``k`` is a setting (default 4,
the same default as ``until_pair``'s round size) — pass ``k=10`` to match RPO. Every branch is kept.

Efficiency: one ``generate`` call serves every (sample, step) prefix of a group of samples, each
with ``n`` samples (the backend prefills each distinct prompt once and shares it among its ``n``
rows); later rounds serve only the (sample, step) pairs still missing a positive or a negative.
Continuations stop at ``"\\nAnswer:"``: F reads the verdict line only, so the answer text after it
is never generated. Prompts are ordered by step so that rows of similar length decode together.

Output: one tree per sample, appended to a JSONL file as soon as the sample is finished::

    {id, verdict, reference, exemplar_ids,
     steps: [{i, prefix, branches: [{text, F, logprob, n_tokens, finish, round}]}],
     pairs: [{i, prefix, pos, neg}], stats: {branches, tokens, pairs, positives, negatives,
     unverified, rounds, settings}}

``pos`` / ``neg`` are continuations of ``prefix``: τ_i^± = prefix ⊕ pos/neg. Restarting skips the
samples already in the file (a truncated last line left by a kill is cut off and redone). A resumed
run is as valid as an uninterrupted one, but not bit-identical to it: sampling is seeded per group
of samples explored together, and a resumed group can hold fewer samples.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from ssui_lib.core.chain import final_verdict, render_chain, render_final, render_steps, step_header
from ssui_lib.core.errors import SSUIError
from ssui_lib.eval.icl import balanced_exemplars as pick_exemplars
from ssui_lib.models.base import ChatModel, ImageRef, Prompt, SamplingParams, caption_text
from ssui_lib.core.schema import STEPS, Sample
from ssui_lib.core.store import append_jsonl, cache_key, check_settings, read_jsonl, write_json

MODES = ("until_pair", "fixed_k")
T_FINAL = len(STEPS) + 1  # T: v1..v6 are the steps, v7 the final verdict + answer
ALL_STEPS: tuple[int, ...] = tuple(range(1, T_FINAL + 1))  # every state v1..v_T
INTERMEDIATE_STEPS: tuple[int, ...] = tuple(range(1, T_FINAL))  # the default branch points 1..T−1
FINAL_HEADER = "Final verdict:"
STOP = ("\nAnswer:",)  # F needs the verdict line only: never generate the answer text

Verifier = Callable[[Sample, str], "bool | None"]


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class ExploreConfig:
    """Settings of one exploration run (SRPO: temperature 0.5)."""

    mode: str = "until_pair"  # "until_pair" (the paper) | "fixed_k" (the RPO code)
    k: int = 4  # continuations per round (until_pair) or per step (fixed_k)
    max_samples: int = 8  # until_pair: budget of continuations per step
    temperature: float = 0.5
    max_new_tokens: int = 384
    shots: int = 2  # m, the ground-truth exemplars in D_c
    steps: tuple[int, ...] = INTERMEDIATE_STEPS  # the branch points i (1..T−1)
    verdict_branch: bool = False  # opt-in: also allow i = T, branching at the verdict token itself
    stop: tuple[str, ...] = STOP
    pairs_per_step: int = 1  # pairs kept per step when more positives and negatives were found
    batch_samples: int = 4  # samples explored together in one generate call
    header: bool = True  # end each prefix with the header of step i
    seed: int = 0
    prefix: str = "reference"  # branch τ* itself (off-policy) | "sampled": a path B writes with τ*, D_c in context
    path_max_new_tokens: int = 512  # prefix "sampled": budget of the sampled path (its six steps)

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(int(i) for i in self.steps))
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.mode not in MODES:
            raise SSUIError(f"explore: mode {self.mode!r} is not one of {', '.join(MODES)}")
        for name, lo in (("k", 1), ("max_samples", 1), ("max_new_tokens", 1), ("shots", 0),
                         ("pairs_per_step", 1), ("batch_samples", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise SSUIError(f"explore: {name} must be an integer >= {lo}, got {v!r}")
        if not isinstance(self.temperature, (int, float)) or not self.temperature > 0:
            raise SSUIError(f"explore: temperature must be > 0 (Eq. 4 samples at temperature T), got {self.temperature!r}")
        if not self.steps or any(i not in ALL_STEPS for i in self.steps) or len(set(self.steps)) != len(self.steps):
            raise SSUIError(f"explore: steps must be distinct values in 1..{T_FINAL}, got {list(self.steps)}")
        from ssui_lib.srpo.onpolicy import PREFIXES

        if self.prefix not in PREFIXES:
            raise SSUIError(f"explore: prefix must be one of {', '.join(PREFIXES)}, got {self.prefix!r}")
        if not isinstance(self.path_max_new_tokens, int) or self.path_max_new_tokens < 1:
            raise SSUIError(f"explore: path_max_new_tokens must be an integer >= 1, got {self.path_max_new_tokens!r}")
        if self.prefix == "sampled" and T_FINAL in self.steps:
            raise SSUIError("explore: prefix 'sampled' branches the model's own steps; the verdict branch needs the reference")
        if not isinstance(self.verdict_branch, bool):
            raise SSUIError(f"explore: verdict_branch must be true or false, got {self.verdict_branch!r}")
        if T_FINAL in self.steps and not self.verdict_branch:
            raise SSUIError(f"explore: steps include {T_FINAL} = T, the verdict itself (its pairs are one token, "
                            f"outside Eq. 8's 1..T-1); set verdict_branch to branch there on purpose")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"], d["stop"] = list(self.steps), list(self.stop)
        return d


# ----------------------------------------------------------------------------- paths and F

def _need_reasoning(sample: Sample) -> None:
    if not sample.reasoning:
        raise SSUIError(f"sample {sample.id!r}: no reference reasoning path (exploration branches the six-step chain)")


def reference_path(sample: Sample) -> str:
    """τ*: the sample's reference path (six steps, final verdict, answer)."""
    _need_reasoning(sample)
    return render_chain(sample)


def states(sample: Sample) -> list[str]:
    """[v0, v1, …, v_T] of Eq. 1: the question, the six steps, the final verdict + answer.
    ``"\\n".join(states(s)[1:]) == reference_path(s)``."""
    _need_reasoning(sample)
    v0 = f"{caption_text(ImageRef(caption=sample.image.caption))}\n{sample.query}"
    return [v0, *render_steps(sample.reasoning), render_final(sample.verdict, sample.safe_reply)]


def header(i: int) -> str:
    """What starts state v_i: 'Step i (Name):' for the steps, 'Final verdict:' for v_T."""
    return step_header(i) if i < T_FINAL else FINAL_HEADER


def step_prefix(sample: Sample, i: int, with_header: bool = True) -> str:
    """τ1:i−1, the text continued at step i: the reference path's first i−1 steps (each with its
    newline), then the header of step i. Always a prefix of ``reference_path(sample)``."""
    if i not in ALL_STEPS:
        raise SSUIError(f"step {i}: expected 1..{T_FINAL}")
    vs = states(sample)
    return "".join(v + "\n" for v in vs[1:i]) + (header(i) if with_header else "")


def verdict_F(sample: Sample, path: str) -> bool | None:
    """F(τ) of Eq. 3: True iff the path's final verdict is the ground-truth answer A, False iff it
    is the other verdict, None (unverified) when the path has no verdict line."""
    v = final_verdict(path)
    return None if v is None else v == sample.verdict


def cot_prompt(sample: Sample, exemplars: Sequence[Sample], *, load_image: bool = False) -> Prompt:
    """D_c + Q (Eq. 2) for a sample; pixels only for a model that takes images."""
    from ssui_lib.data.bundled import image_ref
    from ssui_lib.models.prompts import chain_prompt

    return chain_prompt(sample, list(exemplars), image_ref(sample, load=load_image))


# ----------------------------------------------------------------------------- the search

@dataclass
class _Job:
    """One branch point: (sample, step i) with its prompt, prefix and branches so far."""

    slot: int  # index of the sample in its group
    i: int
    prompt: Prompt
    prefix: str
    branches: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0

    def found(self, value: int) -> bool:
        return any(b["F"] == value for b in self.branches)


def next_request(job: _Job, cfg: ExploreConfig) -> int:
    """How many continuations the branch point asks for next (0: finished)."""
    if cfg.mode == "fixed_k":
        return cfg.k if job.rounds == 0 else 0
    if job.found(1) and job.found(0):
        return 0
    return max(0, min(cfg.k, cfg.max_samples - len(job.branches)))


def select_pairs(i: int, prefix: str, branches: Sequence[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """The contrastive pairs of a step. ``limit`` = n: up to n pairs in sampling order (first
    positive with first negative, …; ``until_pair``). ``limit=None``: every positive × negative
    pair, positives in sampling order outermost — what the RPO code ``fixed_k`` is named after does
    with its k = 10 samples per step (every accepted × rejected pair)."""
    pos = [b["text"] for b in branches if b["F"] == 1]
    neg = [b["text"] for b in branches if b["F"] == 0]
    if limit is None:
        return [{"i": i, "prefix": prefix, "pos": p, "neg": n} for p in pos for n in neg]
    return [{"i": i, "prefix": prefix, "pos": p, "neg": n} for p, n in list(zip(pos, neg))[:limit]]


def _score(F: Verifier, sample: Sample, prefix: str, text: str, finish: str | None = None) -> int | None:
    """F as 1 / 0 / None; an empty continuation, or one stopped by the token limit
    (``finish == "length"``), has nothing to verify (None)."""
    if not text.strip() or finish == "length":
        return None
    r = F(sample, prefix + text)
    return None if r is None else int(bool(r))


def _round_seed(seed: int, ids: Sequence[str], rnd: int, n: int) -> int:
    return int(cache_key(["explore", seed, list(ids), rnd, n])[:8], 16)


def _tree(sample: Sample, exemplar_ids: list[str], jobs: list[_Job], cfg: ExploreConfig, settings: str,
          path: dict[str, Any] | None = None) -> dict:
    steps, pairs = [], []
    for j in jobs:
        steps.append({"i": j.i, "prefix": j.prefix, "branches": j.branches})
        pairs.extend(select_pairs(j.i, j.prefix, j.branches, None if cfg.mode == "fixed_k" else cfg.pairs_per_step))
    bs = [b for j in jobs for b in j.branches]
    stats = {
        "branches": len(bs), "tokens": sum(b["n_tokens"] for b in bs), "pairs": len(pairs),
        "positives": sum(b["F"] == 1 for b in bs), "negatives": sum(b["F"] == 0 for b in bs),
        "unverified": sum(b["F"] is None for b in bs), "rounds": max((j.rounds for j in jobs), default=0),
        "settings": settings,
    }
    tree = {"id": sample.id, "verdict": sample.verdict, "reference": reference_path(sample),
            "exemplar_ids": exemplar_ids, "steps": steps, "pairs": pairs, "stats": stats}
    if path is not None:  # prefix "sampled": the path B wrote (Eq. 2) and the branch points it could not serve
        tree["path"] = path
        stats["path_tokens"] = path["n_tokens"]
        stats["tokens"] += path["n_tokens"]
        stats["skipped_steps"] = [i for i in cfg.steps if i not in {j.i for j in jobs}]
    return tree


def _explore_group(model: ChatModel, group: list[Sample], cfg: ExploreConfig, pool: Sequence[Sample],
                   F: Verifier, settings: str) -> Iterator[dict]:
    """Explore a group of samples together; yield each sample's tree as soon as it is finished."""
    load = bool(getattr(model, "supports_images", False))
    jobs: list[_Job] = []
    shots: list[list[str]] = []
    prompts: list[Prompt] = []
    for slot, s in enumerate(group):
        ex = pick_exemplars(s, pool, cfg.shots, cfg.seed)
        shots.append([e.id for e in ex])
        prompt = cot_prompt(s, ex, load_image=load)  # one prompt object shared by the sample's steps
        prompts.append(prompt)
        if cfg.prefix == "reference":
            for i in cfg.steps:
                jobs.append(_Job(slot, i, prompt, step_prefix(s, i, cfg.header)))
    paths = _sample_paths(model, group, prompts, cfg) if cfg.prefix == "sampled" else [None] * len(group)
    if cfg.prefix == "sampled":
        from ssui_lib.srpo.onpolicy import sampled_prefix

        for slot, path in enumerate(paths):
            for i in cfg.steps:
                pre = sampled_prefix(path["text"], i, cfg.header, complete=path["finish"] != "length")
                if pre is not None:
                    jobs.append(_Job(slot, i, prompts[slot], pre))
    by_slot = {slot: [j for j in jobs if j.slot == slot] for slot in range(len(group))}
    emitted: set[int] = set()
    ids = [s.id for s in group]
    rnd = 0
    while True:
        wants = [(j, n) for j in jobs if (n := next_request(j, cfg)) > 0]
        busy = {j.slot for j, _ in wants}
        for slot, js in by_slot.items():  # finished samples are written before the next round
            if slot not in emitted and slot not in busy:
                emitted.add(slot)
                yield _tree(group[slot], shots[slot], js, cfg, settings, paths[slot])
        if not wants:
            return
        for n in sorted({n for _, n in wants}, reverse=True):
            batch = sorted((j for j, m in wants if m == n), key=lambda j: (j.i, j.slot))
            params = SamplingParams(n=n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                                    stop=cfg.stop, seed=_round_seed(cfg.seed, ids, rnd, n))
            outs = model.generate([j.prompt for j in batch], params, prefixes=[j.prefix for j in batch])
            if len(outs) != len(batch) or any(len(o) != n for o in outs):
                raise SSUIError(f"model {model.name!r}: generate returned the wrong number of continuations")
            for j, gens in zip(batch, outs):
                s = group[j.slot]
                for g in gens:
                    j.branches.append({"text": g.text, "F": _score(F, s, j.prefix, g.text, g.finish_reason),
                                       "logprob": g.logprob,
                                       "n_tokens": int(g.n_tokens), "finish": g.finish_reason, "round": rnd})
                j.rounds += 1
        rnd += 1


def _sample_paths(model: ChatModel, group: list[Sample], prompts: list[Prompt], cfg: ExploreConfig) -> list[dict]:
    """Eq. 2 read literally: one path per sample, sampled at temperature T from D_c + Q with the
    reference τ* in context (``onpolicy.guided_prompt``), stopped before its verdict line."""
    from ssui_lib.srpo.onpolicy import PATH_STOP, guided_prompt

    params = SamplingParams(n=1, temperature=cfg.temperature, max_new_tokens=cfg.path_max_new_tokens,
                            stop=PATH_STOP, seed=_round_seed(cfg.seed, [s.id for s in group], -1, 1))
    outs = model.generate([guided_prompt(p, reference_path(s)) for p, s in zip(prompts, group)], params)
    if len(outs) != len(group) or any(len(o) != 1 for o in outs):
        raise SSUIError(f"model {model.name!r}: generate returned the wrong number of paths")
    return [{"text": o[0].text, "n_tokens": int(o[0].n_tokens), "finish": o[0].finish_reason} for o in outs]


def settings_key(cfg: ExploreConfig, model: ChatModel, F: Verifier, pool_ids: Iterable[str] = ()) -> str:
    """A short fingerprint of what determines a tree: settings, model, F and the exemplar pool
    (not ``batch_samples``, which only groups the work: a run may be resumed with another)."""
    fname = getattr(F, "__qualname__", type(F).__name__)
    conf = {k: v for k, v in cfg.to_dict().items() if k != "batch_samples"}
    return cache_key({"config": conf, "model": model.name, "F": fname, "pool": sorted(pool_ids)})[:16]


def explore(model: ChatModel, samples: Sequence[Sample], cfg: ExploreConfig = ExploreConfig(), *,
            exemplar_pool: Sequence[Sample] = (), F: Verifier = verdict_F, progress: bool = True,
            settings: str | None = None) -> Iterator[dict]:
    """Explore every sample (Eq. 2–4); yield one tree per sample as soon as it is finished
    (``cfg.batch_samples`` samples share each generate call)."""
    if not getattr(model, "supports_prefix", True):
        raise SSUIError(f"model {model.name!r} cannot continue a prefix; exploration needs one that can")
    seen: set[str] = set()
    for s in samples:
        _need_reasoning(s)
        if s.id in seen:
            raise SSUIError(f"explore: duplicate sample id {s.id!r}")
        seen.add(s.id)
    settings = settings or settings_key(cfg, model, F, (p.id for p in exemplar_pool))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(samples), desc=f"explore ({model.name})", unit="sample")
    pairs = 0
    try:
        for g in range(0, len(samples), cfg.batch_samples):
            for tree in _explore_group(model, list(samples[g:g + cfg.batch_samples]), cfg, exemplar_pool, F, settings):
                pairs += tree["stats"]["pairs"]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(pairs=pairs)
                yield tree
    finally:
        if bar is not None:
            bar.close()


# ----------------------------------------------------------------------------- the trees file

def _parse_tree(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or "steps" not in obj:
        raise ValueError("not a tree record {id, steps, ...}")
    return obj


def read_trees(path: str | os.PathLike, *, repair: bool = False) -> list[dict[str, Any]]:
    """The trees of a ``trees.jsonl``. A truncated or corrupt *last* line (a killed run) is ignored
    — and cut off the file when ``repair`` — any other bad line is an error naming file:line."""
    rows, _ = read_jsonl(path, parse=_parse_tree, what="corrupt tree record", repair=repair, warn=False)
    return [t for _, t in rows]


def explore_to_file(model: ChatModel, samples: Sequence[Sample], path: str | os.PathLike,
                    cfg: ExploreConfig = ExploreConfig(), *, exemplar_pool: Sequence[Sample] = (),
                    F: Verifier = verdict_F, progress: bool = True, on_stale: str = "error") -> list[dict[str, Any]]:
    """Explore and append each tree to ``path`` as it finishes; resumable (samples already in the
    file are skipped). Returns all trees of ``samples`` that the file holds, in sample order.

    A file holding trees explored with other settings is an error (``on_stale="error"``) or is
    moved aside to ``trees.stale-<time>.jsonl`` and explored afresh (``on_stale="reset"``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    settings = settings_key(cfg, model, F, (s.id for s in exemplar_pool))
    done = {t["id"]: t for t in read_trees(p, repair=True)}

    def move_aside() -> None:
        stale = p.with_name(f"{p.stem}.stale-{time.strftime('%Y%m%d-%H%M%S')}{p.suffix}")
        p.replace(stale)
        done.clear()
        warnings.warn(f"{p} held trees explored with other settings; moved to {stale.name}", stacklevel=3)

    for sid, t in done.items():
        if not check_settings(p, {"settings": t.get("stats", {}).get("settings")}, {"settings": settings},
                              on_mismatch=on_stale, reset=move_aside,  # type: ignore[arg-type]
                              what=f"other settings (tree {sid!r}: model, mode, k, budget, temperature, exemplars…)",
                              hint="use another output folder or delete the file"):
            break
    todo = [s for s in samples if s.id not in done]
    for tree in explore(model, todo, cfg, exemplar_pool=exemplar_pool, F=F, progress=progress, settings=settings):
        append_jsonl(p, [tree])
        done[tree["id"]] = tree
    return [done[s.id] for s in samples if s.id in done]


def run_exploration(model: ChatModel, samples: Sequence[Sample], out_dir: str | os.PathLike,
                    cfg: ExploreConfig = ExploreConfig(), *, model_name: str, dataset: str,
                    exemplar_pool: Sequence[Sample] = (), shots_from: str = "bundled:train",
                    limit: int | None = None, progress: bool = True,
                    on_stale: str = "error") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Explore ``samples`` into ``out_dir/trees.jsonl`` (resumable, see :func:`explore_to_file`) and
    write ``out_dir/stats.json``: what was explored (model, dataset, exemplar pool, limit, config),
    whether it is complete, the wall time and :func:`statistics`. ``ssui explore`` and chapter 04
    both call this; ``ssui train --data DIR`` reads the dataset and the exemplar pool back from
    stats.json. Returns (trees, stats)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trees_path, stats_path = out / "trees.jsonl", out / "stats.json"

    def write_stats(trees: list[dict], complete: bool, wall: float) -> dict[str, Any]:
        info = {"model": model_name, "model_info": model.describe(), "dataset": dataset, "shots_from": shots_from,
                "limit": limit, "config": cfg.to_dict(), "complete": complete, "wall_s": round(wall, 3),
                "statistics": statistics(trees)}
        write_json(stats_path, info)
        return info

    t0 = time.perf_counter()
    ids = {s.id for s in samples}
    write_stats([t for t in read_trees(trees_path) if t["id"] in ids], False, 0.0)
    trees = explore_to_file(model, samples, trees_path, cfg, exemplar_pool=exemplar_pool, progress=progress,
                            on_stale=on_stale)
    return trees, write_stats(trees, True, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- statistics and pairs

def step_frame(trees: Sequence[dict]):
    """One row per step i: branches, positives, negatives, unverified, positive rate (among
    verified branches), pairs, generated tokens."""
    import pandas as pd

    rows: dict[int, dict[str, Any]] = {}
    for t in trees:
        npairs: dict[int, int] = {}
        for pr in t.get("pairs", []):
            npairs[pr["i"]] = npairs.get(pr["i"], 0) + 1
        for st in t["steps"]:
            r = rows.setdefault(st["i"], {"step": st["i"], "branches": 0, "positives": 0, "negatives": 0,
                                          "unverified": 0, "pairs": 0, "tokens": 0})
            bs = st["branches"]
            r["branches"] += len(bs)
            r["positives"] += sum(b["F"] == 1 for b in bs)
            r["negatives"] += sum(b["F"] == 0 for b in bs)
            r["unverified"] += sum(b["F"] is None for b in bs)
            r["tokens"] += sum(b["n_tokens"] for b in bs)
            r["pairs"] += npairs.get(st["i"], 0)
    df = pd.DataFrame([rows[i] for i in sorted(rows)],
                      columns=["step", "branches", "positives", "negatives", "unverified", "pairs", "tokens"])
    verified = df["positives"] + df["negatives"]
    df["positive_rate"] = (df["positives"] / verified.where(verified > 0)).astype(float)
    return df


def sample_frame(trees: Sequence[dict]):
    """One row per sample: id, verdict, branches, generated tokens, pairs, rounds."""
    import pandas as pd

    return pd.DataFrame(
        [{"id": t["id"], "verdict": t["verdict"], "branches": sum(len(s["branches"]) for s in t["steps"]),
          "tokens": sum(b["n_tokens"] for s in t["steps"] for b in s["branches"]),
          "pairs": len(t.get("pairs", [])), "rounds": t.get("stats", {}).get("rounds")} for t in trees],
        columns=["id", "verdict", "branches", "tokens", "pairs", "rounds"])


def statistics(trees: Sequence[dict]) -> dict[str, Any]:
    """Summary of an exploration (JSON-ready): pairs per sample, positive rate per step, generated
    tokens per contrastive pair, samples with at least one pair."""
    sf, st = sample_frame(trees), step_frame(trees)
    n, pairs, tokens = len(sf), int(sf["pairs"].sum()), int(sf["tokens"].sum())
    verified = int(st["positives"].sum() + st["negatives"].sum())
    with_pair = int((sf["pairs"] > 0).sum())
    return {
        "samples": n,
        "branches": int(sf["branches"].sum()),
        "tokens": tokens,
        "pairs": pairs,
        "pairs_per_sample": pairs / n if n else None,
        "samples_with_pair": with_pair,
        "samples_with_pair_rate": with_pair / n if n else None,
        "tokens_per_pair": tokens / pairs if pairs else None,
        "positive_rate": int(st["positives"].sum()) / verified if verified else None,
        "unverified": int(st["unverified"].sum()),
        "positive_rate_by_step": {str(int(r.step)): (None if r.positive_rate != r.positive_rate else float(r.positive_rate))
                                  for r in st.itertuples()},
        "pairs_by_step": {str(int(r.step)): int(r.pairs) for r in st.itertuples()},
    }


class PairRow(NamedTuple):
    """A contrastive pair for training: τ_i^± = prefix ⊕ pos / prefix ⊕ neg (Eq. 6–7)."""

    sample_id: str
    step: int
    prefix: str
    pos: str
    neg: str


def load_pairs(path: str | os.PathLike) -> tuple[list[PairRow], dict[str, str]]:
    """(pairs, reference paths by sample id) from a trees file (or its folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "trees.jsonl"
    if not p.is_file():
        raise SSUIError(f"{p}: file not found (expected an exploration output: DIR/trees.jsonl)")
    pairs: list[PairRow] = []
    refs: dict[str, str] = {}
    for t in read_trees(p):
        refs[t["id"]] = t.get("reference", "")
        for k, d in enumerate(t.get("pairs", [])):
            try:
                pairs.append(PairRow(t["id"], int(d["i"]), d["prefix"], d["pos"], d["neg"]))
            except (KeyError, TypeError, ValueError):
                raise SSUIError(f"{p}: tree {t['id']!r}: field 'pairs[{k}]': expected {{i, prefix, pos, neg}}") from None
    return pairs, refs


# ----------------------------------------------------------------------------- command line

def parse_steps(text: str | None) -> tuple[int, ...]:
    if not text:
        return INTERMEDIATE_STEPS
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SSUIError(f"--steps: expected comma-separated integers in 1..{T_FINAL}, got {text!r}") from None
