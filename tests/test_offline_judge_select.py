"""Model selection for the learned offline judge: cross-validation on training material only
(grouped by record, and leaving one response style out) and the choice rule."""
from __future__ import annotations

import pandas as pd
import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.eval import offline_judge as oj
from ssui_lib.eval.offline_judge_select import CANDIDATES, choose, cross_validate
from test_judge_offline import HELD_OUT, TRAIN


def test_cross_validate_on_training_rows():
    rows = oj.training_rows(TRAIN)
    X = oj.row_features(TRAIN, rows)
    cands = [{"model": "logreg", "features": "base"}, {"model": "hgb", "features": "all"}]
    tab = cross_validate(TRAIN, cands, n_splits=3, X=X, rows=rows)
    assert list(tab.columns) == ["model", "features", "scheme", "criterion", "accuracy", "n"]
    assert len(tab) == 2 * 2 * 2 and set(tab.scheme) == {"record", "style"}
    assert tab.accuracy.between(0, 1).all()
    n_styles = len({r["style"] for r in rows})
    style_n = tab[(tab.scheme == "style") & (tab.criterion == "safe")].n
    assert (style_n == n_styles).all()
    rec = tab[(tab.scheme == "record") & (tab.criterion == "effective")].n
    assert (rec == sum(r["effective"] is not None for r in rows)).all()
    # the same rows always give the same table (fixed seeds, grouped folds)
    pd.testing.assert_frame_equal(tab, cross_validate(TRAIN, cands, n_splits=3, X=X, rows=rows))
    assert choose(tab) in cands


def test_selection_refuses_other_splits_and_too_few_records():
    with pytest.raises(SSUIError, match="train split"):
        cross_validate(TRAIN + [HELD_OUT], CANDIDATES[:1])
    rows = oj.training_rows(TRAIN)
    with pytest.raises(SSUIError, match="fewer than 10 folds"):
        cross_validate(TRAIN, CANDIDATES[:1], n_splits=10, X=oj.row_features(TRAIN, rows), rows=rows)
    with pytest.raises(SSUIError, match="feature rows"):
        cross_validate(TRAIN, CANDIDATES[:1], X=oj.row_features(TRAIN, rows)[:3], rows=rows)


def test_choose_prefers_style_then_record_then_order():
    def table(entries):
        out = []
        for (model, feats), (style, record) in entries.items():
            for crit in ("safe", "effective"):
                out.append({"model": model, "features": feats, "scheme": "style", "criterion": crit,
                            "accuracy": style, "n": 5})
                out.append({"model": model, "features": feats, "scheme": "record", "criterion": crit,
                            "accuracy": record, "n": 50})
        return pd.DataFrame(out)

    assert choose(table({("hgb", "base"): (0.8, 0.99), ("logreg", "all"): (0.9, 0.90)})) == \
        {"model": "logreg", "features": "all"}
    assert choose(table({("hgb", "base"): (0.9, 0.95), ("hgb", "all"): (0.9, 0.97)})) == \
        {"model": "hgb", "features": "all"}
    assert choose(table({("hgb", "base"): (0.9, 0.95), ("hgb", "all"): (0.9, 0.95)})) == \
        {"model": "hgb", "features": "base"}
    with pytest.raises(SSUIError, match="empty"):
        choose(pd.DataFrame())
