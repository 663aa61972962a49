"""Chapter 04's figures: positive rate per branch point, a branch tree, pair margins."""
from __future__ import annotations


import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402


from ssui_lib.book.plots.style import PALETTE, _wrap
from matplotlib.lines import Line2D
from scipy.stats import binomtest
from ssui_lib.core.schema import STEPS
from ssui_lib.srpo.explore import T_FINAL
from ssui_lib.srpo.explore import header
import numpy as np


# ----------------------------------------------------------------------------- chapter 04: exploration

F_COLORS = {1: "#1e8449", 0: "#c0392b", None: "#95a5a6"}
F_NAMES = {1: "positive branch (F = 1)", 0: "negative branch (F = 0)", None: "unverified (no verdict)"}


def wilson_interval(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaNs when n = 0); scipy's implementation."""
    if n <= 0:
        return float("nan"), float("nan")

    r = binomtest(int(k), int(n)).proportion_ci(confidence_level=ci, method="wilson")
    return float(r.low), float(r.high)


def positive_rate_figure(step_df, *, title: str = "Positive continuations per branch point"):
    """Share of verified branches with F = 1 at each step (``explore.step_frame``), with 95% Wilson
    intervals, the counts (positives / verified) above each bar and the pairs found below the axis."""
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
