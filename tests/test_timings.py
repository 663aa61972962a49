"""Where the time goes: per-phase seconds from a run manifest (ssui book timings)."""
import datetime as dt
import json

import pytest

from ssui_lib.book import timings as T
from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


def _nb(cells):
    return {"cells": [{"cell_type": "code", "metadata": {"papermill": {"start_time": _iso(s), "end_time": _iso(e)}}}
                      for s, e in cells], "metadata": {}}


def test_kernel_times_from_papermill_cell_metadata():
    launched = 1_000_000.0
    nb = _nb([(launched + 2.5, launched + 3.0), (launched + 3.0, launched + 9.0)])
    nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}})  # no timing: ignored
    assert T.kernel_times(nb, launched, launched + 9.75) == {"kernel_start": 2.5, "kernel_stop": 0.75}
    # a kernel that never ran a cell: the whole time is its start
    assert T.kernel_times({"cells": []}, launched, launched + 4.0) == {"kernel_start": 4.0, "kernel_stop": 0.0}
    # papermill's "Z" form and a stamp that is not a time are read / skipped
    nb2 = {"cells": [{"metadata": {"papermill": {"start_time": "1970-01-12T13:46:41Z", "end_time": "garbage"}}}]}
    assert T.kernel_times(nb2, launched, launched + 3.0) == {"kernel_start": 1.0, "kernel_stop": 0.0}


def test_chapter_phases_add_up_to_wall_with_other_as_the_rest():
    timing = {"phases": {"generation": 10.0, "judging": 2.0, "model_loading": 3.0}}
    ph = T.chapter_phases(timing, {"kernel_start": 1.5, "kernel_stop": 0.5}, 20.0)
    assert list(ph) == list(ledger.ALL_PHASES)
    assert ph["other"] == 3.0 and sum(ph.values()) == pytest.approx(20.0)
    # phases can never make "other" negative (clock rounding)
    assert T.chapter_phases(timing, {"kernel_start": 9.0}, 20.0)["other"] == 0.0


def test_chapter_timing_from_a_ledger_file_and_an_executed_notebook(tmp_path):
    led = tmp_path / "led.json"
    led.write_text(json.dumps({"tokens_generated": 3, "phases": {"generation": 4.0},
                               "inclusive": {"generation": 4.0, "judging": 5.0}, "loads": {"embedded": 1}}))
    nb = tmp_path / "00.ipynb"
    nb.write_text(json.dumps(_nb([(102.0, 110.0)])))
    got = T.chapter_timing(led, nb, 100.0, 111.0, 11.5)
    assert got["phases"]["kernel_start"] == 2.0 and got["phases"]["kernel_stop"] == 1.0
    assert got["phases"]["generation"] == 4.0 and got["phases"]["other"] == 4.5
    assert got["phases_inclusive"]["judging"] == 5.0 and got["loads"] == {"embedded": 1}
    dead = T.chapter_timing(tmp_path / "none.json", tmp_path / "none.ipynb", 100.0, 103.0, 3.0)
    assert dead["phases"]["kernel_start"] == 3.0 and dead["loads"] == {} and dead["phases"]["other"] == 0.0


MANIFEST = {
    "profile": "smoke", "started": "2026-11-29T12:00:00+00:00",
    "chapters": {
        "01": {"title": "IRS", "ledger": {"wall_s": 30.0, "loads": {"embedded": 1},
                                           "phases": {"kernel_start": 2.0, "model_loading": 4.0, "generation": 20.0,
                                                      "other": 4.0},
                                           "phases_inclusive": {"generation": 20.0, "judging": 21.0}}},
        "00": {"title": "Setup", "ledger": {"wall_s": 10.0, "loads": {"embedded": 2, "MiniLM": 1},
                                            "phases": {"kernel_start": 2.0, "plotting": 1.0, "other": 7.0}}},
        "02": {"title": "old run", "ledger": {"wall_s": 5.0, "tokens_generated": 1}},  # before phase timing
        "03": {"title": "failed to start", "status": "failed"},
    },
}


