"""Stage 6 of ``ssui_lib.curation``, manual revision: accept / edit / reject with reviewer and
timestamp in an append-only log; the final samples and their export."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ssui_lib.core.store import cache_key
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample, dumps_jsonl
from ssui_lib.core.store import atomic_write_text
from ssui_lib.curation.settings import DECISIONS, EDITABLE, REVIEW_POLICIES
from ssui_lib.curation.run import Candidate
from ssui_lib.curation.agents import map_category
from ssui_lib.curation.report import _revision_log, _revision_reason, latest_decisions, load_candidates
from ssui_lib.core.schema import iter_jsonl


# ============================================================================ stage 6: manual revision

def _now(now: str | None = None) -> str:
    return now or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def reviewable(out_dir: str | Path) -> list[Candidate]:
    """Candidates that passed the summary agent (what manual revision sees), in order."""
    return [c for c in load_candidates(out_dir) if c.events.get("summary", {}).get("status") == "passed"]


def apply_edits(sample: Sample, edits: dict[str, str]) -> Sample:
    """A copy of ``sample`` with the edited fields (``EDITABLE``) replaced, validated (SSUIError)."""
    d = json.loads(json.dumps(sample.to_dict()))
    for k, v in edits.items():
        if k not in EDITABLE:
            raise SSUIError(f"edit field '{k}': not editable (editable: {', '.join(EDITABLE)})")
        if not isinstance(v, str) or not v.strip():
            raise SSUIError(f"edit field '{k}': expected a non-empty string")
        if k == "category":
            l1, why = map_category(v)
            if l1 is None:
                raise SSUIError(f"edit field 'category': {why}")
            d["category"] = {"l1": l1, "l2": None, "l3": None}
        elif k.startswith("reasoning."):
            d["reasoning"][k.split(".", 1)[1]] = v.strip()
        else:
            d[k] = v.strip()
    try:
        return Sample.from_dict(d, strict=True)
    except SSUIError as e:
        raise SSUIError(f"edited record {sample.id}: {e}") from None


def record_decision(out_dir: str | Path, candidate_id: str, decision: str, reviewer: str, *, reason: str = "",
                    edits: dict[str, str] | None = None, mode: str = "interactive",
                    now: str | None = None) -> dict[str, Any]:
    """Append one manual-revision decision to ``revisions.jsonl`` and return it.

    ``decision``: accept | edit (``edits``: field -> new text, see ``EDITABLE``) | reject (needs a
    ``reason``). Only candidates that passed the summary agent can be revised. The entry records
    reviewer, UTC timestamp and ``mode`` (interactive, policy:NAME, file:PATH). Nothing is
    written if the decision is invalid (SSUIError)."""
    if decision not in DECISIONS:
        raise SSUIError(f"decision {decision!r}: expected one of {', '.join(DECISIONS)}")
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise SSUIError("reviewer: a name is required for every decision")
    cands = {c.id: c for c in load_candidates(out_dir)}
    c = cands.get(candidate_id)
    if c is None:
        raise SSUIError(f"candidate {candidate_id!r}: not in {Path(out_dir) / 'candidates.jsonl'}")
    if c.events.get("summary", {}).get("status") != "passed":
        raise SSUIError(f"candidate {candidate_id!r}: did not pass the summary agent; only assembled records "
                        f"can be revised")
    edits = dict(edits or {})
    if decision == "reject" and not reason.strip():
        raise SSUIError("reject: a reason is required")
    if decision == "edit":
        if not edits:
            raise SSUIError("edit: no field was changed")
        apply_edits(Sample.from_dict(c.events["summary"]["data"]["sample"]), edits)  # validates
    elif edits:
        raise SSUIError(f"{decision}: edits are only recorded with the decision 'edit'")
    entry = {"id": candidate_id, "decision": decision, "reviewer": reviewer.strip(), "timestamp": _now(now),
             "reason": reason.strip(), "edits": edits, "mode": mode}
    log = _revision_log(out_dir)
    log.put(cache_key([len(log), entry]), entry)
    return entry


def auto_review(out_dir: str | Path, policy: str = "accept-all-passing", reviewer: str | None = None,
                now: str | None = None) -> list[dict[str, Any]]:
    """Headless revision: ``accept-all-passing`` accepts every assembled record that has no decision
    yet; ``none`` decides nothing (records stay pending). Returns the new decisions."""
    if policy not in REVIEW_POLICIES:
        raise SSUIError(f"review policy {policy!r}: expected one of {', '.join(REVIEW_POLICIES)}")
    if policy == "none":
        return []
    decided = latest_decisions(out_dir)
    return [record_decision(out_dir, c.id, "accept", reviewer or f"policy:{policy}",
                            reason="passed every automatic stage", mode=f"policy:{policy}", now=now)
            for c in reviewable(out_dir) if c.id not in decided]


def apply_decisions_file(out_dir: str | Path, path: str | Path, reviewer: str | None = None,
                         now: str | None = None) -> list[dict[str, Any]]:
    """Headless revision from a JSONL file of ``{id, decision, reason?, edits?, reviewer?}`` lines.
    Every line is validated before anything is written (errors name file:line); a line whose
    decision is already the candidate's latest one is skipped, so applying a file twice is harmless."""
    rows = []
    cands = {c.id: c for c in reviewable(out_dir)}
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        if not isinstance(obj, dict):
            raise SSUIError(f"{where}: expected a JSON object")
        unknown = set(obj) - {"id", "decision", "reason", "edits", "reviewer"}
        if unknown:
            raise SSUIError(f"{where}: field '{sorted(unknown)[0]}': unknown (id, decision, reason, edits, reviewer)")
        cid, dec = obj.get("id"), obj.get("decision")
        who = obj.get("reviewer") or reviewer
        if cid not in cands:
            raise SSUIError(f"{where}: field 'id': {cid!r} is not an assembled candidate of this run")
        if dec not in DECISIONS:
            raise SSUIError(f"{where}: field 'decision': {dec!r} is not one of {', '.join(DECISIONS)}")
        if not who:
            raise SSUIError(f"{where}: field 'reviewer': missing (give it here or as an argument)")
        edits = obj.get("edits") or {}
        if not isinstance(edits, dict):
            raise SSUIError(f"{where}: field 'edits': expected an object field -> text")
        if dec == "reject" and not str(obj.get("reason") or "").strip():
            raise SSUIError(f"{where}: field 'reason': a rejection needs a reason")
        if dec == "edit":
            try:
                apply_edits(Sample.from_dict(cands[cid].events["summary"]["data"]["sample"]), edits)
            except SSUIError as e:
                raise SSUIError(f"{where}: {e}") from None
        rows.append((cid, dec, who, str(obj.get("reason") or ""), edits))
    out = []
    for cid, dec, who, reason, edits in rows:
        last = latest_decisions(out_dir).get(cid)
        if last and (last["decision"], last["reason"], last["edits"]) == (dec, reason.strip(), edits):
            continue
        out.append(record_decision(out_dir, cid, dec, who, reason=reason, edits=edits,
                                   mode=f"file:{Path(path).name}", now=now))
    return out


def final_samples(out_dir: str | Path) -> list[Sample]:
    """The accepted records after revision (edits applied), each with the revision decision added
    to ``provenance.stages``."""
    decisions = latest_decisions(out_dir)
    out = []
    for c in reviewable(out_dir):
        rev = decisions.get(c.id)
        if rev is None or rev["decision"] == "reject":
            continue
        s = Sample.from_dict(c.events["summary"]["data"]["sample"])
        if rev["decision"] == "edit":
            s = apply_edits(s, rev["edits"])
        s.provenance.stages.append({"stage": "revision", "status": "passed", "reason": _revision_reason(rev),
                                    "reviewer": rev["reviewer"], "timestamp": rev["timestamp"]})
        out.append(s)
    return out


def export_final(out_dir: str | Path) -> Path:
    """Write ``final.jsonl`` (atomically) with :func:`final_samples`; return its path."""
    path = Path(out_dir) / "final.jsonl"
    atomic_write_text(path, dumps_jsonl(s.to_dict() for s in final_samples(out_dir)))
    return path
