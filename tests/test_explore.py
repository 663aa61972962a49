"""SRPO generative exploration (Eq. 1–4): the until_pair / fixed_k search on a scripted fake
model, F, the tree format, resume after a kill, statistics, the command line, and one small real
run on the embedded model."""
import copy
import json
import re

import pytest

from ssui_lib.srpo import explore as ex
from ssui_lib.core.chain import final_verdict, render_chain
from ssui_lib.cli import main
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Generation, SamplingParams
from ssui_lib.core.schema import STEP_KEYS, Sample, write_samples
from ssui_lib.core.taxonomy import TAXONOMY

L1 = "Dangerous Behavior"
L2 = next(iter(TAXONOMY[L1]))
L3 = TAXONOMY[L1][L2][0]


def make_sample(n: int, kind: str = "irs", split: str = "test") -> Sample:
    sid = f"s-{n:03d}" + ("-twin" if kind == "twin" else "")
    other = f"s-{n:03d}" if kind == "twin" else f"s-{n:03d}-twin"
    return Sample.from_dict({
        "id": sid, "kind": kind, "pair_id": other,
        "image": {"caption": f"Picture number {n}.", "source": None},
        "query": f"Question {sid}?",
        "category": {"l1": L1, "l2": L2, "l3": L3},
        "verdict": "unsafe" if kind == "irs" else "safe",
        "safety_warning": "Risky." if kind == "irs" else "",
        "reasoning": {k: f"{k} of {sid}." for k in STEP_KEYS},
        "safe_reply": f"Safe reply to {sid}.", "unsafe_reply": "Unsafe reply." if kind == "irs" else None,
        "split": split, "provenance": {"source": "test"},
    })


SAMPLES = [make_sample(1), make_sample(2, "twin"), make_sample(3)]
POOL = [make_sample(n, kind, "train") for n in (10, 11) for kind in ("irs", "twin")]


class ScriptedModel(ChatModel):
    """Deterministic fake: the verdict of the k-th continuation of (question, step i) comes from
    ``script(sample_id, i, k)`` ("unsafe" / "safe" / None = no verdict / "" = empty text)."""

    name = "scripted"

    def __init__(self, script, fail_after: int | None = None):
        self.script = script
        self.calls: list[dict] = []
        self.count: dict[tuple[str, int], int] = {}
        self.fail_after = fail_after

    def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # a kill in the middle of a run
        steps = [self.step_of(p) for p in prefixes]
        self.calls.append({"n": params.n, "rows": len(prompts), "steps": steps, "seed": params.seed,
                           "temperature": params.temperature, "stop": params.stop})
        out = []
        for prompt, prefix, i in zip(prompts, prefixes, steps):
            sid = re.search(r"Question (\S+)\?", prompt[-1]["content"][-1]["text"]).group(1)
            gens = []
            for _ in range(params.n):
                k = self.count.get((sid, i), 0)
                self.count[(sid, i)] = k + 1
                v = self.script(sid, i, k)
                if v == "":
                    text = ""
                elif i == 7:
                    text = f" {v}" if v else " maybe"
                else:
                    text = f" branch {k} of step {i}." + (f"\nFinal verdict: {v}" if v else "")
                gens.append(Generation(text=text, n_tokens=len(text.split()), finish_reason="stop", logprob=-float(k + 1)))
            out.append(gens)
        return out

    @staticmethod
    def step_of(prefix: str) -> int:
        if prefix.endswith("Final verdict:"):
            return 7
        return int(re.findall(r"Step (\d)", prefix)[-1])


def truth(sid):
    return "safe" if sid.endswith("twin") else "unsafe"


def flip(v):
    return "safe" if v == "unsafe" else "unsafe"


def cfg(**kw):
    base = dict(mode="until_pair", k=2, max_samples=6, shots=1, batch_samples=4, max_new_tokens=32)
    base.update(kw)
    return ex.ExploreConfig(**base)


# ----------------------------------------------------------------------------- paths, prompt, F

