"""``ssui train``: SRPO path optimization or the SFT / DPO / ORPO baselines (LoRA)."""
from __future__ import annotations

import torch

from pathlib import Path


from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.losses import VARIANTS
from ssui_lib.srpo.config import METHODS, PRECISIONS, TrainConfig
from ssui_lib.srpo.distributed import process_state
from ssui_lib.srpo.examples import load_exploration
from ssui_lib.srpo.train import load_trainable, train


# ----------------------------------------------------------------------------- command line


def add_commands(sub) -> None:
    """``ssui train --method srpo|sft|dpo|orpo --data DIR --out DIR [...]``."""
    p = sub.add_parser("train", help="SRPO path optimization or the SFT / DPO / ORPO baselines (LoRA)",
                       description="Train a LoRA adapter on an exploration folder (DIR/trees.jsonl). "
                                   "Writes OUT/adapter, OUT/log.jsonl, OUT/summary.json; resumes from OUT's checkpoint. "
                                   "On several GPUs: accelerate launch --config_file configs/accelerate/ddp.yaml "
                                   "-m ssui_lib train ... (--batch-size is the global batch, split between processes).")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--data", metavar="DIR", help="exploration output folder (trees.jsonl); required unless --dry-run")
    p.add_argument("--out", metavar="DIR", help="output folder; required unless --dry-run")
    p.add_argument("--model", default="embedded", help="embedded or hf:PATH (default: embedded)")
    p.add_argument("--dataset", help="dataset spec of the explored samples (default: the one DIR/stats.json records, "
                                        "else bundled:all)")
    p.add_argument("--lam", type=float, default=0.3)
    p.add_argument("--k", type=float, default=1.0)
    p.add_argument("--variant", choices=tuple(VARIANTS), default="loglik")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta / ORPO odds-ratio weight")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--max-len", type=int)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--init-adapter", metavar="DIR", help="start from this LoRA adapter folder (e.g. an SFT run's "
                   "OUT/adapter) instead of a fresh adapter; DPO's reference model is then base + this adapter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixed-precision", choices=PRECISIONS, default="auto",
                   help="bf16 autocast of the forward passes; auto: the accelerate launcher's choice, else bf16 on a "
                        "CUDA device that supports it, else no (default: auto)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass: less memory, more time")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--dry-run", action="store_true",
                   help="print the memory plan per device (weights, LoRA state, activations with and without gradient "
                        "checkpointing, tokens per step) from the model's config.json and exit (srpo/memory_plan.py)")
    p.add_argument("--devices", type=int, default=1, help="--dry-run: data-parallel devices sharing --batch-size")
    p.add_argument("--seq-len", type=int, help="--dry-run: tokens per sequence (default: --max-len, else 1024)")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16", help="--dry-run: weights' dtype")
    p.set_defaults(func=_cmd_train)


def _cmd_dry_run(a) -> int:
    from ssui_lib.models import parse_model_name
    from ssui_lib.srpo.memory_plan import plan_for_folder

    spec = parse_model_name(a.model)
    if spec.kind == "embedded":
        from ssui_lib.models.embedded import ensure_converted

        folder = ensure_converted()
    elif spec.kind == "hf":
        folder = spec.path
    else:
        raise SSUIError(f"model {a.model!r}: only local models are trained (embedded, hf:PATH)")
    plan = plan_for_folder(folder, batch_size=a.batch_size, seq_len=a.seq_len or a.max_len or 1024,
                           lora_rank=a.lora_rank, dtype=a.dtype, devices=a.devices)
    print(f"train --dry-run: {a.model}, LoRA rank {a.lora_rank}, {a.dtype}")
    print(plan.table())
    return 0


def _cmd_train(a) -> int:
    if a.dry_run:
        return _cmd_dry_run(a)
    for flag, v in (("--data", a.data), ("--out", a.out)):
        if not v:
            raise SSUIError(f"train: {flag} is required (unless --dry-run)")
    cfg = TrainConfig(method=a.method, lam=a.lam, k=a.k, variant=a.variant, beta=a.beta, epochs=a.epochs,
                      max_steps=a.max_steps, lr=a.lr, batch_size=a.batch_size, lora_rank=a.lora_rank,
                      lora_dropout=a.lora_dropout,
                      max_len=a.max_len, save_every=a.save_every, seed=a.seed, mixed_precision=a.mixed_precision,
                      gradient_checkpointing=a.gradient_checkpointing, init_adapter=a.init_adapter)
    if not (Path(a.data) / "trees.jsonl").is_file():  # before the model load: fail in milliseconds
        raise SSUIError(f"--data {a.data}: no trees.jsonl there (an exploration output folder: ssui explore --out DIR)")
    state = process_state()  # under accelerate launch: this process's device, before the model loads onto it
    cm = load_trainable(a.model)
    examples = load_exploration(a.data, cfg.method, dataset=a.dataset,
                                load_images=bool(getattr(cm, "supports_images", False)))
    s = train(cm, examples, cfg, a.out, progress=not a.no_progress)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Tear the process group down before the interpreter exits: left to interpreter shutdown,
        # gloo's threads can abort a rank ("terminate called without an active exception", exit -6)
        # after the adapter is written (seen in the killed-FSDP-run resume test).
        torch.distributed.destroy_process_group()
    if not state.is_main_process:
        return 0
    first = f"{s['first_loss']:.4f}" if s["first_loss"] is not None else "-"
    final = f"{s['final_loss']:.4f}" if s["final_loss"] is not None else "-"
    print(f"train {s['method']}: {s['steps']} steps on {s['n_examples']} examples ({s['n_pairs']} pairs); "
          f"loss {first} -> {final}; {s['processes']} process(es), mixed precision {s['mixed_precision']}; "
          f"adapter {Path(a.out) / 'adapter'}")
    return 0
