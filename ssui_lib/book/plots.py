"""Figures of the book, styled like a paper's (labelled axes, units, legends, readable PNGs),
saved under ``figures/<profile>/<chapter>_<name>.png`` relative to the book root."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402

from ssui_lib.data.bundled import image_ref  # noqa: E402
from ssui_lib.core.schema import STEPS, Sample  # noqa: E402

PALETTE = {"unsafe": "#c0392b", "safe": "#2e86c1", "neutral": "#7f8c8d"}


def paper_style() -> None:
    """A compact, print-like style for every figure of the book."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.15)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False})


def savefig(fig, profile: str, name: str, root: str | Path = ".", caption: str | None = None) -> Path:
    """Save a figure as figures/<profile>/<name>.png (name starts with the chapter id, e.g. '01_irs_examples').

    In a notebook the saved PNG is also shown, with ``{"ssui_figure": {"name", "caption"}}`` in the
    output's metadata (the HTML book turns it into a numbered figure with its caption; the caption
    defaults to the figure's title), and the live figure is closed so it is not shown twice."""
    out = Path(root) / "figures" / profile / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(out)
    _show_saved(fig, out, name, caption)
    return out


def figure_title(fig) -> str:
    """The figure's suptitle, else its first axes title (one line), else ''."""
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    for ax in ([] if title else fig.axes):
        title = ax.get_title() or ax.get_title(loc="left")
        if title:
            break
    return " ".join(title.split())


def _show_saved(fig, path: Path, name: str, caption: str | None) -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # IPython is only there with Jupyter; plain scripts just save
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    from IPython.display import Image, display

    data = path.read_bytes()
    width = int.from_bytes(data[16:20], "big")  # PNG header: IHDR width
    scale = plt.rcParams["figure.dpi"] / plt.rcParams["savefig.dpi"]  # show at screen size, not print size
    display(Image(data=data, format="png", width=max(1, round(width * scale))),
            metadata={"ssui_figure": {"name": name, "caption": caption or figure_title(fig) or name}})
    plt.close(fig)


def _wrap(text: str, width: int, max_lines: int | None = None) -> str:
    lines = textwrap.wrap(text, width)
    if max_lines and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, width - 1)] + "…"
    return "\n".join(lines)


def irs_grid(pairs: Sequence[tuple[Sample, Sample]], ncols: int = 4, width: int = 34):
    """SSUI Fig. 1-style panel: each photo with its IRS query (red) and its benign twin (blue)."""
    n = len(pairs)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 4.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (irs, twin) in zip(axes.flat, pairs):
        ref = image_ref(irs)
        if ref.pil is not None:
            ax.imshow(ref.pil)
        else:
            ax.text(0.5, 0.5, _wrap("[caption only] " + irs.image.caption, 30), ha="center", va="center",
                    fontsize=9, style="italic", transform=ax.transAxes)
        ax.set_title(_wrap(irs.category.l1, 30), fontsize=10)
        ax.text(0.0, -0.04, "IRS: " + _wrap(irs.query, width, 3), transform=ax.transAxes, va="top", fontsize=8.5,
                color=PALETTE["unsafe"])
        ax.text(0.0, -0.30, "Twin: " + _wrap(twin.query, width, 3), transform=ax.transAxes, va="top", fontsize=8.5,
                color=PALETTE["safe"])
    fig.suptitle("Safe image + safe text → unsafe meaning (red); the benign twin on the same image (blue)",
                 fontsize=12, y=1.0)
    fig.tight_layout(h_pad=5.5)
    return fig