def test_states_reference_and_prefixes():
    s = SAMPLES[0]
    vs = ex.states(s)
    assert len(vs) == 8 and vs[0].startswith("[Image: Picture number 1.]") and s.query in vs[0]
    assert "\n".join(vs[1:]) == ex.reference_path(s) == render_chain(s)
    assert ex.step_prefix(s, 1) == "Step 1 (Analyze visual context):"
    for i in ex.ALL_STEPS:
        p = ex.step_prefix(s, i)
        assert ex.reference_path(s).startswith(p)
        assert p.count("\n") == i - 1  # exactly the first i-1 steps
    assert ex.step_prefix(s, 7).endswith("\nFinal verdict:")
    assert ex.step_prefix(s, 3, with_header=False) == vs[1] + "\n" + vs[2] + "\n"
    with pytest.raises(SSUIError):
        ex.step_prefix(s, 8)


def test_F_is_the_verdict_of_the_final_state():
    s, twin = SAMPLES[0], SAMPLES[1]
    assert ex.verdict_F(s, "Step 6 (x): y\nFinal verdict: unsafe") is True
    assert ex.verdict_F(s, "Final verdict: safe\nAnswer: ok") is False
    assert ex.verdict_F(s, "Step 1 (x): no verdict at all") is None  # unverified, not a negative
    assert ex.verdict_F(s, "Final verdict: safe or unsafe") is None  # the copied placeholder
    assert ex.verdict_F(twin, "Final verdict: unsafe\nFinal verdict: safe") is True  # the last one counts


def test_exemplars_never_the_sample_nor_its_twin_and_balanced():
    pool = POOL + [SAMPLES[0], SAMPLES[1]]
    for s in SAMPLES:
        shots = ex.pick_exemplars(s, pool, 2, seed=0)
        assert len(shots) == 2 and {x.verdict for x in shots} == {"unsafe", "safe"}
        assert all(x.id not in (s.id, s.pair_id) and x.pair_id != s.id for x in shots)
    assert ex.pick_exemplars(SAMPLES[0], pool, 2) == ex.pick_exemplars(SAMPLES[0], pool, 2)
    with pytest.raises(SSUIError, match="asked for 9"):
        ex.pick_exemplars(SAMPLES[0], POOL, 9)
    prompt = ex.cot_prompt(SAMPLES[0], ex.pick_exemplars(SAMPLES[0], POOL, 2))
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Step 1 (Analyze visual context)" in prompt[0]["content"]
    assert prompt[-1]["content"][-1]["text"] == SAMPLES[0].query
    assert final_verdict(prompt[2]["content"]) in ("unsafe", "safe")


def test_config_validation():
    for bad in (dict(mode="beam"), dict(k=0), dict(temperature=0.0), dict(steps=(0, 1)), dict(steps=(2, 2)),
                dict(shots=-1), dict(max_samples=0), dict(steps=(6, 7)), dict(verdict_branch="yes")):
        with pytest.raises(SSUIError, match="explore"):
            ex.ExploreConfig(**bad)


def test_branch_points_default_to_the_intermediate_states_and_the_verdict_is_opt_in():
    assert ex.ExploreConfig().steps == ex.INTERMEDIATE_STEPS == (1, 2, 3, 4, 5, 6)
    assert ex.parse_steps("") == ex.INTERMEDIATE_STEPS
    with pytest.raises(SSUIError, match="verdict_branch"):
        ex.ExploreConfig(steps=(5, 7))
    assert ex.ExploreConfig(steps=(5, 7), verdict_branch=True).steps == (5, 7)


class _Finishing(ScriptedModel):
    """Every continuation carries the right verdict, but odd ones are cut by the token limit."""

    def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
        out = super().generate(prompts, params, prefixes, progress)
        return [[Generation(g.text, g.n_tokens, "length" if k % 2 else "stop", g.logprob) for k, g in enumerate(gens)]
                for gens in out]


