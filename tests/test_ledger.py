"""The cost ledger: counters in the library, reported per chapter in the book's manifest."""
import json
import os

import pytest

from ssui_lib.core import ledger


def test_count_snapshot_and_file(tmp_path, monkeypatch):
    ledger.reset()
    monkeypatch.delenv(ledger.ENV, raising=False)
    ledger.count("tokens_generated", 5)
    assert ledger.snapshot()["tokens_generated"] == 5 and set(ledger.snapshot()) == set(ledger.KEYS)
    path = tmp_path / "sub" / "ledger.json"
    monkeypatch.setenv(ledger.ENV, str(path))
    ledger.count("api_calls")
    ledger.count("api_calls", 0)  # nothing to add: no write needed, no change
    assert ledger.read(path)["api_calls"] == 1 and ledger.read(path)["tokens_generated"] == 5
    with pytest.raises(KeyError, match="unknown key 'tokens'"):
        ledger.count("tokens")
    assert ledger.read(tmp_path / "missing.json") == {k: 0 for k in ledger.KEYS}
    (tmp_path / "bad.json").write_text("{torn")
    assert ledger.read(tmp_path / "bad.json")["api_calls"] == 0
    ledger.reset()
    assert ledger.snapshot()["api_calls"] == 0


@pytest.mark.slow
def test_local_generation_and_scoring_are_counted(embedded, tmp_path):
    from ssui_lib.models import SamplingParams
    from ssui_lib.models.hf_vlm import HFVisionChatModel
    from tiny_vlms import build_tiny_qwen2_5_vl

    p = [{"role": "user", "content": "Name a fruit."}]
    ledger.reset()
    gens = embedded.generate([p, p], SamplingParams(max_new_tokens=6, n=2, temperature=0.7, seed=1))
    got = ledger.snapshot()
    assert ledger.phases()["generation"] > 0 and ledger.phases()["scoring"] == 0
    assert got["sequences_generated"] == 4 and got["tokens_generated"] == sum(g.n_tokens for row in gens for g in row)
    n_prompt = len(embedded.tokenizer(embedded.render(p), add_special_tokens=False)["input_ids"])
    # what was computed: the two equal prompts share their prefix, prefilled once (each keeps one own token)
    assert got["tokens_prefilled"] == n_prompt + 1
    ledger.reset()
    embedded.logprobs([p], [" An apple."])
    assert ledger.snapshot()["tokens_prefilled"] > n_prompt
    assert ledger.phases()["scoring"] > 0 and ledger.phases()["generation"] == 0

    ledger.reset()
    vlm = HFVisionChatModel(str(build_tiny_qwen2_5_vl(tmp_path / "qwen")), device="cpu")
    assert ledger.loads() == {f"hf:{tmp_path / 'qwen'}": 1} and ledger.phases()["model_loading"] > 0
    ledger.reset()
    gens = vlm.generate([p], SamplingParams(max_new_tokens=4))
    got = ledger.snapshot()
    assert ledger.phases()["generation"] > 0
    assert got["sequences_generated"] == 1 and got["tokens_generated"] == gens[0][0].n_tokens
    assert got["tokens_prefilled"] > 0
    ledger.reset()


NB = '''# %% tags=["parameters"]
profile = "smoke"
n = 3
# %%
from ssui_lib.core import ledger
ledger.count("tokens_generated", 40 * n)
ledger.count("tokens_prefilled", 1000)
ledger.count("api_calls", 2)
ledger.count("api_cache_hits", 5)
ledger.count("training_steps", 4)
# %%
import time
with ledger.phase("plotting"):
    time.sleep(0.3)
    with ledger.phase("model_loading", "tiny"):
        time.sleep(0.2)
'''
# the tiny book of test_book_runner (chapters 00 and 01; chapter 01 declares `fail`)
from test_book_runner import TOML  # noqa: E402


