"""``ssui book compare`` (ssui_lib.book.compare) on hand-made run folders: the same runs, a changed
cell, a changed headline number, missing tables and entries, tolerances, a checkout as input and
bad files."""
from __future__ import annotations

import json
import math

import pytest

from ssui_lib.book.compare import (
    Difference,
    cells_equal,
    compare_entries,
    compare_report,
    compare_runs,
    compare_tables,
    numbers_equal,
    read_entries,
    read_table,
    run_folder,
)
from ssui_lib.cli import main
from ssui_lib.core.errors import SSUIError

HELDOUT = ('variant,verdict accuracy,forced,SER,n\n'
           'base,"41.7 [16.7, 66.7]",12,"0.0 [0.0, 0.0]",12\n'
           'SRPO,"50.0 [25.0, 75.0]",3,"12.5 [0.0, 37.5]",12\n')
STEPS = "step,branches,pairs\n1,4,0\n6,4,2\n"


def entry(metric: str, value, interval=(0.25, 0.75), variant: str = "SRPO", n: int = 12) -> dict:
    return {"chapter": "05", "metric": metric, "variant": variant, "value": value,
            "interval": list(interval) if interval else None, "n": n, "model": "embedded", "judge": "offline"}


ENTRIES = [entry("SER", 0.125, (0.0, 0.375)), entry("verdict accuracy", 0.5)]


def make_run(folder, tables=None, entries=None, profile="smoke"):
    (folder / "tables").mkdir(parents=True)
    for name, text in (tables if tables is not None else {"05_heldout.csv": HELDOUT, "04_steps.csv": STEPS}).items():
        (folder / "tables" / name).write_text(text, encoding="utf-8")
    if entries is not False:
        (folder / "results.json").write_text(json.dumps({"profile": profile,
                                                         "entries": ENTRIES if entries is None else entries}))
    return folder


def test_numbers_and_cells():
    assert numbers_equal(0.5, 0.5) and not numbers_equal(0.5, 0.5000001)
    assert numbers_equal(0.5, 0.5000001, atol=1e-6) and numbers_equal(100.0, 101.0, rtol=0.01)
    assert numbers_equal(math.nan, math.nan) and not numbers_equal(math.nan, 0.0, atol=1.0)
    assert cells_equal("41.7 [16.7, 66.7]", "41.7 [16.7, 66.7]")
    assert not cells_equal("41.7 [16.7, 66.7]", "41.8 [16.7, 66.7]")
    assert cells_equal("41.7 [16.7, 66.7]", "41.8 [16.7, 66.7]", atol=0.11)
    assert cells_equal("0.10", "0.1") and cells_equal("1e-3", "0.001")  # numbers, not their spelling
    assert not cells_equal("41.7 (16.7, 66.7)", "41.7 [16.7, 66.7]", atol=1)  # the text around must match
    assert not cells_equal("1 / 2", "1 / 2 / 3", atol=10) and not cells_equal("safe", "unsafe")
    assert cells_equal("nan", "nan") and not cells_equal("nan", "0.0", atol=1)


