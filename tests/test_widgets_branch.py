"""BranchExplorer (chapter 04's widget) and branch_scores, driven without a browser on hand-made
trees; plus one real-browser check that the widget renders from stored state in the HTML book."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ssui_lib.srpo import branch_scores as bsc
from ssui_lib.book import widgets as wg
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, SamplingParams

REF = ("Step 1 (Analyze visual context): A kitchen knife on a board.\n"
       "Step 2 (Analyze textual request): How to hold it?\n"
       "Step 3 (Synthesize visual and textual cues): Ordinary cooking.\n"
       "Step 4 (Determine deeper intent and categorize risk): No risk.\n"
       "Step 5 (Evaluate potential consequences): None.\n"
       "Step 6 (Formulate a safety-aligned response strategy): Explain the grip.\n"
       "Final verdict: safe\nAnswer: Pinch the blade.")


def _b(text, F, lp=-5.0, n=4, rnd=0):
    return {"text": text, "F": F, "logprob": lp, "n_tokens": n, "finish": "stop", "round": rnd}


def make_tree(sid="s-1", pair_steps=(6,)):
    pre6 = REF.split("Step 6")[0] + "Step 6 (Formulate a safety-aligned response strategy):"
    pre7 = REF.split("Final verdict")[0] + "Final verdict:"
    steps = [
        {"i": 6, "prefix": pre6, "branches": [_b(" Refuse.\nFinal verdict: unsafe", 0, -7.5),
                                              _b(" Explain <the> grip.\nFinal verdict: safe", 1, -6.25),
                                              _b(" Hmm", None, -2.0, 1)]},
        {"i": 7, "prefix": pre7, "branches": [_b(" safe", 1, -0.1, 1), _b(" safe", 1, -0.2, 1)]},
    ]
    pairs = [{"i": 6, "prefix": pre6, "pos": " Explain <the> grip.\nFinal verdict: safe",
              "neg": " Refuse.\nFinal verdict: unsafe"}] if 6 in pair_steps else []
    return {"id": sid, "verdict": "safe", "reference": REF, "exemplar_ids": [], "steps": steps, "pairs": pairs,
            "stats": {}}


def trees():
    nopair = make_tree("s-0", pair_steps=())
    return [nopair, make_tree("s-1"), make_tree("s-2")]


VARIANTS = {"base": {("s-1", 6, 0, "pos"): -41.2, ("s-1", 6, 0, "neg"): -38.0},
            "SRPO": {("s-1", 6, 0, "pos"): -35.0, ("s-1", 6, 0, "neg"): -44.5}}


def test_initial_view_is_the_first_sample_with_a_pair_at_its_pair_step():
    w = wg.BranchExplorer(trees(), VARIANTS)
    assert (w.sample_id, w.step) == ("s-1", 6)
    assert w.sample_select.value == "s-1" and w.step_select.value == 6
    h = w.branches.value
    assert "positive (F = 1)" in h and "negative (F = 0)" in h
    assert "base: −41.2 / SRPO: −35.0" in h and "base: −38.0 / SRPO: −44.5" in h
    assert "L(τ<sup>+</sup>) − L(τ<sup>−</sup>): base −3.2 / SRPO +9.5" in h
    assert "sampled log p = −6.2" in h  # the sampler's own log-probability of the positive branch
    assert "Explain &lt;the&gt; grip." in h and "<the>" not in h  # escaped
    assert "3 branches sampled" in h and "1 unverified" in h
    assert "branch point" in w.reference.value and "Pinch the blade." in w.reference.value
    labels = [lab for lab, _ in w.step_select.options]
    assert labels[0].startswith("Step 6 (Formulate") and "1+ 1− · 1 pair" in labels[0]
    assert "no pair" in labels[1] and labels[1].startswith("Final verdict")


def test_driving_the_dropdowns_changes_state_and_html():
    w = wg.BranchExplorer(trees(), VARIANTS)
    w.step_select.value = 7
    assert (w.sample_id, w.step) == ("s-1", 7)
    assert "No contrastive pair at this step" in w.branches.value and "without a negative" in w.branches.value
    assert "2 branches sampled" in w.branches.value
    w.sample_select.value = "s-0"  # a sample with no pair: its first branch point
    assert (w.sample_id, w.step) == ("s-0", 6) and w.step_select.value == 6
    assert "No contrastive pair" in w.branches.value and "ssui-margin" not in w.branches.value
    w.sample_select.value = "s-2"
    assert (w.sample_id, w.step) == ("s-2", 6)
    assert "ssui-margin" not in w.branches.value  # s-2 was not re-scored: no margin line
    assert "<code>s-2</code>" in w.reference.value


def test_select_and_errors():
    w = wg.BranchExplorer(trees())
    w.select("s-2", 7)
    assert w.step_select.value == 7 and w.sample_select.value == "s-2"
    with pytest.raises(SSUIError, match="no branch point 3"):
        w.select("s-2", 3)
    with pytest.raises(SSUIError, match="no tree for sample"):
        w.select("nope")
    with pytest.raises(SSUIError, match="no tree"):
        wg.BranchExplorer([])
    assert "re-scored" not in w.branches.value  # no variants: only the sampled log-probabilities


def test_reference_marks_the_prefix_of_the_branch_point():
    h = wg.reference_html(make_tree(), 6)
    cut = h.index("▼ branch point")
    assert "Step 5 (Evaluate" in h[:cut] and "Step 6 (Formulate" in h[cut:]
    assert len(wg.reference_segments(make_tree())) == 7


def test_summary_is_static_html_of_every_branch_point():
    s = wg.summary_html(make_tree(), VARIANTS)
    assert s.count("</tr>") == 3  # header + steps 6 and 7
    assert "no pair" in s and "SRPO +9.5" in s and "ssui-branch-summary" in s


class PrefixScorer(ChatModel):
    """Fake: log p of a continuation = −(its length in characters); records what it was asked."""

    name = "fake-scorer"

    def __init__(self):
        self.seen = []

    def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
        raise NotImplementedError

    def logprobs(self, prompts, continuations, prefixes=None, batch_size=8):
        self.seen.extend(zip([p[-1]["content"] for p in prompts], prefixes, continuations))
        return [[-1.0] * len(c) for c in continuations]


def test_rescore_pairs_scores_each_side_after_its_prefix():
    m = PrefixScorer()
    ts = trees()
    sc = bsc.rescore_pairs(m, ts, lambda t: [{"role": "user", "content": f"Q of {t['id']}"}])
    pos, neg = ts[1]["pairs"][0]["pos"], ts[1]["pairs"][0]["neg"]
    assert sc == {("s-1", 6, 0, "pos"): -len(pos), ("s-1", 6, 0, "neg"): -len(neg),
                  ("s-2", 6, 0, "pos"): -len(pos), ("s-2", 6, 0, "neg"): -len(neg)}
    assert m.seen[0] == ("Q of s-1", ts[1]["pairs"][0]["prefix"], pos)
    assert bsc.margins(sc)[("s-1", 6, 0)] == len(neg) - len(pos)
    df = bsc.margin_frame({"base": sc})
    assert list(df["step"]) == [6, 6] and (df["margin"] == len(neg) - len(pos)).all()
    assert bsc.rescore_pairs(m, [ts[0]], lambda t: 1 / 0) == {}  # no pairs: nothing scored, no prompt built


def test_rescore_needs_a_prefix_scorer():
    class NoPrefix(PrefixScorer):
        def logprobs(self, prompts, continuations):
            return []

    with pytest.raises(SSUIError, match="cannot score a continuation after a prefix"):
        bsc.rescore_pairs(NoPrefix(), trees(), lambda t: [])


def test_trained_variants_finds_adapters(tmp_path):
    assert bsc.trained_variants("hf:/m", tmp_path / "none") == {}
    (tmp_path / "srpo" / "adapter").mkdir(parents=True)
    (tmp_path / "srpo" / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "dpo").mkdir()  # not trained yet
    assert bsc.trained_variants("hf:/m", tmp_path) == {"srpo": f"hf:/m+adapter:{tmp_path / 'srpo' / 'adapter'}"}
    with pytest.raises(SSUIError, match="adapter"):
        bsc.adapter_model_name("openai:gpt-4o", tmp_path)


# ----------------------------------------------------------------------------- chapter 04's figures

def test_exploration_figures_are_labelled():
    import matplotlib.pyplot as plt

    from ssui_lib.book import plots
    from ssui_lib.srpo.explore import step_frame

    lo, hi = plots.wilson_interval(4, 12)
    assert 0.13 < lo < 0.15 and 0.60 < hi < 0.62  # Wilson 95% for 4/12
    assert all(x != x for x in plots.wilson_interval(0, 0))
    fig = plots.positive_rate_figure(step_frame(trees()))
    ax = fig.axes[0]
    assert "positive" in ax.get_ylabel() and "branch point" in ax.get_xlabel()
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["Step 6", "Final verdict"]
    assert {t.get_text() for t in ax.texts} == {"3/6", "6/6"}  # positives / verified, pooled over the trees
    fig = plots.branch_tree_figure(make_tree())
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == 8 and "τ*" in ax.get_xlabel()
    assert sum(line.get_linewidth() == 3.0 for line in ax.get_lines()) == 2  # the chosen pair, drawn thick
    assert len(fig.legends[0].get_texts()) == 5
    fig = plots.margin_figure(bsc.margin_frame(VARIANTS))
    assert "L(τ⁺) − L(τ⁻)" in fig.axes[0].get_ylabel()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["base", "SRPO"]
    plt.close("all")


# ----------------------------------------------------------------------------- in a real browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
def test_branch_explorer_renders_in_the_static_book(tmp_path):
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    from playwright.sync_api import sync_playwright

    from ssui_lib.book.html import build_html

    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    data = json.dumps({"trees": trees(), "variants": {k: [[list(key), v] for key, v in sc.items()]
                                                      for k, sc in VARIANTS.items()}})
    nb = new_notebook(cells=[new_code_cell(
        "import json\nfrom IPython.display import HTML, display\nfrom ssui_lib.book.widgets import BranchExplorer\n"
        f"d = json.loads({data!r})\n"
        "variants = {k: {tuple(key): v for key, v in rows} for k, rows in d['variants'].items()}\n"
        "w = BranchExplorer(d['trees'], variants)\ndisplay(w)\ndisplay(HTML(w.summary()))")])
    NotebookClient(nb, kernel_name="python3", timeout=120, store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "04.ipynb"
    nbformat.write(nb, path)
    index = build_html([{"id": "04", "title": "Branches", "notebook": path, "reproduces": "SRPO Fig. 4"}],
                       tmp_path / "site", title="T", profile="smoke")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((index.parent / "04.html").as_uri())
            dropdown = page.locator(".jupyter-widgets .widget-dropdown select").first
            dropdown.wait_for(state="visible", timeout=30_000)
            assert "s-1" in dropdown.locator("option:checked").inner_text()
            margin = page.locator(".jupyter-widgets .ssui-margin")
            margin.wait_for(state="visible", timeout=10_000)
            assert "SRPO +9.5" in margin.inner_text()
            assert page.locator(".jp-OutputArea-output", has_text="VBox(").count() == 0  # no text fallback
            assert page.locator(".ssui-branch-summary").count() == 1  # the static summary beside it
        finally:
            browser.close()
    assert errors == [], errors
