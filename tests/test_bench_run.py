"""One benchmark's column (ssui_lib.eval.bench_run): specs, resumable run with a scripted model and
judge, Table 1 assembly and the paper's reference rows."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.eval import bench_judges
from ssui_lib.eval.bench_judges import BenchModelJudge
from ssui_lib.eval.bench_run import (PAPER_TABLE1, TABLE1_KEYS, benchmark_judges, benchmark_specs, format_table1,
                                     judge_names, load_parts, paper_reference, run_benchmark, table1)
from ssui_lib.models.base import ChatModel, Generation

FIX = Path(__file__).parent / "fixtures" / "external"


class Echo(ChatModel):
    """Answers every prompt with the same text; counts calls."""

    def __init__(self, name, text):
        self.name, self.text, self.calls = name, text, 0

    def generate(self, prompts, params=None, prefixes=None, progress=False):
        self.calls += 1
        return [[Generation(self.text)] for _ in prompts]


def test_specs_and_judge_names():
    assert benchmark_specs("usb", "a.csv") == {"vulnerability": "usb:a.csv#sist", "overrefusal": "usb:a.csv#overrefusal"}
    assert benchmark_specs("vlsbench", "vlsbench:d.json") == {"all": "vlsbench:d.json"}
    assert judge_names("usb", "offline") == {"vulnerability": "usb:offline", "overrefusal": "usb-arr:offline"}
    assert judge_names("safebench", "a,b,c") == {"all": "safebench-jury:a,b,c"}
    with pytest.raises(SSUIError, match="unknown benchmark"):
        benchmark_specs("nope", "x")
    parts = load_parts("usb", FIX / "usb" / "USB_base_final.csv", limit=2)
    assert [len(v) for v in parts.values()] == [2, 2]


def test_run_benchmark_resumes(tmp_path, monkeypatch):
    judge_model = Echo("judge", "It warns about the risk.\nLABEL: warning")

    def fake_resolve(name, **kw):
        bench = name.split(":", 1)[0]
        return BenchModelJudge(bench, judge_model, name=name)

    monkeypatch.setattr(bench_judges, "resolve_bench_judge", fake_resolve)
    model = Echo("echo", "Be careful: this could be dangerous.")
    out = tmp_path / "v.json"
    judges = benchmark_judges("vlsbench", "scripted", cache_dir=tmp_path / "judge_cache")
    res = run_benchmark("vlsbench", model, judges, FIX / "vlsbench" / "data_all_categories.json", out,
                        limit=3, n_boot=50)
    assert res["n"] == {"all": 3} and res["columns"]["vlsbench.safe_rate"]["value"] == 1.0
    assert json.loads(out.read_text())["metrics"]["warning_rate"]["value"] == 1.0
    calls = (model.calls, judge_model.calls)
    run_benchmark("vlsbench", model, judges, FIX / "vlsbench" / "data_all_categories.json", out, limit=3, n_boot=50)
    assert (model.calls, judge_model.calls) == calls  # everything reused from the work files


def test_run_usb_two_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_judges, "resolve_bench_judge", lambda name, **kw: BenchModelJudge(
        name.split(":", 1)[0], Echo("j", "LABEL: refusal"), name=name))
    res = run_benchmark("usb", Echo("m", "I can't help with that."), benchmark_judges("usb", "x"),
                        FIX / "usb" / "USB_base_final.csv",
                        tmp_path / "u.json", n_boot=20)
    assert res["n"] == {"vulnerability": 3, "overrefusal": 2}
    assert res["columns"]["usb.ASR"]["value"] == 0.0 and res["columns"]["usb.ARR"]["value"] == 1.0
    assert res["columns"]["usb.avg"]["value"] == 0.5


def fake(value, n_boot=10):
    import numpy as np
    return {"value": value, "ci": [value, value], "n": 1, "unscored": 0, "boot": np.full(n_boot, value)}


def test_table1_and_paper_reference():
    res = {"base": {"vlsbench": {"raw": {"safe_rate": fake(0.5)}},
                    "safebench": {"raw": {"ASR": fake(0.2), "SRI": fake(0.9)}}}}
    t = table1(res)
    assert t.loc["base", "vlsbench.safe_rate"] == pytest.approx(50.0) and math.isnan(t.loc["base", "usb.ASR"])
    assert t.loc["base", "avg_up"] == pytest.approx(70.0) and t.loc["base", "avg_down"] == pytest.approx(20.0)
    cells = format_table1(t)
    assert cells.loc["base", "usb.ASR"] == "–" and cells.loc["base", "vlsbench.safe_rate"] == "50.0 [50.0, 50.0]"
    ref = paper_reference({"SRPO": "Qwen2.5VL-7B + SRPO"})
    assert list(ref.columns) == list(TABLE1_KEYS) and ref.loc["SRPO", "avg_up"] == 76.18
    with pytest.raises(SSUIError, match="no row"):
        paper_reference({"x": "Nope-7B"})
    off = {}
    for name, row in PAPER_TABLE1.items():  # the published averages follow the documented members...
        v = dict(zip(TABLE1_KEYS, row))
        up = (v["mllmguard.PAR"] + v["mssbench.acc"] + v["safebench.SRI"] + v["vlsbench.safe_rate"]) / 4
        down = (v["usb.avg"] + v["mllmguard.ASD"] + v["safebench.ASR"]) / 3
        gaps = (round(4 * (up - v["avg_up"]), 1), round(3 * (down - v["avg_down"]), 1))
        if gaps != (0.0, 0.0):
            off[name] = gaps
    # ...except three rows whose printed average implies one member exactly 10 points away from the
    # printed value (typos in the paper, kept as printed)
    assert off == {"GLM-4v-9B": (0.0, 10.0), "LLaVA-NeXT-LLaMA3": (10.0, 0.0), "LLaVA-NeXT-LLaMA3 + SRPO": (0.0, 10.0)}