def test_same_runs_are_the_same(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    diffs, counts = compare_runs(a, b)
    assert diffs == [] and counts == {"tables": 2, "cells": 16, "entries": 2}
    text, same = compare_report(a, b)
    assert same and text == "compared 2 tables (16 cells) and 2 results.json entries exactly: the same"


def test_a_changed_cell_and_a_changed_number_are_named(tmp_path):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", tables={"05_heldout.csv": HELDOUT.replace("50.0 [25.0", "50.1 [25.0"),
                                         "04_steps.csv": STEPS},
                 entries=[entry("SER", 0.125, (0.0, 0.375)), entry("verdict accuracy", 0.501)])
    diffs, _ = compare_runs(a, b)
    assert [str(d) for d in diffs] == [
        "tables/05_heldout.csv: row 2 (SRPO) column 'verdict accuracy': A '50.0 [25.0, 75.0]' != B '50.1 [25.0, 75.0]'",
        "results.json: 05 / verdict accuracy / SRPO value: A '0.5' != B '0.501'",
    ]
    assert compare_runs(a, b, atol=0.11)[0] == []  # 0.1 in the table, 0.001 in results.json
    assert [d.where for d in compare_runs(a, b, atol=0.01)[0]] == ["tables/05_heldout.csv: row 2 (SRPO) column "
                                                                   "'verdict accuracy'"]
    assert compare_runs(a, b, rtol=0.01)[0] == []  # 0.1 <= 0.01 * 50.1 and 0.001 <= 0.01 * 0.501
    text, same = compare_report(a, b, rtol=0.001)
    assert not same and text.splitlines()[-1].endswith("within atol=0, rtol=0.001: 2 difference(s)")


def test_missing_tables_rows_columns_and_entries(tmp_path):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", tables={"05_heldout.csv": HELDOUT.replace(",n\n", ",N\n") + 'ORPO,"1 [0, 2]",0,"1",12\n',
                                         "06_lambda.csv": STEPS},
                 entries=[entry("SER", 0.125, (0.0, 0.375)), entry("SER", 0.25, variant="SFT")], profile="cpu")
    got = {(d.where, d.a, d.b) for d in compare_runs(a, b)[0]}
    assert got == {
        ("tables/04_steps.csv", "present", None), ("tables/06_lambda.csv", None, "present"),
        ("tables/05_heldout.csv: header", "variant,verdict accuracy,forced,SER,n", "variant,verdict accuracy,forced,SER,N"),
        ("tables/05_heldout.csv: rows", "2", "3"),
        ("results.json: profile", '"smoke"', '"cpu"'),
        ("results.json: 05 / SER / SFT", None, "present"), ("results.json: 05 / verdict accuracy / SRPO", "present", None),
    }
    ragged = compare_tables([["k", "v"], ["x", "1"]], [["k", "v"], ["x", "1", "extra"]], "t")
    assert ragged == [Difference("t: row 1 (x) column '#2'", None, "extra")]
    assert compare_tables([], [], "t") == [] and compare_tables([], [["k"]], "t") == [Difference("t: rows", "0", "1")]
    c = make_run(tmp_path / "c", entries=False)
    assert [(d.where, d.a, d.b) for d in compare_runs(a, c)[0]] == [("results.json", "present", None)]


def test_entries_compare_every_field():
    a = {("05", "m", "v"): entry("m", 0.5, variant="v")}
    for field, value in (("interval", [0.25, 0.76]), ("n", 13), ("model", "hf:x"), ("judge", "offline-rules"),
                         ("value", None), ("interval", None)):
        b = {("05", "m", "v"): {**entry("m", 0.5, variant="v"), field: value}}
        assert [d.where for d in compare_entries(a, b)] == [f"results.json: 05 / m / v {field}"]
    b = {("05", "m", "v"): {**entry("m", 0.5, variant="v"), "interval": [0.25, 0.76]}}
    assert compare_entries(a, b, atol=0.02) == [] and compare_entries(a, a) == []


def test_a_checkout_is_read_through_its_papermill_runs(tmp_path):
    make_run(tmp_path / "clone1" / "papermill_runs" / "smoke")
    make_run(tmp_path / "clone2" / "papermill_runs" / "cpu")
    assert run_folder(tmp_path / "clone1") == tmp_path / "clone1" / "papermill_runs" / "smoke"
    assert run_folder(tmp_path / "clone2", "cpu") == tmp_path / "clone2" / "papermill_runs" / "cpu"
    with pytest.raises(SSUIError, match=r"clone2: not a book run folder .*papermill_runs/smoke/"):
        run_folder(tmp_path / "clone2")


