"""Chapters 05 and 06's figures: loss curves and the λ sweep."""
from __future__ import annotations


import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np


# ----------------------------------------------------------------------------- chapters 05–06: training


def loss_curves(logs: dict, *, title: str = "Training loss per optimizer step", column: str = "loss"):
    """One line per method (``logs``: label → a run's log table with columns step and ``column``,
    e.g. ``runs.read_log``). The objectives differ between methods (SRPO / SFT start from a token
    NLL, DPO from log 2), so compare each line's trend, not the heights of the lines. A run of more
    than one epoch (column ``epoch``) also gets each epoch's mean as a wide translucent bar."""
    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    markers, styles = ["o", "s", "^", "D", "v", "P"], ["-", "--", "-.", ":"]
    with_epochs = False
    for i, (label, log) in enumerate(logs.items()):
        if log is None or len(log) == 0:
            continue
        # distinct markers and dashes: identical runs (SRPO = SFT while no batch holds a pair) stay visible
        ax.plot(log["step"], log[column], marker=markers[i % len(markers)], markersize=7 - i, linewidth=1.6,
                linestyle=styles[i % len(styles)], label=str(label), color=plt.cm.tab10(i % 10), alpha=0.9)
        if "epoch" in log and log["epoch"].nunique() > 1:
            # the mean of each epoch as a wide bar: whether a curve has flattened is read off these,
            # not off single batches (SRPO's J_align differs from batch to batch)
            for _, ep in log.groupby("epoch"):
                ax.hlines(ep[column].mean(), ep["step"].min() - 0.45, ep["step"].max() + 0.45,
                          color=plt.cm.tab10(i % 10), linewidth=5, alpha=0.3)
            with_epochs = True
    if with_epochs:
        ax.plot([], [], color="grey", linewidth=5, alpha=0.3, label="epoch mean")
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
