"""Judge validation on hand-labelled responses: loading and checking the file, judging its rows
against their test-split records, agreement tables (overall, per category, per style), and the
real validation set's shape."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.eval.judge import Judge, Verdict
from ssui_lib.eval.judge_validation import (
    VALIDATION_FILE,
    agreement_table,
    format_agreement,
    judge_validation,
    load_validation,
)
from test_judge import BLEACH, RAIL, RAIL_TWIN, SAMPLES

FIXTURE = Path(__file__).parent / "fixtures" / "judge_validation" / "responses_small.jsonl"


class Scripted(Judge):
    """Safe unless the reply says 'mix' or 'lie across'; effective if it has more than 6 words."""

    name = "scripted"

    def _judge(self, samples, responses, *, mode, progress):
        out = []
        for s, r in zip(samples, responses):
            safe = not any(w in r.lower() for w in ("mix", "lie across"))
            out.append(Verdict(s.id, safe, len(r.split()) > 6, True, "scripted", self.name))
        return out


class Unsure(Judge):
    name = "unsure"

    def _judge(self, samples, responses, *, mode, progress):
        return [Verdict(s.id, None, None, False, "transport error: down", self.name) for s in samples]


def test_load_fixture_and_errors(tmp_path):
    rows = load_validation(FIXTURE)
    assert len(rows) == 8 and {r["style"] for r in rows} >= {"bare_refusal", "empty", "twin_overrefusal"}
    bad = tmp_path / "bad.jsonl"
    good = json.loads(FIXTURE.read_text().splitlines()[0])
    for row, msg in [({**good, "safe": "yes"}, r"bad.jsonl:2: field 'safe'"),
                     ({**good, "split": "train"}, "test-split records"),
                     ({**good, "kind": "x"}, "field 'kind'"),
                     (good, "duplicate id")]:
        bad.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(SSUIError, match=msg):
            load_validation(bad)
    bad.write_text("{oops\n")
    with pytest.raises(SSUIError, match=r"bad.jsonl:1: malformed JSON"):
        load_validation(bad)
    with pytest.raises(SSUIError, match="not found"):
        load_validation(tmp_path / "none.jsonl")


def test_judge_validation_and_agreement_tables():
    rows = load_validation(FIXTURE)
    df = judge_validation(Scripted(), rows, SAMPLES)
    assert list(df.index) == [r["id"] for r in rows] and df.attrs["seconds"] >= 0
    # the empty reply is decided by the Judge base class: not safe, not effective (= its label)
    assert (df.loc["v6", "safe"], df.loc["v6", "effective"]) == (False, False)
    tab = agreement_table({"scripted": df, "unsure": judge_validation(Unsure(), rows, SAMPLES)}, n_boot=100)
    s = tab[(tab.judge == "scripted") & (tab.criterion == "safe")].iloc[0]
    assert s.accuracy == 1.0 and s.kappa == 1.0 and s.n == 8 and s.unscored == 0
    e = tab[(tab.judge == "scripted") & (tab.criterion == "effective")].iloc[0]
    # effective: v1 (5 words, F) ok, v3 T ok, v4 says >6 words -> T but gold F, v5 (9 words) T ok ...
    assert 0.0 < e.accuracy < 1.0 and e.accuracy_lo <= e.accuracy <= e.accuracy_hi
    u = tab[(tab.judge == "unsure") & (tab.criterion == "safe")].iloc[0]
    # unscored verdicts count as wrong in accuracy, except the empty reply which the base class decides
    assert u.unscored == 7 and u.accuracy == pytest.approx(1 / 8) and math.isnan(u.kappa)
    per_style = agreement_table({"scripted": df}, by="style", n_boot=0)
    assert set(per_style.group) == {r["style"] for r in rows} and (per_style.n == 1).all()
    per_cat = agreement_table({"scripted": df}, by="category", n_boot=0)
    assert set(per_cat.group) == {"Dangerous Behavior", "Illegal Crimes"}
    shown = format_agreement(tab)
    assert list(shown.columns) == ["safe accuracy (%)", "safe κ", "effective accuracy (%)", "effective κ", "n",
                                   "unscored"]
    assert shown.loc[("scripted", "all"), "safe accuracy (%)"].startswith("100.0")
    assert shown.loc[("unsure", "all"), "safe κ"] == "undefined"
    with pytest.raises(SSUIError, match="by must be"):
        agreement_table({"scripted": df}, by="judge")


def test_records_must_exist_and_be_test_split():
    rows = load_validation(FIXTURE)
    with pytest.raises(SSUIError, match="no record 'rail-twin'"):
        judge_validation(Scripted(), rows, [RAIL, BLEACH])
    train_rail = type(RAIL).from_dict({**RAIL.to_dict(), "split": "train"})
    with pytest.raises(SSUIError, match="not test"):
        judge_validation(Scripted(), rows, [train_rail, BLEACH, RAIL_TWIN])


def test_shipped_validation_set_is_test_split_and_large_enough():
    rows = load_validation()
    assert VALIDATION_FILE.exists() and len(rows) >= 300
    from ssui_lib.data.bundled import load_dataset

    test_ids = {s.id for s in load_dataset("bundled:test")}
    assert {r["record_id"] for r in rows} <= test_ids
    assert {"bare_refusal", "refusal_then_compliance", "help_with_warning", "off_topic", "empty"} <= \
        {r["style"] for r in rows}


def _table(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["record_id", "gold_safe", "gold_effective", "score"])


def test_pairwise_ranking_on_a_hand_made_table():
    from ssui_lib.eval.judge_validation import pairwise_ranking, ranking_table, verdict_score

    nan = float("nan")
    t = _table([
        # record a: one correct (0.9) vs wrong 0.2 (win), 0.9 (tie), 0.95 (loss) -> 1.5 of 3
        ("a", True, True, 0.9), ("a", True, False, 0.2), ("a", False, False, 0.9), ("a", False, True, 0.95),
        # record b: two correct (0.8, nan) vs one wrong 0.1 -> win + undecided (0.5) = 1.5 of 2
        ("b", True, True, 0.8), ("b", True, True, nan), ("b", False, False, 0.1),
        # record c: no wrong response -> no pair
        ("c", True, True, 0.4),
    ])
    r = pairwise_ranking(t, n_boot=200, seed=1)
    assert r["pairs"] == 5 and r["records"] == 2
    assert r["value"] == pytest.approx(3.0 / 5) and r["ties"] == pytest.approx(2 / 5)
    assert r["ci"][0] <= r["value"] <= r["ci"][1]
    perfect = _table([("a", True, True, 1.0), ("a", False, True, 0.0), ("b", True, True, 0.7),
                      ("b", True, False, 0.6)])
    assert pairwise_ranking(perfect, n_boot=0)["value"] == 1.0
    assert math.isnan(pairwise_ranking(perfect, n_boot=0)["ci"][0])
    none = pairwise_ranking(_table([("a", True, True, 1.0)]), n_boot=10)
    assert none["pairs"] == 0 and math.isnan(none["value"])
    with pytest.raises(SSUIError, match="lacks score"):
        pairwise_ranking(t.drop(columns="score"))
    tab = ranking_table({"x": t, "perfect": perfect}, n_boot=0)
    assert list(tab.judge) == ["x", "perfect"] and list(tab.pairs) == [5, 2]
    assert tab.set_index("judge").loc["perfect", "ranking"] == 1.0
    assert verdict_score(True, True, True) == 1.0 and verdict_score(True, False, True) == 0.0
    assert math.isnan(verdict_score(None, None, False))


def test_judge_validation_scores_from_verdicts_or_the_judges_own():
    rows = load_validation(FIXTURE)
    df = judge_validation(Scripted(), rows, SAMPLES)
    assert set(df.score.dropna()) <= {0.0, 1.0}
    assert ((df.score == 1.0) == (df.safe & df.effective)).all()
    assert df.score.notna().all()

    class Scored(Scripted):
        def scores(self, samples, responses):
            return [len(r) / 1000 for r in responses]

    got = judge_validation(Scored(), rows, SAMPLES)
    assert list(got.score) == [len(r["response"]) / 1000 for r in rows]
    assert judge_validation(Unsure(), rows, SAMPLES).score.isna().sum() == 7
