"""``ssui explore``: SRPO generative exploration (the library calls are in :mod:`ssui_lib.srpo.explore`)."""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.shards import parse_shard, take_shard
from ssui_lib.data.bundled import load_dataset
from ssui_lib.models import resolve_model
from ssui_lib.srpo.explore import MODES, T_FINAL, ExploreConfig, parse_steps, read_trees, run_exploration, statistics


def add_commands(sub) -> None:
    """``ssui explore --model M --dataset D --out DIR [...]``."""
    d = ExploreConfig()
    p = sub.add_parser("explore", help="SRPO generative exploration: contrastive branches per reasoning step",
                       description="Branch each sample's reference path at every step (SRPO Eq. 1-4). Writes "
                                   "DIR/trees.jsonl (one tree per sample, appended; a rerun resumes) and DIR/stats.json.")
    p.add_argument("--model", required=True, help="model name (embedded, hf:PATH, openai-compatible:URL#MODEL, ...)")
    p.add_argument("--dataset", required=True, help="dataset spec (bundled:train, jsonl:PATH, ...)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--mode", choices=MODES, default=d.mode)
    p.add_argument("--k", type=int, default=d.k, help="continuations per round (until_pair) or per step (fixed_k)")
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--max-samples", type=int, default=d.max_samples, help="until_pair: budget per step")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--steps", help=f"branch points, e.g. 4,5,6 (default: 1..{T_FINAL - 1})")
    p.add_argument("--verdict-branch", action="store_true",
                   help=f"allow step {T_FINAL} = T, branching at the verdict token itself (not the paper's range)")
    p.add_argument("--shots", type=int, default=d.shots, help="m, ground-truth exemplars in the CoT prompt")
    p.add_argument("--shots-from", default="bundled:train", help="dataset spec of the exemplar pool (its train split)")
    p.add_argument("--batch-samples", type=int, default=d.batch_samples, help="samples explored per generate call")
    p.add_argument("--prefix", choices=("reference", "sampled"), default=d.prefix,
                   help="branch the reference path (default) or a path the model samples with it in context (Eq. 2)")
    p.add_argument("--limit", type=int, help="only the first N samples")
    p.add_argument("--shard", metavar="I/N", help="only shard I of N (groups of --batch-samples dealt round robin, "
                                                  "after --limit); put the shards together with ssui merge")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_explore)


def _cmd_explore(a) -> int:
    cfg = ExploreConfig(mode=a.mode, k=a.k, max_samples=a.max_samples, temperature=a.temperature,
                        max_new_tokens=a.max_new_tokens, shots=a.shots, steps=parse_steps(a.steps),
                        verdict_branch=a.verdict_branch, batch_samples=a.batch_samples, seed=a.seed,
                        prefix=a.prefix)
    if a.limit is not None and a.limit < 1:
        raise SSUIError(f"--limit: expected an integer >= 1, got {a.limit}")
    samples = load_dataset(a.dataset)
    samples = samples[:a.limit] if a.limit else samples
    samples = take_shard(samples, parse_shard(a.shard), cfg.batch_samples)
    pool = [s for s in load_dataset(a.shots_from) if s.split == "train"] if cfg.shots else []
    if cfg.shots and not pool:
        raise SSUIError(f"--shots-from {a.shots_from}: no train-split samples to draw exemplars from")
    model = resolve_model(a.model)
    trees_path = Path(a.out) / "trees.jsonl"
    before = {t["id"] for t in read_trees(trees_path)}
    trees, info = run_exploration(model, samples, a.out, cfg, model_name=a.model, dataset=a.dataset,
                                  exemplar_pool=pool, shots_from=a.shots_from, limit=a.limit,
                                  progress=not a.no_progress)
    wall = info["wall_s"]
    st = statistics(trees)
    resumed = len(before & {s.id for s in samples})
    tpp = f"{st['tokens_per_pair']:.0f}" if st["tokens_per_pair"] else "-"
    print(f"explore: {st['samples']} samples ({resumed} resumed), {st['branches']} branches, {st['pairs']} pairs, "
          f"{st['samples_with_pair']} samples with a pair, {tpp} tokens/pair, {wall:.1f}s; {trees_path}")
    return 0