def test_bad_files_give_one_clear_error(tmp_path):
    a = make_run(tmp_path / "a")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"k,v\nx,\xff\n")
    with pytest.raises(SSUIError, match=r"bad.csv: not UTF-8 text \(byte 0xff at offset 6\)"):
        read_table(bad)
    bad.write_text('k,v\nx,"unterminated\n')
    with pytest.raises(SSUIError, match=r"bad.csv: not a CSV table"):
        read_table(bad)
    assert read_table(a / "tables" / "04_steps.csv") == [["step", "branches", "pairs"], ["1", "4", "0"], ["6", "4", "2"]]
    r = tmp_path / "results.json"
    for text, msg in (("{", "not valid JSON"), ('{"entries": 3}', "expected"),
                      ('{"entries": [{"chapter": "05", "metric": 1, "variant": "v"}]}', r"entries\[0\]: expected"),
                      (json.dumps({"entries": [entry("m", 1), entry("m", 2)]}), r"entries\[1\]: the key 05 / m / SRPO")):
        r.write_text(text)
        with pytest.raises(SSUIError, match=msg):
            read_entries(r)
    assert read_entries(a / "results.json")[0] == "smoke"
    with pytest.raises(SSUIError, match="atol must be a number >= 0"):
        compare_runs(a, a, atol=-1)


def test_command_line_exit_codes(tmp_path, capsys):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", entries=[entry("SER", 0.125, (0.0, 0.375)), entry("verdict accuracy", 0.52)])
    assert main(["book", "compare", str(a), str(a)]) == 0
    assert capsys.readouterr().out.strip().endswith("exactly: the same")
    assert main(["book", "compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "results.json: 05 / verdict accuracy / SRPO value: A '0.5' != B '0.52'"
    assert out[-1].endswith("1 difference(s)")
    assert main(["book", "compare", str(a), str(b), "--atol", "0.05"]) == 0
    capsys.readouterr()
    assert main(["book", "compare", str(a), str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a book run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_chapter_03s_library_path_gives_the_same_tables_for_the_same_seed(tmp_path, embedded):
    """Chapter 03's path (evaluate per arm -> rates_table -> write_table / record) run twice with one
    seed and sampling on, each in its own folder (nothing resumed): byte-identical CSV, and compare
    finds no difference."""
    from ssui_lib.book import plots
    from ssui_lib.book import results as book_results
    from ssui_lib.data.bundled import load_dataset
    from ssui_lib.eval.evaluate import evaluate
    from ssui_lib.eval.judge import resolve_judge
    from ssui_lib.models import SamplingParams

    samples = load_dataset("bundled:test")[:2]

    def chapter(run: str, seed: int):
        params = SamplingParams(max_new_tokens=10, temperature=0.8, seed=seed)
        judge = resolve_judge("offline-rules")
        results = {("embedded", arm): evaluate(embedded, judge, samples, tmp_path / run / "work" / f"{arm}.json",
                                               icl_k=k, params=params, seed=seed, paths=False, n_boot=50)
                   for arm, k in (("zero-shot", 0), ("1-shot", 1))}
        table = plots.rates_table(results, ("S", "E", "SE"), index_names=("model", "arm"))
        root = tmp_path / run / "papermill_runs"
        book_results.write_table("smoke", "03", "icl_table1", table, root=root)
        book_results.record("smoke", [e for (name, arm), r in results.items() for e in book_results.metric_entries(
            "03", f"{name} · {arm}", r["metrics"], names={"S": "S", "E": "E", "SE": "S&E"}, model=name,
            judge=r["judge"])], root=root)
        return root / "smoke"

    a, b = chapter("a", 7), chapter("b", 7)
    assert (a / "tables" / "03_icl_table1.csv").read_bytes() == (b / "tables" / "03_icl_table1.csv").read_bytes()
    # 2 rows x (model, arm, S, E, S&E, n, unscored); 2 arms x 3 metrics
    assert compare_runs(a, b) == ([], {"tables": 1, "cells": 2 * 7, "entries": 6})
    assert compare_runs(tmp_path / "a", tmp_path / "b")[0] == []  # the checkouts themselves
