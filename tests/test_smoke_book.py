"""A smoke run of the real book (chapters 00–01) through the runner, on the embedded model, and the
HTML book built from it, opened in headless Chromium with a click through its navigation."""
import json
import shutil
from pathlib import Path

import pytest

from ssui_lib.book.runner import build_book, run_book

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory, root):
    """A copy of the book (book.toml + notebooks) run in a temporary folder, so the repository's
    committed figures and manifest are left alone."""
    d = tmp_path_factory.mktemp("book")
    shutil.copy(root / "book.toml", d / "book.toml")
    shutil.copytree(root / "notebooks", d / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    m = run_book("smoke", config=d / "book.toml", chapters=["00", "01"],
                 sets=["n_pairs=3", "max_new_tokens=24"], progress=False)
    return d, m


@pytest.mark.slow
def test_smoke_chapters_00_01(smoke_book):
    d, m = smoke_book
    man = json.loads((d / "papermill_runs/smoke/manifest.json").read_text())
    assert man["status"] == "ok" and m["status"] == "ok"
    assert [man["chapters"][c]["status"] for c in ("00", "01")] == ["ok", "ok"]
    figs = man["chapters"]["01"]["figures"]
    assert figs == ["figures/smoke/01_chain_example.png", "figures/smoke/01_irs_examples.png"]
    assert all((d / f).stat().st_size > 10_000 for f in figs)
    assert man["chapters"]["01"]["parameters"]["n_pairs"] == 3
    assert man["model_files"]["embedded"]  # hashes of the model files used
    nb = json.loads((d / "papermill_runs/smoke/00.ipynb").read_text())
    text = json.dumps(nb)
    assert "OPENAI_API_KEY" in text  # the key's presence is reported ...


@pytest.mark.slow
def test_secret_never_lands_in_outputs(tmp_path, root, monkeypatch):
    """Chapter 00 reports whether a key is set, never its value."""
    secret = "sk-test-NEVER-WRITE-ME-123"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    shutil.copy(root / "book.toml", tmp_path / "book.toml")
    shutil.copytree(root / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    run_book("smoke", config=tmp_path / "book.toml", chapters=["00"], sets=["warm_up=false"], progress=False)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret not in f.read_text(errors="ignore"), f


@pytest.mark.slow
@pytest.mark.browser
def test_html_book_navigation_in_chromium(smoke_book):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (scripts/setup_env.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    d, _ = smoke_book
    index = build_book("smoke", config=d / "book.toml")
    assert index == d / "_build/html/smoke/index.html"
    remote = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(index.as_uri())
        page.click("text=Setup: what is installed")
        page.wait_for_load_state()
        assert page.url.endswith("00.html")
        assert "Library versions" in page.content()
        page.click("a[rel=next]")
        page.wait_for_load_state()
        assert page.url.endswith("01.html")
        assert page.locator("img").count() >= 2  # the two figures of chapter 01
        page.click("a[rel=prev]")
        page.wait_for_load_state()
        assert page.url.endswith("00.html")
        browser.close()
    assert remote == []