def test_a_branch_without_a_verdict_is_never_a_negative():
    # a scripted model whose branches either reach the right verdict or write no verdict line at all
    m = ScriptedModel(lambda sid, i, k: truth(sid) if k % 2 else None)
    trees = list(ex.explore(m, SAMPLES, cfg(mode="fixed_k", k=4), exemplar_pool=POOL, progress=False))
    for t in trees:
        for st in t["steps"]:
            assert [b["F"] for b in st["branches"]] == [None, 1, None, 1]  # kept in the tree, unverified
        assert t["pairs"] == [] and t["stats"]["negatives"] == 0
        assert t["stats"]["unverified"] == 12 and t["stats"]["positives"] == 12  # counted in the statistics
    assert ex.statistics(trees)["unverified"] == 36 and ex.statistics(trees)["positive_rate"] == 1.0
    # until_pair keeps sampling past unverified branches (they are no negative) until its budget ends
    m = ScriptedModel(lambda sid, i, k: None)
    (t,) = ex.explore(m, SAMPLES[:1], cfg(steps=(6,), k=2, max_samples=4), exemplar_pool=POOL, progress=False)
    assert [b["F"] for b in t["steps"][0]["branches"]] == [None] * 4 and not t["pairs"]
    # a continuation stopped by the token limit is unverified even if a wrong verdict appears in it
    m = _Finishing(lambda sid, i, k: flip(truth(sid)))
    (t,) = ex.explore(m, SAMPLES[:1], cfg(mode="fixed_k", k=4, steps=(6,)), exemplar_pool=POOL, progress=False)
    assert [b["F"] for b in t["steps"][0]["branches"]] == [0, None, 0, None]
    assert [b["finish"] for b in t["steps"][0]["branches"]] == ["stop", "length", "stop", "length"]


# ----------------------------------------------------------------------------- until_pair

def test_until_pair_stops_as_soon_as_both_found_and_batches_rounds():
    # step i: round 0 gives two correct verdicts; step 1 also gets its negative in round 1 (k=2)
    # step 4 finds both in round 0; others stay positive-only until the budget (6) is spent.
    def script(sid, i, k):
        if i == 4:
            return truth(sid) if k == 0 else flip(truth(sid))
        if i == 1 and k == 2:
            return flip(truth(sid))
        return truth(sid)

    m = ScriptedModel(script)
    trees = list(ex.explore(m, SAMPLES[:2], cfg(steps=(1, 4, 7), verdict_branch=True), exemplar_pool=POOL,
                            progress=False))
    # round 0: one call for all 2 samples x 3 steps; round 1: steps 1 and 7 only; round 2: step 7 only
    assert [(c["rows"], c["n"]) for c in m.calls] == [(6, 2), (4, 2), (2, 2)]
    assert m.calls[0]["steps"] == sorted(m.calls[0]["steps"])  # ordered by step: similar lengths together
    assert all(c["temperature"] == 0.5 and c["stop"] == ("\nAnswer:",) for c in m.calls)
    assert len({c["seed"] for c in m.calls}) == 3
    for t in trees:
        n = {st["i"]: len(st["branches"]) for st in t["steps"]}
        assert n == {1: 4, 4: 2, 7: 6}  # every branch kept; step 7 spent the whole budget
        assert [p["i"] for p in t["pairs"]] == [1, 4]
        assert t["stats"]["rounds"] == 3 and t["stats"]["branches"] == 12
        st1 = t["steps"][0]
        assert [b["F"] for b in st1["branches"]] == [1, 1, 0, 1] and [b["round"] for b in st1["branches"]] == [0, 0, 1, 1]
        pair = t["pairs"][0]
        assert pair["pos"] == st1["branches"][0]["text"] and pair["neg"] == st1["branches"][2]["text"]


def test_until_pair_respects_budget_with_a_partial_last_round():
    m = ScriptedModel(lambda sid, i, k: truth(sid))  # never a negative
    (t,) = ex.explore(m, SAMPLES[:1], cfg(steps=(2,), k=2, max_samples=5), exemplar_pool=POOL, progress=False)
    assert [c["n"] for c in m.calls] == [2, 2, 1]
    assert len(t["steps"][0]["branches"]) == 5 and t["pairs"] == [] and t["stats"]["positives"] == 5