def chain_figure(sample: Sample, width: int = 95):
    """The six-step explainable chain of one sample (SRPO Fig. 1 style), ending in the verdict."""
    steps = [(f"Step {i}: {name}", sample.reasoning[key]) for i, (key, name) in enumerate(STEPS, 1)]
    steps.append((f"Final verdict: {sample.verdict}", sample.safe_reply))
    fig, ax = plt.subplots(figsize=(10, 1.25 * len(steps) + 0.8))
    ax.axis("off")
    y = 1.0
    dy = 1.0 / (len(steps) + 0.3)
    for i, (head, body) in enumerate(steps):
        last = i == len(steps) - 1
        color = PALETTE["unsafe"] if last and sample.verdict == "unsafe" else (PALETTE["safe"] if last else "#34495e")
        ax.text(0.0, y, head, fontsize=10.5, fontweight="bold", color=color, va="top", transform=ax.transAxes)
        ax.text(0.0, y - 0.28 * dy, _wrap(body, width, 3), fontsize=9, va="top", transform=ax.transAxes)
        if not last:
            ax.annotate("", xy=(-0.02, y - dy + 0.02 * dy), xytext=(-0.02, y - 0.05 * dy), xycoords="axes fraction",
                        arrowprops=dict(arrowstyle="->", color="#95a5a6"))
        y -= dy
    fig.suptitle(_wrap(f"{sample.id} — image: {sample.image.caption}  |  query: {sample.query}", 120),
                 fontsize=10, x=0.02, ha="left")
    return fig


# ----------------------------------------------------------------------------- chapter 02: curation and dataset statistics

