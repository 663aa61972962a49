"""The offline HTML book (ssui_lib.book.html): files, the no-CDN rule, atomic rebuilds, and a
real-browser check in headless Chromium that the widgets render and navigation works offline."""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from ssui_lib.book.html import build_html, parse_chapters, remote_assets
from ssui_lib.core.errors import SSUIError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

CH1_TITLE = "Widgets and figures"
CH2_TITLE = "Plain output"
CH3_TITLE = "Never executed"


def _pager(html: str) -> dict[str, str]:
    """{rel: href} of the previous/next links of a page (attribute order varies)."""
    links = {}
    for tag in re.findall(r"<a\s[^>]*\brel=\"(?:prev|next)\"[^>]*>", html):
        links[re.search(r'rel="(\w+)"', tag).group(1)] = re.search(r'href="([^"]+)"', tag).group(1)
    return links


def _execute(nb, path: Path) -> Path:
    """Run a notebook with nbclient (keeping the widget state, as papermill does) and save it."""
    from nbclient import NotebookClient

    NotebookClient(nb, kernel_name="python3", timeout=120, store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return path


def _chapter_one() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("The path objective: $J = J_{ref} + \\lambda \\sum_i J_{align,i}$."),
        new_code_cell("import ipywidgets as widgets\n"
                      "slider = widgets.IntSlider(value=3, min=0, max=10, description='k')\nslider"),
        new_code_cell("import matplotlib\nimport matplotlib.pyplot as plt\n"
                      "fig, ax = plt.subplots(figsize=(3, 2))\nax.plot([0, 1, 2], [0, 1, 4])\nplt.show()"),
    ])


def _chapter_two() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("# Chapter two\n\nNothing interactive here."),
        new_code_cell("print('hello from chapter two')"),
    ])


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """Two executed notebooks, one missing one, built into an HTML book."""
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    root = tmp_path_factory.mktemp("htmlbook")
    nb1 = _execute(_chapter_one(), root / "01.ipynb")
    nb2 = _execute(_chapter_two(), root / "02.ipynb")
    chapters = [
        {"id": "01", "title": CH1_TITLE, "notebook": nb1, "reproduces": "SSUI Fig. 1"},
        {"id": "02", "title": CH2_TITLE, "notebook": nb2, "reproduces": "SRPO Eq. 1–4"},
        {"id": "03", "title": CH3_TITLE, "notebook": root / "03.ipynb", "reproduces": "SRPO Table 1"},
    ]
    out = root / "site"
    index = build_html(chapters, out, title="Test Book", profile="smoke")
    return {"root": root, "out": out, "index": index, "chapters": chapters}


def test_build_writes_pages_assets_and_toc(book):
    out = book["out"]
    assert book["index"] == out / "index.html"
    for name in ("index.html", "01.html", "02.html", "03.html", "_static/book.css",
                 "_static/require/require.js", "_static/html-manager/embed-amd.js",
                 "_static/mathjax/tex-svg-full.js"):
        assert (out / name).is_file(), name
    index = (out / "index.html").read_text()
    for text in ("Test Book", CH1_TITLE, "SSUI Fig. 1", "SRPO Eq. 1–4", "not run yet", "smoke"):
        assert text in index
    ch1 = (out / "01.html").read_text()
    assert 'class="ssui-current"' in ch1 and 'aria-current="page"' in ch1
    assert _pager(ch1) == {"next": "02.html"}
    assert "application/vnd.jupyter.widget-state+json" in ch1  # the state the widgets render from
    assert "'_static/html-manager/embed-amd.js'" in ch1  # the local widget renderer
    assert "data:image/png;base64" in ch1  # the matplotlib figure
    ch2 = (out / "02.html").read_text()
    assert ch1.count("<h1") == 1 and ch2.count("<h1") == 1  # the notebook's own title is not doubled
    assert '<h1 id="Chapter-two">' in ch2
    ch3 = (out / "03.html").read_text()
    assert "not run yet" in ch3 and _pager(ch3) == {"prev": "02.html"}
    assert _pager(index) == {"next": "01.html"}
    # no leftovers of the atomic build next to the output
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".site")) == []


