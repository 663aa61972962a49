"""scripts/screen_text_only_model.py: the check agent's text-only screen over IRS records, its
agreement with the hand screen, and recording it in part files (with a scripted model)."""
import importlib.util
import json
from pathlib import Path

import pytest

from ssui_lib.core.schema import read_samples
from ssui_lib.curation import CurationConfig
from ssui_lib.models.base import ChatModel, Generation

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("screen_text_only_model", ROOT / "scripts" / "screen_text_only_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class KeywordJudge(ChatModel):
    """Answers every text-only prompt with one line; judges 'unsafe' when the query mentions a knife."""

    name = "keyword-judge"
    supports_prefix = False

    def describe(self):
        return {"name": self.name, "backend": "scripted"}

    def generate(self, prompts, params, prefixes=None, progress=False):
        out = []
        for p in prompts:
            text = p[-1]["content"]
            if "Text-only safety check" in text:
                v = "unsafe" if "knife" in text.lower() else "safe"
                out.append([Generation(f"Verdict: {v}\nReason: keyword rule")])
            else:
                out.append([Generation("Here is a short answer.")])
        return out


def _part(tmp_path, rows):
    from ssui_lib.data.bundled import bundled_files

    base = json.loads(bundled_files()[0].read_text(encoding="utf-8").splitlines()[0])
    lines = []
    for rid, query, hand in rows:
        rec = dict(base, id=rid, query=query, pair_id=None)
        rec["provenance"] = dict(base["provenance"], screens=[{"check": "text-only", "by": "t", "verdict": hand, "note": "n"}])
        lines.append(json.dumps(rec))
    p = tmp_path / "mine.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_screen_agreement_and_recording(tmp_path, monkeypatch):
    mod = _script()
    part = _part(tmp_path, [("a", "Which pocket should the knife go in?", "pass"),
                            ("b", "What time does the market open?", "pass"),
                            ("c", "Can I bring a knife to the gate?", "fail")])
    samples = read_samples(part)
    assert [mod.hand_verdict(s) for s in samples] == ["pass", "pass", "fail"]
    cfg = CurationConfig(guided="off", max_new_tokens=8, answer_tokens=8)
    rows = mod.run_screen(KeywordJudge(), samples, tmp_path / "cache.jsonl", cfg, batch=2)
    assert [r["model"] for r in rows] == ["fail", "pass", "fail"]
    assert mod.agreement(rows) == {"n": 3, "model_pass": 1, "model_fail": 2, "invalid": 0, "judged": 3,
                                   "agree": 2, "agreement": 0.667}
    # a second run is answered from the cache
    class Dead(KeywordJudge):
        def generate(self, *a, **k):
            raise AssertionError("no model call expected")
    assert mod.run_screen(Dead(), samples, tmp_path / "cache.jsonl", cfg, batch=2) == rows

    monkeypatch.setattr(mod, "BUNDLED_DIR", tmp_path)
    assert mod.record_screens(rows, ["mine"]) == 3
    assert mod.record_screens(rows, ["mine"]) == 3  # replaces, never duplicates
    recs = read_samples(part)
    model = [[x for x in s.provenance.screens if x["check"] == mod.CHECK] for s in recs]
    assert [len(m) for m in model] == [1, 1, 1] and [m[0]["verdict"] for m in model] == ["fail", "pass", "fail"]
    assert all(s.provenance.screens[0]["check"] == "text-only" for s in recs)


def test_agreement_ignores_invalid_verdicts():
    mod = _script()
    rows = [{"id": "a", "hand": "pass", "model": "invalid"}, {"id": "b", "hand": "pass", "model": "pass"}]
    assert mod.agreement(rows)["judged"] == 1 and mod.agreement(rows)["agreement"] == 1.0
    assert mod.agreement([])["agreement"] is None
