"""``ssui merge``: put the shards of ``ssui generate`` / ``judge`` / ``explore --shard I/N`` back
together as one run (the library calls are in :mod:`ssui_lib.core.shards`)."""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.shards import merge_jsonl
from ssui_lib.core.store import _normal, read_settings, write_json

# What ssui explore's stats.json records about a run that every shard of it shares.
SHARED_STATS = ("model", "dataset", "shots_from", "limit", "config")


def add_commands(sub) -> None:
    """``ssui merge --dataset D [--limit N] --out OUT SHARD...``."""
    p = sub.add_parser("merge", help="merge the outputs of --shard I/N runs into the output of one run",
                       description="Merge shard outputs: JSONL files of ssui generate or ssui judge (OUT: a file), or "
                                   "ssui explore output folders (OUT: a folder with trees.jsonl and stats.json). "
                                   "Records come out in the dataset's order; a sample in no shard, an id outside the "
                                   "dataset, conflicting records or shards run with other settings are errors.")
    p.add_argument("shards", nargs="+", metavar="SHARD", help="the shards' --out files (or explore folders)")
    p.add_argument("--dataset", required=True, help="the dataset spec the shards were run on")
    p.add_argument("--limit", type=int, help="the --limit the shards were run with")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_merge)


def _order(a) -> list[str]:
    from ssui_lib.data.bundled import load_dataset
    from ssui_lib.data.loaders.common import pictures_optional
    from ssui_lib.eval.evaluate import apply_limit

    with pictures_optional():
        samples = load_dataset(a.dataset)
    return [s.id for s in apply_limit(samples, a.limit)]


def merge_explore(shards: list[Path], out: Path, order: list[str]) -> dict:
    """Merge explore output folders: ``trees.jsonl`` in dataset order and a ``stats.json`` whose
    statistics cover every tree (``complete`` only when every shard was; ``wall_s`` summed)."""
    from ssui_lib.srpo.explore import read_trees, statistics

    stats = []
    for d in shards:
        st = read_settings(d / "stats.json")
        if st is None:
            raise SSUIError(f"{d}: no stats.json (not an ssui explore output folder)")
        stats.append(st)
    for d, st in zip(shards[1:], stats[1:]):
        diff = [k for k in SHARED_STATS if _normal(st.get(k)) != _normal(stats[0].get(k))]
        if diff:
            raise SSUIError(f"{d}/stats.json: field '{diff[0]}' differs from {shards[0]}/stats.json; "
                            "shards of one run share every setting but --shard")
    out.mkdir(parents=True, exist_ok=True)
    merge_jsonl([d / "trees.jsonl" for d in shards], out / "trees.jsonl", order)
    trees = read_trees(out / "trees.jsonl")
    info = {**stats[0], "complete": all(st.get("complete") for st in stats),
            "wall_s": round(sum(float(st.get("wall_s") or 0) for st in stats), 3), "shards": len(shards),
            "statistics": statistics(trees)}
    write_json(out / "stats.json", info)
    return info


def _cmd_merge(a) -> int:
    shards = [Path(s) for s in a.shards]
    for s in shards:
        if not s.exists():
            raise SSUIError(f"{s}: shard not found")
    order = _order(a)
    if all(s.is_dir() for s in shards):
        info = merge_explore(shards, Path(a.out), order)
        print(f"{a.out}: {info['statistics']['samples']} trees from {len(shards)} shards")
    elif any(s.is_dir() for s in shards):
        raise SSUIError("merge: give either explore output folders or JSONL files, not both")
    else:
        rows = merge_jsonl(shards, a.out, order)
        print(f"{a.out}: {len(rows)} records from {len(shards)} shards")
    return 0
