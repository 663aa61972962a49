"""The figures' common style: paper-like defaults, saving under ``figures/<profile>/``, and the
record figures (an IRS grid, a reasoning chain) several chapters show."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402

from ssui_lib.core import ledger  # noqa: E402
from ssui_lib.data.bundled import image_ref  # noqa: E402
from ssui_lib.core.schema import STEPS, Sample  # noqa: E402



PALETTE = {"unsafe": "#c0392b", "safe": "#2e86c1", "neutral": "#7f8c8d"}


def paper_style() -> None:
    """A compact, print-like style for every figure of the book."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.15)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False})


@ledger.timed("plotting")
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
