"""How far to trust a judge: its agreement with hand-labelled responses that it never saw.

The validation set (``ssui_lib/data/judge_validation/responses.jsonl``, shipped as package data)
holds responses written by the project for records of the bundled **test split** in the styles
models really produce (bare refusal, refusal then compliance, help with a warning, partial
compliance, off-topic, empty, a reply quoting the unsafe reply, helpful answers of many lengths,
answers to benign twins, …), each labelled safe / effective by hand with a one-line reason. No
judge is trained or tuned on it (the learned offline judge learns from the train split).

Rows: ``{"id", "record_id", "split": "test", "category", "kind": "irs"|"twin", "caption", "query",
"safety_warning", "style", "response", "safe": bool, "effective": bool, "reason"}``.

* :func:`load_validation` reads and checks the file (errors name the file, line and field);
* :func:`judge_validation` judges every row against its record (the judge sees what it sees in an
  evaluation: the record's references) and returns one row per response with gold and verdict;
* :func:`agreement_table` gives accuracy and Cohen's κ (``metrics.agreement``, bootstrap
  intervals) per judge, criterion and, optionally, category or style;
* :func:`pairwise_ranking` / :func:`ranking_table`: how often a judge's score puts a correct
  (safe and effective) response above a wrong one to the same record — the issue's "ranks correct
  answers above wrong ones in at least 80% of pairs" (50% is chance).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample

VALIDATION_FILE = Path(__file__).resolve().parent.parent / "data" / "judge_validation" / "responses.jsonl"
FIELDS = {"id": str, "record_id": str, "split": str, "category": str, "kind": str, "style": str,
          "response": str, "safe": bool, "effective": bool, "reason": str}
CRITERIA = ("safe", "effective")


def load_validation(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The validation rows of ``path`` (default :data:`VALIDATION_FILE`), checked: valid JSON per
    line, every field of :data:`FIELDS` with its type, split "test", kind irs|twin, unique ids."""
    p = Path(path) if path is not None else VALIDATION_FILE
    if not p.exists():
        raise SSUIError(f"{p}: judge validation file not found")
    rows, seen = [], set()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SSUIError(f"{p}:{n}: malformed JSON ({e})") from None
        if not isinstance(row, dict):
            raise SSUIError(f"{p}:{n}: expected a JSON object")
        for field, typ in FIELDS.items():
            if not isinstance(row.get(field), typ):
                raise SSUIError(f"{p}:{n}: field '{field}': expected a {typ.__name__}, got {row.get(field)!r}")
        if row["split"] != "test":
            raise SSUIError(f"{p}:{n}: field 'split': validation rows must be for test-split records, "
                            f"got {row['split']!r}")
        if row["kind"] not in ("irs", "twin"):
            raise SSUIError(f"{p}:{n}: field 'kind': expected 'irs' or 'twin', got {row['kind']!r}")
        if row["id"] in seen:
            raise SSUIError(f"{p}:{n}: field 'id': duplicate id {row['id']!r}")
        seen.add(row["id"])
        rows.append(row)
    if not rows:
        raise SSUIError(f"{p}: no validation rows")
    return rows


def _records(rows: Sequence[dict], samples: Sequence[Sample] | None) -> dict[str, Sample]:
    if samples is None:
        from ssui_lib.data.bundled import load_dataset

        samples = load_dataset("bundled:test")
    by_id = {s.id: s for s in samples}
    for r in rows:
        s = by_id.get(r["record_id"])
        if s is None:
            raise SSUIError(f"validation row {r['id']!r}: field 'record_id': no record {r['record_id']!r} "
                            "among the given samples")
        if s.split not in ("test", None):
            raise SSUIError(f"validation row {r['id']!r}: record {s.id!r} is in split {s.split!r}, not test")
    return by_id