def test_unverifiable_branches_are_kept_but_never_counted():
    # a judge-style F: None for the first two continuations of every step
    def judge_F(sample, path):
        return None if "branch 0 " in path or "branch 1 " in path else ex.verdict_F(sample, path)

    def script(sid, i, k):
        return flip(truth(sid)) if k in (0, 2) else truth(sid)

    m = ScriptedModel(script)
    (t,) = ex.explore(m, SAMPLES[:1], cfg(steps=(3,), k=2, max_samples=8), exemplar_pool=POOL, F=judge_F,
                      progress=False)
    assert [b["F"] for b in t["steps"][0]["branches"]] == [None, None, 0, 1]
    assert t["stats"]["unverified"] == 2 and len(t["pairs"]) == 1
    # an empty continuation has nothing to verify: None, never a pair member
    m = ScriptedModel(lambda sid, i, k: "" if k == 0 else (truth(sid) if k == 1 else flip(truth(sid))))
    (t,) = ex.explore(m, SAMPLES[:1], cfg(steps=(5,), k=1, max_samples=4), exemplar_pool=POOL, progress=False)
    assert [b["F"] for b in t["steps"][0]["branches"]] == [None, 1, 0]
    assert t["pairs"][0]["pos"].strip() and t["pairs"][0]["neg"].strip()


# ----------------------------------------------------------------------------- fixed_k

def test_fixed_k_samples_exactly_k_per_step_in_one_call():
    m = ScriptedModel(lambda sid, i, k: truth(sid) if k % 2 == 0 else flip(truth(sid)))
    trees = list(ex.explore(m, SAMPLES, cfg(mode="fixed_k", k=5, pairs_per_step=2), exemplar_pool=POOL,
                            progress=False))
    assert [(c["rows"], c["n"]) for c in m.calls] == [(18, 5)]
    for t in trees:
        assert [len(s["branches"]) for s in t["steps"]] == [5] * 6  # steps 1..T-1
        # every accepted x rejected pair, as the RPO code: 3 positives x 2 negatives = 6 per step
        # (pairs_per_step bounds until_pair only)
        assert len(t["pairs"]) == 36
        s6 = [p for p in t["pairs"] if p["i"] == 6]
        assert len({(p["pos"], p["neg"]) for p in s6}) == 6
        assert t["stats"]["rounds"] == 1


# ----------------------------------------------------------------------------- tree format and files

def test_tree_format_and_pairs_for_training(tmp_path):
    m = ScriptedModel(lambda sid, i, k: truth(sid) if k == 0 else flip(truth(sid)))
    path = tmp_path / "trees.jsonl"
    trees = ex.explore_to_file(m, SAMPLES, path, cfg(), exemplar_pool=POOL, progress=False)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and [json.loads(x)["id"] for x in lines] == [s.id for s in SAMPLES]
    t = trees[0]
    assert set(t) == {"id", "verdict", "reference", "exemplar_ids", "steps", "pairs", "stats"}
    assert t["verdict"] == "unsafe" and t["reference"] == render_chain(SAMPLES[0])
    assert t["exemplar_ids"] and SAMPLES[0].id not in t["exemplar_ids"]
    assert [s["i"] for s in t["steps"]] == list(range(1, 7))
    b = t["steps"][0]["branches"][0]
    assert set(b) == {"text", "F", "logprob", "n_tokens", "finish", "round"}
    for p in t["pairs"]:
        assert t["reference"].startswith(p["prefix"])
        assert ex.verdict_F(SAMPLES[0], p["prefix"] + p["pos"]) and not ex.verdict_F(SAMPLES[0], p["prefix"] + p["neg"])
    pairs, refs = ex.load_pairs(tmp_path)
    assert len(pairs) == 18 and refs == {s.id: render_chain(s) for s in SAMPLES}
    assert pairs[0] == ex.PairRow(SAMPLES[0].id, 1, t["pairs"][0]["prefix"], t["pairs"][0]["pos"], t["pairs"][0]["neg"])