@pytest.mark.slow
def test_manifest_has_each_chapters_ledger_and_the_total(tmp_path):
    from ssui_lib.book.runner import run_book

    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "a.py").write_text(NB)
    (tmp_path / "nb" / "b.py").write_text(NB.replace('ledger.count("api_calls", 2)', "")
                                          .replace("n = 3\n", "n = 3\nfail = False\n"))
    (tmp_path / "book.toml").write_text(TOML)
    run_book("smoke", config=tmp_path / "book.toml", progress=False)
    man = json.loads((tmp_path / "papermill_runs/smoke/manifest.json").read_text())
    a, b = man["chapters"]["00"]["ledger"], man["chapters"]["01"]["ledger"]
    assert a["tokens_generated"] == 80 and a["api_calls"] == 2 and a["api_cache_hits"] == 5
    assert a["training_steps"] == 4 and a["wall_s"] == man["chapters"]["00"]["duration_s"]
    assert b["api_calls"] == 0 and b["tokens_prefilled"] == 1000  # each chapter's own kernel, own counts
    assert man["ledger"]["tokens_generated"] == 160 and man["ledger"]["api_calls"] == 2
    assert not list((tmp_path / "papermill_runs/smoke").glob(".*.ledger.json"))
    # where the time went: the kernel's phases, the runner's kernel start/stop, the rest is "other"
    ph = a["phases"]
    assert list(ph) == list(ledger.ALL_PHASES)
    assert 0.3 <= ph["plotting"] < 1.5 and 0.2 <= ph["model_loading"] < 1.5
    assert ph["kernel_start"] > 0.2  # a kernel takes time to start
    assert sum(ph.values()) == pytest.approx(a["wall_s"], abs=0.05)
    assert a["loads"] == {"tiny": 1} and a["phases_inclusive"]["plotting"] >= 0.5
    assert man["ledger"]["phases"]["model_loading"] == pytest.approx(ph["model_loading"] + b["phases"]["model_loading"])
    from ssui_lib.book.timings import timings_report

    text = timings_report(tmp_path / "papermill_runs/smoke/manifest.json")
    assert "| 00 |" in text and "| 01 |" in text and "| **total** |" in text and "00: 1× tiny" in text


