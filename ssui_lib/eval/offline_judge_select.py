"""Choosing the learned offline judge's model by cross-validation on its training material only.

The hand-labelled validation set (test split) must not steer the choice, so the candidates of
:data:`CANDIDATES` (model kind × feature set of :mod:`ssui_lib.eval.offline_judge`) are compared on
the rows :func:`~ssui_lib.eval.offline_judge.training_rows` writes from the train split, two ways:

* ``record`` — 5-fold cross-validation grouped by record (a record's rows never sit on both
  sides): accuracy on replies to records not seen in training;
* ``style`` — leave one response style out (train on every other style, test on the held-out
  one; the macro mean over styles): accuracy on a *kind* of reply not seen in training, the
  closer stand-in for what real models write, since the templates themselves are learnt almost
  perfectly.

:func:`choose` takes the candidate with the highest ``style`` accuracy averaged over safe and
effective (ties: the ``record`` accuracy, then the order of :data:`CANDIDATES`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.eval import offline_judge as oj

CANDIDATES = (
    {"model": "hgb", "features": "base"},
    {"model": "hgb", "features": "base+rules"},
    {"model": "hgb", "features": "all"},
    {"model": "hgb_balanced", "features": "all"},
    {"model": "logreg", "features": "all"},
)
CRITERIA = ("safe", "effective")


def _fit_predict(kind: str, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    if len(set(y_train.tolist())) < 2:  # one class only: the constant prediction
        return np.full(len(X_test), bool(y_train[0]))
    return oj.make_classifier(kind).fit(X_train, y_train).predict_proba(X_test)[:, 1] > 0.5


def cross_validate(samples: Sequence[Sample], candidates: Sequence[dict] = CANDIDATES, *, n_splits: int = 5,
                   X: np.ndarray | None = None, rows: Sequence[dict] | None = None,
                   progress: bool = False) -> Any:
    """Accuracy of each candidate by both schemes of the module docstring. Returns a DataFrame with
    columns model, features, scheme ("record" | "style"), criterion, accuracy, n (rows scored;
    for "style", the number of held-out styles). ``X`` / ``rows`` may be given precomputed
    (:func:`~ssui_lib.eval.offline_judge.row_features` of ``rows``)."""
    import pandas as pd
    from sklearn.model_selection import GroupKFold

    samples = list(samples)
    if any(s.split not in ("train", None) for s in samples):
        bad = next(s for s in samples if s.split not in ("train", None))
        raise SSUIError(f"model selection: records must come from the train split; {bad.id!r} is in {bad.split!r}")
    rows = oj.training_rows(samples) if rows is None else list(rows)
    X = oj.row_features(samples, rows) if X is None else X
    if len(X) != len(rows):
        raise SSUIError(f"model selection: {len(X)} feature rows for {len(rows)} training rows")
    groups = np.array([r["id"] for r in rows])
    styles = np.array([r["style"] for r in rows])
    if len(set(groups)) < n_splits:
        raise SSUIError(f"model selection: {len(set(groups))} records, fewer than {n_splits} folds")
    out = []
    for spec in candidates:
        Xs = X[:, oj.columns(spec["features"])]
        for crit in CRITERIA:
            keep, y = oj.labels(rows, crit)
            Xc, gc, sc = Xs[keep], groups[keep], styles[keep]
            pred = np.zeros(len(y), dtype=bool)
            for train, test in GroupKFold(n_splits=n_splits).split(Xc, y, gc):
                pred[test] = _fit_predict(spec["model"], Xc[train], y[train], Xc[test])
            out.append({**spec, "scheme": "record", "criterion": crit, "accuracy": float((pred == y).mean()),
                        "n": int(len(y))})
            per_style = []
            for st in sorted(set(sc)):
                test = sc == st
                got = _fit_predict(spec["model"], Xc[~test], y[~test], Xc[test])
                per_style.append(float((got == y[test]).mean()))
            out.append({**spec, "scheme": "style", "criterion": crit, "accuracy": float(np.mean(per_style)),
                        "n": len(per_style)})
            if progress:
                print(f"{spec['model']}/{spec['features']} {crit}: record {out[-2]['accuracy']:.3f}, "
                      f"style {out[-1]['accuracy']:.3f}", flush=True)
    return pd.DataFrame(out, columns=["model", "features", "scheme", "criterion", "accuracy", "n"])


def choose(table: Any) -> dict[str, str]:
    """The chosen candidate of a :func:`cross_validate` table (rule of the module docstring)."""
    if table is None or len(table) == 0:
        raise SSUIError("model selection: empty cross-validation table")
    order = list(dict.fromkeys(zip(table["model"], table["features"])))
    best, best_key = None, None
    for i, (model, feats) in enumerate(order):
        part = table[(table.model == model) & (table.features == feats)]
        style = part[part.scheme == "style"].accuracy.mean()
        record = part[part.scheme == "record"].accuracy.mean()
        key = (round(float(style), 12), round(float(record), 12), -i)
        if best_key is None or key > best_key:
            best, best_key = {"model": model, "features": feats}, key
    return best
