"""The fast decode loop of hf_lm against plain references, on a tiny random Llama (fast, deterministic):
the reserved KV cache gives the logits DynamicCache gives; stop strings looked for every few steps
end rows exactly where a per-step check ends them; greedy output equals a cache-free loop."""
import pytest
import torch

from ssui_lib.models import SamplingParams
from ssui_lib.models import hf_lm as H
from ssui_lib.models.kv_cache import ReservedCache


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from ssui_lib.models.embedded import ensure_converted

    return AutoTokenizer.from_pretrained(ensure_converted(), local_files_only=True)


def tiny_llama(vocab: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def tiny(tok):
    return H.HFCausalChatModel(tiny_llama(len(tok)), tok, name="tiny")


def test_reserved_cache_gives_the_logits_of_dynamic_cache():
    from transformers import DynamicCache

    model = tiny_llama(100)
    ids = torch.randint(0, 100, (2, 7))
    with torch.no_grad():
        caches = [DynamicCache(config=model.config), ReservedCache(2, capacity=8)]  # 8: forces a regrowth
        outs = []
        for cache in caches:
            logits = [model(input_ids=ids, past_key_values=cache, use_cache=True).logits[:, -1]]
            cache.batch_repeat_interleave(2)
            nxt = logits[0].argmax(-1).repeat_interleave(2)[:, None]
            for step in range(6):
                if step == 3:
                    cache.batch_select_indices(torch.tensor([0, 2, 3]))
                    nxt = nxt[[0, 2, 3]]
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True).logits[:, -1]
                logits.append(out)
                nxt = out.argmax(-1)[:, None]
            outs.append(logits)
    assert caches[1].get_seq_length() == 13 and caches[1].layers[0]._k.shape[2] >= 13
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_find_stop_strings_ends_rows_where_a_per_step_check_would(tok):
    words = [" one", " two", ".", " four", "."]
    ids = [tok(w, add_special_tokens=False)["input_ids"] for w in words]
    assert all(len(x) == 1 for x in ids)
    ids = [x[0] for x in ids]
    dec = H._Decoded(rows=3, steps=5, device="cpu")
    for step, t in enumerate(ids):
        dec.record(step, torch.tensor([0, 1, 2]), torch.tensor([t, t, t]), torch.full((3,), -0.5))
    dec.end_at(torch.tensor([2]), 1, keep_token=False)  # row 2 met end of turn at step 1: only " one" counts
    hit = dec.find_stop_strings(tok, (".",), max_stop=1, first=0, last=4)
    assert hit == [0, 1]
    gen, finish, lps = dec.results()
    assert gen[0] == ids[:3] and finish[0] == "stop" and lps[0] == pytest.approx(-1.5)
    assert gen[2] == ids[:1] and finish[2] == "stop" and lps[2] == pytest.approx(-1.0)
    assert dec.find_stop_strings(tok, (".",), 1, first=3, last=4) == []  # ended rows are not found again


def reference_greedy(m, text: str, max_new: int, stops: tuple[str, ...]):
    """No cache, no batch: the whole sequence through the model at every step; stop strings checked
    after every token on the last max_stop + 4 tokens (the rule the fast loop must reproduce)."""
    ids = m._ids(text)
    gen, lp, w = [], 0.0, max((len(s) for s in stops), default=0) + 4
    for _ in range(max_new):
        with torch.no_grad():
            logits = m.model(input_ids=torch.tensor([ids + gen])).logits[0, -1]
        t = int(logits.argmax())
        lp += float(torch.log_softmax(logits, -1)[t])
        if t in m._stop_ids:
            return gen, "stop", lp
        gen.append(t)
        if stops and any(s in m.tokenizer.decode(gen[-w:]) for s in stops):
            return gen, "stop", lp
    return gen, "length", lp


@pytest.mark.parametrize("every", [1, 3, 8])
def test_batched_greedy_with_stop_strings_equals_the_cache_free_loop(tiny, monkeypatch, every):
    monkeypatch.setattr(H, "STOP_CHECK_EVERY", every)
    system = {"role": "system", "content": "You answer in one line. " * 8}  # long enough to be shared
    prompts = [[system, {"role": "user", "content": q}] for q in ("Hi.", "Name a colour.", "What is 2+2?")]
    p = SamplingParams(max_new_tokens=20, stop=("e", "\n"))
    gens = tiny.generate(prompts, p)
    assert {g[0].finish_reason for g in gens} >= {"stop"}
    for prompt, g in zip(prompts, gens):
        ids, finish, lp = reference_greedy(tiny, tiny.render(prompt), 20, p.stop)
        assert g[0].n_tokens == len(ids) and g[0].finish_reason == finish
        assert g[0].logprob == pytest.approx(lp, abs=1e-3)
        text = tiny.tokenizer.decode(ids, skip_special_tokens=True)
        assert g[0].text == text[: min((text.find(s) for s in p.stop if s in text), default=len(text))]


def test_samples_are_seeded_and_n_rows_share_a_prompt(tiny):
    p = SamplingParams(n=4, temperature=1.0, max_new_tokens=10, seed=3, stop=("e",))
    a = tiny.generate([[{"role": "user", "content": "Hi."}]] * 2, p)
    b = tiny.generate([[{"role": "user", "content": "Hi."}]] * 2, p)
    assert [[x.text for x in g] for g in a] == [[x.text for x in g] for g in b]
    assert [len(g) for g in a] == [4, 4] and len({x.text for g in a for x in g}) > 1


