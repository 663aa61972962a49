"""How fast could sampling_bench's "64 prompts x 1" row be on this machine, at best, in float32?

    .venv/bin/python benchmarks/decode_ceiling.py [--prompts 64] [--max-new-tokens 64] [--naive 8]

The batched call's work, measured on the call itself (prompt tokens prefilled, tokens generated, how
long each row ran), priced at this machine's measured rates, each in its best case:

prefill      2 x (decoder weights) FLOPs per prompt token (the LM head runs at one position per
             prompt; a prefix all prompts share counted once, as generate prefills it once), at the float32 rate of the model's own weight products over a prefill-sized
             batch of rows (512 rows at once);
decode       2 x (all weights, LM head included) FLOPs per generated token, at the float32 rate of
             the same products over 64 rows (a decode step's batch), weights streamed layer after
             layer as a decode step does (not one hot matrix in cache);
key/value    the cached keys and values each generated token's attention reads (its row's own
             positions only, no padding), at this machine's read bandwidth (a sum over 1 GB).

Nothing else is counted: no attention arithmetic, norms, activations, sampling, Python or copies,
and the parts do not overlap. So "bound" is an upper limit on the batched tokens/s (and on its
speed-up over the naive loop, measured here as in sampling_bench) that no float32 implementation on
this machine can pass with these matrix-product and memory rates; a real one gets a fraction of it.
The measured batched call is printed beside it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling_bench import all_prompts, naive  # noqa: E402  (the same prompts and naive loop)

from ssui_lib.models import SamplingParams, resolve_model  # noqa: E402
from ssui_lib.models.hf_lm import SHARED_PREFIX_MIN, shared_prefix_len  # noqa: E402


def linear_rate(weights: list[torch.Tensor], rows: int, repeats: int = 3) -> float:
    """GFLOP/s of ``x @ W.T`` with ``rows`` rows over every weight in turn (as one forward pass)."""
    xs = {w.shape[1]: torch.randn(rows, w.shape[1]) for w in weights}
    flops = 2 * rows * sum(w.numel() for w in weights)
    with torch.no_grad():
        for w in weights:
            torch.nn.functional.linear(xs[w.shape[1]], w)
        t = time.perf_counter()
        for _ in range(repeats):
            for w in weights:
                torch.nn.functional.linear(xs[w.shape[1]], w)
        dt = (time.perf_counter() - t) / repeats
    return flops / dt / 1e9


def read_bandwidth(gb: float = 1.0) -> float:
    """GB/s of summing a float32 tensor of ``gb`` GB (best of three)."""
    x = torch.ones(int(gb * 1e9 / 4))
    x.sum()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--naive", type=int, default=8, help="prompts the naive loop runs on (for its tokens/s)")
    a = ap.parse_args()
    torch.manual_seed(0)
    m = resolve_model("embedded")
    model, tok = m.model, m.tokenizer
    prompts = all_prompts(a.prompts)
    m.generate(prompts[:2], SamplingParams(max_new_tokens=4))  # warm-up

    t = time.perf_counter()
    _, naive_toks = naive(m, prompts[: a.naive], a.max_new_tokens)
    naive_rate = naive_toks / (time.perf_counter() - t)
    t = time.perf_counter()
    gens = m.generate(prompts, SamplingParams(max_new_tokens=a.max_new_tokens))
    batched_s = time.perf_counter() - t
    generated = [g[0].n_tokens for g in gens]
    ids = [tok(m.render(p), add_special_tokens=False)["input_ids"] for p in prompts]
    prompt_lens = [len(x) for x in ids]
    shared = shared_prefix_len(ids)
    shared = shared if shared >= SHARED_PREFIX_MIN else 0  # prefilled once for all prompts, as generate does
    prefilled = shared + sum(n - shared for n in prompt_lens)

    layer_w = [mod.weight.detach() for name, mod in model.model.named_modules() if isinstance(mod, torch.nn.Linear)]
    head_w = model.lm_head.weight.detach()
    cfg = model.config
    kv_per_pos = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4

    prefill_flops = 2 * sum(w.numel() for w in layer_w) * prefilled
    decode_flops = 2 * (sum(w.numel() for w in layer_w) + head_w.numel()) * sum(generated)
    kv_bytes = kv_per_pos * sum(n * L + n * (n - 1) // 2 for n, L in zip(generated, prompt_lens))
    rate_prefill = linear_rate(layer_w, 512, repeats=1)
    rate_decode = linear_rate(layer_w + [head_w], 64)
    bw = read_bandwidth()
    parts = [("prefill (weights x prompt tokens)", prefill_flops / 1e9, "GFLOP", rate_prefill, "GFLOP/s"),
             ("decode (weights x generated tokens)", decode_flops / 1e9, "GFLOP", rate_decode, "GFLOP/s"),
             ("key/value reads of decode attention", kv_bytes / 1e9, "GB", bw, "GB/s")]
    total = sum(w / r for _, w, _, r, _ in parts)
    toks = sum(generated)

    print(f"\nembedded model (float32, {torch.get_num_threads()} threads, {os.cpu_count()} cores), "
          f"{a.prompts} prompts ({sum(prompt_lens)} prompt tokens, {prefilled} prefilled), max_new_tokens={a.max_new_tokens}, "
          f"{toks} tokens generated\n")
    head = f"{'part':38s} {'work':>12s} {'rate (measured)':>18s} {'seconds':>8s}"
    print(head)
    print("-" * len(head))
    for name, w, wu, r, ru in parts:
        print(f"{name:38s} {w:8.1f} {wu:>5s} {r:10.1f} {ru:>7s} {w / r:8.2f}")
    print("-" * len(head))
    print(f"{'bound (sum of the parts)':38s} {'':12s} {'':18s} {total:8.2f}")
    print(f"\nnaive loop ({a.naive} prompts, one at a time): {naive_rate:.1f} tok/s")
    print(f"bound:    {toks / total:6.1f} tok/s = {toks / total / naive_rate:5.1f}x the naive loop")
    print(f"measured: {toks / batched_s:6.1f} tok/s = {toks / batched_s / naive_rate:5.1f}x "
          f"({batched_s:.1f} s; {total / batched_s:.0%} of the bound)")


if __name__ == "__main__":
    main()
