"""The HTML book read like a book: search across chapters, rendered equations, numbered figures,
fast pages — checked in headless Chromium on the real chapter texts (unexecuted, so it is quick)."""
from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from ssui_lib.book.config import load_config
from ssui_lib.book.html import build_html, number_figures
from ssui_lib.book.search import index_script, page_text
from test_widgets_branch import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]


def _figure_output(name: str, caption: str):
    return nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Image>"},
                                  metadata={"ssui_figure": {"name": name, "caption": caption}})


def test_figures_are_numbered_with_their_captions():
    nb = nbformat.v4.new_notebook()
    a = nbformat.v4.new_code_cell("plots.savefig(fig, profile, '05_a')")
    a.outputs = [_figure_output("05_a", "Loss <per> method")]
    b = nbformat.v4.new_code_cell("print(1)")
    b.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n"), _figure_output("05_b", "")]
    nb.cells = [a, b]
    assert number_figures(nb, "05") == 2
    cap1 = a.outputs[1]["data"]["text/html"]
    assert "<strong>Figure 05.1.</strong> Loss &lt;per&gt; method" in cap1 and 'id="figure-05-1"' in cap1
    assert "<strong>Figure 05.2.</strong> 05_b" in b.outputs[2]["data"]["text/html"]  # no caption: the name


def test_search_index_holds_markdown_outputs_and_captions_and_cannot_close_its_script():
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="SER = 0.42\n"),
                    _figure_output("07_x", "Safety rate per category")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\nThe **McNemar** test </script>"), code]
    text = page_text(nb)
    assert "McNemar" in text and "SER = 0.42" in text and "Safety rate per category" in text
    js = index_script([{"id": "07", "title": "T", "href": "07.html", "text": text}])
    assert js.startswith("window.SSUI_SEARCH_INDEX = ") and "</script>" not in js


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reading")
    cfg = load_config(ROOT / "book.toml")
    chapters = []
    for ch in cfg.chapters:
        nb = jupytext.read(ROOT / ch.rel_source)
        path = tmp / f"{ch.id}.ipynb"
        nbformat.write(nb, path)
        chapters.append({"id": ch.id, "title": ch.title, "notebook": path, "reproduces": ch.reproduces})
    return build_html(chapters, tmp / "site", title="SSUI Book", profile="smoke"), [c["id"] for c in chapters], tmp


@pytest.mark.browser
@pytest.mark.slow
def test_search_equations_and_speed_in_chromium(book):
    from playwright.sync_api import sync_playwright

    index, ids, tmp = book
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed (scripts/setup_env.sh installs Debian's chromium)")
    shots = tmp / "screens"
    shots.mkdir()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            # every chapter page loads from disk in under a second; a screenshot of its first screen
            page.goto(index.as_uri())  # the browser's own start-up is not a page's load time
            for cid in ids:
                page.goto((index.parent / f"{cid}.html").as_uri(), wait_until="load")
                ready = page.evaluate("() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
                assert ready < 1000, f"chapter {cid}: readable after {ready:.0f} ms (DOMContentLoaded)"
                page.screenshot(path=str(shots / f"{cid}.png"))
            assert sorted(x.name for x in shots.iterdir()) == [f"{c}.png" for c in ids]

            # search from chapter 00 finds a term that only another chapter has, and goes there
            page.goto((index.parent / "00.html").as_uri())
            page.fill("#ssui-search", "funnel")
            hit = page.locator("#ssui-search-results a.ssui-search-hit").first
            hit.wait_for(state="visible", timeout=5_000)
            assert "<mark>funnel</mark>" in hit.inner_html().lower()
            target = hit.get_attribute("href")
            assert target != "00.html"
            hit.click()
            page.wait_for_url(f"**/{target}")
            assert target == "02.html" and "funnel" in page.inner_text("main").lower()

            # numbered equations render as MathJax output, not TeX source
            page.goto((index.parent / "05.html").as_uri())
            page.wait_for_function("() => document.querySelectorAll('mjx-container').length >= 5", timeout=15_000)
            main = page.inner_text("main")
            assert "\\mathcal" not in main and "\\tag" not in main
            assert page.locator("mjx-container[display='true']").count() >= 5
            page.screenshot(path=str(shots / "05-equations.png"))
        finally:
            browser.close()
    assert errors == [], errors