def test_resume_after_a_kill_loses_and_repeats_nothing(tmp_path):
    script = lambda sid, i, k: truth(sid) if k == 0 else flip(truth(sid))  # noqa: E731
    path = tmp_path / "trees.jsonl"
    c = cfg(batch_samples=1)
    # a kill during the third sample's generate call: the first two trees are on disk
    m = ScriptedModel(script, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        ex.explore_to_file(m, SAMPLES, path, c, exemplar_pool=POOL, progress=False)
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == [SAMPLES[0].id, SAMPLES[1].id]
    # ... and a kill while writing the second line: it is truncated mid-line
    raw = path.read_bytes()
    first_end = raw.index(b"\n") + 1
    path.write_bytes(raw[:first_end + 50])
    m2 = ScriptedModel(script)
    trees = ex.explore_to_file(m2, SAMPLES, path, c, exemplar_pool=POOL, progress=False)
    assert len(m2.calls) == 2  # samples 2 and 3 only (one round each)
    assert [t["id"] for t in trees] == [s.id for s in SAMPLES]
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == [s.id for s in SAMPLES]
    assert path.read_bytes().startswith(raw[:first_end])  # the finished tree is untouched
    # a third run has nothing left to do
    m3 = ScriptedModel(script)
    assert len(ex.explore_to_file(m3, SAMPLES, path, c, exemplar_pool=POOL, progress=False)) == 3 and not m3.calls
    # grouping is free to change on resume; other settings must not be mixed into the same file
    m4 = ScriptedModel(script)
    assert len(ex.explore_to_file(m4, SAMPLES, path, cfg(batch_samples=3), exemplar_pool=POOL, progress=False)) == 3
    assert not m4.calls
    with pytest.raises(SSUIError, match="other settings"):
        ex.explore_to_file(ScriptedModel(script), SAMPLES, path, cfg(batch_samples=1, k=3), exemplar_pool=POOL,
                           progress=False)
    # a corrupt line that is not the last one is an error naming file:line
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n{oops\n" + lines[1] + "\n")
    with pytest.raises(SSUIError, match=r"trees.jsonl:2: corrupt"):
        ex.read_trees(path)


def test_runs_are_deterministic(tmp_path):
    script = lambda sid, i, k: truth(sid) if k % 3 else flip(truth(sid))  # noqa: E731
    a = list(ex.explore(ScriptedModel(script), SAMPLES, cfg(), exemplar_pool=POOL, progress=False))
    b = list(ex.explore(ScriptedModel(script), SAMPLES, cfg(), exemplar_pool=POOL, progress=False))
    assert a == b


def test_samples_without_a_reference_path_are_refused():
    bare = copy.deepcopy(SAMPLES[0])
    bare.reasoning = {}
    with pytest.raises(SSUIError, match="no reference reasoning path"):
        list(ex.explore(ScriptedModel(lambda *a: "unsafe"), [bare], cfg(), exemplar_pool=POOL, progress=False))


# ----------------------------------------------------------------------------- statistics

def _branch(F, n=10):
    return {"text": "x", "F": F, "logprob": -1.0, "n_tokens": n, "finish": "stop", "round": 0}


def test_statistics_on_hand_made_trees():
    trees = [
        {"id": "a", "verdict": "unsafe", "steps": [
            {"i": 1, "prefix": "", "branches": [_branch(1), _branch(0), _branch(None)]},
            {"i": 2, "prefix": "", "branches": [_branch(1), _branch(1)]}],
         "pairs": [{"i": 1, "prefix": "", "pos": "x", "neg": "y"}], "stats": {"rounds": 1}},
        {"id": "b", "verdict": "safe", "steps": [
            {"i": 1, "prefix": "", "branches": [_branch(0, 20)]},
            {"i": 2, "prefix": "", "branches": [_branch(0, 20)]}],
         "pairs": [], "stats": {"rounds": 1}},
    ]
    s = ex.statistics(trees)
    assert s["samples"] == 2 and s["branches"] == 7 and s["tokens"] == 90 and s["pairs"] == 1
    assert s["pairs_per_sample"] == 0.5 and s["samples_with_pair"] == 1 and s["samples_with_pair_rate"] == 0.5
    assert s["tokens_per_pair"] == 90.0 and s["unverified"] == 1
    assert s["positive_rate"] == 3 / 6
    assert s["positive_rate_by_step"] == {"1": 1 / 3, "2": 2 / 3} and s["pairs_by_step"] == {"1": 1, "2": 0}
    st = ex.step_frame(trees)
    assert list(st["branches"]) == [4, 3] and list(st["tokens"]) == [50, 40]
    sf = ex.sample_frame(trees)
    assert list(sf["pairs"]) == [1, 0] and list(sf["tokens"]) == [50, 40]
    empty = ex.statistics([])
    assert empty["samples"] == 0 and empty["tokens_per_pair"] is None
    json.dumps(s)  # JSON-ready


# ----------------------------------------------------------------------------- command line

def test_cli_explore_writes_trees_and_stats_and_resumes(tmp_path, monkeypatch, capsys):
    import ssui_lib.models as models

    data = tmp_path / "d.jsonl"
    write_samples(data, SAMPLES + POOL)
    made = []

    def fake_resolve(name, **kw):
        made.append(ScriptedModel(lambda sid, i, k: truth(sid) if k == 0 else flip(truth(sid))))
        return made[-1]

    import ssui_lib.cli.explore as cli_explore

    monkeypatch.setattr(models, "resolve_model", fake_resolve)
    monkeypatch.setattr(cli_explore, "resolve_model", fake_resolve)  # bound at import by the command group
    out = tmp_path / "run"
    argv = ["explore", "--model", "embedded", "--dataset", f"jsonl:{data}", "--out", str(out), "--limit", "3",
            "--shots", "1", "--shots-from", f"jsonl:{data}", "--steps", "6,7", "--verdict-branch", "--k", "2",
            "--no-progress"]
    assert main(argv) == 0
    trees = ex.read_trees(out / "trees.jsonl")
    assert [t["id"] for t in trees] == [s.id for s in SAMPLES]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["complete"] and stats["dataset"] == f"jsonl:{data}" and stats["statistics"]["pairs"] == 6
    assert stats["config"]["steps"] == [6, 7]
    assert "6 pairs" in capsys.readouterr().out
    assert main(argv) == 0 and not made[-1].calls  # resumed: nothing to do
    assert main(argv[:-3] + ["--steps", "9", "--no-progress"]) == 2
    assert "steps must be" in capsys.readouterr().err
    no_opt_in = [a for a in argv if a != "--verdict-branch"]
    assert main(no_opt_in) == 2 and "verdict_branch" in capsys.readouterr().err
    assert main(["explore", "--model", "embedded", "--dataset", "nope", "--out", str(out)]) == 2


# ----------------------------------------------------------------------------- the real model

@pytest.mark.slow
def test_embedded_end_to_end(embedded, tmp_path):
    from ssui_lib.data.bundled import bundled_files, load_bundled

    if not bundled_files():
        pytest.skip("bundled dataset not written yet")
    samples = load_bundled("test")[:2]
    pool = load_bundled("train")
    c = ex.ExploreConfig(mode="fixed_k", k=2, steps=(5, 6), max_new_tokens=16, shots=0, seed=0)
    path = tmp_path / "trees.jsonl"
    trees = ex.explore_to_file(embedded, samples, path, c, exemplar_pool=pool, progress=False)
    assert [t["id"] for t in trees] == [s.id for s in samples]
    for t in trees:
        assert [len(s["branches"]) for s in t["steps"]] == [2, 2]
        for s in t["steps"]:
            for b in s["branches"]:
                assert 1 <= b["n_tokens"] <= 16 and b["F"] in (0, 1, None) and b["logprob"] <= 0
                assert "\nAnswer:" not in b["text"]
    s = ex.statistics(trees)
    assert s["samples"] == 2 and s["branches"] == 8


# ----------------------------------------------------------------------------- on-policy prefixes (Eq. 2)

from ssui_lib.srpo import onpolicy  # noqa: E402


def test_sampled_prefix_uses_the_models_own_steps():
    path = "Step 1 (A): mine one.\nStep 2 (B): mine two.\nStep 3 (C): mine thr"
    assert onpolicy.sampled_prefix(path, 1) == "Step 1 (Analyze visual context):"
    assert onpolicy.sampled_prefix(path, 3) == "Step 1 (A): mine one.\nStep 2 (B): mine two.\n" + ex.header(3)
    assert onpolicy.sampled_prefix(path, 4).startswith("Step 1 (A)")  # step 3 counts when the path ended cleanly
    assert onpolicy.sampled_prefix(path, 4, complete=False) is None  # ... but not when the token limit cut it
    assert onpolicy.sampled_prefix(path, 6) is None  # the path never wrote steps 4-5
    assert onpolicy.sampled_prefix("Step 2 (B): x\nStep 1 (A): y\n", 3) is None  # out of order
    with pytest.raises(SSUIError, match="step 7"):
        onpolicy.sampled_prefix(path, 7)


def test_guided_prompt_shows_the_reference_in_the_question_turn():
    prompt = ex.cot_prompt(SAMPLES[0], [])
    g = onpolicy.guided_prompt(prompt, ex.reference_path(SAMPLES[0]))
    assert g[:-1] == prompt[:-1] and prompt[-1]["content"][-1]["text"] == SAMPLES[0].query  # the input is untouched
    text = g[-1]["content"][-1]["text"]
    assert text.startswith(SAMPLES[0].query) and ex.reference_path(SAMPLES[0]) in text
    with pytest.raises(SSUIError, match="empty reference"):
        onpolicy.guided_prompt(prompt, " ")
    with pytest.raises(SSUIError, match="user turn"):
        onpolicy.guided_prompt(prompt[:1], "x")


class _PathWriter(ScriptedModel):
    """Writes its own path (two of its own steps, then cut) when asked without a prefix (Eq. 2)."""

    def generate(self, prompts, params=SamplingParams(), prefixes=None, progress=False):
        if prefixes is None:
            self.paths = [p[-1]["content"][-1]["text"] for p in prompts]
            return [[Generation(text="Step 1 (Mine): own view.\nStep 2 (Mine): own request.\n", n_tokens=9,
                                finish_reason="stop")] for _ in prompts]
        return super().generate(prompts, params, prefixes, progress)


def test_sampled_prefix_mode_branches_the_models_path_and_skips_what_it_did_not_reach():
    m = _PathWriter(lambda sid, i, k: truth(sid) if k == 0 else flip(truth(sid)))
    c = cfg(mode="fixed_k", k=2, steps=(2, 3, 5), prefix="sampled")
    (t,) = ex.explore(m, SAMPLES[:1], c, exemplar_pool=POOL, progress=False)
    assert "reference reasoning path" in m.paths[0]  # τ* in context for the sampled path
    assert [s["i"] for s in t["steps"]] == [2, 3] and t["stats"]["skipped_steps"] == [5]
    assert t["steps"][1]["prefix"].startswith("Step 1 (Mine): own view.\nStep 2 (Mine)")
    assert t["path"]["n_tokens"] == 9 and t["stats"]["path_tokens"] == 9 and len(t["pairs"]) == 2
    assert t["pairs"][0]["prefix"] == t["steps"][0]["prefix"]  # training sees the model's own prefix
    with pytest.raises(SSUIError, match="prefix"):
        ex.ExploreConfig(prefix="beam")
    with pytest.raises(SSUIError, match="verdict branch"):
        ex.ExploreConfig(prefix="sampled", steps=(6, 7), verdict_branch=True)
