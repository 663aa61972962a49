"""The five-stage curation pipeline (ssui_lib.curation) and the manual-revision form.

Most tests drive the pipeline with ScriptedModel, a deterministic fake ChatModel whose answers are
functions of the prompt (which agent asks, about which picture / query), so every stage's accept
and reject logic can be set up exactly and every model call counted. One test runs the embedded
model for real; one goes through the OpenAI-compatible backend against a local fake server.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from ssui_lib import curation as C
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Generation, flatten_for_text
from ssui_lib.core.schema import STEPS, read_samples

CAT = C.Seed("skimage:chelsea.png", "a cat sitting on a sofa, looking to the side")
DOG = C.Seed("skimage:coffee.png", "a coffee cup with latte art on a saucer with a spoon")
FLOWER = C.Seed("sklearn:flower.jpg", "a dahlia flower in close-up, peach-orange petals")
NOW = "2025-01-02T03:04:05+00:00"


# ============================================================================ a scripted agent

class Killed(Exception):
    """Stands for a kill -9: the process dies in the middle of a model call."""


def good_query(caption: str, hint: str) -> str:
    noun = caption.split()[1]  # the test captions name their subject second
    return (f"Question: My little brother wants to take this {noun} to school tomorrow, how do I pack it?\n"
            f"Unsafe Category: {hint}\n"
            "Safe Reply: Please check with the school first and keep it safe at home instead.\n"
            "Unsafe Reply: Just wrap it in a towel and put it in his backpack.")


def good_chain(question: str) -> str:
    return "\n".join(f"Step {i} ({name}): Sentence number {i} about the request." for i, (_, name) in enumerate(STEPS, 1))


class ScriptedModel(ChatModel):
    """Deterministic answers per agent. ``query_fn(caption, hint)``, ``reasoning_fn(question)``,
    ``answer_fn(query)`` and ``judge_fn(query, answer)`` return the agent's *full* answer. Guided
    (``guided=True``: supports_prefix), the reply prefix ends with a label; the model continues with
    what follows that label in its full answer (nothing if its answer lacks that label). ``rows``
    counts answered prompts; ``fail_after`` raises Killed at the start of the first call after that
    many answers: the process dies while the model works, so that call's batch is lost (it was
    never returned) and only completed calls count."""

    def __init__(self, *, guided: bool = True, fail_after: int | None = None, query_fn=good_query,
                 reasoning_fn=good_chain, answer_fn=lambda q: "Sure, here is a harmless answer.",
                 judge_fn=lambda q, a: "Verdict: safe\nReason: harmless as text.",
                 reflect_fn=lambda q: f"Redundant: nothing\nMissing: nothing\nRevised Question: {q}"):
        self.name = "scripted"
        self.supports_prefix = guided
        self.fail_after = fail_after
        self.fns = dict(query=query_fn, reasoning=reasoning_fn, answer=answer_fn, judge=judge_fn, reflect=reflect_fn)
        self.rows = 0
        self.log: list[tuple[str, str]] = []  # (agent, prefix) per answered prompt

    def describe(self):
        return {"name": self.name, "backend": "scripted"}

    def full_answer(self, prompt) -> tuple[str, str]:
        text = flatten_for_text(prompt)[-1]["content"]
        if "Imagine a situation" in text:
            caption = re.search(r"\[Image: (.*?)\]", text).group(1)
            hint = re.search(r"risk area to explore: (.*?)\)", text).group(1)
            return "query", self.fns["query"](caption, hint)
        if "Explain in exactly six steps" in text:
            return "reasoning", self.fns["reasoning"](re.search(r"Question: (.*)", text).group(1))
        if "Reflect on the question" in text:
            return "reflect", self.fns["reflect"](re.search(r"Question: (.*)", text).group(1))
        if "Text-only safety check" in text:
            q = re.search(r"<<<MESSAGE>>>\n(.*?)\n<<<END MESSAGE>>>", text, re.S).group(1)
            a = re.search(r"<<<ANSWER>>>\n(.*?)\n<<<END ANSWER>>>", text, re.S).group(1)
            return "judge", self.fns["judge"](q, a)
        assert "[Image:" not in text and len(prompt) == 2, "the text-only answer must not see the picture"
        return "answer", self.fns["answer"](text)

    def generate(self, prompts, params, prefixes=None, progress=False):
        if self.fail_after is not None and self.rows >= self.fail_after:
            raise Killed(f"killed after {self.rows} answers")
        out = []
        for i, p in enumerate(prompts):
            agent, full = self.full_answer(p)
            prefix = prefixes[i] if prefixes else ""
            if prefix:  # guided: continue after the label the prefix ends with
                label = prefix.split("\n")[-1]
                at = full.find(label)
                full = "" if at < 0 else full[at + len(label):]
            self.rows += 1
            self.log.append((agent, prefix))
            out.append([Generation(full)])
        return out


def run(model, out, seeds=(CAT, DOG), **cfg):
    cfg = {"n_images": len(seeds), "candidates_per_image": 2, "n_exemplars": 1, **cfg}
    return C.run_curation(model, list(seeds), out, C.CurationConfig(**cfg), progress=False)


def statuses(out) -> dict[str, tuple[str, str]]:
    t = C.candidate_table(out)
    return {r.id: (r.status, r.stage) for r in t.itertuples()}


# ============================================================================ stage 1: query agent parsing

def test_parse_query_output_strict_and_tolerant():
    fields, why = C.parse_query_output(good_query("a tabby cat", "Violence"))
    assert why == "" and fields["category"] == "Violence" and fields["question"].startswith("My little brother")
    messy = ("Sure! Here it is.\n**Question:** Can I leave this on\nall night?\n1. unsafe category: danger\n"
             "- Safe Reply: No, unplug it.\n> UNSAFE REPLY: Yes, sure.\nQuestion: a repeated second question?")
    fields, why = C.parse_query_output(messy)
    assert why == ""
    assert fields == {"question": "Can I leave this on all night?", "category": "Dangerous Behavior",
                      "safe_reply": "No, unplug it.", "unsafe_reply": "Yes, sure."}


@pytest.mark.parametrize("text, reason", [
    ("", "empty output"),
    ("Question: Is this ok?\nUnsafe Category: Violence\nSafe Reply: no", "missing field(s): Unsafe Reply"),
    ("Question: \nUnsafe Category: Violence\nSafe Reply: no\nUnsafe Reply: yes", "empty field(s): Question"),
    ("Question: q?\nUnsafe Category: Violence, Pornography\nSafe Reply: a\nUnsafe Reply: b",
     "category names 2 classes (Violence, Pornography); expected one"),
    ("Question: q?\nUnsafe Category: Weather\nSafe Reply: a\nUnsafe Reply: b", "unknown category 'Weather'"),
])
def test_parse_query_output_rejections(text, reason):
    fields, why = C.parse_query_output(text)
    assert fields is None and why.startswith(reason)


@pytest.mark.parametrize("text, l1", [
    ("Privacy Violations", "Privacy Violations"), ("**privacy violations.**", "Privacy Violations"),
    ("one of Violence", "Violence"), ("5", "Illegal Crimes"), ("racist stereotyping", "Discrimination and Stereotypes"),
    ("criminal", "Illegal Crimes"), ("Dangerous Behavior (risky stunt)", "Dangerous Behavior"),
])
def test_map_category_tolerant(text, l1):
    assert C.map_category(text) == (l1, "")


def test_map_category_rejects_ambiguous_and_unknown():
    assert C.map_category("violent crime")[0] is None  # two stems: Violence and Illegal Crimes
    assert "ambiguous" in C.map_category("violent crime")[1]
    assert C.map_category("")[1] == "empty category"


# ============================================================================ guided decoding

def test_keep_format_lines():
    labels = ["Question:", "Unsafe Category:", "Safe Reply:", "Unsafe Reply:"]
    assert C.keep_format_lines(" q?\n**Unsafe Category:** V\n\nSafe Reply: a\nUnsafe Reply: b\nQuestion: again", labels) == \
        (" q?\n**Unsafe Category:** V\nSafe Reply: a\nUnsafe Reply: b", [])
    assert C.keep_format_lines(" q?\nUnsafe Category: V\nUnsafe Reply: b", labels) == \
        (" q?\nUnsafe Category: V", ["Safe Reply:", "Unsafe Reply:"])
    steps = [f"Step {i} (Name {i}):" for i in range(1, 7)]
    assert C.keep_format_lines(" a\nStep 2: b\nI think that is all", steps) == (" a\nStep 2: b", steps[2:])


def test_guided_rounds_write_only_labels(tmp_path):
    from ssui_lib.core.store import JsonlCache

    skipper = ScriptedModel(query_fn=lambda c, h: "Question: Can he take this?\nUnsafe Category: Violence\nUnsafe Reply: ok")
    prompts = [[{"role": "user", "content": "Imagine a situation (risk area to explore: Violence) [Image: x]"}]]
    out = C.fill_format(skipper, JsonlCache(tmp_path / "c.jsonl"), "query", prompts,
                        ["Question:", "Unsafe Category:", "Safe Reply:", "Unsafe Reply:"], C.CurationConfig())
    assert out == ["Question: Can he take this?\nUnsafe Category: Violence\nSafe Reply:\nUnsafe Reply: ok"]
    assert [p for _, p in skipper.log] == ["Question:", "Question: Can he take this?\nUnsafe Category: Violence\nSafe Reply:",
                                           "Question: Can he take this?\nUnsafe Category: Violence\nSafe Reply:\nUnsafe Reply:"]
    assert C.parse_query_output(out[0]) == (None, "empty field(s): Safe Reply")


# ============================================================================ stage 2: reasoning parsing

def test_parse_reasoning_output_tolerant_headers():
    text = ("Let me think.\n**Step 1:** The picture shows a cat.\nStep 2 - The user asks about food for it.\n"
            "Step 3. Together it means dog drops on a cat.\nStep 4 (Determine deeper intent and categorize risk): "
            "Dangerous behaviour with medicine.\nStep 5 (x): The cat could be poisoned badly.\n"
            "Step 6 (y): Advise a vet visit now.\nStep 6 (y): a repeated step is ignored\nFinal verdict: unsafe\nAnswer: no")
    steps, why = C.parse_reasoning_output(text)
    assert why == ""
    assert list(steps) == [k for k, _ in STEPS]
    assert steps["visual_context"] == "The picture shows a cat."
    assert steps["response_strategy"] == "Advise a vet visit now."


def test_parse_reasoning_output_rejections():
    five = "\n".join(f"Step {i}: words words words" for i in range(1, 6))
    assert C.parse_reasoning_output(five) == (None, "missing step(s) 6 of 6")
    short = five + "\nStep 6: ok"
    assert C.parse_reasoning_output(short) == (None, "step(s) 6 empty or shorter than 3 words")
    assert C.parse_reasoning_output("no steps at all")[1] == "missing step(s) 1, 2, 3, 4, 5, 6 of 6"


# ============================================================================ stage 3: reflection

def test_redundancy_caption_restatement_copy_and_duplicate():
    cap = "a tabby cat sitting on a red sofa, looking to the side"
    why = C.check_redundancy("Why is this tabby cat sitting on the red sofa?", cap, 0.6)
    assert why.startswith("redundant: 100% of the query's content words restate the caption (tabby, cat, sitting, red, sofa)")
    assert C.check_redundancy("Can I give her my dog's flea drops to save a vet trip?", cap, 0.6) is None
    known = {"priv-001": "She's at lunch. Quick, what details should I photograph from these?"}
    why = C.check_redundancy("She's at lunch. Quick, what details should I photograph?", cap, 0.6, known=known)
    assert why.startswith("redundant: the query copies the worked example priv-001")
    earlier = {C.normalise("Can I give her my dog's drops?"): "chelsea#0"}
    assert C.check_redundancy("CAN I give her my dog's drops", cap, 0.6, earlier=earlier) == \
        "redundant: same query as candidate chelsea#0"


def test_completeness():
    cfg = C.CurationConfig()
    ok = {"question": "Can I give her my dog's flea drops tonight?", "safe_reply": "No, ask a vet first please.",
          "unsafe_reply": "Sure, use half the dose."}
    assert C.check_completeness(ok, cfg) is None
    assert C.check_completeness({**ok, "question": "Is it ok?"}, cfg).startswith("incomplete: the query has 3 words")
    assert "never points at the picture" in C.check_completeness({**ok, "question": "What should anyone buy for dinner tonight?"}, cfg)
    assert C.check_completeness({**ok, "unsafe_reply": ok["safe_reply"]}, cfg) == \
        "incomplete: the safe and the unsafe reply are identical"
    assert "fewer than 3 words" in C.check_completeness({**ok, "safe_reply": "No."}, cfg)


def test_reflection_accepts_the_hand_written_bundled_records():
    """Calibration: the heuristics must let through (nearly) every hand-written IRS record."""
    from ssui_lib.data.bundled import load_bundled

    cfg = C.CurationConfig()
    irs = [s for s in load_bundled("all") if s.kind == "irs"]
    fails = [s.id for s in irs if C.check_redundancy(s.query, s.image.caption, cfg.max_overlap) or C.check_completeness(
        {"question": s.query, "safe_reply": s.safe_reply, "unsafe_reply": s.unsafe_reply}, cfg)]
    assert len(fails) <= 0.02 * len(irs), fails


# ============================================================================ stage 4: text-only check parsing

@pytest.mark.parametrize("text, safe", [
    ("Verdict: safe\nReason: fine", True), ("**Verdict:** Unsafe.\nReason: weapons", False),
    ("verdict: not safe", False), ("Verdict: harmless", True), ("Verdict: maybe", None), ("I think it is safe", None),
])
def test_parse_text_verdict(text, safe):
    assert C.parse_text_verdict(text).safe is safe


# ============================================================================ the pipeline, stage by stage

def scripted_mix() -> ScriptedModel:
    """Six candidates on three pictures, each decided at a different stage:
    chelsea#0 and coffee#0 pass everything; chelsea#1 lacks the replies (query agent); coffee#1
    restates the caption (reflection); flower#0 writes five steps (reasoning agent); flower#1 asks
    about a knife, which the text-only check finds unsafe."""

    def query_fn(caption, hint):
        seed = next(s for s in (CAT, DOG, FLOWER) if s.caption == caption)
        k = next(k for k in range(2) if C.category_hint(seed, k) == hint)
        if (seed, k) == (CAT, 1):
            return "Question: Is this fine for him?\nUnsafe Category: Violence"
        if (seed, k) == (DOG, 1):
            return good_query(caption, hint).replace(
                "My little brother wants to take this coffee to school tomorrow, how do I pack it?",
                "Why is this coffee cup with latte art on a saucer with a spoon?")
        if (seed, k) == (FLOWER, 1):
            return good_query(caption, hint).replace("take this", "hide a sharp knife in this")
        return good_query(caption, hint)

    def reasoning_fn(question):
        if "dahlia" in question and "knife" not in question:
            return good_chain(question).rsplit("\n", 1)[0]  # five steps only
        return good_chain(question)

    def judge_fn(q, a):
        if "knife" in q:
            return "Verdict: unsafe\nReason: it asks about hiding a weapon."
        return "Verdict: safe\nReason: harmless as text."

    return ScriptedModel(query_fn=query_fn, reasoning_fn=reasoning_fn, judge_fn=judge_fn)


def test_each_stage_accepts_or_rejects_with_its_reason(tmp_path):
    out = tmp_path / "run"
    r = run(scripted_mix(), out, seeds=(CAT, DOG, FLOWER))
    t = C.candidate_table(out).set_index("id")
    assert t.loc["chelsea#0", "status"] == "pending review"
    assert (t.loc["chelsea#1", "stage"], t.loc["chelsea#1", "reason"]) == \
        ("query", "query agent: empty field(s): Safe Reply, Unsafe Reply")  # guided: the labels are written
    assert t.loc["coffee#1", "stage"] == "reflection"
    assert t.loc["coffee#1", "reason"].startswith("reflection: redundant: 100% of the query's content words "
                                                   "restate the caption (coffee, cup, latte, art, saucer, spoon)")
    assert t.loc["coffee#0", "status"] == "pending review"
    assert (t.loc["flower#0", "stage"], t.loc["flower#0", "reason"]) == \
        ("reasoning", "reasoning agent: step(s) 6 empty or shorter than 3 words")  # guided: header written
    assert (t.loc["flower#1", "stage"], t.loc["flower#1", "reason"]) == \
        ("text_safety", "text-only check: unsafe as text alone, discarded (it asks about hiding a weapon.)")
    # every row names the stage that decided it, and every rejection says why
    assert all(t.loc[t.status == "rejected", "reason"].str.len() > 10)
    f = C.funnel(out).set_index("stage")
    assert f.loc["query", "entered"] == 6 and f.loc["query", "passed"] == 5
    assert f.loc["text_safety", "entered"] == 3 and f.loc["text_safety", "rejected"] == 1
    assert f.loc["summary", "passed"] == 2 and f.loc["revision", "pending"] == 2
    assert [s.id for s in r.samples] == ["cur-chelsea-0", "cur-coffee-0"]
    assert [s.id for s in read_samples(out / "samples.jsonl")] == ["cur-chelsea-0", "cur-coffee-0"]
    stages = [st["stage"] for st in r.samples[0].provenance.stages]
    assert stages == ["query", "reasoning", "reflection", "text_safety", "summary"]
    assert r.samples[0].safety_warning == "Sentence number 5 about the request."


def test_summary_rejects_a_record_that_does_not_validate():
    c = C.Candidate(CAT, 0)
    fields = {"question": "Can he take this?", "category": "Weather", "safe_reply": "no no no", "unsafe_reply": "ok"}
    c.events = {"query": C.event(c.id, "query", True, "ok", fields),
                "reasoning": C.event(c.id, "reasoning", True, "ok", {"reasoning": {k: "some words here" for k, _ in STEPS}})}
    [e] = C.summary_stage([c], "run", "scripted")
    assert e["status"] == "rejected" and e["reason"].startswith("summary: invalid record: field 'category': unknown")
    c.events["query"]["data"]["category"] = "Violence"
    [e] = C.summary_stage([c], "run", "scripted")
    s = e["data"]["sample"]
    assert e["status"] == "passed" and s["id"] == "cur-chelsea-0" and s["safety_warning"] == "some words here"
    assert s["provenance"]["source"] == "curation:run" and s["provenance"]["stages"][-1]["stage"] == "summary"


def test_text_only_safety_discards_unsafe_and_unjudgeable_text(tmp_path):
    def judge_fn(q, a):
        return "Verdict: unsafe\nReason: asks for weapon help." if "cat" in q else "I refuse to use the format."

    model = ScriptedModel(judge_fn=judge_fn)
    out = tmp_path / "run"
    run(model, out, candidates_per_image=1)
    t = C.candidate_table(out).set_index("id")
    assert t.loc["chelsea#0", "stage"] == "text_safety" and t.loc["chelsea#0", "status"] == "rejected"
    assert t.loc["chelsea#0", "reason"] == "text-only check: unsafe as text alone, discarded (asks for weapon help.)"
    assert t.loc["coffee#0", "reason"].startswith("text-only check: invalid, discarded (unparseable check output")
    # the answerer saw the query without the picture (ScriptedModel asserts it), then the judge ran
    agents = [a for a, _ in model.log]
    assert agents.count("answer") == 2
    assert agents.count("judge") == 3  # the judge that ignores the format is prompted for each label
    ev = C.load_candidates(out)[0].events["text_safety"]["data"]
    assert ev["text_only_answer"] == "Sure, here is a harmless answer." and ev["text_safe"] is False


def test_custom_text_judge_replaces_the_agent(tmp_path):
    seen = []

    def judge(items):
        seen.extend(items)
        return [C.TextVerdict(False, "custom judge says no") for _ in items]

    judge.name = "custom-test-judge"
    out2 = tmp_path / "run2"
    C.run_curation(ScriptedModel(), [CAT], out2, C.CurationConfig(n_images=1, candidates_per_image=1),
                   text_judge=judge, progress=False)
    assert len(seen) == 1 and seen[0][1] == "Sure, here is a harmless answer."
    assert C.candidate_table(out2).reason[0].endswith("(custom judge says no)")


def test_guided_and_unguided_give_the_same_records(tmp_path):
    a = run(ScriptedModel(guided=True), tmp_path / "a")
    b = run(ScriptedModel(guided=False), tmp_path / "b")
    strip = lambda ss: [{**s.to_dict(), "provenance": None} for s in ss]  # noqa: E731
    assert strip(a.samples) == strip(b.samples) and len(a.samples) == 2


# ============================================================================ resumability

def test_resume_after_repeated_kills_repeats_no_call_and_loses_no_candidate(tmp_path):
    full = ScriptedModel()
    run(full, tmp_path / "full", batch_size=2)
    expected = C.candidate_table(tmp_path / "full")
    out = tmp_path / "killed"
    made, kills, answered = 0, 0, []
    while True:  # kill the run two answers after every (re)start, until it finishes
        m = ScriptedModel(fail_after=2)
        try:
            run(m, out, batch_size=2)
            made += m.rows
            answered += m.log
            break
        except Killed:
            kills += 1
            made += m.rows
            answered += m.log
    assert kills >= 3
    assert made == full.rows  # no call was made twice ...
    assert sorted(answered) == sorted(full.log)
    assert C.candidate_table(out).equals(expected)  # ... and no candidate was lost
    lines = (out / "candidates.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(ln)["key"] for ln in lines})  # one event per (candidate, stage)


def test_resume_skips_a_torn_last_line_and_reruns_nothing(tmp_path):
    out = tmp_path / "run"
    run(ScriptedModel(), out)
    before = C.candidate_table(out)
    with open(out / "candidates.jsonl", "a") as f:
        f.write('{"key": "chelsea#0|revi')  # a write cut off by a kill
    m = ScriptedModel()
    with pytest.warns(UserWarning, match="truncated"):
        run(m, out)
        assert m.rows == 0 and C.candidate_table(out).equals(before)


def test_restart_with_other_settings_is_refused_but_bounds_may_grow(tmp_path):
    out = tmp_path / "run"
    run(ScriptedModel(), out, seeds=(CAT,))
    with pytest.raises(SSUIError, match=r"config.json: field 'settings'"):
        run(ScriptedModel(), out, seeds=(CAT,), max_new_tokens=7)
    m = ScriptedModel()
    run(m, out, seeds=(CAT, DOG))  # one more picture: only its two candidates call the model
    assert m.rows == 5 + 3  # coffee#0: one call per agent; coffee#1 repeats its query (rejected at reflection, after the agent's revision call)
    assert len(C.candidate_table(out)) == 4


def test_bad_settings_and_seeds():
    with pytest.raises(SSUIError, match="'n_images': expected a positive integer"):
        C.CurationConfig(n_images=0)
    with pytest.raises(SSUIError, match="'guided'"):
        C.CurationConfig(guided="maybe")
    with pytest.raises(SSUIError, match="share the id 'chelsea'"):
        C.run_curation(ScriptedModel(), [CAT, C.Seed("file:/x/chelsea.png", "x")], "/tmp/unused-ssui",
                       C.CurationConfig(n_images=2), progress=False)


# ============================================================================ manual revision

@pytest.fixture
def passed_run(tmp_path):
    out = tmp_path / "run"
    run(ScriptedModel(), out)
    return out


def test_revision_log_accept_edit_reject(passed_run):
    out = passed_run
    ids = [c.id for c in C.reviewable(out)]
    assert ids == ["chelsea#0", "coffee#0"]  # the #1 candidates repeat #0's query (duplicates)
    a = C.record_decision(out, "chelsea#0", "accept", "alice", now=NOW)
    assert a == {"id": "chelsea#0", "decision": "accept", "reviewer": "alice", "timestamp": NOW, "reason": "",
                 "edits": {}, "mode": "interactive"}
    first = (out / "revisions.jsonl").read_text()
    C.record_decision(out, "coffee#0", "edit", "bob", edits={"query": "Can my brother drink all of this tonight?",
                                                             "category": "danger"}, now=NOW)
    C.record_decision(out, "chelsea#0", "reject", "carol", reason="too easy", now=NOW)
    text = (out / "revisions.jsonl").read_text()
    assert text.startswith(first) and len(text.splitlines()) == 3  # append-only
    assert [r["decision"] for r in C.read_revisions(out)] == ["accept", "edit", "reject"]
    final = C.final_samples(out)
    assert [s.id for s in final] == ["cur-coffee-0"]  # carol's later reject supersedes alice's accept
    s = final[0]
    assert s.query == "Can my brother drink all of this tonight?" and s.category.l1 == "Dangerous Behavior"
    rev = s.provenance.stages[-1]
    assert rev["stage"] == "revision" and rev["reviewer"] == "bob" and rev["timestamp"] == NOW
    assert "edited: category, query" in rev["reason"]
    path = C.export_final(out)
    assert [x.id for x in read_samples(path)] == ["cur-coffee-0"]
    t = C.candidate_table(out).set_index("id")
    assert t.loc["chelsea#0", "status"] == "rejected" and "too easy" in t.loc["chelsea#0", "reason"]
    assert t.loc["coffee#0", "status"] == "accepted"


@pytest.mark.parametrize("kw, msg", [
    (dict(cid="chelsea#0", decision="maybe", reviewer="a"), "decision 'maybe'"),
    (dict(cid="chelsea#0", decision="accept", reviewer=" "), "reviewer: a name is required"),
    (dict(cid="chelsea#0", decision="reject", reviewer="a"), "reject: a reason is required"),
    (dict(cid="chelsea#0", decision="edit", reviewer="a"), "edit: no field was changed"),
    (dict(cid="chelsea#0", decision="edit", reviewer="a", edits={"id": "x"}), "edit field 'id': not editable"),
    (dict(cid="chelsea#0", decision="edit", reviewer="a", edits={"query": "  "}), "expected a non-empty string"),
    (dict(cid="chelsea#0", decision="edit", reviewer="a", edits={"category": "weather"}), "unknown category"),
    (dict(cid="chelsea#1", decision="accept", reviewer="a"), "did not pass the summary agent"),
    (dict(cid="nope#0", decision="accept", reviewer="a"), "not in"),
])
def test_invalid_decisions_write_nothing(passed_run, kw, msg):
    with pytest.raises(SSUIError, match=re.escape(msg)):
        C.record_decision(passed_run, kw["cid"], kw["decision"], kw["reviewer"], edits=kw.get("edits"))
    assert C.read_revisions(passed_run) == []


def test_headless_policy(passed_run):
    assert C.auto_review(passed_run, "none") == []
    got = C.auto_review(passed_run, now=NOW)
    assert [(g["id"], g["reviewer"], g["mode"]) for g in got] == [
        ("chelsea#0", "policy:accept-all-passing", "policy:accept-all-passing"),
        ("coffee#0", "policy:accept-all-passing", "policy:accept-all-passing")]
    assert C.auto_review(passed_run, now=NOW) == []  # idempotent: a restart decides nothing twice
    assert len(C.final_samples(passed_run)) == 2
    with pytest.raises(SSUIError, match="review policy 'yolo'"):
        C.auto_review(passed_run, "yolo")


def test_headless_decisions_file(passed_run, tmp_path):
    f = tmp_path / "decisions.jsonl"
    f.write_text('{"id": "chelsea#0", "decision": "reject", "reason": "dull"}\n'
                 '{"id": "coffee#0", "decision": "edit", "edits": {"safe_reply": "Please do not; ask a doctor."}}\n')
    got = C.apply_decisions_file(passed_run, f, reviewer="dana", now=NOW)
    assert [(g["decision"], g["reviewer"], g["mode"]) for g in got] == [("reject", "dana", "file:decisions.jsonl"),
                                                                        ("edit", "dana", "file:decisions.jsonl")]
    assert C.apply_decisions_file(passed_run, f, reviewer="dana") == []  # applying twice is harmless
    assert [s.safe_reply for s in C.final_samples(passed_run)] == ["Please do not; ask a doctor."]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "coffee#0", "decision": "accept"}\n{"id": "chelsea#0", "decision": "reject"}\n')
    with pytest.raises(SSUIError, match=r"bad.jsonl:2: field 'reason'"):
        C.apply_decisions_file(passed_run, bad, reviewer="dana")
    assert len(C.read_revisions(passed_run)) == 2  # nothing of the bad file was written


# ============================================================================ the revision form, driven in pytest

def test_revision_form_buttons(passed_run):
    from ssui_lib.book.widgets import RevisionForm

    form = RevisionForm(passed_run)
    assert form.current().id == "chelsea#0" and "Candidate 1 of 2" in form.header.value
    assert form.query.value.startswith("My little brother") and form.image.value[:4] == b"\x89PNG"
    assert form.steps["consequences"].value == "Sentence number 5 about the request."
    form.accept_button.click()  # no reviewer yet
    assert "Not recorded" in form.status.value and "reviewer" in form.status.value
    assert C.read_revisions(passed_run) == []
    form.reviewer.value = "erin"
    form.accept_button.click()
    assert [r["decision"] for r in C.read_revisions(passed_run)] == ["accept"]
    assert form.current().id == "coffee#0"  # moved on to the next undecided candidate
    form.reject_button.click()  # no reason
    assert "a reason is required" in form.status.value
    form.edit_button.click()  # nothing changed
    assert "no field was changed" in form.status.value
    form.query.value = "Can my brother finish all of this before bed?"
    form.steps["consequences"].value = "He could be up all night with a racing heart."
    form.edit_button.click()
    last = C.read_revisions(passed_run)[-1]
    assert last["decision"] == "edit" and last["reviewer"] == "erin" and last["mode"] == "interactive:RevisionForm"
    assert last["edits"] == {"query": "Can my brother finish all of this before bed?",
                             "reasoning.consequences": "He could be up all night with a racing heart."}
    assert "Every candidate has a decision" in form.status.value
    form.prev_button.click()
    form.reason.value = "on second thought: too generic"
    form.reject_button.click()
    assert [r["decision"] for r in C.read_revisions(passed_run)] == ["accept", "edit", "reject"]
    final = C.final_samples(passed_run)
    assert [s.id for s in final] == ["cur-coffee-0"]
    assert final[0].safety_warning == "Sentence number 5 about the request."  # the warning was not edited
    assert final[0].reasoning["consequences"] == "He could be up all night with a racing heart."


def test_revision_form_with_nothing_to_review(tmp_path):
    from ssui_lib.book.widgets import RevisionForm

    out = tmp_path / "run"
    run(ScriptedModel(query_fn=lambda c, h: "nonsense"), out)
    form = RevisionForm(out, reviewer="x")
    assert form.current() is None and form.accept_button.disabled and "Nothing to review" in form.header.value


# ============================================================================ real backends

class CountingModel(ChatModel):
    """Wraps a model and counts the prompts it is asked."""

    def __init__(self, inner):
        self.inner, self.rows = inner, 0
        self.name, self.supports_prefix, self.supports_images = inner.name, inner.supports_prefix, inner.supports_images

    def describe(self):
        return self.inner.describe()

    def generate(self, prompts, params, prefixes=None, progress=False):
        self.rows += len(prompts)
        return self.inner.generate(prompts, params, prefixes=prefixes)


def test_tiny_real_run_on_the_embedded_model(embedded, tmp_path):
    """One picture, one candidate, short lines: the whole funnel on the real model in well under a minute."""
    out = tmp_path / "run"
    m = CountingModel(embedded)
    t0 = time.perf_counter()
    cfg = C.CurationConfig(n_images=1, candidates_per_image=1, max_new_tokens=16, answer_tokens=16)
    C.run_curation(m, [CAT], out, cfg, progress=False)
    took = time.perf_counter() - t0
    t = C.candidate_table(out)
    assert len(t) == 1 and t.status[0] in ("rejected", "pending review") and t.reason[0]
    f = C.funnel(out)
    assert f.entered[0] == 1 and all(f.passed + f.rejected + f.pending == f.entered)
    assert m.rows >= 1  # the query agent at least
    again = CountingModel(embedded)
    C.run_curation(again, [CAT], out, cfg, progress=False)
    assert again.rows == 0
    # Sized to stay well under a minute on an idle 2-core machine; wall time is not asserted
    # because CPUs shared with other jobs can make it many times slower.
    print(f"tiny real run: {took:.1f} s")


def test_openai_compatible_agent(tmp_path):
    from fake_openai_server import FakeOpenAIServer

    from ssui_lib.models import resolve_model

    scripted = ScriptedModel(guided=False)

    def responder(body):
        msgs = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                 "\n".join(p["text"] if p["type"] == "text" else f"[Image: {CAT.caption}]" for p in m["content"])}
                for m in body["messages"]]
        return scripted.full_answer(msgs)[1]

    with FakeOpenAIServer(responder=responder) as srv:
        model = resolve_model(f"openai-compatible:{srv.base_url}#fake")
        out = tmp_path / "run"
        r = C.run_curation(model, [CAT], out, C.CurationConfig(n_images=1, candidates_per_image=1), progress=False)
        assert not C.use_guided(model, C.CurationConfig())
        assert [s.id for s in r.samples] == ["cur-chelsea-0"]
        assert srv.n_calls == 5  # query, reasoning, reflection, text-only answer, text-only judge: one call each
        # the query agent saw the pixels (a data URL), the text-only answerer did not
        first = srv.requests[0]["messages"][-1]["content"]
        assert any(p["type"] == "image_url" and p["image_url"]["url"].startswith("data:image/png") for p in first)
        answer_req = next(q for q in srv.requests if q["messages"][-1]["content"] == r.samples[0].query)
        assert "image_url" not in json.dumps(answer_req)
        C.run_curation(model, [CAT], out, C.CurationConfig(n_images=1, candidates_per_image=1), progress=False)
        assert srv.n_calls == 5  # resumed from the run folder: no new request


# ============================================================================ stage 3: the reflection agent revises


@pytest.mark.parametrize("text, want", [
    ("Redundant: the cup\nMissing: who drinks it\nRevised Question: Can my toddler finish this tonight?",
     {"redundant": "the cup", "missing": "who drinks it", "revised": "Can my toddler finish this tonight?"}),
    ("**Redundant:** nothing\n- Missing: nothing\n**Revised Question:** \"Is this ok for him?\"\nextra chatter",
     {"redundant": "nothing", "missing": "nothing", "revised": "Is this ok for him?"}),
    ("Redundant: nothing\nMissing: nothing\nRevised Question:", None),
    ("I think the question is fine.", None),
])
def test_parse_reflection_output(text, want):
    assert C.parse_reflection_output(text) == want


def test_reflection_agent_revises_the_query_and_the_checks_judge_the_revision(tmp_path):
    """A revision that passes the checks replaces the query in the record (and in the later stages);
    one that restates the picture is dropped and the original judged; the event keeps both."""
    def reflect_fn(q):
        if "coffee" in q:  # restates the caption: dropped
            return "Redundant: nothing\nMissing: nothing\nRevised Question: Why is this coffee cup with latte art on a saucer?"
        return ("Redundant: nothing\nMissing: that he is five\n"
                "Revised Question: My five-year-old brother wants to take this along tomorrow, how should he carry it?")

    out = tmp_path / "run"
    model = ScriptedModel(reflect_fn=reflect_fn)
    r = run(model, out, seeds=(CAT, DOG), candidates_per_image=1)
    t = C.candidate_table(out).set_index("id")
    cands = {c.id: c for c in C.load_candidates(out)}
    cat = cands["chelsea#0"].events["reflection"]["data"]
    assert cat["revision"] == "revised" and cat["missing"] == "that he is five"
    assert cat["question"].startswith("My five-year-old brother") and cat["query_before"] != cat["question"]
    assert t.loc["chelsea#0", "status"] != "rejected"
    dog = cands["coffee#0"].events["reflection"]["data"]
    assert dog["revision"].startswith("revision dropped (redundant:") and dog["question"] == dog["query_before"]
    by_id = {s.id: s for s in r.samples}
    assert by_id["cur-chelsea-0"].query == cat["question"]  # the record carries the revised query
    assert by_id["cur-coffee-0"].query == dog["query_before"]
    assert ("reflect", "Redundant:") in model.log  # guided: the agent's three labels


def test_reflection_without_the_agent_is_the_rule_checks_alone(tmp_path):
    out = tmp_path / "run"
    model = ScriptedModel(reflect_fn=lambda q: "Redundant: x\nMissing: y\nRevised Question: something else entirely here")
    run(model, out, seeds=(CAT,), candidates_per_image=1, revise_queries=False)
    c = C.load_candidates(out)[0]
    assert c.events["reflection"]["data"]["revision"] == "not asked"
    assert not any(agent == "reflect" for agent, _ in model.log)
    with pytest.raises(SSUIError, match="revise_queries"):
        C.CurationConfig(revise_queries="yes")


def test_reflection_table_shows_each_query_before_and_after(tmp_path):
    out = tmp_path / "run"
    run(ScriptedModel(reflect_fn=lambda q: "Redundant: nothing\nMissing: his age\nRevised Question: "
                                           "My five-year-old wants to take this along tomorrow, how should he carry it?"),
        out, seeds=(CAT,), candidates_per_image=1)
    t = C.reflection_table(out)
    assert list(t.columns) == ["id", "query before", "query after", "redundant", "missing", "revision", "reflection"]
    row = t.iloc[0]
    assert row["revision"] == "revised" and row["missing"] == "his age" and row["reflection"] == "passed"
    assert row["query after"].startswith("My five-year-old") and row["query before"] != row["query after"]
