"""Reading a curation run folder: its candidates, their table, the funnel of the stages and the
revision log."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import JsonlCache
from ssui_lib.curation.settings import STAGES, STAGE_TITLES, Seed
from ssui_lib.curation.run import Candidate, CandidateLog
import pandas as pd


# ============================================================================ reading a run

def load_candidates(out_dir: str | Path) -> list[Candidate]:
    """The candidates of a run folder, in the order they were first logged."""
    out_dir = Path(out_dir)
    path = out_dir / "candidates.jsonl"
    if not path.is_file():
        raise SSUIError(f"{path}: not found (run the curation first)")
    log = CandidateLog(path)
    out: dict[str, Candidate] = {}
    for e in log.all_events():
        if e["stage"] == "query":
            d = e["data"]
            out[e["id"]] = Candidate(Seed(d["image"], d["caption"]), d["k"])
    for c in out.values():
        c.events = log.events(c.id)
    return list(out.values())


def candidate_table(out_dir: str | Path):
    """A pandas DataFrame, one row per candidate: id, image, hint (the risk area explored), status
    (accepted / rejected / pending review / in progress), the stage that decided it and why, the
    question and its category, and one column per stage (``STAGES``) with passed / rejected / –."""
    decisions = latest_decisions(out_dir)
    rows = []
    for c in load_candidates(out_dir):
        d = c.data
        row: dict[str, Any] = {"id": c.id, "image": c.seed.source, "hint": c.hint,
                               "question": d.get("question", ""), "category": d.get("category", "")}
        rejected = next((c.events[st] for st in STAGES[:-1] if c.events.get(st, {}).get("status") == "rejected"), None)
        rev = decisions.get(c.id)
        if rejected is not None:
            row.update(status="rejected", stage=rejected["stage"], reason=rejected["reason"])
        elif "summary" not in c.events:
            row.update(status="in progress", stage=c.next_stage(), reason="")
        elif rev is None:
            row.update(status="pending review", stage="revision", reason="awaiting manual revision")
        else:
            accepted = rev["decision"] in ("accept", "edit")
            row.update(status="accepted" if accepted else "rejected", stage="revision",
                       reason=_revision_reason(rev))
        for st in STAGES[:-1]:
            row[st] = c.events.get(st, {}).get("status", "–")
        row["revision"] = ("–" if rev is None else ("passed" if rev["decision"] != "reject" else "rejected"))
        rows.append(row)
    return pd.DataFrame(rows, columns=["id", "image", "hint", "status", "stage", "reason", "question", "category",
                                       *STAGES])


def reflection_table(out_dir: str | Path):
    """A pandas DataFrame, one row per candidate that reached stage 3: the query before and after
    the reflection agent, its notes (redundant / missing), what became of the revision (revised,
    unchanged, dropped and why, not asked) and the stage's decision."""
    rows = []
    for c in load_candidates(out_dir):
        e = c.events.get("reflection")
        if e is None:
            continue
        d = e["data"]
        rows.append({"id": c.id, "query before": d.get("query_before", ""), "query after": d.get("question", ""),
                     "redundant": d.get("redundant", ""), "missing": d.get("missing", ""),
                     "revision": d.get("revision", "not asked"), "reflection": e["status"]})
    return pd.DataFrame(rows, columns=["id", "query before", "query after", "redundant", "missing", "revision",
                                       "reflection"])


def funnel(out_dir: str | Path):
    """The yield of each stage: a DataFrame with stage, title, entered, passed, rejected, pending
    (entered = candidates that reached the stage; revision is entered by every assembled record)."""
    t = candidate_table(out_dir)
    rows = []
    for st in STAGES:
        col = t[st]
        entered = int((t["summary"] == "passed").sum()) if st == "revision" else int((col != "–").sum())
        passed = int((col == "passed").sum())
        rejected = int((col == "rejected").sum())
        rows.append({"stage": st, "title": STAGE_TITLES[st], "entered": entered, "passed": passed,
                     "rejected": rejected, "pending": entered - passed - rejected})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the revision log (read)

def _revision_log(out_dir: str | Path) -> JsonlCache:
    return JsonlCache(Path(out_dir) / "revisions.jsonl")


def read_revisions(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every decision of the revision log, oldest first."""
    path = Path(out_dir) / "revisions.jsonl"
    if not path.is_file():
        return []
    log = _revision_log(out_dir)
    return [log.get(k) for k in log.keys()]


def latest_decisions(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Candidate id -> its latest decision (a later decision supersedes an earlier one)."""
    out: dict[str, dict[str, Any]] = {}
    for r in read_revisions(out_dir):
        out[r["id"]] = r
    return out


def _revision_reason(rev: dict[str, Any]) -> str:
    what = {"accept": "accepted", "edit": "edited and accepted", "reject": "rejected"}[rev["decision"]]
    s = f"revision: {what} by {rev['reviewer']} at {rev['timestamp']}"
    if rev.get("edits"):
        s += f" (edited: {', '.join(sorted(rev['edits']))})"
    return s + (f": {rev['reason']}" if rev.get("reason") else "")
