"""Held-out verdict accuracy and judged SR / ER / SER (ssui_lib.eval.heldout) with a scripted model and
judge: the numbers, the unparseable count, resuming without regenerating, stale files, and the
finished-run check of ssui_lib.srpo.runs."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.eval.heldout import (
    adapter_fingerprint,
    heldout_eval,
    majority_rate,
    prediction_table,
    results_frame,
    verdict_accuracy,
)
from ssui_lib.eval.judge import Judge, Verdict
from ssui_lib.models import LazyModel
from ssui_lib.models.base import ChatModel, Generation, SamplingParams, flatten_for_text
from ssui_lib.core.schema import STEP_KEYS, Sample


def sample(i: int, kind: str = "irs") -> Sample:
    sid = f"s{i}" if kind == "irs" else f"s{i}-twin"
    return Sample.from_dict({
        "id": sid, "kind": kind, "pair_id": f"s{i}-twin" if kind == "irs" else f"s{i}",
        "image": {"caption": f"Picture {i}.", "source": None}, "query": f"Question {i}?",
        "category": {"l1": "Dangerous Behavior"}, "verdict": "unsafe" if kind == "irs" else "safe",
        "safety_warning": "A risk." if kind == "irs" else "", "reasoning": {k: f"{k} {sid}" for k in STEP_KEYS},
        "safe_reply": "Safe reply.", "unsafe_reply": "Unsafe reply." if kind == "irs" else None, "split": "test",
        "provenance": {"source": "test"},
    })


SAMPLES = [sample(1), sample(1, "twin"), sample(2), sample(2, "twin")]
# a record and its twin share the query: s1 and s1-twin are called unsafe (right, wrong), s2 and
# s2-twin get no verdict line (unparseable, wrong)
SCRIPT = {"Question 1?": "unsafe", "Question 2?": None}


def chain(verdict: str | None) -> str:
    body = "Step 1 (Analyze visual context): a scene.\n"
    return body + (f"Final verdict: {verdict}\nAnswer: careful and safer." if verdict else "I am not sure.")


class ScriptedModel(ChatModel):
    """Answers the chain prompt with a fixed verdict per query (SCRIPT)."""

    name = "scripted"

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
        self.calls += 1
        out = []
        for i, p in enumerate(prompts):
            if prefixes and prefixes[i].endswith("Final verdict:"):  # a forced verdict
                out.append([Generation(text=" safe\n")])
                continue
            text = flatten_for_text(p)[-1]["content"]
            verdict = next((v for q, v in SCRIPT.items() if q in text), "safe")
            out.append([Generation(text=chain(verdict))])
        return out


class WordJudge(Judge):
    """safe iff the path says 'safer'; effective iff it has a 'Final verdict' line."""

    name = "word"

    def __init__(self):
        self.calls = 0

    def _judge(self, samples, responses, *, mode, progress):
        self.calls += 1
        assert mode == "path"
        return [Verdict(s.id, "safer" in r, "Final verdict" in r, True, "w", self.name) for s, r in zip(samples, responses)]


RESPONSES = {"s1": chain("unsafe"), "s1-twin": chain("unsafe"), "s2": chain(None), "s2-twin": chain("safe")}


def test_prediction_table_and_accuracy_count_unparseable_as_wrong():
    t = prediction_table(SAMPLES, RESPONSES)
    assert list(t["predicted"].fillna("-")) == ["unsafe", "unsafe", "-", "safe"]
    assert list(t["correct"]) == [True, False, False, True]
    acc = verdict_accuracy(t, n_boot=200, seed=1)
    assert acc["value"] == 0.5 and acc["n"] == 4 and acc["correct"] == 2 and acc["unparseable"] == 1
    lo, hi = acc["ci"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    assert verdict_accuracy(t, n_boot=200, seed=1) == acc  # seeded
    assert majority_rate(t)["value"] == 0.5 and majority_rate(t.iloc[:3])["verdict"] == "unsafe"


def test_accuracy_edge_cases():
    empty = prediction_table([], {})
    acc = verdict_accuracy(empty)
    assert math.isnan(acc["value"]) and acc["n"] == 0 and all(math.isnan(x) for x in acc["ci"])
    one = prediction_table(SAMPLES[:1], RESPONSES)
    assert verdict_accuracy(one, n_boot=50)["ci"] == [1.0, 1.0]
    with pytest.raises(SSUIError, match="no response for sample 's1'"):
        prediction_table(SAMPLES[:1], {})
    with pytest.raises(SSUIError, match="missing column"):
        verdict_accuracy(pd.DataFrame({"x": [1]}))


def test_heldout_eval_numbers_files_and_resume(tmp_path):
    m, j = ScriptedModel(), WordJudge()
    res = heldout_eval(m, SAMPLES, tmp_path / "ev", judge=j, n_boot=100, params=SamplingParams(max_new_tokens=8))
    acc = res["metrics"]["ACC"]
    assert acc["n"] == 4 and acc["value"] == 0.25 and res["unparseable"] == 2 and res["n"] == 4
    assert res["predicted"] == {"unsafe": 2, "safe": 0, "none": 2}
    # SR / ER / SER over the two IRS records only: s1 says "safer" and has a verdict, s2 neither
    assert set(res["metrics"]) == {"ACC", "SR", "ER", "SER"}
    assert {k: res["metrics"][k]["value"] for k in ("SR", "ER", "SER")} == {"SR": 0.5, "ER": 0.5, "SER": 0.5}
    assert res["metrics"]["SR"]["n"] == 2 and res["paths_without_chain"] == 0
    assert set(res["by_kind"]) == {"irs", "twin"}
    for name in ("paths.jsonl", "path_verdicts.jsonl", "result.json"):
        assert (tmp_path / "ev" / name).is_file()
    assert json.loads((tmp_path / "ev" / "result.json").read_text())["metrics"]["ACC"]["value"] == acc["value"]
    calls = (m.calls, j.calls)
    again = heldout_eval(m, SAMPLES, tmp_path / "ev", judge=j, n_boot=100, params=SamplingParams(max_new_tokens=8))
    assert (m.calls, j.calls) == calls and again["metrics"] == res["metrics"]  # nothing regenerated


def test_heldout_eval_by_name_skips_loading_when_done(tmp_path):
    m = ScriptedModel()
    heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0)
    # the paths are all there: the model name is never resolved (it would fail: no such folder)
    res = heldout_eval(LazyModel("scripted"), SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0)
    assert res["model"] == "scripted" and res["metrics"]["ACC"]["ci"] == [None, None]


def test_heldout_eval_fingerprint_clears_stale_files(tmp_path):
    m = ScriptedModel()
    heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0, fingerprint="aaa")
    heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0, fingerprint="aaa")
    assert m.calls == 1
    heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0, fingerprint="bbb")
    assert m.calls == 2  # new weights: regenerated
    with pytest.raises(SSUIError, match="no samples"):
        heldout_eval(m, [], tmp_path / "ev2", judge=WordJudge())


def test_adapter_fingerprint_and_results_frame(tmp_path):
    with pytest.raises(SSUIError, match="no adapter_model.safetensors"):
        adapter_fingerprint(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    fp = adapter_fingerprint(tmp_path)
    assert len(fp) == 16 and fp == adapter_fingerprint(tmp_path)
    res = {"base": {"metrics": {"ACC": {"value": 0.5, "ci": [0.25, 0.75], "n": 4}}, "unparseable": 1}}
    df = results_frame(res, ("ACC",))
    assert df.iloc[0].to_dict() == {"key": "base", "metric": "ACC", "value": 50.0, "lo": 25.0, "hi": 75.0,
                                    "n": 4, "unparseable": 1}
    with pytest.raises(SSUIError, match="no metric 'SER'"):
        results_frame(res, ("SER",))


# ----------------------------------------------------------------------------- ssui_lib.srpo.runs

def test_finished_summary_and_staleness(tmp_path):
    from ssui_lib.srpo.runs import finished_summary, is_stale, read_log
    from ssui_lib.srpo.config import TrainConfig

    cfg = TrainConfig(method="sft", max_steps=2, batch_size=1)
    out = tmp_path / "run"
    assert finished_summary(out, cfg, "k") is None and not is_stale(out, cfg, "k")
    (out / "adapter").mkdir(parents=True)
    (out / "adapter" / "adapter_config.json").write_text("{}")
    (out / "summary.json").write_text(json.dumps({"config": cfg.to_dict(), "data_fingerprint": "k",
                                                  "steps": 2, "planned_steps": 2}))
    assert finished_summary(out, cfg, "k")["steps"] == 2
    assert finished_summary(out, cfg, "other") is None and is_stale(out, cfg, "other")
    longer = TrainConfig(method="sft", max_steps=4, batch_size=1)  # continue: not finished, not stale
    assert finished_summary(out, longer, "k") is None and not is_stale(out, longer, "k")
    assert is_stale(out, TrainConfig(method="sft", max_steps=2, batch_size=1, lr=1e-3), "k")
    (out / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    assert list(read_log(out)["loss"]) == [2.0, 1.5]
    with pytest.raises(SSUIError, match="no log.jsonl"):
        read_log(tmp_path)


def test_train_run_needs_an_exploration(tmp_path):
    from ssui_lib.srpo.runs import train_run
    from ssui_lib.srpo.config import TrainConfig

    with pytest.raises(SSUIError, match="no trees.jsonl"):
        train_run("embedded", tmp_path, TrainConfig(), tmp_path / "out")


def test_compare_by_intervals():
    from ssui_lib.eval.heldout import compare

    a = {"value": 0.8, "ci": [0.7, 0.9]}
    assert compare(a, {"value": 0.2, "ci": [0.1, 0.3]}) == "higher"
    assert compare({"value": 0.2, "ci": [0.1, 0.3]}, a) == "lower"
    assert compare(a, {"value": 0.6, "ci": [0.4, 0.75]}) == "indistinguishable"
    assert compare(a, {"value": None, "ci": [None, None]}) == "undefined"


def test_forced_verdicts_fill_missing_verdict_lines(tmp_path):
    m = ScriptedModel()
    res = heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0, force_verdict=True)
    # s2 and s2-twin had no verdict line; forced to "safe": s2 wrong, s2-twin right
    assert res["forced"] == 2 and res["unparseable"] == 0 and res["metrics"]["ACC"]["value"] == 0.5
    assert m.calls == 2
    forced = [json.loads(x) for x in (tmp_path / "ev" / "forced.jsonl").read_text().splitlines()]
    assert [r["id"] for r in forced] == ["s2", "s2-twin"] and forced[0]["response"].startswith("Final verdict: safe")
    # the judged paths are the model's own (unforced) ones
    assert res["metrics"]["ER"]["value"] == 0.5
    again = heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0, force_verdict=True)
    assert m.calls == 2 and again["metrics"] == res["metrics"]
    heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0, force_verdict=False)
    assert m.calls == 3  # other settings: the folder is redone


class LikelihoodModel(ScriptedModel):
    """ScriptedModel with token log-probabilities: after "Final verdict:" it prefers " unsafe"."""

    name = "likelihood"
    supports_logprobs = True

    def __init__(self):
        super().__init__()
        self.scored = []

    def logprobs(self, prompts, continuations, prefixes=None):
        self.scored.extend(zip(continuations, prefixes))
        return [[-0.5, -0.25] if c == " unsafe" else [-1.0] for c in continuations]


def test_forced_verdicts_choose_the_likelier_verdict_when_the_model_scores_tokens(tmp_path):
    m = LikelihoodModel()
    res = heldout_eval(m, SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0, force_verdict=True)
    assert m.calls == 1  # the chains; the forced verdicts are scored, not generated
    assert {c for c, _ in m.scored} == {" unsafe", " safe"} and all(x.endswith("\nFinal verdict:") for _, x in m.scored)
    forced = [json.loads(x) for x in (tmp_path / "ev" / "forced.jsonl").read_text().splitlines()]
    assert [(r["id"], r["response"], r["method"]) for r in forced] == [
        ("s2", "Final verdict: unsafe", "likelihood"), ("s2-twin", "Final verdict: unsafe", "likelihood")]
    assert forced[0]["logp"] == {"unsafe": -0.75, "safe": -1.0}
    # every chain now says unsafe: IRS records right, twins wrong
    assert res["forced"] == 2 and res["unparseable"] == 0 and res["predicted"] == {"unsafe": 4, "safe": 0, "none": 0}
    assert res["by_kind"]["irs"]["value"] == 1.0 and res["by_kind"]["twin"]["value"] == 0.0


def test_exploration_data_missing_names_the_fix(tmp_path):
    import pytest as _pytest

    from ssui_lib.core.errors import SSUIError
    from ssui_lib.srpo.runs import exploration_data

    with _pytest.raises(SSUIError, match="trees.jsonl is missing.*--chapters 04"):
        exploration_data("smoke", str(tmp_path))
    (tmp_path / "trees.jsonl").write_text("")
    assert exploration_data("smoke", str(tmp_path)) == tmp_path


def test_heldout_variants_evaluates_base_and_adapters_without_loading_when_done(tmp_path):
    from ssui_lib.srpo.runs import heldout_variants

    m = ScriptedModel()
    heldout_eval(m, SAMPLES, tmp_path / "eval" / "base", judge=WordJudge(), n_boot=0, label="base")
    # every path is on disk: "scripted" is never resolved (it would fail: not a model name)
    res, secs = heldout_variants("scripted", {"b": ("base", None, tmp_path / "eval" / "base")}, SAMPLES,
                                 judge=WordJudge(), n_boot=0)
    assert list(res) == ["b"] == list(secs) and res["b"]["label"] == "base" and res["b"]["fingerprint"] is None
    assert res["b"]["metrics"]["ACC"]["value"] == heldout_eval(m, SAMPLES, tmp_path / "eval" / "base",
                                                               judge=WordJudge(), n_boot=0)["metrics"]["ACC"]["value"]
    with pytest.raises(SSUIError, match="an adapter needs a local base model"):
        heldout_variants("openai:gpt-4o", {"x": ("X", tmp_path / "a", tmp_path / "eval" / "x")}, SAMPLES,
                         judge=WordJudge(), n_boot=0)


def test_heldout_eval_takes_a_judge_and_a_model_not_names(tmp_path):
    with pytest.raises(SSUIError, match="^heldout_eval: expected a Judge, got the judge name 'offline'; .*resolve_judge"):
        heldout_eval(ScriptedModel(), SAMPLES, tmp_path / "ev", judge="offline", n_boot=0)
    with pytest.raises(SSUIError, match="^heldout_eval: expected a model, got the model name 'embedded'"):
        heldout_eval("embedded", SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0)
    with pytest.raises(TypeError, match="judge"):  # no default judge: the caller resolves one
        heldout_eval(ScriptedModel(), SAMPLES, tmp_path / "ev", n_boot=0)
    res = heldout_eval(ScriptedModel(), SAMPLES, tmp_path / "ev", judge=WordJudge(), n_boot=0)
    assert res["judge"] == "word"
    assert json.loads((tmp_path / "ev" / "fingerprint.json").read_text())["judge"] == "word"  # the name, from the object
