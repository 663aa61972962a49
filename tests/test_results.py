"""Results are data (ssui_lib.book.results): tables as CSV, headline numbers merged by key."""
import json
import threading

import pandas as pd
import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.book.results import FIELDS, entry, metric_entries, read_results, record, run_dir, write_table


def test_entry_validates_and_cleans():
    e = entry("05", "verdict accuracy", "SRPO", 0.5, interval=(0.25, float("nan")), n=12, model="embedded",
              judge="offline")
    assert tuple(e) == FIELDS and e["interval"] is None and e["value"] == 0.5
    assert entry("05", "m", "v", float("nan"))["value"] is None
    for bad, msg in ((dict(chapter="5"), "two-digit"), (dict(metric=""), "metric"), (dict(value="x"), "value"),
                     (dict(n=-1), "n must"), (dict(interval=[1]), r"\[lo, hi\]"), (dict(model=3), "model")):
        kw = {"chapter": "05", "metric": "m", "variant": "v", "value": 1.0, **bad}
        with pytest.raises(SSUIError, match=msg):
            entry(kw.pop("chapter"), kw.pop("metric"), kw.pop("variant"), kw.pop("value"), **kw)


def test_record_merges_by_key_in_any_order(tmp_path):
    record("cpu", [entry("05", "acc", "SRPO", 0.5, n=10), entry("05", "acc", "SFT", 0.4, n=10)], root=tmp_path)
    record("cpu", [entry("03", "S", "zero-shot", 0.9, interval=[0.8, 1.0], n=16)], root=tmp_path)
    record("cpu", [entry("05", "acc", "SRPO", 0.6, n=10)], root=tmp_path)  # a rerun replaces its own number
    got = read_results("cpu", root=tmp_path)
    assert [(e["chapter"], e["variant"], e["value"]) for e in got] == [
        ("03", "zero-shot", 0.9), ("05", "SFT", 0.4), ("05", "SRPO", 0.6)]
    data = json.loads((tmp_path / "cpu" / "results.json").read_text())
    assert data["profile"] == "cpu" and len(data["entries"]) == 3
    assert not list((tmp_path / "cpu").glob("*.tmp"))


def test_record_concurrent_writers_lose_nothing(tmp_path):
    def write(ch):
        for k in range(5):
            record("p", [entry(ch, f"m{k}", "v", k)], root=tmp_path)

    threads = [threading.Thread(target=write, args=(c,)) for c in ("03", "05", "06", "07")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_results("p", root=tmp_path)) == 20


def test_record_and_read_reject_bad_input(tmp_path):
    with pytest.raises(SSUIError, match="entry 0"):
        record("p", [{"chapter": "05"}], root=tmp_path)
    with pytest.raises(SSUIError, match="profile"):
        run_dir("../x")
    assert read_results("none", root=tmp_path) == []
    bad = tmp_path / "q" / "results.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(SSUIError, match="results.json: not valid JSON"):
        read_results("q", root=tmp_path)
    bad.write_text(json.dumps({"profile": "q", "entries": [{"chapter": "05"}]}))
    with pytest.raises(SSUIError, match=r"entries\[0\]"):
        read_results("q", root=tmp_path)


def test_metric_entries_from_library_metrics():
    metrics = {"ACC": {"value": 0.5, "ci": [0.2, 0.8], "n": 8}, "SER": {"value": None, "ci": None, "n": 0}}
    es = metric_entries("05", "SFT", metrics, names={"ACC": "verdict accuracy"}, model="embedded", judge="offline")
    assert es == [{"chapter": "05", "metric": "verdict accuracy", "variant": "SFT", "value": 0.5,
                   "interval": [0.2, 0.8], "n": 8, "model": "embedded", "judge": "offline"}]
    assert [e["metric"] for e in metric_entries("05", "SFT", metrics)] == ["ACC", "SER"]
    with pytest.raises(SSUIError, match="no metric 'SR'"):
        metric_entries("05", "SFT", metrics, names={"SR": "SR"})


def test_write_table_csv(tmp_path):
    df = pd.DataFrame({"S": [0.5, 0.7]}, index=pd.Index(["zero-shot", "k-shot"], name="arm"))
    p = write_table("smoke", "03", "icl", df.style, root=tmp_path)
    assert p == tmp_path / "smoke" / "tables" / "03_icl.csv"
    assert pd.read_csv(p, index_col=0).equals(df)
    with pytest.raises(SSUIError, match="table name"):
        write_table("smoke", "03", "a/b", df, root=tmp_path)
    with pytest.raises(SSUIError, match="DataFrame"):
        write_table("smoke", "03", "x", [1, 2], root=tmp_path)
    with pytest.raises(SSUIError, match="two-digit"):
        write_table("smoke", "3", "x", df, root=tmp_path)
