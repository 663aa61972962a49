"""Training examples of :mod:`ssui_lib.srpo.train`: contrastive pairs and reference paths per
sample, built from an exploration folder (``ssui explore`` / chapter 04), and their fingerprint."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import Prompt
from ssui_lib.srpo.config import METHODS, _check_choice
from ssui_lib.core.chain import render_chain
from ssui_lib.data.bundled import load_dataset
from ssui_lib.models.base import flatten_for_text
from ssui_lib.srpo.explore import cot_prompt, load_pairs
from ssui_lib.srpo.explore import read_trees as read_explore_trees
import hashlib


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Pair:
    """One contrastive pair of SRPO Eq. 6 for a sample: the shared prefix τ_1:i−1 (the reference
    path's first i−1 steps) and a positive / negative continuation of it (F = 1 / F = 0).
    The same fields, in the same order, as ``explore.PairRow`` (``Pair(*row)``)."""
    sample_id: str
    step: int
    prefix: str
    pos: str
    neg: str


@dataclass
class TrainExample:
    """What one unit of a batch is trained on: the question prompt Q, the reference path τ*
    (srpo, sft) and the contrastive pairs (srpo: all of the sample's steps; dpo/orpo: one)."""
    sample_id: str
    prompt: Prompt
    reference: str | None = None
    pairs: list[Pair] = field(default_factory=list)


def build_examples(method: str, references: dict[str, str], pairs: Iterable[Pair],
                   prompt_for: Callable[[str], Prompt]) -> list[TrainExample]:
    """Training examples for a method from reference paths (sample id → τ*) and explored pairs.

    srpo: one example per sample with a reference path (its pairs, possibly none: J_align = 0);
    sft: the same without pairs; dpo / orpo: one example per pair (only samples with ≥ 1 correct and
    ≥ 1 incorrect path have pairs). ``prompt_for(sample_id)`` gives the question prompt Q.
    Order: sample ids as given, pairs by step."""
    _check_choice("method", method, METHODS)
    by_id: dict[str, list[Pair]] = {}
    for p in pairs:
        by_id.setdefault(p.sample_id, []).append(p)
    for ps in by_id.values():
        ps.sort(key=lambda p: p.step)
    if method in ("srpo", "sft"):
        return [TrainExample(sid, prompt_for(sid), ref, by_id.get(sid, []) if method == "srpo" else [])
                for sid, ref in references.items()]
    return [TrainExample(sid, prompt_for(sid), None, [p]) for sid, ps in by_id.items() for p in ps]


def data_fingerprint(examples: Sequence[TrainExample]) -> str:
    """A hash of the training data (ids, references, pairs; prompts' text) so that a resumed run
    refuses to continue on different data."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.sample_id, flatten_for_text(ex.prompt), ex.reference,
                             [asdict(p) for p in ex.pairs]], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def run_fingerprint(examples: Sequence[TrainExample], init_adapter: str | os.PathLike | None = None) -> str:
    """What a resumed or reused run must share besides its configuration: the training data and,
    when it starts from an adapter (``TrainConfig.init_adapter``), that adapter's weights, so a run
    started from an SFT adapter that has since been retrained is stale."""
    key = data_fingerprint(examples)
    if init_adapter is None:
        return key
    f = Path(init_adapter) / "adapter_model.safetensors"
    if not f.is_file():
        raise SSUIError(f"train config: field 'init_adapter': {f} does not exist (train the adapter to start from first)")
    return key + "+" + hashlib.sha256(f.read_bytes()).hexdigest()[:12]



# ----------------------------------------------------------------------------- from an exploration folder


def _exploration_info(data_dir: Path) -> dict[str, Any]:
    """What ``ssui explore`` recorded about its run (DIR/stats.json: dataset, shots_from, …), or {}."""
    p = data_dir / "stats.json"
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise SSUIError(f"{p}: malformed JSON") from None
    return d if isinstance(d, dict) else {}


def load_exploration(data_dir: str | os.PathLike, method: str, *, dataset: str | None = None,
                     load_images: bool = False, with_exemplars: bool = False) -> list[TrainExample]:
    """Training examples from an exploration folder (``DIR/trees.jsonl``, written by ``ssui explore``).

    srpo / dpo / orpo train on the explored samples; sft on **every** sample of the dataset (the
    paper: "SFT utilizes the entire dataset"), with the reference path τ* of each.

    Pairs and reference paths τ* come from ``explore.load_pairs`` (an empty reference falls back to
    ``chain.render_chain``). The prompt is the question Q alone: SRPO uses the exemplars D_c only to
    explore (Eq. 2, 4) and trains on log p(τ | Q) (Eq. 5, 6), which is also what the held-out
    evaluation asks (``heldout``: the chain prompt without exemplars). ``with_exemplars=True`` keeps
    D_c instead: the prompt exploration continued, ``explore.cot_prompt`` with the exemplars each
    tree records (``exemplar_ids``, looked up in the dataset and in the exemplar pool ``shots_from``
    named in DIR/stats.json). The samples come from ``dataset``, else the dataset DIR/stats.json
    names, else ``bundled:all``. ``load_images`` gives a VLM the pixels."""
    d = Path(data_dir)
    trees_path = d / "trees.jsonl"
    rows, refs = load_pairs(d)  # SSUIError if DIR/trees.jsonl is missing
    trees = read_explore_trees(trees_path)
    info = _exploration_info(d)
    spec = dataset or info.get("dataset") or "bundled:all"
    samples = {s.id: s for s in load_dataset(spec)}
    shots_from = info.get("shots_from")
    shot_pool = dict(samples)
    if shots_from and shots_from != spec:
        shot_pool.update({s.id: s for s in load_dataset(shots_from)})
    missing = [t["id"] for t in trees if t["id"] not in samples]
    if missing:
        raise SSUIError(f"{trees_path}: sample {missing[0]!r} is not in dataset {spec!r} (pass --dataset)")
    exemplar_ids = {t["id"]: list(t.get("exemplar_ids") or []) if with_exemplars else [] for t in trees}
    for sid, ids in exemplar_ids.items():
        gone = [i for i in ids if i not in shot_pool]
        if gone:
            raise SSUIError(f"{trees_path}: tree {sid!r}: exemplar {gone[0]!r} is in neither {spec!r} nor the "
                            f"exemplar pool {shots_from!r}")
    references = {t["id"]: refs.get(t["id"]) or render_chain(samples[t["id"]]) for t in trees}
    if method == "sft":
        # "SFT utilizes the entire dataset" (SRPO § Optimization Baselines): every sample of the
        # exploration's dataset (the train split), explored or not, in the dataset's order
        references = {sid: references.get(sid) or render_chain(s) for sid, s in samples.items()}
    pairs = [Pair(r.sample_id, r.step, r.prefix, r.pos, r.neg) for r in rows]

    def prompt_for(sid: str) -> Prompt:
        return cot_prompt(samples[sid], [shot_pool[i] for i in exemplar_ids.get(sid, [])], load_image=load_images)

    return build_examples(method, references, pairs, prompt_for)