def test_timings_table_from_a_hand_made_manifest(tmp_path):
    rows = T.timings_rows(MANIFEST)
    assert [r["chapter"] for r in rows] == ["00", "01", "total"]
    total = rows[-1]
    assert total["generation"] == 20.0 and total["kernel_start"] == 4.0 and total["wall"] == 40.0
    assert total["other"] == 11.0 and total["training"] == 0.0
    md = T.markdown_table(rows)
    lines = md.splitlines()
    assert lines[0] == ("| chapter | kernel start | model loading | generation | scoring | training | judging | "
                        "embedding | plotting | kernel stop | other | wall |")
    assert lines[1].startswith("|---|---:|") and len(lines) == 5
    assert lines[3] == "| 01 | 2.0 | 4.0 | 20.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 4.0 | 30.0 |"
    assert "| **total** | 4.0 (10%) | 4.0 (10%) | 20.0 (50%) |" in lines[4] and lines[4].endswith("| 40.0 |")
    inc = T.timings_rows(MANIFEST, inclusive=True)
    assert [r["chapter"] for r in inc] == ["01", "total"] and inc[0]["judging"] == 21.0 and "other" not in inc[0]
    assert T.loads_lines(MANIFEST) == ["00: 1× MiniLM, 2× embedded", "01: 1× embedded"]
    assert T.markdown_table([]) == ""

    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST))
    report = T.timings_report(path)
    assert "profile smoke" in report and md in report and "00: 1× MiniLM, 2× embedded" in report
    assert "Loaded more than once in one kernel: 00 embedded (" in report
    once = json.loads(json.dumps(MANIFEST))
    once["chapters"]["00"]["ledger"]["loads"]["embedded"] = 1
    path.write_text(json.dumps(once))
    assert "more than once" not in T.timings_report(path)


def test_timings_report_refuses_bad_manifests(tmp_path):
    with pytest.raises(SSUIError, match="no run manifest"):
        T.timings_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{torn")
    with pytest.raises(SSUIError, match="bad.json: not a JSON run manifest"):
        T.timings_report(bad)
    bad.write_text(json.dumps({"chapters": []}))
    with pytest.raises(SSUIError, match="field 'chapters'"):
        T.timings_report(bad)
    bad.write_text(json.dumps({"chapters": {"00": {"ledger": {"wall_s": 3}}}}))
    with pytest.raises(SSUIError, match="no chapter has per-phase times"):
        T.timings_report(bad)


def test_ssui_book_timings_command(tmp_path, capsys, monkeypatch):
    from ssui_lib.cli import main

    runs = tmp_path / "papermill_runs" / "smoke"
    runs.mkdir(parents=True)
    (runs / "manifest.json").write_text(json.dumps(MANIFEST))
    monkeypatch.chdir(tmp_path)
    assert main(["book", "timings"]) == 0
    out = capsys.readouterr().out
    assert "| **total** |" in out and "| 00 |" in out
    assert main(["book", "timings", "--manifest", str(runs / "manifest.json"), "--inclusive"]) == 0
    assert "inclusive seconds" in capsys.readouterr().out
    assert main(["book", "timings", "--profile", "paper"]) == 2
    assert "papermill_runs/paper/manifest.json: no run manifest" in capsys.readouterr().err


def test_last_run_table_for_chapter_00_never_raises(tmp_path):
    assert "No run of this profile yet" in T.last_run_table(tmp_path / "missing.json")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"chapters": {"00": {"ledger": {"wall_s": 3}}}}))
    assert "predates phase timing" in T.last_run_table(old)
    new = tmp_path / "new.json"
    new.write_text(json.dumps(MANIFEST))
    assert T.last_run_table(new) == T.markdown_table(T.timings_rows(MANIFEST))
