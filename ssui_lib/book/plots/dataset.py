"""Chapter 02's figures: the curation funnel and the dataset's statistics."""
from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402

from ssui_lib.core.schema import Sample  # noqa: E402

from ssui_lib.book.plots.style import PALETTE, _wrap
from collections import Counter
from ssui_lib.core.schema import SPLITS
from ssui_lib.core.taxonomy import L1_CATEGORIES
import numpy as np
import pandas as pd


# ----------------------------------------------------------------------------- chapter 02: curation and dataset statistics

def curation_funnel(funnel_df, title: str = "Curation funnel: candidates kept by each stage"):
    """SSUI §2.2 / SRPO Fig. 2 as numbers: one horizontal bar per stage (top = first), split into
    passed / rejected / pending review, labelled 'passed of entered (yield)'. ``funnel_df`` is
    ssui_lib.curation.funnel(run_dir)."""
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
