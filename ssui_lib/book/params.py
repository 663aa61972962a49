"""The values of the book's notebook parameters, checked before the first chapter runs.

book.toml loading checks names and types against the notebooks' parameters cells; this module
checks the *values* of every selected chapter's parameters: model and judge names resolve (an
``hf:`` folder must exist), dataset specs parse (their files exist), enumerations hold and numbers
lie in their ranges. So ``model=hf:/nope``, ``dataset=nope``, ``k=-5`` or ``mode=banana`` fail at
once, naming the chapter and the parameter, instead of after an hour of earlier chapters.

A parameter is known by its name (the notebooks use one name for one meaning). Names not listed
here are only type-checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ssui_lib.core.errors import SSUIError

# Enumerations (the library's own tuples, repeated here so that checking needs no torch; a test
# compares them with the library's).
TRAIN_METHODS = ("srpo", "sft", "dpo", "orpo")
LOSS_VARIANTS = ("loglik", "odds_ratio")
EXPLORE_MODES = ("until_pair", "fixed_k")
ICL_BY = ("category", "similarity")
REVIEW_POLICIES = ("accept-all-passing", "none")
BUNDLED_SPLITS = ("train", "dev", "test", "all")

Check = Callable[[Any, Path], None]  # (value, book root) -> None or SSUIError(reason)


def check_model(value: Any, root: Path) -> None:
    """A model name that resolves; an ``hf:`` base folder must exist (an adapter may be written
    by an earlier chapter, so only its form is checked)."""
    from ssui_lib.models import parse_model_name

    spec = parse_model_name(value)
    part = (lambda k: spec[k]) if isinstance(spec, dict) else (lambda k: getattr(spec, k))  # dict or ModelSpec
    if part("kind") == "hf":
        p = Path(part("path"))
        p = p if p.is_absolute() else root / p
        if not p.is_dir():
            raise SSUIError(f"model folder {part('path')!r} not found")


def check_judge(value: Any, root: Path) -> None:
    """offline, offline-rules, local:MODEL-NAME, openai:MODEL or openai-compatible:URL#MODEL."""
    if value in ("offline", "offline-rules"):
        return
    if not isinstance(value, str):
        raise SSUIError("expected a judge name")
    if value.startswith("local:"):
        return check_model(value[len("local:"):], root)
    if value.startswith(("openai:", "openai-compatible:")):
        return check_model(value, root)
    raise SSUIError("unknown judge (forms: offline, local:MODEL-NAME, openai:MODEL, openai-compatible:URL#MODEL)")


def check_dataset(value: Any, root: Path, *, allow_empty: bool = False) -> None:
    """KIND:ARG with a known kind; bundled:SPLIT with a known split; the file of any other kind exists."""
    if allow_empty and value == "":
        return
    if not isinstance(value, str) or ":" not in value:
        raise SSUIError("expected a dataset spec KIND:ARG (bundled:test, jsonl:PATH, siuo-gen:PATH, vlsbench:PATH, ...)")
    from ssui_lib.data.loaders import LOADERS

    kind, arg = value.split(":", 1)
    if kind == "bundled":
        parts = arg.split("+") if arg else []
        if any(p not in BUNDLED_SPLITS for p in parts) or (len(parts) > 1 and "all" in parts) \
                or len(set(parts)) != len(parts):
            raise SSUIError(f"unknown bundled split {arg!r} (expected one of {', '.join(BUNDLED_SPLITS)}, "
                            "or distinct splits joined by +)")
        return
    if kind != "jsonl" and kind not in LOADERS:
        raise SSUIError(f"unknown dataset kind {kind!r} (bundled, jsonl, {', '.join(LOADERS)})")
    p = Path(arg)
    if not arg or not (p if p.is_absolute() else root / p).is_file():
        raise SSUIError(f"dataset file {arg!r} not found")


