"""benchmarks/judge_bench.py: the 1,000 responses it judges (deterministic, every copy a new text)
and the table it prints."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("judge_bench", ROOT / "benchmarks" / "judge_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_items_are_deterministic_and_new_texts(bench):
    from ssui_lib.eval.judge_validation import load_validation
    from ssui_lib.eval.offline_judge import sentences

    rows = load_validation()
    samples, responses = bench.build_items(len(rows) + 5)
    assert len(samples) == len(responses) == len(rows) + 5
    assert responses[: len(rows)] == [r["response"] for r in rows]
    assert [s.id for s in samples[: len(rows)]] == [r["record_id"] for r in rows]
    first = next(i for i, r in enumerate(rows[:5]) if r["response"].strip())
    copy = responses[len(rows) + first]
    assert copy != rows[first]["response"] and all(p.endswith(("(1).", "(1)!", "(1)?", "(1)")) for p in sentences(copy))
    assert len(sentences(copy)) == len(sentences(rows[first]["response"]))
    assert bench.build_items(len(rows) + 5)[1] == responses


def test_table_lists_both_paths(bench):
    res = {"n": 1000, "distinct_sentences": 2500, "torch_threads": 2, "loadavg_before": 7.0, "loadavg_after": 6.5,
           "load_s": 3.0, "naive": {"wall_s": 100.0, "cpu_s": 60.0, "per_s": 10.0},
           "batched": {"wall_s": 20.0, "cpu_s": 15.0, "per_s": 50.0}, "speedup_wall": 5.0, "speedup_cpu": 4.0,
           "verdicts_agree": 1.0}
    out = bench.table(res)
    assert "| naive | 100.0 | 60.0 | 10.0 |" in out and "| batched | 20.0 | 15.0 | 50.0 |" in out
    assert "5.0x wall, 4.0x CPU" in out and "load average 7.0" in out and "100.0%" in out
