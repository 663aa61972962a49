"""Datasets: the bundled mini SSUI set, dataset specs, file validation and counts.

Specs (DESIGN.md): ``bundled:train|dev|test|all`` (or splits joined by ``+``: ``bundled:test+dev``), ``jsonl:PATH``; the external benchmark
formats (``siuo-gen:``, ``siuo-mcqa:``, ``vlsbench:``, ``mssbench:``) are read by
ssui_lib.data.loaders. Each returns a list of validated Samples.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.data.images import ImageRef, load_image, registry_caption_problem, resolve_path
from ssui_lib.core.schema import KINDS, SPLITS, Sample, iter_jsonl, read_samples
from ssui_lib.core.taxonomy import L1_CATEGORIES

BUNDLED_DIR = Path(__file__).parent / "bundled" / "parts"


def bundled_files() -> list[Path]:
    """The hand-written JSONL files of the bundled set (one per group of categories)."""
    return sorted(BUNDLED_DIR.glob("*.jsonl"))


@lru_cache(maxsize=1)
def _bundled() -> tuple[Sample, ...]:
    files = bundled_files()
    if not files:
        raise SSUIError(f"bundled dataset missing: no *.jsonl in {BUNDLED_DIR}")
    out: list[Sample] = []
    seen: dict[str, Path] = {}
    for f in files:
        for n, s in enumerate(read_samples(f), 1):
            if s.id in seen:
                raise SSUIError(f"{f}: field 'id': duplicate id {s.id!r} (also in {seen[s.id].name})")
            problem = registry_caption_problem(s.image.source, s.image.caption)
            if problem:  # every record on a shipped photo uses the registry's one caption
                raise SSUIError(f"{f}:{n}: field 'image.caption': record {s.id!r}: {problem}")
            seen[s.id] = f
            out.append(s)
    return tuple(out)


def load_bundled(split: str = "all") -> list[Sample]:
    """The bundled mini SSUI set: one split, ``all``, or several joined by ``+`` (``test+dev``:
    the held-out pool of the ``cpu`` profile). With several splits the samples are interleaved
    split by split, a benign twin kept next to its IRS record (:func:`interleave_splits`), so
    that the first N samples draw evenly on every split named."""
    parts = split.split("+") if isinstance(split, str) else [split]
    for part in parts:
        if part not in SPLITS + ("all",) or (part == "all" and len(parts) > 1):
            raise SSUIError(f"bundled:{split}: unknown split {part!r} (train, dev, test, all, or splits joined by +)")
    if len(set(parts)) != len(parts):
        raise SSUIError(f"bundled:{split}: a split is named twice")
    if len(parts) == 1:
        return [s for s in _bundled() if split == "all" or s.split == split]
    return interleave_splits([[s for s in _bundled() if s.split == part] for part in parts])


def interleave_splits(groups: list[list[Sample]]) -> list[Sample]:
    """Round robin over ``groups`` (one list per split), one unit at a time, where a unit is an IRS
    record followed by its benign twin (each names the other in ``pair_id``) or a lone sample."""
    units = []
    for g in groups:
        us: list[list[Sample]] = []
        for s in g:
            if us and (s.pair_id == us[-1][-1].id or us[-1][-1].pair_id == s.id):
                us[-1].append(s)
            else:
                us.append([s])
        units.append(us)
    out: list[Sample] = []
    for k in range(max((len(u) for u in units), default=0)):
        for us in units:
            if k < len(us):
                out.extend(us[k])
    return out


def load_dataset(spec: str, image_dir: str | None = None) -> list[Sample]:
    """Samples for a dataset spec (see module docstring)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise SSUIError(f"dataset spec {spec!r}: expected KIND:ARG (bundled:test, jsonl:PATH, siuo-gen:PATH, ...)")
    kind, arg = spec.split(":", 1)
    if kind == "bundled":
        return load_bundled(arg or "all")
    if kind == "jsonl":
        samples = read_samples(arg)
        if not samples:
            raise SSUIError(f"{arg}: no records (the file is empty); expected one JSON sample per line")
        return samples
    try:
        from ssui_lib.data.loaders import LOADERS
    except ImportError:
        LOADERS = {}
    if kind in LOADERS:
        return LOADERS[kind](arg, image_dir=image_dir)
    raise SSUIError(f"dataset spec {spec!r}: unknown kind {kind!r} (bundled, jsonl{''.join(', ' + k for k in LOADERS)})")


