"""Paired statistics (ssui_lib.eval.paired) on hand-made tables."""
import math

import numpy as np
import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.eval.paired import (COLUMNS, align, compare_paired, comparison_frame, contingency, describe,
                                  mcnemar_exact, paired_bootstrap)


def test_contingency_counts_and_drops_unscored():
    a = [1, 1, 0, 0, 1, None]
    b = [1, 0, 1, 0, 0, 1]
    assert contingency(a, b) == {"both": 1, "a_only": 2, "b_only": 1, "neither": 1, "n": 5, "dropped": 1}


def test_contingency_rejects_unpaired_and_non_binary():
    with pytest.raises(SSUIError, match="same items"):
        contingency([1, 0], [1])
    with pytest.raises(SSUIError, match="0/1"):
        contingency([1, 2], [1, 0])


@pytest.mark.parametrize("b, c, p", [(5, 0, 0.0625), (0, 5, 0.0625), (3, 1, 0.625), (1, 1, 1.0), (0, 0, 1.0),
                                     (10, 2, 2 * (1 + 12 + 66) / 4096)])
def test_mcnemar_exact_matches_hand_computed_binomial_tails(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p)


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(SSUIError, match="a_only"):
        mcnemar_exact(-1, 2)


def test_paired_bootstrap_difference_and_interval():
    a = [1] * 8 + [0] * 2
    b = [1] * 4 + [0] * 6  # a right on 4 items where b is wrong, never the other way
    d, lo, hi = paired_bootstrap(a, b, n_boot=500, seed=1)
    assert d == pytest.approx(0.4)
    assert 0 <= lo <= d <= hi <= 0.8 + 1e-12
    # identical answers: the paired interval collapses to zero (independent intervals would not)
    assert paired_bootstrap(a, a, n_boot=200) == (0.0, 0.0, 0.0)
    # deterministic for a seed
    assert paired_bootstrap(a, b, n_boot=300, seed=3) == paired_bootstrap(a, b, n_boot=300, seed=3)


def test_paired_bootstrap_empty_is_nan_and_bad_settings_fail():
    assert all(math.isnan(x) for x in paired_bootstrap([None], [1]))
    with pytest.raises(SSUIError, match="n_boot"):
        paired_bootstrap([1], [1], n_boot=0)
    with pytest.raises(SSUIError, match="ci"):
        paired_bootstrap([1], [1], ci=1.5)


def test_compare_paired_fields():
    r = compare_paired([1, 1, 1, 0], [1, 0, 0, 0], n_boot=100)
    assert (r["n"], r["acc_a"], r["acc_b"], r["a_only"], r["b_only"]) == (4, 0.75, 0.25, 2, 0)
    assert r["diff"] == pytest.approx(0.5) and r["p"] == pytest.approx(0.5)


def test_align_requires_the_same_items():
    items = align({"SRPO": {"x": True, "y": False, "z": None}, "SFT": {"z": 1, "x": 0, "y": 0}})
    assert list(items.index) == ["x", "y", "z"]
    assert items["SFT"].tolist() == [0.0, 0.0, 1.0] and math.isnan(items.loc["z", "SRPO"])
    with pytest.raises(SSUIError, match="'SFT' lacks item 'y'"):
        align({"SRPO": {"x": 1, "y": 0}, "SFT": {"x": 1}})
    with pytest.raises(SSUIError, match="extra item 'w'"):
        align({"SRPO": {"x": 1}, "SFT": {"x": 1, "w": 0}})
    with pytest.raises(SSUIError, match="no variants"):
        align({})


def test_comparison_frame_and_describe():
    items = align({"SRPO": {"a": 1, "b": 1, "c": 0}, "SFT": {"a": 0, "b": 1, "c": 0}, "base": {"a": 1, "b": 1, "c": 0}})
    df = comparison_frame(items, "SRPO", n_boot=200)
    assert list(df.columns) == COLUMNS and df["b"].tolist() == ["SFT", "base"]
    sft = df.iloc[0]
    assert (sft["a_only"], sft["b_only"], sft["p"]) == (1, 0, 1.0)
    assert describe(sft).startswith("SRPO vs SFT: +33.3 points [") and "McNemar p = 1" in describe(sft)
    assert df.iloc[1]["diff"] == 0.0
    with pytest.raises(SSUIError, match="no variant 'DPO'"):
        comparison_frame(items, "SRPO", ["DPO"])
    with pytest.raises(SSUIError, match="no variant 'X'"):
        comparison_frame(items, "X")
    empty = {"a": "A", "b": "B", "n": 0, "diff": float("nan")}
    assert describe(empty) == "A vs B: no item scored by both"
    assert np.isfinite(df["p"]).all()