def curation_funnel(funnel_df, title: str = "Curation funnel: candidates kept by each stage"):
    """SSUI §2.2 / SRPO Fig. 2 as numbers: one horizontal bar per stage (top = first), split into
    passed / rejected / pending review, labelled 'passed of entered (yield)'. ``funnel_df`` is
    ssui_lib.curation.funnel(run_dir)."""
    import numpy as np

    df = funnel_df.reset_index(drop=True)
    y = np.arange(len(df))[::-1]
    fig, ax = plt.subplots(figsize=(9.0, 0.62 * len(df) + 1.6))
    ax.barh(y, df["passed"], color=PALETTE["safe"], label="passed")
    ax.barh(y, df["rejected"], left=df["passed"], color=PALETTE["unsafe"], alpha=0.75, label="rejected")
    ax.barh(y, df["pending"], left=df["passed"] + df["rejected"], color=PALETTE["neutral"], alpha=0.6,
            label="pending (awaiting review)")
    top = max(int(df["entered"].max()), 1)
    for yi, (_, r) in zip(y, df.iterrows()):
        share = f"{r['passed'] / r['entered']:.0%}" if r["entered"] else "–"
        ax.text(r["entered"] + 0.015 * top, yi, f"{r['passed']} of {r['entered']} kept ({share})", va="center",
                fontsize=9)
    ax.set_yticks(y, df["title"])
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel("candidates (count)")
    ax.set_title(title)
    ax.legend(loc="lower right", frameon=True, fontsize=8.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def _kind_label(kind: str) -> str:
    return {"irs": "IRS (unsafe combination)", "twin": "benign twin (safe)"}.get(kind, kind)


def category_kind_counts(samples: Sequence[Sample]):
    """Records per SSUI level-1 class and kind (a DataFrame: rows = classes in taxonomy order)."""
    import pandas as pd

    from ssui_lib.core.taxonomy import L1_CATEGORIES

    df = pd.DataFrame([{"category": s.category.l1, "kind": s.kind} for s in samples])
    t = pd.crosstab(df["category"], df["kind"]) if len(df) else pd.DataFrame()
    return t.reindex(index=list(L1_CATEGORIES), columns=["irs", "twin"], fill_value=0)


def category_kind_figure(samples: Sequence[Sample], title: str = "Records per category and kind"):
    """Horizontal stacked bars: for each of SSUI's nine classes, IRS records and benign twins."""
    t = category_kind_counts(samples)
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    left = None
    for kind, color in (("irs", PALETTE["unsafe"]), ("twin", PALETTE["safe"])):
        ax.barh(t.index, t[kind], left=left, color=color, label=_kind_label(kind))
        left = t[kind] if left is None else left + t[kind]
    for i, total in enumerate(t.sum(axis=1)):
        ax.text(total + 0.2, i, str(int(total)), va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(float(t.sum(axis=1).max()), 1.0) * 1.1)
    ax.set_xlabel("records (count)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8.5, frameon=False)
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def query_length_figure(samples: Sequence[Sample], title: str = "Query length by kind"):
    """Histogram of query lengths in words, IRS records vs benign twins, with each kind's median."""
    import numpy as np

    lengths = {k: [len(s.query.split()) for s in samples if s.kind == k] for k in ("irs", "twin")}
    allv = [v for vs in lengths.values() for v in vs] or [0]
    bins = np.arange(min(allv), max(allv) + 3, 2) - 0.5
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    kinds = [k for k in ("irs", "twin") if lengths[k]]
    colors = [PALETTE["unsafe"] if k == "irs" else PALETTE["safe"] for k in kinds]
    meds = [float(np.median(lengths[k])) for k in kinds]
    ax.hist([lengths[k] for k in kinds], bins=bins, color=colors,
            label=[f"{_kind_label(k)}: n={len(lengths[k])}, median {m:.0f}" for k, m in zip(kinds, meds)])
    for m, c in zip(meds, colors):
        ax.axvline(m, color=c, ls="--", lw=1.2)
    ax.set_xlabel("query length (words)")
    ax.set_ylabel("records (count)")
    ax.set_title(title)
    ax.legend(fontsize=8.5)
    fig.tight_layout()
    return fig


def split_figure(samples: Sequence[Sample], title: str = "Records per split and kind"):
    """Grouped bars: records in each split (train / dev / test / none), IRS vs benign twin."""
    import numpy as np

    from ssui_lib.core.schema import SPLITS

    splits = list(SPLITS) + (["(none)"] if any(s.split is None for s in samples) else [])
    x = np.arange(len(splits))
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for j, (kind, color) in enumerate((("irs", PALETTE["unsafe"]), ("twin", PALETTE["safe"]))):
        counts = [sum(1 for s in samples if s.kind == kind and (s.split or "(none)") == sp) for sp in splits]
        bars = ax.bar(x + (j - 0.5) * 0.38, counts, width=0.38, color=color, label=_kind_label(kind))
        ax.bar_label(bars, fontsize=9, padding=2)
    ax.set_xticks(x, splits)
    ax.set_xlabel("split")
    ax.set_ylabel("records (count)")
    ax.set_title(title)
    ax.legend(fontsize=8.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def taxonomy_figure(samples: Sequence[Sample], title: str = "Taxonomy of the IRS records (level 1 inside, level 2 outside)"):
    """SRPO Fig. 3 style: a two-ring donut of the IRS records, level-1 classes (inner ring, with
    counts) and their level-2 classes (outer ring)."""
    from collections import Counter

    from ssui_lib.core.taxonomy import L1_CATEGORIES

    irs = [s for s in samples if s.kind == "irs"]
    l1 = Counter(s.category.l1 for s in irs)
    l2 = Counter((s.category.l1, s.category.l2 or "(unspecified)") for s in irs)
    cats = [c for c in L1_CATEGORIES if l1[c]]
    cmap = plt.get_cmap("tab10")
    colors = {c: cmap(i % 10) for i, c in enumerate(L1_CATEGORIES)}
    fig, ax = plt.subplots(figsize=(10, 8.5))
    inner = [l1[c] for c in cats]
    wedges, _ = ax.pie(inner, radius=0.62, colors=[colors[c] for c in cats], startangle=90, counterclock=False,
                       wedgeprops=dict(width=0.3, edgecolor="white"))
    outer_keys = [k for c in cats for k in sorted(x for x in l2 if x[0] == c)]
    outer_cols = []
    for c in cats:
        subs = sorted(x for x in l2 if x[0] == c)
        for i, _ in enumerate(subs):
            r, g, b, _a = colors[c]
            outer_cols.append((r, g, b, 0.45 + 0.5 * (i + 1) / (len(subs) + 1)))
    owedges, _ = ax.pie([l2[k] for k in outer_keys], radius=1.0, colors=outer_cols, startangle=90, counterclock=False,
                        wedgeprops=dict(width=0.36, edgecolor="white"))
    import numpy as np

    for w, k in zip(owedges, outer_keys):
        ang = np.deg2rad((w.theta1 + w.theta2) / 2)
        x, y = np.cos(ang), np.sin(ang)
        ax.annotate(_wrap(f"{k[1]} ({l2[k]})", 26), xy=(0.98 * x, 0.98 * y), xytext=(1.22 * x, 1.22 * y),
                    ha="left" if x >= 0 else "right", va="center", fontsize=7.5,
                    arrowprops=dict(arrowstyle="-", color="#95a5a6", lw=0.6))
    ax.legend(wedges, [f"{c} ({l1[c]})" for c in cats], title="Level 1 (IRS records)", loc="center left",
              bbox_to_anchor=(1.25, 0.5), fontsize=8.5, title_fontsize=9)
    ax.set_title(title, pad=28)
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig


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
    from ssui_lib.core.errors import SSUIError

    entry = result.get("over_refusal") if metric == "over_refusal" else result.get("metrics", {}).get(metric)
    if entry is None:
        have = ", ".join(list(result.get("metrics", {})) + (["over_refusal"] if "over_refusal" in result else []))
        raise SSUIError(f"result {_key_label(key)!r} has no metric {metric!r} (has: {have or 'none'})")
    return entry


def rates_long(results: dict, metrics: Sequence[str]):
    """One row per (variant, metric) of evaluate() results keyed by a label (a string or a tuple):
    columns variant, metric (display name: S&E, Over-refusal), value, lo, hi (percent, NaN when
    undefined), n, unscored — the input of :func:`rate_bars`."""
    import pandas as pd

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
    import pandas as pd

    from ssui_lib.eval.metrics import format_rate

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
        from ssui_lib.core.errors import SSUIError

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
    import numpy as np

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
    import pandas as pd

    from ssui_lib.core.taxonomy import L1_CATEGORIES

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
    import numpy as np
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
    import math

    import pandas as pd

    from ssui_lib.eval.metrics import format_rate

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


# ----------------------------------------------------------------------------- chapters 05–06: training


def loss_curves(logs: dict, *, title: str = "Training loss per optimizer step", column: str = "loss"):
    """One line per method (``logs``: label → a run's log table with columns step and ``column``,
    e.g. ``runs.read_log``). The objectives differ between methods (SRPO / SFT start from a token
    NLL, DPO from log 2), so compare each line's trend, not the heights of the lines."""
    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    markers, styles = ["o", "s", "^", "D", "v", "P"], ["-", "--", "-.", ":"]
    for i, (label, log) in enumerate(logs.items()):
        if log is None or len(log) == 0:
            continue
        # distinct markers and dashes: identical runs (SRPO = SFT while no batch holds a pair) stay visible
        ax.plot(log["step"], log[column], marker=markers[i % len(markers)], markersize=7 - i, linewidth=1.6,
                linestyle=styles[i % len(styles)], label=str(label), color=plt.cm.tab10(i % 10), alpha=0.9)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (objective per example, nats)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title)
    ax.legend(title="method", frameon=False, loc="best")
    fig.tight_layout()
    return fig


def sweep_figure(long, *, x: str = "lambda", chosen: float | None = 0.3, xlabel: str = "loss weight λ",
                 ylabel: str = "rate on held-out samples (%)", title: str | None = None, chosen_label: str = "paper's choice"):
    """SRPO Fig. 7 style: one line per metric over a swept hyperparameter, 95% intervals as error
    bars, the paper's chosen value marked by a dashed vertical line. ``long`` has columns ``x``,
    metric, value, lo, hi (percent)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    metrics = list(dict.fromkeys(long["metric"]))
    colors = ["#2e86c1", "#8e44ad", "#27ae60", "#e67e22"]
    for j, m in enumerate(metrics):
        sub = long[long["metric"] == m].sort_values(x)
        xs = sub[x].to_numpy(dtype=float) + (j - (len(metrics) - 1) / 2) * 0.008  # nudge: bars must not hide each other
        vals = sub["value"].to_numpy(dtype=float)
        err = np.nan_to_num(np.vstack([np.clip(vals - sub["lo"].to_numpy(dtype=float), 0, None),
                                       np.clip(sub["hi"].to_numpy(dtype=float) - vals, 0, None)]), nan=0.0)
        ax.errorbar(xs, vals, yerr=err, marker="o", capsize=3, linewidth=1.6, label=m, color=colors[j % len(colors)])
    if chosen is not None:
        ax.axvline(chosen, color="#c0392b", linestyle="--", linewidth=1.2, label=f"{chosen_label} ({chosen:g})")
    ticks = sorted(set(long[x].astype(float)))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylim(-2, 105)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=len(metrics) + 1)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- chapter 04: exploration

F_COLORS = {1: "#1e8449", 0: "#c0392b", None: "#95a5a6"}
F_NAMES = {1: "positive branch (F = 1)", 0: "negative branch (F = 0)", None: "unverified (no verdict)"}


def wilson_interval(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaNs when n = 0); scipy's implementation."""
    if n <= 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    r = binomtest(int(k), int(n)).proportion_ci(confidence_level=ci, method="wilson")
    return float(r.low), float(r.high)


def positive_rate_figure(step_df, *, title: str = "Positive continuations per branch point"):
    """Share of verified branches with F = 1 at each step (``explore.step_frame``), with 95% Wilson
    intervals, the counts (positives / verified) above each bar and the pairs found below the axis."""
    import numpy as np

    from ssui_lib.srpo.explore import header

    fig, ax = plt.subplots(figsize=(max(4.8, 1.3 * len(step_df) + 2.0), 4.0))
    xs = np.arange(len(step_df))
    vals, los, his = [], [], []
    for r in step_df.itertuples():
        n = int(r.positives + r.negatives)
        lo, hi = wilson_interval(int(r.positives), n)
        vals.append(100 * r.positives / n if n else float("nan"))
        los.append(100 * lo)
        his.append(100 * hi)
    vals, los, his = map(lambda a: np.array(a, dtype=float), (vals, los, his))
    ax.bar(xs, np.nan_to_num(vals), color=PALETTE["safe"], width=0.6, label="positive rate")
    err = np.nan_to_num(np.vstack([vals - los, his - vals]))
    ax.errorbar(xs, np.nan_to_num(vals), yerr=err, fmt="none", ecolor="#17202a", capsize=4, linewidth=1.2,
                label="95% Wilson interval")
    for x, r, v, h in zip(xs, step_df.itertuples(), vals, his):
        n = int(r.positives + r.negatives)
        ax.text(x, (np.nan_to_num(h) if n else 0) + 2.5, f"{int(r.positives)}/{n}", ha="center", fontsize=9)
    labels = [f"{header(int(i)).split(' (')[0].rstrip(':')}\n{int(p)} pair{'s' if p != 1 else ''}"
              for i, p in zip(step_df["step"], step_df["pairs"])]
    ax.set_xticks(xs, labels)
    ax.set_ylim(0, 112)
    ax.set_xlim(-0.5 - 0.4 * (len(xs) < 3), len(xs) - 0.5 + 0.4 * (len(xs) < 3))
    ax.set_xlabel("branch point i (continuations of the reference prefix τ₁:ᵢ₋₁)")
    ax.set_ylabel("positive branches (%)")
    ax.set_title(title)
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncols=2)
    fig.tight_layout()
    return fig


def branch_tree_figure(tree: dict, *, title: str | None = None):
    """SRPO Fig. 4 style: one sample's reference path v0 → … → v_T along x, and at each branch
    point i the sampled continuations fanning out of v_{i−1}, colored by F; the branches that form
    the contrastive pair (τ_i^+, τ_i^−) are drawn thick; the line length grows with the tokens."""
    import numpy as np
    from matplotlib.lines import Line2D

    from ssui_lib.srpo.explore import T_FINAL
    from ssui_lib.core.schema import STEPS

    steps = {int(s["i"]): s["branches"] for s in tree["steps"]}
    paired = {(int(p["i"]), p["pos"]) for p in tree.get("pairs", [])} | {(int(p["i"]), p["neg"]) for p in tree.get("pairs", [])}
    most = max((len(b) for b in steps.values()), default=1)
    tok_max = max((b["n_tokens"] for bs in steps.values() for b in bs), default=1) or 1
    fig, ax = plt.subplots(figsize=(11, 2.2 + 0.45 * most))
    xs = np.arange(T_FINAL + 1)
    ax.plot(xs, np.zeros_like(xs), color="#17202a", linewidth=2.5, zorder=3)
    ax.scatter(xs, np.zeros_like(xs), s=110, color="white", edgecolor="#17202a", linewidth=2, zorder=4)
    for i, bs in steps.items():
        x0 = i - 1
        for j, b in enumerate(bs):
            y1 = -0.55 - 0.45 * j
            x1 = x0 + 0.25 + 0.6 * min(1.0, b["n_tokens"] / tok_max)
            thick = (i, b["text"]) in paired
            ax.plot([x0, x0 + 0.12, x1], [0, y1, y1], color=F_COLORS[b["F"]], linewidth=3.0 if thick else 1.2,
                    alpha=1.0 if thick else 0.75, zorder=2, solid_capstyle="round")
            mark = {1: "✓", 0: "✗", None: "?"}[b["F"]]
            ax.text(x1 + 0.04, y1, mark, color=F_COLORS[b["F"]], va="center", fontsize=10, fontweight="bold")
    names = ["v₀\nquestion Q"] + [f"v{i}\n" + _wrap(n, 15, 3) for i, (_, n) in enumerate(STEPS, 1)] + [f"v{T_FINAL} = v_T\nverdict + answer"]
    ax.set_xticks(xs, names, fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.4, T_FINAL + 0.6)
    ax.set_ylim(-0.55 - 0.45 * most - 0.1, 0.45)
    ax.set_xlabel("reference reasoning path τ* (states v₀ → … → v_T); the branches of step i leave from state vᵢ₋₁")
    ax.spines["left"].set_visible(False)
    ax.grid(False)
    handles = [Line2D([], [], color="#17202a", linewidth=2.5, marker="o", markerfacecolor="white", label="reference path τ*")]
    handles += [Line2D([], [], color=F_COLORS[f], linewidth=1.5, label=F_NAMES[f]) for f in (1, 0, None)]
    handles.append(Line2D([], [], color="#566573", linewidth=3.2, label="chosen pair (τᵢ⁺, τᵢ⁻)"))
    fig.legend(handles=handles, frameon=False, loc="lower center", ncols=5, fontsize=8.5)
    ax.set_title(title or f"Generative exploration of {tree['id']} (ground truth: {tree.get('verdict')}); "
                          "line length ∝ generated tokens")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def margin_figure(margin_df, *, title: str = "Log-likelihood margin of each contrastive pair"):
    """L(τ+) − L(τ−) (Eq. 7) of every pair, one column per step and one color per model variant
    (``branch_scores.margin_frame``); above zero the model already prefers the positive branch."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    variants = list(dict.fromkeys(margin_df["variant"]))
    steps = sorted(set(int(s) for s in margin_df["step"]))
    colors = ["#7f8c8d", "#8e44ad", "#27ae60", "#e67e22", "#2e86c1"]
    rng = np.random.default_rng(0)  # horizontal jitter only, so equal margins do not hide each other
    for v, name in enumerate(variants):
        sub = margin_df[margin_df["variant"] == name]
        off = (v - (len(variants) - 1) / 2) * 0.18
        for k, s in enumerate(steps):
            ys = sub[sub["step"] == s]["margin"].to_numpy(dtype=float)
            xs = k + off + rng.uniform(-0.05, 0.05, len(ys))
            ax.scatter(xs, ys, s=28, color=colors[v % len(colors)], alpha=0.85, label=name if k == 0 else None)
            if len(ys):
                ax.plot([k + off - 0.08, k + off + 0.08], [np.median(ys)] * 2, color=colors[v % len(colors)], linewidth=2)
    ax.axhline(0, color="#17202a", linewidth=1, linestyle="--")
    ax.set_xlim(-0.6, len(steps) - 0.4)
    ax.set_xticks(range(len(steps)), [f"step {s}" if s < 7 else "final verdict" for s in steps])
    ax.set_xlabel("branch point i")
    ax.set_ylabel("L(τ⁺) − L(τ⁻)  (nats)")
    ax.set_title(title)
    ax.legend(frameon=False, title="model (bar = median)", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
