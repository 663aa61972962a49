"""The cost ledger: counters in the library, reported per chapter in the book's manifest."""
import json

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
    assert got["sequences_generated"] == 4 and got["tokens_generated"] == sum(g.n_tokens for row in gens for g in row)
    n_prompt = len(embedded.tokenizer(embedded.render(p), add_special_tokens=False)["input_ids"])
    # what was computed: the two equal prompts share their prefix, prefilled once (each keeps one own token)
    assert got["tokens_prefilled"] == n_prompt + 1
    ledger.reset()
    embedded.logprobs([p], [" An apple."])
    assert ledger.snapshot()["tokens_prefilled"] > n_prompt

    vlm = HFVisionChatModel(str(build_tiny_qwen2_5_vl(tmp_path / "qwen")), device="cpu")
    ledger.reset()
    gens = vlm.generate([p], SamplingParams(max_new_tokens=4))
    got = ledger.snapshot()
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