def _optional_path(kind: str) -> Check:
    def check(value: Any, root: Path) -> None:
        if value in ("", None):
            return
        p = Path(value)
        p = p if p.is_absolute() else root / p
        if (kind == "file" and not p.is_file()) or (kind == "dir" and not p.is_dir()):
            raise SSUIError(f"{kind} {value!r} not found")
    return check


def one_of(*choices: str) -> Check:
    def check(value: Any, root: Path) -> None:
        if value not in choices:
            raise SSUIError(f"expected one of {', '.join(choices)}")
    return check


def each(inner: Check) -> Check:
    def check(value: Any, root: Path) -> None:
        for i, v in enumerate(value):
            try:
                inner(v, root)
            except SSUIError as e:
                raise SSUIError(f"item {i} ({v!r}): {e}") from None
    return check


def at_least(lo: float, hi: float | None = None, *, strict: bool = False) -> Check:
    def check(value: Any, root: Path) -> None:
        bad = value <= lo if strict else value < lo
        if bad or (hi is not None and value > hi):
            rng = f"{'>' if strict else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
            raise SSUIError(f"expected a value {rng}")
    return check


def distinct(inner: Check) -> Check:
    def check(value: Any, root: Path) -> None:
        inner(value, root)
        if len(set(value)) != len(value):
            raise SSUIError("expected no repeated entries")
    return check


def _non_empty(value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise SSUIError("expected a non-empty name")


NON_NEGATIVE = at_least(0)
POSITIVE_INT = at_least(1)

RULES: dict[str, Check] = {
    # names
    "model": check_model,
    "models": each(check_model),
    "compare_models": each(check_model),
    "judge": check_judge,
    "dataset": check_dataset,
    "heldout": check_dataset,
    "train_dataset": lambda v, r: check_dataset(v, r, allow_empty=True),
    # files and folders given by the user (empty: the default)
    "decisions_file": _optional_path("file"),
    "exploration_dir": _optional_path("dir"),
    "image_dir": _optional_path("dir"),
    "siuo_gen_path": _optional_path("file"),
    "vlsbench_path": _optional_path("file"),
    "mssbench_path": _optional_path("file"),
    "siuo_image_dir": _optional_path("dir"),
    "vlsbench_image_dir": _optional_path("dir"),
    "mssbench_image_dir": _optional_path("dir"),
    # enumerations
    "mode": one_of(*EXPLORE_MODES),
    "variant": one_of(*LOSS_VARIANTS),
    "icl_by": one_of(*ICL_BY),
    "review_policy": one_of(*REVIEW_POLICIES),
    "methods": distinct(each(one_of(*TRAIN_METHODS))),
    "adapter_methods": distinct(each(one_of(*TRAIN_METHODS))),
    "bench_variants": each(lambda v, r: _non_empty(v)),
    # ranges
    "k": at_least(0, strict=True),
    "steps": distinct(each(at_least(1, 7))),
    "lambdas": each(NON_NEGATIVE),
    "lam": NON_NEGATIVE,
    "paper_lambda": NON_NEGATIVE,
    "beta": at_least(0, strict=True),
    "lr": at_least(0, strict=True),
    "temperature": NON_NEGATIVE,
    "seed": NON_NEGATIVE,
    **{n: NON_NEGATIVE for n in ("limit", "n_samples", "heldout_limit", "bench_limit", "icl_k", "shots",
                                 "max_steps", "max_len")},
    **{n: POSITIVE_INT for n in ("max_new_tokens", "answer_tokens", "max_samples", "batch_samples", "batch_size",
                                 "epochs", "lora_rank", "n_boot", "n_pairs", "n_images", "candidates_per_image")},
}


def check_values(chapter_id: str, source: str, params: dict[str, Any], root: Path) -> None:
    """SSUIError naming the chapter, its source and the parameter for the first bad value."""
    for name, value in params.items():
        rule = RULES.get(name)
        if rule is None:
            continue
        try:
            rule(value, root)
        except SSUIError as e:
            raise SSUIError(f"chapter {chapter_id} ({source}): parameter {name} = {value!r}: {e}") from None