def validate_file(path: str | Path, *, check_images: bool = False) -> list[Sample]:
    """Read and validate a JSONL file of samples; with ``check_images`` also resolve every image
    source (relative ``file:`` paths against the file's folder). Errors name the file and line."""
    samples = read_samples(path)
    if not samples:
        raise SSUIError(f"{path}: no records (the file is empty); expected one JSON sample per line")
    if check_images:
        from ssui_lib.data.images import load_image

        lines = {obj.get("id"): n for n, obj in iter_jsonl(path) if isinstance(obj, dict)}
        for s in samples:
            if s.image.source:
                try:
                    resolve_path(s.image.source, Path(path).parent)
                    load_image(s.image.source, Path(path).parent)  # decoded, not just found
                except SSUIError as e:
                    raise SSUIError(f"{path}:{lines.get(s.id, '?')}: field 'image.source': {e}") from None
                except (OSError, SyntaxError, ValueError) as e:  # PIL: not an image, truncated, ...
                    raise SSUIError(f"{path}:{lines.get(s.id, '?')}: field 'image.source': {s.image.source!r} is not "
                                    f"a decodable image ({type(e).__name__}: {str(e)[:120]})") from None
    return samples


UNSPLIT = "unsplit"  # the by_split key of samples without a split


def dataset_stats(samples: list[Sample]) -> dict:
    """Counts as ``ssui data stats --json`` prints them (DESIGN.md): ``{"total": n, "by_category":
    {CATEGORY: {"irs": n, "twin": n}}, "by_split": {SPLIT: n}}``. Every top class and split is listed
    (zeros included, taxonomy order); ``unsplit`` only when some sample has no split."""
    by_category = {c: {k: 0 for k in KINDS} for c in L1_CATEGORIES}
    by_split = {sp: 0 for sp in SPLITS}
    for s in samples:
        by_category.setdefault(s.category.l1, {k: 0 for k in KINDS})[s.kind] += 1  # also "Unmapped"
        key = s.split or UNSPLIT
        by_split[key] = by_split.get(key, 0) + 1
    return {"total": len(samples), "by_category": by_category, "by_split": by_split}


def stats_table(stats: dict) -> str:
    """The counts of dataset_stats as a readable text table."""
    w = max(len(c) for c in stats["by_category"]) + 2
    lines = [f"{'category':{w}s}{'IRS':>6s}{'twin':>6s}{'total':>7s}"]
    for c, k in stats["by_category"].items():
        lines.append(f"{c:{w}s}{k['irs']:6d}{k['twin']:6d}{k['irs'] + k['twin']:7d}")
    irs = sum(k["irs"] for k in stats["by_category"].values())
    lines.append(f"{'all':{w}s}{irs:6d}{stats['total'] - irs:6d}{stats['total']:7d}")
    lines.append("")
    lines.append("  ".join(f"{sp}: {n}" for sp, n in stats["by_split"].items()))
    return "\n".join(lines)


def image_ref(sample: Sample, base_dir: str | Path | None = None, *, load: bool = True) -> ImageRef:
    """The sample's picture for a model: pixels when it has a source, else its caption only."""
    pil = load_image(sample.image.source, base_dir) if (load and sample.image.source) else None
    return ImageRef(caption=sample.image.caption, pil=pil, source=sample.image.source)


def with_twins(samples: list[Sample], *, photos_only: bool = False) -> list[tuple[Sample, Sample]]:
    """(IRS record, its benign twin) pairs, in file order."""
    by_id = {s.id: s for s in samples}
    out = []
    for s in samples:
        if s.kind == "irs" and s.pair_id in by_id and (not photos_only or s.image.source):
            out.append((s, by_id[s.pair_id]))
    return out


def round_robin_by_category(pairs: list[tuple[Sample, Sample]], n: int) -> list[tuple[Sample, Sample]]:
    """Up to n pairs taking one category at a time in turn (so a small selection shows many classes)."""
    groups: dict[str, list[tuple[Sample, Sample]]] = {}
    for p in pairs:
        groups.setdefault(p[0].category.l1, []).append(p)
    out: list[tuple[Sample, Sample]] = []
    while len(out) < n and any(groups.values()):
        for g in groups.values():
            if g and len(out) < n:
                out.append(g.pop(0))
    return out
