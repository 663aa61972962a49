"""LoRA training throughput of the embedded model, as tokens/s and as a fraction of the machine's
matrix-product ceiling, measured in the same run.

    .venv/bin/python benchmarks/train_bench.py [--steps 4] [--rows 2] [--continuation-tokens 128]

One step = what ssui_lib.srpo.train does per term: score_rows (forward, logits only where labelled),
backward, AdamW step on the LoRA parameters (default TrainConfig: rank 8 on attention + MLP).

Work per token: 2·N forward and 2·N backward through the frozen weights (the input gradients; their
weight gradients, the third 2·N of the usual 6·N, are what LoRA skips), N = the matrix-product
parameters of the transformer blocks; the LM head (tied embedding, H parameters) costs 4·H per
*scored* position only (logits_to_keep). Attention scores and the LoRA matrices are left out (a few
per cent here), so the fraction is a slight under-estimate.

The ceiling: float32 matrix products of the model's own shapes ([tokens, 576] @ [576, 1536]) timed
in the same run, before and after the steps (a shared machine's ceiling moves with its load), and
the idle machine's ~124 GFLOP/s (DESIGN.md).
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from ssui_lib.data.bundled import image_ref, load_bundled
from ssui_lib.models.prompts import zero_shot
from ssui_lib.models.trainable import Row
from ssui_lib.srpo.config import TrainConfig
from ssui_lib.srpo.train import attach_lora, load_trainable, score_rows, seed_everything

IDLE_CEILING = 124e9  # FLOP/s, float32 matrix products on the idle 2-core machine (DESIGN.md)


def matmul_ceiling(tokens: int, reps: int = 20) -> float:
    """FLOP/s of [tokens, 576] @ [576, 1536] float32 products, now."""
    a, b = torch.randn(tokens, 576), torch.randn(576, 1536)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return reps * 2 * tokens * 576 * 1536 / (time.perf_counter() - t)


def counts(model) -> tuple[int, int]:
    """(N, H): matrix-product parameters of the blocks, and of the LM head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings().weight.numel()
    body = sum(m.weight.numel() for name, m in base.named_modules()
               if isinstance(m, torch.nn.Linear) and "lora_" not in name and m is not base.get_output_embeddings())
    return body, head


def measure(a, dropout: float) -> dict:
    """One configuration: load, attach LoRA (this dropout), warm up, time ``a.steps`` steps."""
    cfg = TrainConfig(lora_dropout=dropout)
    seed_everything(0)
    cm = load_trainable("embedded")
    model = attach_lora(cm, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    n_body, n_head = counts(model)
    samples = [s for s in load_bundled("train") if s.kind == "irs"]
    words = " ".join(s.query for s in samples)
    ids = cm.tokenizer(words, add_special_tokens=False)["input_ids"]
    rows = [Row(zero_shot(image_ref(s, load=False), s.query),
                cm.tokenizer.decode(ids[i * 7: i * 7 + a.continuation_tokens]))
            for i, s in enumerate(samples[: a.steps * a.rows + a.rows])]
    batches = [rows[i:i + a.rows] for i in range(0, len(rows), a.rows)]
    model.train()
    warm = batches[0]
    score_rows(cm, warm, cfg.max_len)[0][0].sum().backward()
    opt.zero_grad(set_to_none=True)
    tokens0 = sum(b["attention_mask"].numel() for b in cm.collate_rows(batches[1]))
    ceil0 = matmul_ceiling(tokens0)
    tokens = scored = 0
    t = time.perf_counter()
    for batch in batches[1: a.steps + 1]:
        for enc in cm.collate_rows(batch):
            tokens += int(enc["attention_mask"].sum())
            scored += int((enc["labels"] != -100).sum())
        out = score_rows(cm, batch, cfg.max_len)
        loss = -sum((tlp * m).sum() for tlp, m in out)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t
    ceil1 = matmul_ceiling(tokens0)
    return {"dropout": dropout, "rank": cfg.lora_rank, "targets": cm.lora_target_modules(), "n_body": n_body,
            "n_head": n_head, "tokens": tokens, "scored": scored, "seconds": dt,
            "flops": tokens * 4 * n_body + scored * 4 * n_head, "ceiling": (ceil0 + ceil1) / 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rows", type=int, default=2, help="rows per forward (a pair = 2)")
    ap.add_argument("--continuation-tokens", type=int, default=128)
    ap.add_argument("--dropouts", type=float, nargs="+", default=[0.05, TrainConfig().lora_dropout],
                    help="LoRA dropouts to compare (the first: the earlier default; the last: today's)")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    res = [measure(a, d) for d in a.dropouts]
    r0 = res[0]
    print(f"embedded model, LoRA rank {r0['rank']} on {r0['targets']}, {torch.get_num_threads()} threads, "
          f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"N (block matrices) = {r0['n_body'] / 1e6:.1f} M, H (LM head) = {r0['n_head'] / 1e6:.1f} M, "
          f"{a.steps} steps of {a.rows} rows, {r0['tokens']} tokens ({r0['scored']} scored) per configuration\n")
    head = (f"{'LoRA dropout':>12s} {'s':>6s} {'tokens/s':>9s} {'useful GFLOP/s':>15s} {'ceiling now':>12s} "
            f"{'fraction':>9s} {'of 124 GFLOP/s':>15s}")
    print(head)
    print("-" * len(head))
    for r in res:
        useful = r["flops"] / r["seconds"]
        print(f"{r['dropout']:12.2f} {r['seconds']:6.1f} {r['tokens'] / r['seconds']:9.1f} {useful / 1e9:15.1f} "
              f"{r['ceiling'] / 1e9:12.1f} {useful / r['ceiling']:9.2f} {useful / IDLE_CEILING:15.2f}")
    print("\nceiling now: [tokens, 576] @ [576, 1536] float32 products timed before and after the steps (the same "
          "weights again and again: warm caches, an upper bound the model's own products, reading ~0.4 GB of "
          "weights per pass, come near but do not reach)")


if __name__ == "__main__":
    main()