def test_ledger_table_from_a_manifest(tmp_path):
    from ssui_lib.book.environment import ledger_table

    assert ledger_table(tmp_path / "none.json").empty
    m = {"chapters": {"01": {"ledger": {"tokens_generated": 10, "wall_s": 2.5}},
                      "00": {"ledger": {"tokens_generated": 5, "api_calls": 3, "wall_s": 1.0}},
                      "02": {"status": "failed"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    df = ledger_table(tmp_path / "manifest.json")
    assert list(df.index) == ["00", "01", "total"]
    assert df.loc["total", "tokens generated"] == 15 and df.loc["total", "wall s"] == 3.5
    assert df.loc["00", "API calls"] == 3 and df.loc["01", "API calls"] == 0


# ------------------------------------------------------------------ phases: where the time goes

class _Clock:
    """A fake time.perf_counter: tests move it by hand, so the seconds are exact."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(ledger.time, "perf_counter", c)
    monkeypatch.delenv(ledger.ENV, raising=False)
    ledger.reset()
    yield c
    ledger.reset()


def test_phase_time_is_exclusive_the_innermost_counts(clock):
    with ledger.phase("judging"):
        clock.t += 1.0  # the judge's own work
        with ledger.phase("generation"):
            clock.t += 5.0  # the judge's model decoding
            with ledger.phase("generation"):  # re-entered inside itself: the same block
                clock.t += 2.0
        clock.t += 0.5
        with ledger.phase("embedding"):
            clock.t += 0.25
    got = ledger.phases()
    assert got["judging"] == pytest.approx(1.5) and got["generation"] == pytest.approx(7.0)
    assert got["embedding"] == pytest.approx(0.25)
    assert sum(got.values()) == pytest.approx(8.75)  # the block's wall time, counted once
    inc = ledger.inclusive()
    assert inc["judging"] == pytest.approx(8.75) and inc["generation"] == pytest.approx(7.0)
    assert set(got) == set(ledger.PHASES) and got["training"] == 0.0


def test_phase_open_counts_up_to_now_and_errors_close_it(clock):
    with pytest.raises(RuntimeError):
        with ledger.phase("training"):
            clock.t += 3.0
            assert ledger.phases()["training"] == pytest.approx(3.0)  # still open
            raise RuntimeError("boom")
    clock.t += 10.0  # outside every phase: nobody's time
    assert ledger.phases()["training"] == pytest.approx(3.0)
    with pytest.raises(KeyError, match="unknown phase 'decoding'"):
        with ledger.phase("decoding"):
            pass
    with pytest.raises(KeyError, match="unknown phase 'other'"):
        ledger.timed("other")


def test_timed_decorator_and_loads(clock):
    @ledger.timed("model_loading", load="tiny")
    def load():
        clock.t += 2.0
        return "model"

    assert load() == "model" and load() == "model"
    assert ledger.loads() == {"tiny": 2} and ledger.phases()["model_loading"] == pytest.approx(4.0)
    assert load.__name__ == "load"


def test_phases_are_written_to_the_ledger_file(clock, tmp_path, monkeypatch):
    path = tmp_path / "ledger.json"
    monkeypatch.setenv(ledger.ENV, str(path))
    with ledger.phase("scoring"):
        clock.t += 1.25
        with ledger.phase("model_loading", "embedded"):
            clock.t += 4.0
        assert not path.exists()  # written when the outermost block ends (or a count changes)
    got = ledger.read_timing(path)
    assert got["phases"]["scoring"] == 1.25 and got["phases"]["model_loading"] == 4.0
    assert got["inclusive"]["scoring"] == 5.25 and got["loads"] == {"embedded": 1}
    ledger.count("api_calls")
    assert ledger.read(path)["api_calls"] == 1 and ledger.read_timing(path)["loads"] == {"embedded": 1}
    empty = ledger.read_timing(tmp_path / "missing.json")
    assert empty["loads"] == {} and set(empty["phases"]) == set(ledger.PHASES) and not any(empty["phases"].values())


def test_worker_threads_inside_a_phase_are_not_counted_twice(clock):
    import threading

    def worker(dt):
        with ledger.phase("generation", load="api-client"):  # one request of a pool serving the call
            clock.t += dt

    with ledger.phase("generation"):
        clock.t += 2.0
        threads = [threading.Thread(target=worker, args=(0.5,)) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    # the call's wall time (2 + 3 × 0.5) once, not again for each worker's block
    assert ledger.phases()["generation"] == pytest.approx(3.5) and ledger.loads() == {"api-client": 3}
    th = threading.Thread(target=worker, args=(1.0,))  # no phase open: a thread's own block counts
    th.start()
    th.join()
    assert ledger.phases()["generation"] == pytest.approx(4.5) and ledger.inclusive()["generation"] == pytest.approx(4.5)


# ------------------------------------------------------------------ the library's phases and loads

def test_judging_and_plotting_are_timed(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from ssui_lib.book.plots import savefig
    from ssui_lib.eval.offline_rules import RulesJudge
    from test_judge_offline import TRAIN

    monkeypatch.delenv(ledger.ENV, raising=False)
    ledger.reset()
    RulesJudge().judge(TRAIN[:2], ["I'm sorry, but I can't help with that.", TRAIN[1].safe_reply])
    assert ledger.phases()["judging"] > 0 and ledger.inclusive()["judging"] > 0
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    savefig(fig, "test", "00_timing", root=tmp_path)
    assert ledger.phases()["plotting"] > 0 and (tmp_path / "figures/test/00_timing.png").is_file()
    ledger.reset()


def test_the_offline_judge_is_loaded_once_per_process(tmp_path, monkeypatch):
    import joblib

    from ssui_lib.eval import offline_judge as oj
    from test_judge_offline import TRAIN

    monkeypatch.delenv(ledger.ENV, raising=False)
    key = oj.training_key(oj.training_rows(TRAIN))
    joblib.dump({"safe": "fitted", "effective": "fitted"}, tmp_path / f"offline-judge-{key}.joblib")
    ledger.reset()
    first, k1 = oj.load_or_train(TRAIN, tmp_path)
    again = [oj.LearnedJudge(TRAIN, tmp_path).models() for _ in range(3)]  # e.g. one judge per evaluation
    assert k1 == key and all(m is first for m in again)
    assert ledger.loads() == {"offline judge": 1}
    # a new file (retrained, another mtime) is loaded again, never served stale
    joblib.dump({"safe": "refitted", "effective": "refitted"}, tmp_path / f"offline-judge-{key}.joblib")
    later = (tmp_path / f"offline-judge-{key}.joblib").stat().st_mtime_ns + 10_000_000
    os.utime(tmp_path / f"offline-judge-{key}.joblib", ns=(later, later))
    assert oj.load_or_train(TRAIN, tmp_path)[0]["safe"] == "refitted" and ledger.loads() == {"offline judge": 2}
    ledger.reset()


@pytest.mark.slow
def test_embedded_and_sentence_models_are_loaded_once_per_process(embedded, monkeypatch):
    from ssui_lib.data import embeddings
    from ssui_lib.models import LazyModel, resolve_model
    from ssui_lib.models import embedded as emb

    monkeypatch.delenv(ledger.ENV, raising=False)
    emb._load.cache_clear()  # as in a fresh kernel
    embeddings._sentence_model.cache_clear()
    ledger.reset()
    a = resolve_model("embedded")
    b = LazyModel("embedded").load()
    c = emb.load_embedded()
    assert a.model is b.model is c.model
    embeddings.embed_texts(["a first text for the timing test"])
    embeddings.embed_texts(["a second text for the timing test"])
    assert ledger.loads() == {"embedded": 1, "all-MiniLM-L6-v2": 1}
    got = ledger.phases()
    assert got["model_loading"] > 0 and got["embedding"] > 0
    ledger.reset()
