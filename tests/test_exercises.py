"""Every exercise's check passes its reference solution and fails a plausible wrong answer helpfully."""
from __future__ import annotations

import pytest

from ssui_lib.book import exercises as X
from ssui_lib.core.errors import SSUIError

IDS = list(X.EXERCISES)


def test_every_chapter_01_to_07_has_two_to_four_exercises():
    for ch in ["01", "02", "03", "04", "05", "06", "07"]:
        assert 2 <= len(X.exercises_for(ch)) <= 4, ch


@pytest.mark.parametrize("eid", IDS)
def test_reference_solution_passes(eid):
    fb = X.check(eid, X.EXERCISES[eid].solution())
    assert fb.ok and bool(fb), str(fb)
    assert "right" in str(fb)


@pytest.mark.parametrize("eid", IDS)
def test_plausible_wrong_answer_fails_with_a_message_that_does_not_reveal_the_answer(eid):
    ex = X.EXERCISES[eid]
    fb = X.check(eid, ex.wrong())
    assert not fb.ok and fb.messages, eid
    ref = ex.solution()
    text = str(fb)
    numbers = [ref] if isinstance(ref, float) else [v for v in ref.values() if isinstance(v, float)] \
        if isinstance(ref, dict) else []
    for v in numbers:
        assert f"{v:.3f}" not in text and f"{v:.2f}" not in text, (eid, text)


def test_messages_name_what_is_wrong():
    fb = X.check("03.1", {"S": 0.625, "E": 0.5})
    assert "missing key 'SE'" in str(fb)
    fb = X.check("05.2", "0.15")
    assert "expected a number, got str" in str(fb)
    fb = X.check("01.1", lambda text: 1 / 0)
    assert "raised ZeroDivisionError" in str(fb) and "6 of 6 test inputs fail" in str(fb)
    fb = X.check("04.1", X.EXERCISES["04.1"].wrong())
    assert "a branch stopped by the token limit: wrong result" in str(fb)
    fb = X.check("05.1", X.EXERCISES["05.1"].solution() + 1)
    assert "too high" in str(fb)


def test_unanswered_and_unknown():
    fb = X.check("02.1", ...)
    assert not fb.ok and "not answered yet" in str(fb)
    with pytest.raises(SSUIError, match="unknown exercise '9.9'"):
        X.check("9.9", 1)
    assert "Exercise 05.1" in X.show("05.1")._repr_markdown_()
    assert "def _ref_07_2" in X.solution_source("07.2")
    assert X.check("05.2", X.EXERCISES["05.2"].solution())._repr_markdown_().startswith("**Exercise 05.2: right")


def test_teachers_copy_adds_each_reference_solution_after_its_check(tmp_path):
    import nbformat

    from ssui_lib.book.html import add_solutions, build_html

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 05 · T"), nbformat.v4.new_code_cell('show("05.2")'),
                nbformat.v4.new_code_cell('answer = ...\ncheck("05.2", answer)'),
                nbformat.v4.new_code_cell("check('9.9', 1)  # unknown ids are left alone")]
    path = tmp_path / "05.ipynb"
    nbformat.write(nb, path)
    teacher = add_solutions(nbformat.read(path, as_version=4))
    assert [c.cell_type for c in teacher.cells] == ["markdown", "code", "code", "markdown", "code"]
    assert "Reference solution 05.2" in teacher.cells[3].source and "def _ref_05_2" in teacher.cells[3].source

    chapters = [{"id": "05", "title": "T", "reproduces": "-", "notebook": path}]
    student = build_html(chapters, tmp_path / "site", title="B", profile="smoke")
    assert "Reference solution 05.2" not in (student.parent / "05.html").read_text()
    copy = build_html(chapters, tmp_path / "teacher", title="B", profile="smoke", with_solutions=True)
    page = (copy.parent / "05.html").read_text()
    assert "Reference solution 05.2" in page and "_ref_05_2" in page
