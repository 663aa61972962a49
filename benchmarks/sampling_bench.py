"""Tokens per second of the batched sampling path against the naive one-sequence-at-a-time loop,
on the embedded model, in the same run.

    .venv/bin/python benchmarks/sampling_bench.py [--sizes 1 4 16] [--max-new-tokens 64]

naive  = transformers' model.generate on one prompt at a time (greedy), the obvious loop.
batched = HFCausalChatModel.generate on all prompts at once: one left-padded batch, each distinct
          prompt prefilled once, stop at end of turn per row.
Under greedy decoding both must produce the same text; the script checks it and says so.
A last row shows the shared-prefix case: 4 prompts × n=4 samples (temperature 0.7), where each
prompt's prefix is computed once and its cache shared by its 4 continuations.
"""
from __future__ import annotations

import argparse
import time

import torch

from ssui_lib.data.bundled import image_ref, load_bundled
from ssui_lib.models import SamplingParams, resolve_model
from ssui_lib.models.prompts import zero_shot


def naive(m, prompts, max_new_tokens):
    texts, toks = [], 0
    for p in prompts:
        ids = m.tokenizer(m.render(p), return_tensors="pt", add_special_tokens=False)
        out = m.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, ids["input_ids"].shape[1]:]
        stop = [i for i, t in enumerate(new.tolist()) if t in m._stop_ids]
        new = new[: stop[0]] if stop else new
        toks += len(new)
        texts.append(m.tokenizer.decode(new, skip_special_tokens=True))
    return texts, toks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--max-new-tokens", type=int, default=64)
    a = ap.parse_args()
    torch.manual_seed(0)
    m = resolve_model("embedded")
    samples = [s for s in load_bundled("train") if s.kind == "irs"]
    prompts_all = [zero_shot(image_ref(s, load=False), s.query) for s in samples]
    m.generate(prompts_all[:2], SamplingParams(max_new_tokens=4))  # warm-up
    rows = []
    for n in a.sizes:
        prompts = prompts_all[:n]
        t = time.perf_counter()
        ref_texts, ref_toks = naive(m, prompts, a.max_new_tokens)
        t_naive = time.perf_counter() - t
        t = time.perf_counter()
        gens = m.generate(prompts, SamplingParams(max_new_tokens=a.max_new_tokens))
        t_fast = time.perf_counter() - t
        fast_texts = [g[0].text for g in gens]
        fast_toks = sum(g[0].n_tokens for g in gens)
        equal = sum(x == y for x, y in zip(ref_texts, fast_texts))
        rows.append((f"{n} prompts x 1", ref_toks, t_naive, fast_toks, t_fast, f"{equal}/{n}"))
        print("done:", rows[-1], flush=True)
    # shared prefix: 4 prompts x n=4 samples; naive = 16 separate sampled generate calls
    prompts = prompts_all[:4]
    t = time.perf_counter()
    naive_toks = 0
    for p in prompts:
        ids = m.tokenizer(m.render(p), return_tensors="pt", add_special_tokens=False)
        for _ in range(4):
            out = m.model.generate(**ids, max_new_tokens=a.max_new_tokens, do_sample=True, temperature=0.7, top_k=0)
            new = out[0, ids["input_ids"].shape[1]:].tolist()
            naive_toks += next((i for i, x in enumerate(new) if x in m._stop_ids), len(new))
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    gens = m.generate(prompts, SamplingParams(n=4, temperature=0.7, max_new_tokens=a.max_new_tokens, seed=0))
    t_fast = time.perf_counter() - t
    rows.append(("4 prompts x n=4 (T=0.7)", naive_toks, t_naive, sum(x.n_tokens for g in gens for x in g), t_fast, "sampled"))

    print(f"\nembedded model (SmolLM2-135M-Instruct, float32, {torch.get_num_threads()} threads), "
          f"max_new_tokens={a.max_new_tokens}\n")
    head = f"{'sequences':26s} {'naive tok':>9s} {'naive s':>8s} {'naive tok/s':>11s} {'batched tok':>11s} " \
           f"{'batched s':>9s} {'batched tok/s':>13s} {'speed-up':>8s} {'greedy equal':>12s}"
    print(head)
    print("-" * len(head))
    for name, nt, ns, ft, fs, eq in rows:
        print(f"{name:26s} {nt:9d} {ns:8.1f} {nt / ns:11.1f} {ft:11d} {fs:9.1f} {ft / fs:13.1f} "
              f"{(ft / fs) / (nt / ns):7.1f}x {eq:>12s}")


if __name__ == "__main__":
    main()
