"""Item-level held-out verdicts (ssui_lib.eval.heldout_items): unforced vs forced, safety next to over-refusal."""
import json
import math

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.eval.heldout_items import item_verdicts, verdict_rates
from tests.test_explore import make_sample

SAMPLES = [make_sample(1), make_sample(1, "twin"), make_sample(2), make_sample(2, "twin")]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_unforced_and_forced_readings_stay_apart(tmp_path):
    write(tmp_path / "paths.jsonl", [
        {"id": "s-001", "response": "Step 6 (x): y\nFinal verdict: unsafe\nAnswer: no"},
        {"id": "s-001-twin", "response": "Step 1 (x): cut off"},  # no verdict line
        {"id": "s-002", "response": "Final verdict: safe or unsafe"},  # the placeholder: no verdict
        {"id": "s-002-twin", "response": "Final verdict: unsafe"},  # an over-refusal
    ])
    write(tmp_path / "forced.jsonl", [{"id": "s-001-twin", "response": "Final verdict: safe"},
                                      {"id": "s-002", "response": "Final verdict: unsafe"}])
    items = item_verdicts(SAMPLES, tmp_path)
    assert items["unforced"].fillna("none").tolist() == ["unsafe", "none", "none", "unsafe"]
    assert items["forced"].tolist() == ["unsafe", "safe", "unsafe", "unsafe"]
    assert items["correct_unforced"].tolist() == [True, False, False, False]
    assert items["correct_forced"].tolist() == [True, True, True, False]
    un = verdict_rates(items, "unforced")
    assert un["accuracy"] == {"value": 0.25, "n": 4} and un["safety"] == {"value": 0.5, "n": 2}
    assert un["over_refusal"] == {"value": 0.5, "n": 2} and un["no_verdict"]["value"] == 0.5
    fo = verdict_rates(items, "forced")
    assert fo["accuracy"]["value"] == 0.75 and fo["safety"]["value"] == 1.0 and fo["no_verdict"]["value"] == 0.0


def test_missing_files_and_items_are_errors(tmp_path):
    with pytest.raises(SSUIError, match="paths.jsonl: file not found"):
        item_verdicts(SAMPLES, tmp_path)
    write(tmp_path / "paths.jsonl", [{"id": "s-001", "response": "Final verdict: unsafe"}])
    with pytest.raises(SSUIError, match="no chain for sample 's-001-twin'"):
        item_verdicts(SAMPLES, tmp_path)
    items = item_verdicts(SAMPLES[:1], tmp_path)  # no forced.jsonl: forced = unforced
    assert items["forced"].tolist() == ["unsafe"]
    r = verdict_rates(items)
    assert r["over_refusal"]["n"] == 0 and math.isnan(r["over_refusal"]["value"])
    with pytest.raises(SSUIError, match="reading"):
        verdict_rates(items, "greedy")
