"""Tokens per second of the batched sampling path against the naive one-sequence-at-a-time loop,
on the embedded model, in the same run (interleaved: naive then batched at each size).

    .venv/bin/python benchmarks/sampling_bench.py [--sizes 1 16 64 128] [--max-new-tokens 64]
        [--naive-max 16] [--shared 8x8] [--bf16 N]

naive   = transformers' model.generate on one prompt at a time (greedy), the obvious loop. Its
          tokens/s does not depend on how many prompts there are (one at a time), so at each size it
          runs on at most ``--naive-max`` of them; greedy equality is checked on those.
batched = HFCausalChatModel.generate on all prompts at once (chunks of max_batch_rows rows): a
          shared prefix prefilled once, each prompt once, a reserved KV cache, rows leaving the batch.
The last row is shared-prefix sampling: P prompts × n samples (temperature 0.7) against n separate
sampled generate calls per prompt (on at most ``--naive-max`` sequences in all).
With ``--bf16 N`` a last row runs N prompts on a bfloat16 copy of the model (fast on CPUs with AMX,
slow on others): its greedy texts against the float32 naive loop's say what that mode would cost.
The machine's load (1-minute average) is printed before and after: on a shared machine absolute
tokens/s fall, the ratios (measured interleaved) much less; the CPU-time columns (this process's
CPU seconds, ``time.process_time``) are steadier still there: run with OMP_NUM_THREADS=1 and the
speed-up by CPU time is the one to read on a loaded machine.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from ssui_lib.data.bundled import image_ref, load_bundled
from ssui_lib.models import SamplingParams, resolve_model
from ssui_lib.models.prompts import zero_shot


def naive(m, prompts, max_new_tokens, sample: bool = False):
    """One generate call per sequence; returns (texts, generated tokens)."""
    texts, toks = [], 0
    for p in prompts:
        ids = m.tokenizer(m.render(p), return_tensors="pt", add_special_tokens=False)
        kw = dict(do_sample=True, temperature=0.7, top_k=0) if sample else dict(do_sample=False)
        out = m.model.generate(**ids, max_new_tokens=max_new_tokens, **kw)
        new = out[0, ids["input_ids"].shape[1]:]
        stop = [i for i, t in enumerate(new.tolist()) if t in m._stop_ids]
        new = new[: stop[0]] if stop else new
        toks += len(new)
        texts.append(m.tokenizer.decode(new, skip_special_tokens=True))
    return texts, toks


def greedy_row(ref, fast, prompts, k: int, max_new_tokens: int, name: str) -> tuple:
    """The naive loop of ``ref`` on the first ``k`` prompts, then ``fast``'s batched greedy generate on
    all of them: (name, naive tokens, naive s, batched tokens, batched s, greedy equal, CPU s of each)."""
    t, c = time.perf_counter(), time.process_time()
    ref_texts, ref_toks = naive(ref, prompts[:k], max_new_tokens)
    t_naive, c_naive = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    gens = fast.generate(prompts, SamplingParams(max_new_tokens=max_new_tokens))
    t_fast, c_fast = time.perf_counter() - t, time.process_time() - c
    equal = sum(x == g[0].text for x, g in zip(ref_texts, gens))
    return name, ref_toks, t_naive, sum(g[0].n_tokens for g in gens), t_fast, f"{equal}/{k}", c_naive, c_fast


def all_prompts(count: int) -> list:
    """Distinct zero-shot prompts from the bundled records (train, then test), as many as asked."""
    samples = [s for split in ("train", "test") for s in load_bundled(split)]
    seen, out = set(), []
    for s in samples:
        if s.query not in seen:
            seen.add(s.query)
            out.append(zero_shot(image_ref(s, load=False), s.query))
    if len(out) < count:
        raise SystemExit(f"only {len(out)} distinct bundled prompts; ask for at most that many")
    return out[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64, 128])
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--naive-max", type=int, default=16, help="naive loop on at most this many sequences per row")
    ap.add_argument("--shared", default="8x8", help="PROMPTSxN for the shared-prefix sampling row")
    ap.add_argument("--bf16", type=int, default=0, metavar="N",
                    help="add a row: N prompts with the weights in bfloat16 (greedy equal counted against the "
                         "float32 naive loop: what that faster mode costs in outputs)")
    a = ap.parse_args()
    n_prompts, n_samples = (int(x) for x in a.shared.lower().split("x"))
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    m = resolve_model("embedded")
    prompts_all = all_prompts(max(a.sizes + [n_prompts]))
    m.generate(prompts_all[:2], SamplingParams(max_new_tokens=4))  # warm-up
    rows = []
    for n in a.sizes:
        rows.append(greedy_row(m, m, prompts_all[:n], min(n, a.naive_max), a.max_new_tokens, f"{n} prompts x 1"))
        print("done:", rows[-1], f"load {os.getloadavg()[0]:.1f}", flush=True)
    prompts = prompts_all[:n_prompts]
    per = max(1, a.naive_max // n_samples)
    t, c = time.perf_counter(), time.process_time()
    _, naive_toks = naive(m, [p for p in prompts[:per] for _ in range(n_samples)], a.max_new_tokens, sample=True)
    t_naive, c_naive = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    gens = m.generate(prompts, SamplingParams(n=n_samples, temperature=0.7, max_new_tokens=a.max_new_tokens, seed=0))
    t_fast, c_fast = time.perf_counter() - t, time.process_time() - c
    rows.append((f"{n_prompts} prompts x n={n_samples} (T=0.7)", naive_toks, t_naive,
                 sum(x.n_tokens for g in gens for x in g), t_fast, "sampled", c_naive, c_fast))
    if a.bf16:  # the opt-in that changes outputs: its speed and how many greedy texts stay equal
        import copy

        from ssui_lib.models.hf_lm import HFCausalChatModel

        mb = HFCausalChatModel(copy.deepcopy(m.model).to(torch.bfloat16), m.tokenizer, name="embedded-bf16")
        mb.generate(prompts_all[:2], SamplingParams(max_new_tokens=4))  # warm-up
        rows.append(greedy_row(m, mb, prompts_all[:a.bf16], min(a.bf16, a.naive_max), a.max_new_tokens,
                               f"{a.bf16} prompts x 1, bfloat16"))
    load1 = os.getloadavg()[0]

    print(f"\nembedded model (SmolLM2-135M-Instruct, float32, {torch.get_num_threads()} threads), "
          f"max_new_tokens={a.max_new_tokens}, max_batch_rows={m.max_batch_rows}, "
          f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores\n")
    head = f"{'sequences':26s} {'naive tok':>9s} {'naive s':>8s} {'naive tok/s':>11s} {'batched tok':>11s} " \
           f"{'batched s':>9s} {'batched tok/s':>13s} {'speed-up':>8s} {'by CPU s':>8s} {'greedy equal':>12s}"
    print(head)
    print("-" * len(head))
    for name, nt, ns, ft, fs, eq, nc, fc in rows:
        print(f"{name:26s} {nt:9d} {ns:8.1f} {nt / ns:11.1f} {ft:11d} {fs:9.1f} {ft / fs:13.1f} "
              f"{(ft / fs) / (nt / ns):7.1f}x {(ft / fc) / (nt / nc):7.1f}x {eq:>12s}")
    print("\nspeed-up = batched tok/s / naive tok/s (wall clock); by CPU s = the same per CPU second of this process")


if __name__ == "__main__":
    main()