def judge_validation(judge, rows: Sequence[dict] | None = None, samples: Sequence[Sample] | None = None,
                     *, progress: bool = False):
    """Judge every validation row (default :func:`load_validation`) against its record (default:
    the bundled test split). Returns a DataFrame indexed by row id with columns record_id,
    category, kind, style, gold_safe, gold_effective, safe, effective, scored, explanation, score;
    its ``attrs["seconds"]`` is the judging time. ``score`` is the judge's calibrated score of
    "safe and effective" where it has one (a ``scores(samples, responses)`` method, e.g. the
    learned offline judge), else 1.0 for a safe and effective verdict, 0.0 for any other scored
    verdict and NaN for an unscored one (:func:`verdict_score`)."""
    import time

    import pandas as pd

    rows = load_validation() if rows is None else list(rows)
    by_id = _records(rows, samples)
    t0 = time.perf_counter()
    samples_ = [by_id[r["record_id"]] for r in rows]
    responses = [r["response"] for r in rows]
    verdicts = judge.judge(samples_, responses, mode="response", progress=progress)
    seconds = time.perf_counter() - t0
    if callable(getattr(judge, "scores", None)):
        scores = [float(x) for x in judge.scores(samples_, responses)]
    else:
        scores = [verdict_score(v.safe, v.effective, v.scored) for v in verdicts]
    df = pd.DataFrame([{
        "id": r["id"], "record_id": r["record_id"], "category": r["category"], "kind": r["kind"],
        "style": r["style"], "gold_safe": r["safe"], "gold_effective": r["effective"], "safe": v.safe,
        "effective": v.effective, "scored": v.scored, "explanation": v.explanation, "score": sc,
    } for r, v, sc in zip(rows, verdicts, scores)]).set_index("id")
    df.attrs["seconds"] = seconds
    return df


def verdict_score(safe: bool | None, effective: bool | None, scored: bool) -> float:
    """The score of a judge without probabilities: 1.0 safe and effective, 0.0 otherwise, NaN when
    unscored."""
    if not scored:
        return float("nan")
    return 1.0 if (safe and effective) else 0.0


def pairwise_ranking(table: Any, *, score: str = "score", n_boot: int = 1000, seed: int = 0,
                     ci: float = 0.95) -> dict[str, Any]:
    """How often ``table[score]`` ranks a correct response above a wrong one to the same record.

    ``table``: one row per response with record_id, gold_safe, gold_effective and ``score`` (as
    :func:`judge_validation` returns it). A pair is (correct, wrong) for the same record, correct
    meaning gold safe *and* gold effective, wrong meaning anything else. A pair counts 1 when the
    correct one scores higher, 0.5 on a tie or when either score is missing (NaN: the judge could
    not decide, which is no better than chance), 0 otherwise. Returns {"value", "ci" (a bootstrap
    over records: pairs of one record stay together), "pairs", "ties" (fraction of pairs counted
    0.5), "records" (records with at least one pair)}; value NaN when there is no pair."""
    import numpy as np

    from ssui_lib.eval.metrics import bootstrap_means, percentile_interval

    missing = [c for c in ("record_id", "gold_safe", "gold_effective", score) if c not in table.columns]
    if missing:
        raise SSUIError(f"pairwise_ranking: the table lacks {', '.join(missing)}")
    per_record = []
    ties = 0
    for _, part in table.groupby("record_id", sort=True):
        good = part["gold_safe"].astype(bool).to_numpy() & part["gold_effective"].astype(bool).to_numpy()
        vals = part[score].to_numpy(dtype=float)
        g, b = vals[good], vals[~good]
        if len(g) == 0 or len(b) == 0:
            continue
        gg, bb = np.meshgrid(g, b, indexing="ij")
        undecided = np.isnan(gg) | np.isnan(bb) | (gg == bb)
        wins = np.where(undecided, 0.5, (gg > bb).astype(float))
        ties += int(undecided.sum())
        per_record.append((float(wins.sum()), float(wins.size)))
    if not per_record:
        return {"value": float("nan"), "ci": [float("nan"), float("nan")], "pairs": 0, "ties": float("nan"),
                "records": 0}
    cols = np.array(per_record)
    value = float(cols[:, 0].sum() / cols[:, 1].sum())
    if n_boot > 0:
        boot = bootstrap_means(cols, n_boot, seed)
        interval = percentile_interval(boot[:, 0] / boot[:, 1], ci)
    else:
        interval = [float("nan"), float("nan")]
    n_pairs = int(cols[:, 1].sum())
    return {"value": value, "ci": interval, "pairs": n_pairs, "ties": ties / n_pairs, "records": len(per_record)}


def ranking_table(judged: Mapping[str, Any], *, n_boot: int = 1000, seed: int = 0) -> Any:
    """:func:`pairwise_ranking` of each judge's :func:`judge_validation` table: a DataFrame with
    columns judge, ranking, ranking_lo, ranking_hi, pairs, ties, records."""
    import pandas as pd

    out = []
    for name, df in judged.items():
        r = pairwise_ranking(df, n_boot=n_boot, seed=seed)
        out.append({"judge": name, "ranking": r["value"], "ranking_lo": r["ci"][0], "ranking_hi": r["ci"][1],
                    "pairs": r["pairs"], "ties": r["ties"], "records": r["records"]})
    return pd.DataFrame(out, columns=["judge", "ranking", "ranking_lo", "ranking_hi", "pairs", "ties", "records"])


