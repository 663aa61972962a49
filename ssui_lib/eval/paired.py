"""Paired statistics for variants that answered the same held-out items (chapters 05–06).

Every variant of chapter 05 (base, SFT, DPO, ORPO, SRPO) answers the *same* held-out samples, so
two variants are compared item by item, not by two independent intervals:

* the **difference** of their accuracies (in [−1, 1]) with a **paired percentile bootstrap**
  interval — items are resampled once and both variants are scored on the same resample;
* an **exact McNemar test** on the discordant items: ``a_only`` (a right, b wrong) against
  ``b_only`` (b right, a wrong); under "no difference" each discordant item is a fair coin, so the
  two-sided p-value is the exact binomial tail ``min(1, 2 · P[Bin(a_only + b_only, ½) ≤ min])``.

Pure functions over boolean vectors / pandas objects (numpy, pandas, scipy only); an item a
variant left unscored (NaN / None) drops out of that comparison and is counted (``dropped``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom

from ssui_lib.core.errors import SSUIError

COLUMNS = ["a", "b", "n", "acc_a", "acc_b", "diff", "lo", "hi", "a_only", "b_only", "p", "dropped"]


def _as_bool(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise SSUIError(f"paired: {name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isnan(arr) & ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        raise SSUIError(f"paired: {name} must hold 0/1 (or NaN for unscored), got {arr[bad][0]!r} at index "
                        f"{int(np.flatnonzero(bad)[0])}")
    return arr


def contingency(a: Sequence[Any], b: Sequence[Any]) -> dict[str, int]:
    """The 2×2 table of two paired 0/1 vectors (same items, same order): ``both`` right,
    ``a_only``, ``b_only``, ``neither``, ``n`` (pairs where both are scored) and ``dropped``."""
    x, y = _as_bool(a, "a"), _as_bool(b, "b")
    if len(x) != len(y):
        raise SSUIError(f"paired: the two variants answered {len(x)} and {len(y)} items; a paired comparison "
                        "needs the same items")
    keep = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[keep].astype(bool), y[keep].astype(bool)
    return {"both": int((x & y).sum()), "a_only": int((x & ~y).sum()), "b_only": int((~x & y).sum()),
            "neither": int((~x & ~y).sum()), "n": int(keep.sum()), "dropped": int((~keep).sum())}


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    for name, v in (("a_only", a_only), ("b_only", b_only)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise SSUIError(f"mcnemar_exact: {name} must be a count >= 0, got {v!r}")
    n = int(a_only) + int(b_only)
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(a_only, b_only), n, 0.5)))


def paired_bootstrap(a: Sequence[Any], b: Sequence[Any], *, n_boot: int = 2000, seed: int = 0,
                     ci: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) − mean(b), lo, hi): the accuracy difference with a paired percentile-bootstrap
    interval (items resampled with replacement, the same resample for both). NaN for no items."""
    if not isinstance(n_boot, int) or n_boot < 1:
        raise SSUIError(f"paired_bootstrap: n_boot must be an integer >= 1, got {n_boot!r}")
    if not 0 < ci < 1:
        raise SSUIError(f"paired_bootstrap: ci must be in (0, 1), got {ci!r}")
    x, y = _as_bool(a, "a"), _as_bool(b, "b")
    if len(x) != len(y):
        raise SSUIError(f"paired: the two variants answered {len(x)} and {len(y)} items; a paired comparison "
                        "needs the same items")
    keep = ~np.isnan(x) & ~np.isnan(y)
    d = x[keep] - y[keep]
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(d.mean()), float(lo), float(hi)


def compare_paired(a: Sequence[Any], b: Sequence[Any], *, n_boot: int = 2000, seed: int = 0,
                   ci: float = 0.95) -> dict[str, Any]:
    """Everything about a vs b: ``n``, ``acc_a``, ``acc_b``, ``diff`` with ``lo`` / ``hi``,
    ``a_only``, ``b_only``, McNemar ``p`` and ``dropped`` (items either left unscored)."""
    t = contingency(a, b)
    diff, lo, hi = paired_bootstrap(a, b, n_boot=n_boot, seed=seed, ci=ci)
    n = t["n"]
    return {"n": n, "acc_a": (t["both"] + t["a_only"]) / n if n else float("nan"),
            "acc_b": (t["both"] + t["b_only"]) / n if n else float("nan"), "diff": diff, "lo": lo, "hi": hi,
            "a_only": t["a_only"], "b_only": t["b_only"], "p": mcnemar_exact(t["a_only"], t["b_only"]),
            "dropped": t["dropped"]}


def align(correct: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per-item correctness of several variants ({variant: {item id: 0/1/None}}) as one frame
    (index: item id in the first variant's order; a column per variant). Every variant must have
    answered the same items — otherwise the comparison would not be paired — and an error names
    the first variant and item that differ."""
    if not correct:
        raise SSUIError("paired: no variants to align")
    names = list(correct)
    ids = list(correct[names[0]])
    for v in names[1:]:
        other = set(correct[v])
        missing = [i for i in ids if i not in other]
        extra = sorted(other - set(ids))
        if missing or extra:
            what = f"lacks item {missing[0]!r}" if missing else f"has extra item {extra[0]!r}"
            raise SSUIError(f"paired: variant {v!r} {what} (compared with {names[0]!r}); every variant must answer "
                            "the same held-out items")
    return pd.DataFrame({v: [np.nan if correct[v][i] is None else float(correct[v][i]) for i in ids] for v in names},
                        index=pd.Index(ids, name="id"))


def comparison_frame(items: pd.DataFrame, reference: str, others: Sequence[str] | None = None, *,
                     n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """One row per comparison ``reference`` vs each of ``others`` (default: every other column of
    ``items``, an :func:`align` frame): the columns of :data:`COLUMNS` (a = the reference)."""
    if reference not in items.columns:
        raise SSUIError(f"paired: no variant {reference!r} (have: {', '.join(map(str, items.columns))})")
    others = [c for c in items.columns if c != reference] if others is None else list(others)
    rows = []
    for o in others:
        if o not in items.columns:
            raise SSUIError(f"paired: no variant {o!r} (have: {', '.join(map(str, items.columns))})")
        rows.append({"a": reference, "b": o, **compare_paired(items[reference].to_numpy(), items[o].to_numpy(),
                                                              n_boot=n_boot, seed=seed, ci=ci)})
    return pd.DataFrame(rows, columns=COLUMNS)


def describe(row: Mapping[str, Any]) -> str:
    """One sentence for a :func:`comparison_frame` row, e.g.
    ``SRPO vs SFT: +8.3 points [−4.2, 20.8], McNemar p = 0.375 (n = 24; 3 vs 1 discordant)``."""
    if row["n"] == 0 or row["diff"] != row["diff"]:
        return f"{row['a']} vs {row['b']}: no item scored by both"
    return (f"{row['a']} vs {row['b']}: {100 * row['diff']:+.1f} points [{100 * row['lo']:+.1f}, {100 * row['hi']:+.1f}], "
            f"McNemar p = {row['p']:.3g} (n = {row['n']}; {row['a_only']} vs {row['b_only']} discordant)")
