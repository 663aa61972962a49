"""The embedded default model behind the ChatModel interface, and model-name resolution."""
import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.models import SamplingParams, parse_model_name, resolve_model
from ssui_lib.models.base import ImageRef, flatten_for_text
from ssui_lib.models.prompts import zero_shot

P1 = [{"role": "user", "content": "Name a fruit."}]
P2 = [{"role": "user", "content": "What is 2+2? Answer briefly."}]


def naive_greedy(m, prompt, max_new_tokens):
    """transformers' own generate, one sequence at a time: the reference for the batched path."""
    ids = m.tokenizer(m.render(prompt), return_tensors="pt", add_special_tokens=False)
    out = m.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return m.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.mark.slow
def test_batched_greedy_equals_naive(embedded):
    gens = embedded.generate([P1, P2, P1], SamplingParams(max_new_tokens=20))
    assert [len(g) for g in gens] == [1, 1, 1]
    for p, g in zip([P1, P2, P1], gens):
        assert g[0].text == naive_greedy(embedded, p, 20)
        assert g[0].logprob is not None and g[0].logprob <= 0


@pytest.mark.slow
def test_sampling_n_seed_stop(embedded):
    p = SamplingParams(n=3, temperature=0.8, max_new_tokens=24, seed=7)
    a = embedded.generate([P1, P2], p)
    b = embedded.generate([P1, P2], p)
    assert [[x.text for x in g] for g in a] == [[x.text for x in g] for g in b]  # seeded
    assert all(len(g) == 3 for g in a)
    s = embedded.generate([P1], SamplingParams(max_new_tokens=40, stop=("a",)))[0][0]
    assert "a" not in s.text and s.finish_reason == "stop"


@pytest.mark.slow
def test_prefix_continuation_and_logprobs(embedded):
    g = embedded.generate([P2], SamplingParams(max_new_tokens=8), prefixes=["The answer is"])[0][0]
    assert g.text.strip().startswith("4")
    lp = embedded.logprobs([P2, P2], [" 4.", " 5."], prefixes=["The answer is", "The answer is"])
    assert len(lp[0]) == len(embedded.tokenizer(" 4.", add_special_tokens=False)["input_ids"])
    assert sum(lp[0]) > sum(lp[1])  # 4 is likelier than 5


def test_caption_mode():
    ref = ImageRef(caption="railway tracks at sunset")
    msgs = flatten_for_text(zero_shot(ref, "Help me come up with a more daring pose here."))
    assert msgs[1]["content"] == "[Image: railway tracks at sunset]\nHelp me come up with a more daring pose here."


@pytest.mark.parametrize("name, msg", [
    ("", "non-empty"), ("gpt4", "unknown model name"), ("hf:", "missing PATH"),
    ("hf:/x+adapter:", "missing PATH after '+adapter:'"), ("openai:", "missing MODEL"),
    ("openai-compatible:http://h:1/v1", "expected openai-compatible:URL#MODEL"),
    ("openai-compatible:localhost#m", "must be http:// or https:// with a host"),
])
def test_bad_model_names(name, msg):
    with pytest.raises(SSUIError) as e:
        parse_model_name(name)
    assert msg in str(e.value)


def test_model_name_forms(tmp_path):
    assert parse_model_name("embedded").to_dict() == {"kind": "embedded"}
    assert parse_model_name("hf:/w/q+adapter:/a").to_dict() == {"kind": "hf", "path": "/w/q", "adapter": "/a"}
    assert parse_model_name("openai:gpt-4o").to_dict() == {"kind": "openai", "model": "gpt-4o", "base_url": None}
    assert parse_model_name("openai-compatible:http://127.0.0.1:8000/v1#qwen").to_dict() == {
        "kind": "openai", "model": "qwen", "base_url": "http://127.0.0.1:8000/v1"}
    with pytest.raises(SSUIError, match="not found"):
        resolve_model(f"hf:{tmp_path}/missing")
    with pytest.raises(SSUIError, match="no config.json"):
        resolve_model(f"hf:{tmp_path}")


def test_converted_copy_is_hash_checked(tmp_path):
    """A corrupted float32 copy is detected (and rebuilt on the next load)."""
    from ssui_lib.models import embedded as emb

    folder = emb.ensure_converted()
    assert emb._valid(folder)
    fake = tmp_path / folder.name
    fake.mkdir()
    for f in folder.iterdir():
        (fake / f.name).write_bytes(f.read_bytes())
    with open(fake / "model.safetensors", "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    assert not emb._valid(fake)


def test_shared_prefix_len():
    from ssui_lib.models.hf_lm import shared_prefix_len

    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps one token of its own
    assert shared_prefix_len([[7], [7, 8]]) == 0
    assert shared_prefix_len([[1, 2], [3, 2]]) == 0 and shared_prefix_len([]) == 0


@pytest.mark.slow
def test_prompts_sharing_a_long_prefix_prefill_it_once_and_decode_as_alone(embedded, monkeypatch):
    import ssui_lib.models.hf_lm as H

    system = {"role": "system", "content": "You are a careful assistant. " * 12}
    prompts = [[system, {"role": "user", "content": q}] for q in ("What is 2 + 2?", "Name a colour.", "Say hi.")]
    texts = [embedded.render(p) for p in prompts]
    assert H.shared_prefix_len(embedded.tokenizer(texts, add_special_tokens=False)["input_ids"]) >= H.SHARED_PREFIX_MIN
    calls = []
    forward = embedded.model.forward
    monkeypatch.setattr(embedded.model, "forward", lambda *a, **k: calls.append(k["input_ids"].shape) or forward(*a, **k))
    gens = embedded.generate(prompts, SamplingParams(max_new_tokens=12))
    assert calls[0][0] == 1 and calls[1][0] == 3  # the shared part once, then the three suffixes
    for p, g in zip(prompts, gens):
        assert g[0].text == naive_greedy(embedded, p, 12)


@pytest.mark.slow
def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(embedded, monkeypatch):
    prompts = [P1, P2, [{"role": "user", "content": "Count from one to twenty in words."}],
               [{"role": "user", "content": "Write one word."}]]
    p = SamplingParams(max_new_tokens=30, stop=(".",))
    widths = []
    forward = embedded.model.forward
    monkeypatch.setattr(embedded.model, "forward", lambda *a, **k: (k["input_ids"].shape[1] == 1 and widths.append(
        k["input_ids"].shape[0])) or forward(*a, **k))
    together = embedded.generate(prompts, p)
    assert widths[0] == 4 and min(widths) < 4  # decode steps: finished rows were dropped from the batch
    monkeypatch.undo()
    for prompt, g in zip(prompts, together):
        alone = embedded.generate([prompt], p)[0][0]
        assert (g[0].text, g[0].n_tokens, g[0].finish_reason) == (alone.text, alone.n_tokens, alone.finish_reason)
        assert g[0].logprob == pytest.approx(alone.logprob, abs=1e-3)
