"""The book's widgets, live: JupyterLab on 127.0.0.1, a real kernel, headless Chromium clicking.

BranchExplorer on a hand-made exploration: choose a sample, step through branch points, see the
continuations (F and log-probabilities) change in the page. RevisionForm on a scripted curation
run: accept, edit and reject candidates by clicking, and find each decision in revisions.jsonl.
On failure a screenshot of the page goes to the test's tmp folder (its path is in the message).
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from test_lab import TOKEN, running_lab
from test_widgets_branch import CHROMIUM, CHROMIUM_ARGS, make_tree

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _trees() -> list[dict]:
    a, b = make_tree("s-1"), make_tree("s-2")
    for branch in b["steps"][0]["branches"]:  # sample s-2 has its own continuations at step 6
        branch["text"] = branch["text"].replace("grip", "handle").replace("Refuse.", "Decline politely.")
    b["steps"][0]["branches"][0]["logprob"] = -12.75
    b["pairs"][0]["pos"] = b["pairs"][0]["pos"].replace("grip", "handle")
    b["pairs"][0]["neg"] = " Decline politely.\nFinal verdict: unsafe"
    return [a, b]


def _write_notebook(path: Path, code: str) -> None:
    nbformat.write(new_notebook(cells=[new_code_cell(code)],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}}), path)


@pytest.fixture
def browser_page(tmp_path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed (scripts/setup_env.sh installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            yield page
        finally:
            browser.close()


def _open_and_run(page, base: str, name: str) -> None:
    page.goto(f"{base}/lab/tree/{name}?token={TOKEN}")
    page.locator(".jp-Notebook").first.wait_for(state="visible", timeout=60_000)
    # wait until the kernel is idle, then run every cell through JupyterLab's own command
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _screenshot_on_failure(page, tmp_path: Path, name: str):
    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            if exc is not None:
                shot = tmp_path / f"{name}-failure.png"
                try:
                    page.screenshot(path=str(shot), full_page=True)
                except Exception:  # the browser may be gone; the original failure matters
                    return False
                raise AssertionError(f"{exc} (screenshot: {shot})") from exc
            return False
    return _Guard()


def test_branch_explorer_live_in_jupyterlab(tmp_path, browser_page):
    page = browser_page
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)  # lab_command opens on a book root
    (root / "trees.json").write_text(json.dumps(_trees()))
    _write_notebook(root / "branches.ipynb",
                    "import json\nfrom ssui_lib.book.widgets import BranchExplorer\n"
                    "w = BranchExplorer(json.load(open('trees.json')))\nw")
    with running_lab(root, tmp_path, extra=["--expose-app-in-browser"]) as base, \
            _screenshot_on_failure(page, tmp_path, "branch-explorer"):
        _open_and_run(page, base, "branches.ipynb")
        selects = page.locator(".jp-OutputArea .widget-dropdown select")
        selects.first.wait_for(state="visible", timeout=90_000)
        sample, step = selects.nth(0), selects.nth(1)
        assert "s-1" in sample.locator("option:checked").inner_text()

        def shown() -> str:
            return page.locator(".jp-OutputArea .widget-vbox").first.inner_text()

        first = shown()
        assert "Explain <the> grip." in first and "Refuse." in first

        sample.select_option(index=1)  # another sample: its own continuations and log-probabilities
        page.wait_for_function("() => document.querySelector('.jp-OutputArea .widget-vbox').innerText"
                               ".includes('Decline politely.')", timeout=30_000)
        second = shown()
        assert "s-2" in sample.locator("option:checked").inner_text()
        assert "Explain <the> handle." in second and "Explain <the> grip." not in second
        assert "sampled log p = −12.8" in second and "−12.8" not in first  # s-2's negative, as the page shows it

        labels = [o.inner_text() for o in step.locator("option").all()]
        assert len(labels) == 2
        step.select_option(index=1)  # the next branch point: step 6's continuations leave the page
        page.wait_for_function("() => !document.querySelector('.jp-OutputArea .widget-vbox').innerText"
                               ".includes('Decline politely.')", timeout=30_000)
        third = shown()
        assert third != second and "−0.1" in third  # the verdict-token branches of the second branch point


def test_revision_form_live_in_jupyterlab(tmp_path, browser_page):
    from test_curation import ScriptedModel, run

    from ssui_lib import curation as C

    page = browser_page
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)  # lab_command opens on a book root
    run_dir = root / "run"
    run(ScriptedModel(), run_dir)
    _write_notebook(root / "review.ipynb",
                    "from ssui_lib.book.widgets import RevisionForm\nform = RevisionForm('run', reviewer='erin')\nform")
    with running_lab(root, tmp_path, extra=["--expose-app-in-browser"]) as base, \
            _screenshot_on_failure(page, tmp_path, "revision-form"):
        _open_and_run(page, base, "review.ipynb")
        out = page.locator(".jp-OutputArea")
        out.locator("button", has_text="Accept").wait_for(state="visible", timeout=90_000)
        assert "Candidate 1 of 2" in out.inner_text()

        out.locator("button", has_text="Accept").click()
        page.wait_for_function("() => document.querySelector('.jp-OutputArea').innerText.includes('Candidate 2 of 2')",
                               timeout=30_000)
        assert [r["decision"] for r in C.read_revisions(run_dir)] == ["accept"]

        query = out.locator(".widget-textarea", has_text="Query").locator("textarea")
        # the fields of candidate 2 arrive after its header: wait for them before typing over them
        query.wait_for(state="visible", timeout=30_000)
        page.wait_for_function("el => el.value.includes('coffee')", arg=query.element_handle(), timeout=30_000)
        query.fill("Can my brother finish all of this before bed?")
        query.press("Tab")  # ipywidgets syncs a Textarea's value on change
        page.wait_for_function("el => el.value === 'Can my brother finish all of this before bed?'",
                               arg=query.element_handle(), timeout=10_000)
        out.locator("button", has_text="Save edits").click()
        page.wait_for_function("() => document.querySelector('.jp-OutputArea').innerText"
                               ".includes('Every candidate has a decision')", timeout=30_000)
        last = C.read_revisions(run_dir)[-1]
        assert last["decision"] == "edit" and last["reviewer"] == "erin"
        assert last["edits"] == {"query": "Can my brother finish all of this before bed?"}

        out.locator("button", has_text="Previous").click()
        reason = out.locator(".widget-text", has_text="Reason").locator("input")
        reason.fill("too generic")
        reason.press("Tab")
        out.locator("button", has_text="Reject").click()
        page.wait_for_function("() => document.querySelector('.jp-OutputArea').innerText.includes('reject')",
                               timeout=30_000)
        decisions = C.read_revisions(run_dir)
        assert [d["decision"] for d in decisions] == ["accept", "edit", "reject"]
        assert decisions[-1]["reason"] == "too generic" and decisions[-1]["mode"] == "interactive:RevisionForm"