def test_no_page_loads_anything_from_the_network(book):
    for page in book["out"].glob("*.html"):
        html = page.read_text()
        assert remote_assets(html) == [], page.name
        assert "cdnjs" not in html and "unpkg.com" not in html, page.name


def test_remote_assets_finds_scripts_styles_and_imports():
    html = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn/y.css">'
            '<style>/* @import url(https://comment) */ @import "https://z.css";</style>'
            '<script>import("https://m.example/mod.mjs"); var page = "https://example.com/about";</script>'
            '<a href="https://example.com/paper">a link is fine</a>')
    assert remote_assets(html) == ["https://cdn.example/x.js", "//cdn/y.css", "https://z.css",
                                   "https://m.example/mod.mjs"]


def test_remote_script_in_output_fails_the_build_and_keeps_the_old_book(book, tmp_path):
    nb = _chapter_two()
    nb.cells[1].outputs = [new_output("display_data", data={
        "text/html": '<script src="https://cdn.example.com/plot.js"></script>', "text/plain": "<plot>"})]
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    out = tmp_path / "site"
    build_html(book["chapters"][:1], out, title="T", profile="smoke")
    before = (out / "index.html").read_text()
    chapters = [book["chapters"][0], {"id": "02", "title": "Bad", "notebook": bad, "reproduces": ""}]
    with pytest.raises(SSUIError, match=r"02\.html.*https://cdn\.example\.com/plot\.js"):
        build_html(chapters, out, title="T", profile="smoke")
    assert (out / "index.html").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site")] == []


def test_missing_js_assets_say_to_run_setup(tmp_path):
    chapters = [{"id": "01", "title": "A", "notebook": tmp_path / "none.ipynb", "reproduces": ""}]
    with pytest.raises(SSUIError, match=r"scripts/setup_env\.sh"):
        build_html(chapters, tmp_path / "site", title="T", profile="smoke", book_js_dir=tmp_path / "nojs")
    assert not (tmp_path / "site").exists()


def test_bad_chapter_lists_are_rejected():
    ok = {"id": "01", "title": "A", "notebook": "x.ipynb", "reproduces": ""}
    with pytest.raises(SSUIError, match="duplicate id"):
        parse_chapters([ok, dict(ok)])
    with pytest.raises(SSUIError, match="field 'title'"):
        parse_chapters([{"id": "01", "notebook": "x.ipynb"}])
    with pytest.raises(SSUIError, match="file name"):
        parse_chapters([dict(ok, id="../evil")])


def test_unreadable_notebook_names_the_file(tmp_path):
    broken = tmp_path / "01.ipynb"
    broken.write_text("{not json")
    with pytest.raises(SSUIError, match=r"01\.ipynb"):
        build_html([{"id": "01", "title": "A", "notebook": broken, "reproduces": ""}], tmp_path / "site",
                   title="T", profile="smoke")


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed "
                    "(scripts/setup_env.sh installs Debian's chromium when run as root)")
def test_book_in_headless_chromium(book):
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    failed: list[str] = []  # e.g. a local asset that was not copied
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(book["index"].as_uri())
            assert page.title() == "Test Book"

            page.click(f".ssui-toc a:has-text('{CH1_TITLE}')")
            page.wait_for_url("**/01.html")
            assert CH1_TITLE in page.locator(".ssui-sidebar li.ssui-current").inner_text()
            # the slider rendered from the stored widget state (not the text/plain fallback)
            slider = page.locator(".jupyter-widgets .widget-slider.widget-hslider")
            slider.wait_for(state="visible", timeout=30_000)
            assert slider.locator(".widget-readout").inner_text().strip() == "3"
            assert slider.locator(".widget-label").inner_text().strip() == "k"
            assert page.locator(".jp-OutputArea-output", has_text="IntSlider(").count() == 0  # no fallback
            assert page.locator("img[src^='data:image/png']").count() >= 1
            page.locator("mjx-container").first.wait_for(state="attached", timeout=30_000)

            page.click("a[rel=next]")
            page.wait_for_url("**/02.html")
            assert "hello from chapter two" in page.content()
            assert CH2_TITLE in page.locator(".ssui-sidebar li.ssui-current").inner_text()
            assert page.locator(".widget-hslider").count() == 0
        finally:
            browser.close()
    remote = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert remote == [], remote
    assert errors == [], errors
    assert failed == [], failed
