"""Cascade attention (a shared prefix's keys held once, attended once, merged by log-sum-exp) against
plain attention over the concatenation, and the inverse-CDF sampler against the softmax it samples."""
import math

import pytest
import torch
import torch.nn.functional as F

from ssui_lib.models import SamplingParams
from ssui_lib.models import cascade as C
from ssui_lib.models import hf_lm as H
from ssui_lib.models.kv_cache import ReservedCache


def test_merge_of_two_key_sets_equals_attention_over_both():
    # one query, keys with scores [0, log 2] | [log 3]; values 1, 2 | 4 (one-dimensional)
    out_a, lse_a = torch.tensor([[(1 * 1 + 2 * 2) / 3]]), torch.tensor([math.log(3)])
    out_b, lse_b = torch.tensor([[4.0]]), torch.tensor([math.log(3)])
    merged = C.merge(out_a, lse_a, out_b, lse_b)
    assert merged.item() == pytest.approx((1 * 1 + 2 * 2 + 3 * 4) / 6)
    # a part with no visible key (lse -inf) has weight 0
    assert C.merge(out_a, lse_a, torch.tensor([[99.0]]), torch.tensor([-math.inf])).item() == pytest.approx(5 / 3)


class _Module:
    def __init__(self, layer_idx=0):
        self.layer_idx = layer_idx


def _reference(q, k_s, v_s, k, v, mask):
    B, H, _, D = q.shape
    g = H // k.shape[1]
    K = torch.cat([k_s.expand(B, -1, -1, -1), k], 2).repeat_interleave(g, 1)
    V = torch.cat([v_s.expand(B, -1, -1, -1), v], 2).repeat_interleave(g, 1)
    return F.scaled_dot_product_attention(q, K, V, attn_mask=mask).transpose(1, 2)


@pytest.mark.parametrize("q_len,masked", [(1, True), (1, False), (3, True)])
def test_cascade_attention_equals_attention_over_the_concatenation(q_len, masked):
    torch.manual_seed(0)
    B, H, Hk, D, S, L = 3, 4, 2, 8, 5, 6
    cache = ReservedCache(1, capacity=L)
    k_s, v_s = torch.randn(1, Hk, S, D), torch.randn(1, Hk, S, D)
    cache.layers[0].share(k_s, v_s)
    assert cache.get_seq_length() == S
    k, v = torch.randn(B, Hk, L, D), torch.randn(B, Hk, L, D)
    q = torch.randn(B, H, q_len, D)
    mask = None
    if masked:  # causal over the last q_len positions, row 1 left-padded by 2, row 2 by all its own tokens
        pos = torch.arange(S + L)
        mask = (pos[None, :] <= (S + L - q_len + torch.arange(q_len))[:, None]).expand(B, 1, q_len, S + L).clone()
        mask[1, ..., S:S + 2] = False
        if q_len == 1:
            mask[2, ..., S:] = False
    ref_mask = mask if mask is not None else torch.ones(B, 1, q_len, S + L, dtype=torch.bool)
    with _ctx(cache):
        out, w = C.cascade_attention(_Module(), q, k, v, mask, scaling=D ** -0.5)
    assert w is None and out.shape == (B, q_len, H, D)
    torch.testing.assert_close(out, _reference(q, k_s, v_s, k, v, ref_mask), rtol=1e-5, atol=1e-5)


class _ctx:
    def __init__(self, cache):
        self.cache = cache

    def __enter__(self):
        self.token = C._ACTIVE.set(self.cache)

    def __exit__(self, *exc):
        C._ACTIVE.reset(self.token)


def test_without_an_active_cache_it_is_transformers_sdpa():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 1, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)

    class M(_Module):
        num_key_value_groups = 2
        is_causal = True

    out, _ = C.cascade_attention(M(), q, k, v, None, scaling=8 ** -0.5)
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)).transpose(1, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ssui_lib.models.embedded import ensure_converted

    tok = AutoTokenizer.from_pretrained(ensure_converted(), local_files_only=True)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    cfg._attn_implementation = "sdpa"
    return H.HFCausalChatModel(LlamaForCausalLM(cfg).eval(), tok, name="tiny")


@pytest.mark.parametrize("group_min", [3, 64])  # several prefill groups / one
def test_generate_with_cascade_equals_generate_without(tiny, monkeypatch, group_min):
    monkeypatch.setattr(H, "PREFILL_GROUP_MIN", group_min)
    monkeypatch.setattr(H, "CASCADE_MIN_SAVED", 0)  # the tiny batch here would not reach the threshold
    system = {"role": "system", "content": "You answer in one line. " * 8}  # the shared prefix
    qs = ["Hi."] * 3 + ["Tell me, in a few words, what colour the sky is on a clear day in summer."] * 3 \
        + ["What is 2+2?", "Name a colour.", "Say something about trains and stations and the night."]
    prompts = [[system, {"role": "user", "content": q + f" ({i})"}] for i, q in enumerate(qs)]
    calls = []
    real = C.cascade_attention
    monkeypatch.setitem(C.AttentionInterface._global_mapping, C.NAME,
                        lambda *a, **k: calls.append(C._ACTIVE.get() is not None) or real(*a, **k))
    assert C.usable(tiny.model)
    p = SamplingParams(n=2, max_new_tokens=12, stop=("e",))
    fast = tiny.generate(prompts, p)
    assert calls and all(calls)  # the cascade path is what ran
    monkeypatch.setattr(C, "usable", lambda model: False)
    plain = tiny.generate(prompts, p)
    assert tiny.model.config._attn_implementation == "sdpa"  # restored after each call
    for a, b in zip(fast, plain):
        for x, y in zip(a, b):
            assert (x.text, x.n_tokens, x.finish_reason) == (y.text, y.n_tokens, y.finish_reason)
            assert x.logprob == pytest.approx(y.logprob, abs=1e-3)


def test_inverse_cdf_sampling_follows_the_softmax_and_never_draws_a_zero():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0, -1e9]]).repeat(100_000, 1)
    draws = H.sample_tokens(logits, 1.0, 1.0, gen)
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    torch.testing.assert_close(freq, torch.softmax(logits[0].double(), -1), rtol=0, atol=0.006)
    assert freq[3] == 0
    hot = torch.bincount(H.sample_tokens(logits[:2000], 2.0, 1.0, gen), minlength=4).double() / 2000
    assert hot[0] > freq[0]  # a higher temperature flattens the distribution
    # nucleus: at T = 0.5 the top token has p = 0.867 >= top_p = 0.8, so it alone is kept
    assert set(H.sample_tokens(logits[:1000], 0.5, 0.8, gen).tolist()) == {2}


def test_a_short_shared_prefix_over_few_rows_does_not_use_cascade(tiny, monkeypatch):
    calls = []
    real = C.cascade_attention
    monkeypatch.setitem(C.AttentionInterface._global_mapping, C.NAME,
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    system = {"role": "system", "content": "You answer in one line. " * 8}
    prompts = [[system, {"role": "user", "content": q}] for q in ("Hi.", "Name a colour.")]
    assert tiny.generate(prompts, SamplingParams(max_new_tokens=4))
    assert not calls  # ~50 shared tokens x 1 other row: far below CASCADE_MIN_SAVED
