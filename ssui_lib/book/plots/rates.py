"""Rates with intervals (chapters 03 and 07): tables, bars, per-category heat maps, judge agreement."""
from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.taxonomy import L1_CATEGORIES
from ssui_lib.eval.metrics import format_rate
import math
import numpy as np
import pandas as pd


# ============================================================================ rates (chapters 03 and 07)
# evaluate() results -> tidy tables (percent) -> grouped bars with intervals / per-category heatmaps.
# Results are the dicts ssui_lib.eval.evaluate.evaluate returns (values as fractions, null when undefined).

RATE_LABELS = {"SE": "S&E", "over_refusal": "Over-refusal"}


def _rate_label(metric: str) -> str:
    return RATE_LABELS.get(metric, metric)


def _key_label(key) -> str:
    """A results key as text: tuples are joined with ' · '."""
    return " · ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _pct(x) -> float:
    """A fraction (or None) as a percentage (NaN when undefined)."""
    return float("nan") if x is None else 100.0 * float(x)


def _rate_entry(result: dict, metric: str, key) -> dict:
    entry = result.get("over_refusal") if metric == "over_refusal" else result.get("metrics", {}).get(metric)
    if entry is None:
        have = ", ".join(list(result.get("metrics", {})) + (["over_refusal"] if "over_refusal" in result else []))
        raise SSUIError(f"result {_key_label(key)!r} has no metric {metric!r} (has: {have or 'none'})")
    return entry


def rates_long(results: dict, metrics: Sequence[str]):
    """One row per (variant, metric) of evaluate() results keyed by a label (a string or a tuple):
    columns variant, metric (display name: S&E, Over-refusal), value, lo, hi (percent, NaN when
    undefined), n, unscored — the input of :func:`rate_bars`."""
    rows = []
    for key, res in results.items():
        for m in metrics:
            e = _rate_entry(res, m, key)
            lo, hi = e.get("ci") or (None, None)
            rows.append({"variant": _key_label(key), "metric": _rate_label(m), "value": _pct(e["value"]),
                         "lo": _pct(lo), "hi": _pct(hi), "n": e.get("n"), "unscored": e.get("unscored", 0)})
    return pd.DataFrame(rows, columns=["variant", "metric", "value", "lo", "hi", "n", "unscored"])


def rates_table(results: dict, metrics: Sequence[str], *, index_names: Sequence[str] | None = None, digits: int = 1):
    """A paper-style table: one row per results key (tuple keys give a MultiIndex named
    ``index_names``), one column per metric as "value [lo, hi]" in percent (S&E for SE,
    Over-refusal over the benign twins), then n (the IRS samples scored) and unscored."""
    rows, index = [], []
    for key, res in results.items():
        row = {_rate_label(m): format_rate(_rate_entry(res, m, key), digits) for m in metrics}
        first = _rate_entry(res, next((m for m in metrics if m != "over_refusal"), metrics[0]), key)
        row["n"] = first.get("n")
        row["unscored"] = first.get("unscored", 0)
        rows.append(row)
        index.append(key)
    if index and all(isinstance(k, tuple) for k in index):
        idx = pd.MultiIndex.from_tuples(index, names=list(index_names) if index_names else None)
    else:
        idx = pd.Index([_key_label(k) for k in index], name=(index_names[0] if index_names else None))
    return pd.DataFrame(rows, index=idx)


def benchmark_table(results: dict, metrics: Sequence[str] = ("S", "E", "SE"), *, digits: int = 1):
    """Results keyed by (variant, benchmark) as one row per variant and a column per (benchmark,
    metric) — the layout of SRPO Table 1 — with "value [lo, hi]" percent strings and each
    benchmark's n; a benchmark a variant was not run on is "–"."""
    if any(not (isinstance(k, tuple) and len(k) == 2) for k in results):

        raise SSUIError("benchmark_table: results must be keyed by (variant, benchmark) pairs")
    t = rates_table(results, metrics, index_names=("variant", "benchmark"), digits=digits)
    t = t.drop(columns=["unscored"]).unstack("benchmark")
    t = t.swaplevel(0, 1, axis=1)
    benches = list(dict.fromkeys(k[1] for k in results))
    cols = [(b, c) for b in benches for c in [_rate_label(m) for m in metrics] + ["n"]]
    variants = list(dict.fromkeys(k[0] for k in results))
    t = t.reindex(index=variants, columns=cols).astype(object)
    return t.where(t.notna(), "–")