def test_prefill_groups_sort_by_length_and_bound_the_padding():
    assert H.prefill_groups([5, 3, 4]) == ([0, 1, 2], [(0, 3)])  # too few rows to split
    lengths = [10] * 8 + [40] * 8 + [11] * 4
    order, groups = H.prefill_groups(lengths, max_waste=0.15, min_rows=4)
    assert sorted(order) == list(range(20)) and [lengths[i] for i in order] == sorted(lengths)
    assert groups == [(0, 12), (12, 20)]
    for a, b in groups:
        part = [lengths[i] for i in order[a:b]]
        assert len(part) >= 4 and max(part) * len(part) - sum(part) <= 0.15 * max(part) * len(part)
    assert H.prefill_groups(lengths, min_rows=16)[1] == [(0, 20)]


def test_prompts_of_unequal_length_prefilled_in_groups_decode_as_alone(tiny, monkeypatch):
    monkeypatch.setattr(H, "PREFILL_GROUP_MIN", 3)
    system = {"role": "system", "content": "You answer in one line. " * 8}
    qs = ["Hi."] * 3 + ["Tell me, in a few words, what colour the sky is on a clear day in summer."] * 3 \
        + ["What is 2+2?", "Name a colour.", "Say something about trains and stations and the night."]
    prompts = [[system, {"role": "user", "content": q + f" ({i})"}] for i, q in enumerate(qs)]
    lengths = [len(tiny._ids(tiny.render(x))) for x in prompts]
    assert len(H.prefill_groups(lengths)[1]) > 1  # the grouped path is what runs
    p = SamplingParams(max_new_tokens=12, stop=("e",))
    together = tiny.generate(prompts, p)
    for prompt, g in zip(prompts, together):
        alone = tiny.generate([prompt], p)[0][0]
        assert (g[0].text, g[0].n_tokens, g[0].finish_reason) == (alone.text, alone.n_tokens, alone.finish_reason)
        assert g[0].logprob == pytest.approx(alone.logprob, abs=1e-3)
    s = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=1)
    assert [[x.text for x in g] for g in tiny.generate(prompts, s)] == [[x.text for x in g] for g in tiny.generate(prompts, s)]


def test_should_compact_weighs_the_steps_saved_against_one_copy():
    assert not H.should_compact(0, 64, 60)  # nothing finished
    assert not H.should_compact(64, 64, 60)  # all finished: the loop ends, nothing to keep
    assert not H.should_compact(1, 64, 0)  # last step: nothing left to save
    assert not H.should_compact(1, 64, 63)  # one row of 64 for 63 steps: 63 < 64
    assert H.should_compact(1, 64, 64) and H.should_compact(2, 64, 32)
    assert not H.should_compact(16, 64, 3)  # a quarter of the batch, 3 steps before the end: not worth a copy
    assert H.should_compact(1, 4, 4) and not H.should_compact(1, 4, 3, min_ratio=1.0)
    assert not H.should_compact(2, 64, 32, min_ratio=2.0)


def test_rows_that_leave_the_batch_early_decode_as_the_cache_free_loop(tiny, monkeypatch):
    monkeypatch.setattr(H, "STOP_CHECK_EVERY", 1)
    system = {"role": "system", "content": "You answer in one line. " * 8}
    prompts = [[system, {"role": "user", "content": q}] for q in ("Hi.", "Name a colour.", "What is 2+2?", "Why?",
                                                                  "Say a number.", "Go on.")]
    p = SamplingParams(max_new_tokens=24, stop=("x",))  # the tiny model's rows meet it after 20 or 24 tokens
    widths = []
    forward = tiny.model.forward
    monkeypatch.setattr(tiny.model, "forward", lambda *a, **k: (k["input_ids"].shape[1] == 1 and widths.append(
        k["input_ids"].shape[0])) or forward(*a, **k))
    gens = tiny.generate(prompts, p)
    monkeypatch.setattr(tiny.model, "forward", forward)
    assert widths[0] == 6 and min(widths) < 6  # the rows that met the stop string left the batch
    for prompt, g in zip(prompts, gens):
        ids, finish, lp = reference_greedy(tiny, tiny.render(prompt), 24, p.stop)
        assert (g[0].n_tokens, g[0].finish_reason) == (len(ids), finish)
        assert g[0].logprob == pytest.approx(lp, abs=1e-3)


def test_sampled_rows_do_not_depend_on_when_finished_rows_leave_the_batch(tiny, monkeypatch):
    """Every row draws its own uniform number at every step, so the samples are the same whether
    finished rows leave the batch at once, never, or by the default rule."""
    monkeypatch.setattr(H, "STOP_CHECK_EVERY", 1)
    system = {"role": "system", "content": "You answer in one line. " * 8}
    prompts = [[system, {"role": "user", "content": q}] for q in ("Hi.", "Name a colour.", "What is 2+2?")]
    p = SamplingParams(n=4, temperature=1.0, max_new_tokens=24, seed=5, stop=("k",))
    runs = {}
    for rule in ("default", "always", "never"):
        if rule != "default":
            monkeypatch.setattr(H, "should_compact", (lambda f, l, s: 0 < f < l) if rule == "always" else
                                (lambda f, l, s: False))
        gens = tiny.generate(prompts, p)
        runs[rule] = [[(x.text, x.n_tokens, x.finish_reason, round(x.logprob, 3)) for x in g] for g in gens]
    ends = [x[1] for g in runs["never"] for x in g]
    assert len(set(ends)) > 2 and max(ends) > min(ends)  # rows end at different steps: compaction runs
    assert runs["default"] == runs["always"] == runs["never"]