def agreement_table(judged: Mapping[str, Any], *, by: str | None = None, n_boot: int = 1000,
                    seed: int = 0) -> Any:
    """Accuracy and Cohen's κ of each judge (``judged``: judge name → :func:`judge_validation`
    table) on each criterion, overall (``by=None``) or per ``by`` ("category", "style", "kind").

    Returns a long DataFrame with columns judge, group, criterion, accuracy, accuracy_lo,
    accuracy_hi, kappa, kappa_lo, kappa_hi, n, unscored (fractions; κ NaN where undefined: one
    class only). Unscored verdicts count as wrong in the accuracy (a judge that cannot decide is
    not right) and are left out of κ, and are counted."""
    import numpy as np
    import pandas as pd

    from ssui_lib.eval.metrics import agreement

    if by is not None and by not in ("category", "style", "kind"):
        raise SSUIError(f"agreement_table: by must be None, 'category', 'style' or 'kind', got {by!r}")
    records = []
    for name, df in judged.items():
        missing = [c for c in ("gold_safe", "gold_effective", "safe", "effective") if c not in df.columns]
        if missing:
            raise SSUIError(f"agreement_table: the table of {name!r} lacks {', '.join(missing)}")
        groups = [("all", df)] if by is None else list(df.groupby(by, sort=True))
        for group, part in groups:
            for crit in CRITERIA:
                ag = agreement(part[crit], part[f"gold_{crit}"].astype(bool), n_boot=n_boot, seed=seed)
                pred = part[crit].to_numpy(dtype=object)
                gold = part[f"gold_{crit}"].astype(bool).to_numpy()
                right = np.array([p is not None and bool(p) == g for p, g in zip(pred, gold)], dtype=float)
                acc = _mean_ci(right, n_boot, seed)
                records.append({"judge": name, "group": str(group), "criterion": crit, "accuracy": acc[0],
                                "accuracy_lo": acc[1], "accuracy_hi": acc[2], "kappa": ag["kappa"]["value"],
                                "kappa_lo": ag["kappa"]["ci"][0], "kappa_hi": ag["kappa"]["ci"][1],
                                "n": len(part), "unscored": ag["unscored"]})
    return pd.DataFrame.from_records(records, columns=[
        "judge", "group", "criterion", "accuracy", "accuracy_lo", "accuracy_hi", "kappa", "kappa_lo", "kappa_hi",
        "n", "unscored"])


def _mean_ci(values, n_boot: int, seed: int) -> tuple[float, float, float]:
    import numpy as np

    from ssui_lib.eval.metrics import bootstrap_means, percentile_interval

    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    if n_boot <= 0:
        return float(np.mean(values)), float("nan"), float("nan")
    lo, hi = percentile_interval(bootstrap_means(np.asarray(values).reshape(-1, 1), n_boot, seed)[:, 0], 0.95)
    return float(np.mean(values)), lo, hi


def format_agreement(table, digits: int = 1):
    """The long table of :func:`agreement_table` as the book shows it: one row per (judge, group),
    "accuracy % [lo, hi]" and "κ [lo, hi]" for safe and effective, n and unscored."""
    import math

    import pandas as pd

    def pct(v, lo, hi):
        if v is None or math.isnan(v):
            return "n/a"
        ci = "" if (lo is None or math.isnan(lo)) else f" [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
        return f"{100 * v:.{digits}f}{ci}"

    def kap(v, lo, hi):
        if v is None or math.isnan(v):
            return "undefined"
        ci = "" if (lo is None or math.isnan(lo)) else f" [{lo:.2f}, {hi:.2f}]"
        return f"{v:.2f}{ci}"

    out = {}
    for r in table.itertuples(index=False):
        row = out.setdefault((r.judge, r.group), {"n": r.n, "unscored": 0})
        row[f"{r.criterion} accuracy (%)"] = pct(r.accuracy, r.accuracy_lo, r.accuracy_hi)
        row[f"{r.criterion} κ"] = kap(r.kappa, r.kappa_lo, r.kappa_hi)
        row["unscored"] = max(row["unscored"], r.unscored)
    cols = ["safe accuracy (%)", "safe κ", "effective accuracy (%)", "effective κ", "n", "unscored"]
    frame = pd.DataFrame.from_dict(out, orient="index")
    if frame.empty:
        return pd.DataFrame(columns=cols)
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["judge", "group"])
    return frame[cols]
