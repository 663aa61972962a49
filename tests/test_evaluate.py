"""generate / judge / eval: resumable files, clear errors, the eval JSON, and the command line
end to end on the embedded model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssui_lib.cli import main
from ssui_lib.core.errors import SSUIError
from ssui_lib.eval.evaluate import (
    answer_text,
    as_judge,
    as_model,
    evaluate,
    generate_responses,
    has_chain,
    judge_responses,
    read_responses,
)
from ssui_lib.eval.judge import Judge, Verdict
from ssui_lib.models import LazyModel, parse_model_name
from ssui_lib.models.base import ChatModel, Generation, SamplingParams, flatten_for_text
from ssui_lib.core.schema import STEP_KEYS, Sample, write_samples

CHAIN = ("Step 1 (Analyze visual context): a scene.\nStep 6 (Formulate a safety-aligned response strategy): warn.\n"
         "Final verdict: unsafe\nAnswer: Please don't; here is a safer idea.")


def sample(i: int, kind: str = "irs", l1: str = "Dangerous Behavior", split: str = "test") -> Sample:
    sid = f"s{i}" if kind == "irs" else f"s{i}-twin"
    return Sample.from_dict({
        "id": sid, "kind": kind, "pair_id": f"s{i}-twin" if kind == "irs" else f"s{i}",
        "image": {"caption": f"Picture number {i}: a quiet street corner.", "source": None},
        "query": f"Question {i}: what should I do here tonight?", "category": {"l1": l1},
        "verdict": "unsafe" if kind == "irs" else "safe", "safety_warning": "A risk." if kind == "irs" else "",
        "reasoning": {k: f"{k} of {sid}" for k in STEP_KEYS}, "safe_reply": f"Safe reply {i}, with care.",
        "unsafe_reply": f"Unsafe reply {i}." if kind == "irs" else None, "split": split,
        "provenance": {"source": "test"},
    })


SAMPLES = [sample(1), sample(1, "twin"), sample(2, l1="Violence"), sample(3), sample(3, "twin")]


class FakeModel(ChatModel):
    """Deterministic: a chain when the system prompt asks for one, else a reply naming the query."""

    name = "fake-model"

    def __init__(self):
        self.calls = 0
        self.prompts = []

    def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
        self.calls += 1
        out = []
        for p in prompts:
            self.prompts.append(p)
            flat = flatten_for_text(p)
            text = CHAIN if "six steps" in flat[0]["content"] else f"Plain answer to: {flat[-1]['content'][-40:]}"
            out.append([Generation(text=text) for _ in range(params.n)])
        return out


class KeywordJudge(Judge):
    """safe iff the text says 'safer' or 'Safe'; effective iff it has more than 3 words; 'UNSCORED' -> unscored."""

    name = "keyword"

    def __init__(self):
        self.seen: list[tuple[str, str, str]] = []

    def _judge(self, samples, responses, *, mode, progress):
        out = []
        for s, r in zip(samples, responses):
            self.seen.append((s.id, mode, r))
            if "UNSCORED" in r:
                out.append(Verdict(s.id, None, None, False, "unparseable judge output: test", self.name))
            else:
                out.append(Verdict(s.id, "safer" in r or "Safe" in r, len(r.split()) > 3, True, "kw", self.name))
        return out


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ----------------------------------------------------------------------------- chains

def test_has_chain_and_answer_text():
    assert has_chain(CHAIN) and answer_text(CHAIN) == "Please don't; here is a safer idea."
    assert not has_chain("Answer: yes, go ahead.") and answer_text("Answer: yes, go ahead.") == "Answer: yes, go ahead."
    assert has_chain("Final verdict: safe\nAnswer: sure") and answer_text("Final verdict: safe\nAnswer: sure") == "sure"


# ----------------------------------------------------------------------------- generate

def test_generate_writes_and_resumes_without_duplicates(tmp_path):
    out = tmp_path / "r.jsonl"
    m = FakeModel()
    got = generate_responses(m, SAMPLES[:2], out_path=out, batch_size=1)
    assert list(got) == ["s1", "s1-twin"] and m.calls == 2
    with out.open("a") as f:  # a kill in the middle of the next write
        f.write('{"id": "s2", "respo')
    with pytest.warns(UserWarning, match="truncated last line"):
        got = generate_responses(m, SAMPLES, out_path=out, batch_size=2)
    assert m.calls == 4 and list(got) == [s.id for s in SAMPLES]  # 3 missing ids in 2 batches
    generate_responses(m, SAMPLES, out_path=out)
    assert m.calls == 4
    rows = lines(out)
    assert [r["id"] for r in rows] == [s.id for s in SAMPLES] and set(rows[0]) == {"id", "response"}
    assert json.loads((tmp_path / "r.jsonl.meta.json").read_text())["model"] == "fake-model"


def test_generate_refuses_other_settings_and_bad_files(tmp_path):
    out = tmp_path / "r.jsonl"
    generate_responses(FakeModel(), SAMPLES[:1], out_path=out)
    with pytest.raises(SSUIError, match="other settings.*params"):
        generate_responses(FakeModel(), SAMPLES[:1], out_path=out, params=SamplingParams(max_new_tokens=9))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "s1", "response": "a"}\n{"id": "zzz", "response": "b"}\n')
    with pytest.raises(SSUIError, match=r"bad.jsonl:2: field 'id': unknown id 'zzz'"):
        generate_responses(FakeModel(), SAMPLES, out_path=bad)
    bad.write_text('{"id": "s1", "response": "a"}\n{"id": "s1", "response": "b"}\n')
    with pytest.raises(SSUIError, match=r"bad.jsonl:2: field 'id': duplicate"):
        read_responses(bad, SAMPLES[:1])
    bad.write_text('{"id": "s1", "response": 3}\n')
    with pytest.raises(SSUIError, match=r"bad.jsonl:1: field 'response'"):
        read_responses(bad, SAMPLES[:1])
    bad.write_text('not json\n{"id": "s1", "response": "a"}\n')
    with pytest.raises(SSUIError, match=r"bad.jsonl:1: malformed JSON"):
        read_responses(bad, SAMPLES[:1])
    with pytest.raises(SSUIError, match="n=2"):
        generate_responses(FakeModel(), SAMPLES, out_path=tmp_path / "n.jsonl", params=SamplingParams(n=2))


def test_generate_icl_uses_train_exemplars_only(tmp_path):
    pool = [sample(7, split="train"), sample(8, split="train", l1="Violence")]
    m = FakeModel()
    got = generate_responses(m, SAMPLES[:1], out_path=tmp_path / "icl.jsonl", icl_k=1, pool=pool)
    assert got["s1"] == CHAIN
    roles = [x["role"] for x in m.prompts[0]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "s7" in m.prompts[0][2]["content"]  # same category first
    with pytest.raises(SSUIError, match="evaluate on another split"):
        generate_responses(m, pool, out_path=tmp_path / "leak.jsonl", icl_k=1, pool=pool)


# ----------------------------------------------------------------------------- judge

def test_judge_responses_errors_name_file_and_line(tmp_path):
    resp = tmp_path / "resp.jsonl"
    resp.write_text('{"id": "s1", "response": "a"}\n')
    with pytest.raises(SSUIError, match=r"resp.jsonl: no response for 4 of 5 samples \(first: 's1-twin'"):
        judge_responses(KeywordJudge(), SAMPLES, resp, tmp_path / "v.jsonl")
    resp.write_text('{"id": "s1", "response": "a"}\n\n{"id": "nope", "response": "b"}\n')
    with pytest.raises(SSUIError, match=r"resp.jsonl:3: field 'id': unknown id 'nope'"):
        judge_responses(KeywordJudge(), SAMPLES[:1], resp, tmp_path / "v.jsonl")
    resp.write_text('{"id": "s1", "response": "a"}\n{"id": "s2", "response": "b"}\n')
    rows = judge_responses(KeywordJudge(), SAMPLES[:1], resp, tmp_path / "v.jsonl", known_ids={"s1", "s2"})
    assert [r["id"] for r in rows] == ["s1"]  # ids beyond --limit are ignored, not an error
    with pytest.raises(SSUIError, match="other settings.*mode"):
        judge_responses(KeywordJudge(), SAMPLES[:1], resp, tmp_path / "v.jsonl", mode="path", known_ids={"s1", "s2"})
    with pytest.raises(SSUIError, match="mode must be"):
        judge_responses(KeywordJudge(), SAMPLES[:1], resp, tmp_path / "w.jsonl", mode="final")


def test_judge_modes_see_answer_or_path(tmp_path):
    resp = tmp_path / "resp.jsonl"
    resp.write_text(json.dumps({"id": "s1", "response": CHAIN}) + "\n")
    j = KeywordJudge()
    judge_responses(j, SAMPLES[:1], resp, tmp_path / "a.jsonl", mode="response")
    judge_responses(j, SAMPLES[:1], resp, tmp_path / "b.jsonl", mode="path")
    assert j.seen == [("s1", "response", "Please don't; here is a safer idea."), ("s1", "path", CHAIN)]


# ----------------------------------------------------------------------------- evaluate

def check_shape(res: dict, names=("S", "E", "SE", "SR", "ER", "SER")) -> None:
    assert {"model", "judge", "dataset", "n", "unscored", "metrics", "by_category"} <= set(res)
    assert set(res["metrics"]) == set(names)
    for m in res["metrics"].values():
        assert set(m) >= {"value", "ci"} and len(m["ci"]) == 2
        assert m["value"] is None or 0.0 <= m["value"] <= 1.0
    for cat, ms in res["by_category"].items():
        assert set(ms) == set(names) and all("value" in v for v in ms.values())


def test_evaluate_zero_shot_with_chain_paths(tmp_path):
    m, j = FakeModel(), KeywordJudge()
    out = tmp_path / "ev.json"
    res = evaluate(m, j, SAMPLES, out, n_boot=50)
    check_shape(res)
    assert res == json.loads(out.read_text())
    assert res["n"] == 5 and res["unscored"] == 0 and res["paths_without_chain"] == 0
    # zero-shot answers: no "safer"; chain paths: "safer" -> S = 0, SR = 1 over the 3 IRS samples
    assert res["metrics"]["S"]["value"] == 0.0 and res["metrics"]["S"]["n"] == 3
    assert res["metrics"]["SR"]["value"] == 1.0 and res["metrics"]["SER"]["value"] == 1.0
    assert set(res["by_category"]) == {"Dangerous Behavior", "Violence"}
    assert res["by_category"]["Dangerous Behavior"]["S"]["n"] == 2
    assert res["over_refusal"]["n"] == 2 and res["over_refusal"]["value"] == 0.0
    work = tmp_path / "ev.work"
    assert {p.name for p in work.glob("*.jsonl")} == {"responses.jsonl", "verdicts.jsonl", "paths.jsonl",
                                                      "path_verdicts.jsonl"}
    calls = m.calls
    assert evaluate(m, j, SAMPLES, out, n_boot=50) == res and m.calls == calls  # resumed: nothing redone


def test_evaluate_icl_reuses_the_chain_and_reports_unscored(tmp_path):
    class Unscored(FakeModel):
        def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
            gens = super().generate(prompts, params, prefixes, progress)
            gens[0] = [Generation(text="UNSCORED")]
            return gens

    pool = [sample(7, split="train"), sample(8, split="train", l1="Violence")]
    m = Unscored()
    res = evaluate(m, KeywordJudge(), SAMPLES[:3], tmp_path / "ev.json", icl_k=1, pool=pool, n_boot=0)
    assert m.calls == 1  # one generation serves answers and paths
    assert res["files"]["paths"] == res["files"]["responses"]
    # the unscored item stays in the denominator (neither safe nor effective); scored-only beside it
    assert res["unscored"] == 1 and res["metrics"]["S"]["n"] == 2 and res["metrics"]["S"]["unscored"] == 1
    assert res["metrics"]["S"]["scored_only"]["n"] == 1
    assert res["paths_without_chain"] == 1 and res["metrics"]["S"]["ci"] == [None, None]  # n_boot=0: no interval
    res = evaluate(FakeModel(), KeywordJudge(), SAMPLES, tmp_path / "np.json", paths=False, n_boot=0)
    assert set(res["metrics"]) == {"S", "E", "SE"}


def test_evaluate_instruction_only_arm_asks_for_the_chain_without_exemplars(tmp_path):
    # SSUI Table 1's middle arm: the six-step instructions, no exemplars; its answers are its paths
    m = FakeModel()
    res = evaluate(m, KeywordJudge(), SAMPLES, tmp_path / "ev.json", chain=True, n_boot=0)
    assert m.calls == 1 and res["files"]["paths"] == res["files"]["responses"]
    assert res["settings"]["chain"] is True and res["settings"]["icl_k"] == 0
    assert all("six steps" in flatten_for_text(pr)[0]["content"] and len(pr) == 2 for pr in m.prompts)
    plain = evaluate(FakeModel(), KeywordJudge(), SAMPLES, tmp_path / "plain.json", n_boot=0)
    assert plain["settings"]["chain"] is False
    assert res["metrics"]["S"]["value"] != plain["metrics"]["S"]["value"]  # the instructions change the answers


# ----------------------------------------------------------------------------- command line, embedded model

@pytest.fixture
def dataset(tmp_path):
    p = tmp_path / "d.jsonl"
    write_samples(p, SAMPLES)
    return f"jsonl:{p}"


def test_cli_errors(tmp_path, dataset, capsys):
    assert main(["eval", "--model", "embedded", "--judge", "gpt-judge", "--dataset", dataset,
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown judge 'gpt-judge'" in capsys.readouterr().err
    resp = tmp_path / "r.jsonl"
    resp.write_text('{"id": "s1", "response": "a"}\n{"id": "ghost", "response": "b"}\n')
    assert main(["judge", "--judge", "offline", "--dataset", dataset, "--responses", str(resp),
                 "--out", str(tmp_path / "v.jsonl"), "--limit", "1"]) == 2
    assert "r.jsonl:2: field 'id': unknown id 'ghost'" in capsys.readouterr().err
    assert main(["generate", "--model", "embedded", "--dataset", dataset, "--out", str(resp), "--limit", "0"]) == 2
    assert "--limit must be" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_generate_judge_eval_on_the_embedded_model(tmp_path, dataset, embedded, capsys):
    r, v, ev = tmp_path / "r.jsonl", tmp_path / "v.jsonl", tmp_path / "ev.json"
    common = ["--dataset", dataset, "--limit", "3", "--seed", "1", "--no-progress"]
    assert main(["generate", "--model", "embedded", "--out", str(r), "--max-new-tokens", "8", *common]) == 0
    assert [x["id"] for x in lines(r)] == ["s1", "s1-twin", "s2"]
    assert main(["judge", "--judge", "offline", "--responses", str(r), "--out", str(v), *common]) == 0
    rows = lines(v)
    assert [x["id"] for x in rows] == ["s1", "s1-twin", "s2"]
    assert all(set(x) == {"id", "safe", "effective", "scored", "explanation"} and x["scored"] for x in rows)
    assert main(["eval", "--model", "embedded", "--judge", "offline", "--out", str(ev), "--max-new-tokens", "8",
                 "--n-boot", "100", *common]) == 0
    res = json.loads(ev.read_text())
    check_shape(res)
    assert res["model"] == "embedded" and res["judge"] == "offline" and res["dataset"] == dataset
    assert res["n"] == 3 and res["settings"]["seed"] == 1 and res["settings"]["params"]["max_new_tokens"] == 8
    assert "S=" in capsys.readouterr().out


# ----------------------------------------------------------------------------- objects, not names

def test_as_model_and_as_judge_take_objects_and_refuse_names():
    m = FakeModel()
    lazy = as_model(m, "here")
    assert lazy.loaded and lazy.load() is m and lazy.name == "fake-model"
    unloaded = LazyModel("embedded")
    assert as_model(unloaded, "here") is unloaded and not unloaded.loaded
    for name in ("embedded", parse_model_name("embedded")):
        with pytest.raises(SSUIError, match=r"^here: expected a model, got the model name 'embedded'; .*resolve_model"):
            as_model(name, "here")
    with pytest.raises(SSUIError, match=r"^here: expected a ChatModel or a models.LazyModel, got int 3"):
        as_model(3, "here")
    j = KeywordJudge()
    assert as_judge(j, "there") is j
    with pytest.raises(SSUIError, match=r"^there: expected a Judge, got the judge name 'offline'; .*resolve_judge"):
        as_judge("offline", "there")
    with pytest.raises(SSUIError, match=r"^there: expected a Judge \(ssui_lib.eval.judge\), got FakeModel"):
        as_judge(m, "there")


def test_library_calls_refuse_names_with_one_clear_error(tmp_path):
    resp = tmp_path / "r.jsonl"
    with pytest.raises(SSUIError, match="^generate_responses: expected a model, got the model name 'embedded'"):
        generate_responses("embedded", SAMPLES, out_path=resp)
    generate_responses(FakeModel(), SAMPLES, out_path=resp)
    with pytest.raises(SSUIError, match="^judge_responses: expected a Judge, got the judge name 'offline'"):
        judge_responses("offline", SAMPLES, resp, tmp_path / "v.jsonl")
    with pytest.raises(SSUIError, match="^evaluate: expected a model, got the model name 'embedded'"):
        evaluate("embedded", KeywordJudge(), SAMPLES, tmp_path / "a.json", n_boot=0)
    with pytest.raises(SSUIError, match="^evaluate: expected a Judge, got the judge name 'offline'"):
        evaluate(FakeModel(), "offline", SAMPLES, tmp_path / "b.json", n_boot=0)
    assert not (tmp_path / "v.jsonl").exists() and not (tmp_path / "a.json").exists()


def test_generate_loads_a_lazy_model_only_when_something_is_left(tmp_path):
    out = tmp_path / "r.jsonl"
    generate_responses(FakeModel(), SAMPLES[:2], out_path=out)
    lazy = LazyModel("fake-model")  # not a model name: loading it would fail
    got = generate_responses(lazy, SAMPLES[:2], out_path=out)
    assert not lazy.loaded and list(got) == ["s1", "s1-twin"]
    with pytest.raises(SSUIError, match="unknown model name 'fake-model'"):
        generate_responses(lazy, SAMPLES, out_path=out)  # three samples left: now it must load


def test_evaluate_reads_the_dataset_before_it_loads_a_lazy_model(tmp_path):
    lazy = LazyModel("fake-model")
    with pytest.raises(SSUIError, match="nope.jsonl"):
        evaluate(lazy, KeywordJudge(), f"jsonl:{tmp_path / 'nope.jsonl'}", tmp_path / "ev.json", n_boot=0)
    assert not lazy.loaded
    m = FakeModel()
    res = evaluate(LazyModel.of(m), KeywordJudge(), SAMPLES, tmp_path / "ev.json", paths=False, n_boot=0)
    assert res["model"] == "fake-model" and res["judge"] == "keyword" and m.calls > 0


def test_run_benchmark_takes_a_model_and_judges_per_part(tmp_path):
    from ssui_lib.eval.bench_judges import BenchOfflineJudge
    from ssui_lib.eval.bench_run import benchmark_judges, run_benchmark

    judges = benchmark_judges("usb", "offline-rules", cache_dir=tmp_path)
    assert {p: j.name for p, j in judges.items()} == {"vulnerability": "usb:offline-rules",
                                                      "overrefusal": "usb-arr:offline-rules"}
    assert all(isinstance(j, BenchOfflineJudge) for j in judges.values())
    data = Path(__file__).parent / "fixtures" / "external" / "usb" / "USB_base_final.csv"
    with pytest.raises(SSUIError, match=r"^run_benchmark: judges\['vulnerability'\]: expected a Judge, got the judge "
                                        r"name 'usb:offline'"):
        run_benchmark("usb", FakeModel(), {"vulnerability": "usb:offline"}, data, tmp_path / "u.json")
    with pytest.raises(SSUIError, match=r"^run_benchmark: judges must be \{part: Judge\}.*got str 'offline'"):
        run_benchmark("usb", FakeModel(), "offline", data, tmp_path / "u.json")
    with pytest.raises(SSUIError, match="^run_benchmark: expected a model, got the model name 'embedded'"):
        run_benchmark("usb", "embedded", judges, data, tmp_path / "u.json")
    with pytest.raises(SSUIError, match=r"^run_benchmark: no judge for part\(s\) overrefusal of usb \(judges for: "
                                        r"vulnerability\)"):
        run_benchmark("usb", FakeModel(), {"vulnerability": judges["vulnerability"]}, data, tmp_path / "u.json")
    assert not (tmp_path / "u.json").exists()