def rate_bars(long, *, title: str | None = None, ylabel: str = "rate (%)", xlabel: str | None = None,
              show_n: bool = True, colors: dict | None = None, ax=None):
    """Grouped bars (SSUI Table 1 / SRPO Fig. 5 style): one group per variant, one bar per metric,
    with the 95% bootstrap interval as an error bar and the value printed on each bar.
    ``long`` is a :func:`rates_long` table (percent). With ``show_n`` each group's label shows
    its number of scored samples."""
    variants = list(dict.fromkeys(long["variant"]))
    metrics = list(dict.fromkeys(long["metric"]))
    default = ["#2e86c1", "#27ae60", "#8e44ad", "#e67e22", "#7f8c8d"]
    colors = colors or {m: default[i % len(default)] for i, m in enumerate(metrics)}
    if ax is None:
        width_in = min(12.0, max(5.5, 1.0 + len(variants) * (0.42 * len(metrics) + 0.45)))
        fig, ax = plt.subplots(figsize=(width_in, 4.3 if width_in < 9 else 4.8))
    else:
        fig = ax.figure
    width = 0.8 / max(1, len(metrics))
    x = np.arange(len(variants))
    for j, m in enumerate(metrics):
        sub = long[long["metric"] == m].set_index("variant").reindex(variants)
        vals = sub["value"].to_numpy(dtype=float)
        lo = np.clip(vals - sub["lo"].to_numpy(dtype=float), 0, None)
        hi = np.clip(sub["hi"].to_numpy(dtype=float) - vals, 0, None)
        err = np.nan_to_num(np.vstack([lo, hi]), nan=0.0)
        pos = x + (j - (len(metrics) - 1) / 2) * width
        ax.bar(pos, np.nan_to_num(vals, nan=0.0), width * 0.92, yerr=err, capsize=3, label=m,
               color=colors.get(m, "#7f8c8d"), error_kw={"elinewidth": 1, "ecolor": "#2c3e50"})
        for p, v, h in zip(pos, vals, sub["hi"].to_numpy(dtype=float)):
            top = h if not np.isnan(h) else v
            ax.text(p, (0 if np.isnan(top) else top) + 1.5, "n/a" if np.isnan(v) else f"{v:.0f}",
                    ha="center", va="bottom", fontsize=7.5, color="#2c3e50")
    labels = []
    for v in variants:
        ns = sorted({int(n) for n in long.loc[long["variant"] == v, "n"].dropna()})
        text = "\n".join(textwrap.wrap(v, 18, break_on_hyphens=False))
        if show_n and ns:
            text += f"\n(n = {ns[0]})" if len(ns) == 1 else f"\n(n = {ns[0]}–{ns[-1]})"
        labels.append(text)
    ax.set_xticks(x, labels, fontsize=9)
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    below = (-0.2 if show_n else -0.14) - (0.08 if xlabel else 0.0)
    ax.legend(title="metric (whiskers: 95% bootstrap interval)", ncols=len(metrics), loc="upper center",
              bbox_to_anchor=(0.5, below), frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def category_long(results: dict, metric: str):
    """One row per (variant, category) of the IRS samples of evaluate() results: columns variant,
    category, value, lo, hi (percent) and n; every level-1 category of the taxonomy is listed
    (value NaN, n 0 where a variant had no scored sample of it)."""
    rows = []
    for key, res in results.items():
        by_cat = res.get("by_category", {})
        for cat in L1_CATEGORIES:
            e = by_cat.get(cat, {}).get(metric)
            lo, hi = (e.get("ci") or (None, None)) if e else (None, None)
            rows.append({"variant": _key_label(key), "category": cat, "value": _pct(e["value"] if e else None),
                         "lo": _pct(lo), "hi": _pct(hi), "n": int(e["n"]) if e else 0})
    return pd.DataFrame(rows, columns=["variant", "category", "value", "lo", "hi", "n"])


def category_heatmap(long, *, metric: str, title: str | None = None, cmap: str = "RdYlGn"):
    """Heatmap of one rate per category (rows) × variant (columns) from a :func:`category_long`
    table: each cell shows the value (%) and its n; a category without scored samples is grey
    ("–"). Colour scale 0–100 %."""
    import seaborn as sns

    variants = list(dict.fromkeys(long["variant"]))
    cats = list(dict.fromkeys(long["category"]))
    vals = long.pivot(index="category", columns="variant", values="value").reindex(index=cats, columns=variants)
    ns = long.pivot(index="category", columns="variant", values="n").reindex(index=cats, columns=variants)
    annot = np.empty(vals.shape, dtype=object)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            v, n = vals.iat[i, j], ns.iat[i, j]
            annot[i, j] = "–" if np.isnan(v) else f"{v:.0f}\nn={int(n)}"
    fig, ax = plt.subplots(figsize=(max(5.0, 2.8 + 1.5 * len(variants)), 0.5 * len(cats) + 1.8))
    ax.set_facecolor("#d5d8dc")
    ax.grid(False)
    sns.heatmap(vals, ax=ax, annot=annot, fmt="", cmap=cmap, vmin=0, vmax=100, linewidths=0.5,
                linecolor="white", annot_kws={"fontsize": 8}, cbar_kws={"label": f"{_rate_label(metric)} (%)"})
    for i, j in zip(*np.where(np.isnan(vals.to_numpy(dtype=float)))):  # seaborn leaves masked cells blank
        ax.text(j + 0.5, i + 0.5, "–", ha="center", va="center", fontsize=9, color="#566573")
    ax.set_xticks(np.arange(len(variants)) + 0.5,
                  ["\n".join(textwrap.wrap(v, 14, break_on_hyphens=False)) for v in variants], rotation=0, fontsize=8.5)
    ax.set_xlabel("variant")
    ax.set_ylabel("category (level 1)")
    ax.set_title(title or f"{_rate_label(metric)} by category (IRS samples; grey: none scored)")
    fig.tight_layout()
    return fig


def agreement_table(agreement: dict, digits: int = 1):
    """A judge's agreement with labelled responses (``validate_judge(...).attrs["agreement"]``):
    one row per criterion (safe, effective) with accuracy (%) and Cohen's κ, each with its 95%
    bootstrap interval, n and unscored."""
    def kappa(e: dict) -> str:
        v = e["value"]
        if v is None or math.isnan(v):
            return "undefined"
        lo, hi = e.get("ci") or (float("nan"), float("nan"))
        ci = "" if (lo is None or hi is None or math.isnan(lo) or math.isnan(hi)) else f" [{lo:.2f}, {hi:.2f}]"
        return f"{v:.2f}{ci}"

    rows = {crit: {"accuracy (%)": format_rate(a["accuracy"], digits), "Cohen's κ": kappa(a["kappa"]),
                   "n": a["n"], "unscored": a["unscored"]} for crit, a in agreement.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("criterion")
