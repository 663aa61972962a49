"""A GPU check that needs no weights and no internet: is this CUDA machine fit for the `paper` profile?

    .venv/bin/python benchmarks/gpu_check.py [--batches 1 8 32 64] [--new-tokens 64] [--prompt-len 256]
        [--train-batch 8] [--train-seq 1024] [--hbm-gbps GB/S] [--skip-vllm] [--json OUT]

What it builds: Qwen2.5-VL-7B's architecture from its published config values (config.json of
Qwen/Qwen2.5-VL-7B-Instruct: text 3584 hidden, 18944 MLP, 28 layers, 28 heads / 4 KV heads,
vocabulary 152064; vision tower 32 blocks of 1280) with random bfloat16 weights, on the GPU.
What it measures, printed as one table:
  * HBM bandwidth: a device-to-device copy of 2 GiB (read + write), beside the spec value
    (``--hbm-gbps``, else looked up from the device name);
  * batched decode tokens/s of the book's own loop (``models/hf_lm.HFCausalChatModel.generate_texts``:
    shared prefill, reserved KV cache) on the 7B decoder (Qwen2.5-VL-7B's language model: a
    text-only decode step of the VLM is exactly this), at each batch size, against the roofline
    ``batch / (weight bytes / bandwidth)`` — every step reads the weights once (KV-cache reads,
    small at these lengths, are left out, so the roofline is an upper bound);
  * the same with vLLM where it is installed (``LLM(load_format="dummy")``: random weights, no
    files), ``ignore_eos`` so every sequence runs its full length;
  * one LoRA training step (rank 8 on q/k/v/o/gate/up/down, gradient checkpointing, AdamW) of the
    whole VLM on ``--train-batch`` × ``--train-seq`` tokens: seconds and peak memory, beside the
    memory plan of ``ssui train --dry-run`` (``srpo/memory_plan.py``).
On a machine without CUDA it prints "no CUDA device" and exits with status 2. ``--tiny --allow-cpu``
runs every code path on a tiny configuration on the CPU (what the tests do).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

# Qwen/Qwen2.5-VL-7B-Instruct config.json (published values)
QWEN25_VL_7B = {
    "text": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000, rms_norm_eps=1e-6,
                 rope_theta=1000000.0, mrope_section=[16, 24, 24], tie_word_embeddings=False),
    "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=3584,
                   fullatt_block_indexes=[7, 15, 23, 31], in_chans=3),
}
TINY = {
    "text": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=10000.0,
                 mrope_section=[2, 3, 3], tie_word_embeddings=False, bos_token_id=0, eos_token_id=1),
    "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                   temporal_patch_size=2, window_size=56, out_hidden_size=64, fullatt_block_indexes=[1], in_chans=3),
}
# HBM bandwidth by device name (GB/s, vendor spec sheets); --hbm-gbps overrides
HBM_GBPS = {"H200": 4800, "H100 SXM": 3350, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "A100-SXM4-80GB": 2039,
            "A100 80GB PCIe": 1935, "A100-SXM4-40GB": 1555, "A100": 1555, "L40S": 864, "A10G": 600, "L4": 300,
            "RTX 4090": 1008, "RTX 6000 Ada": 960}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def spec_bandwidth(name: str) -> float | None:
    """The spec HBM bandwidth (GB/s) for a CUDA device name, longest matching key first."""
    for key in sorted(HBM_GBPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return float(HBM_GBPS[key])
    return None


def text_config(c: dict):
    from transformers import Qwen2Config

    t = {k: v for k, v in c["text"].items() if k != "mrope_section"}
    return Qwen2Config(**t)


def vlm_config(c: dict):
    from transformers import Qwen2_5_VLConfig

    t = {k: v for k, v in c["text"].items() if k not in ("rope_theta", "mrope_section")}
    t["rope_parameters"] = {"rope_type": "default", "rope_theta": c["text"]["rope_theta"],
                            "mrope_section": c["text"]["mrope_section"]}
    return Qwen2_5_VLConfig(text_config=t, vision_config=dict(c["vision"]), image_token_id=151655,
                            video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)


def word_tokenizer(n: int = 256):
    """A word-level tokenizer of ``n`` words plus <|im_end|> and <|endoftext|> (no files, no internet)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(n)}
    vocab.update({"<|endoftext|>": n, "<|im_end|>": n + 1, "[UNK]": n + 2})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="[UNK]")


def measure_bandwidth(device: str, gib: float) -> float:
    """GB/s of a device copy (bytes read + written per second), best of 5."""
    import torch

    n = int(gib * (1 << 30)) // 2
    a = torch.empty(n, dtype=torch.bfloat16, device=device)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        b.copy_(a)
        sync(device)
        best = min(best, time.perf_counter() - t)
    del a, b
    return 2 * n * 2 / best / 1e9


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_model(cls, config, device: str, dtype):
    """``cls(config)`` with random weights, built directly on ``device`` in ``dtype``."""
    import torch

    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(old)
    return model.eval()


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def decode_book(c: dict, device: str, dtype, batches: list[int], new_tokens: int, prompt_len: int) -> list[dict]:
    """Tokens/s of the book's batched loop on the decoder, per batch size."""
    import torch
    from transformers import Qwen2ForCausalLM

    from ssui_lib.models.base import SamplingParams
    from ssui_lib.models.hf_lm import HFCausalChatModel

    model = random_model(Qwen2ForCausalLM, text_config(c), device, dtype)
    tok = word_tokenizer()
    cm = HFCausalChatModel(model, tok, name="qwen2.5-vl-7b-decoder", max_batch_rows=max(batches))
    wb = weight_bytes(model)
    rows = []
    for b in batches:
        texts = [" ".join(f"w{(k * 7 + j) % 256}" for j in range(prompt_len)) for k in range(b)]
        params = SamplingParams(max_new_tokens=new_tokens, temperature=1.0, seed=0)
        cm.generate_texts(texts[:1], SamplingParams(max_new_tokens=2))  # warm-up
        sync(device)
        t = time.perf_counter()
        out = cm.generate_texts(texts, params)
        sync(device)
        dt = time.perf_counter() - t
        n = sum(g[0].n_tokens for g in out)
        rows.append({"engine": "book loop", "batch": b, "tokens": n, "seconds": round(dt, 3), "tokens_per_s": n / dt})
    del cm, model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows, wb


def decode_vllm(c: dict, batches: list[int], new_tokens: int, prompt_len: int) -> list[dict] | str:
    """Tokens/s of vLLM with dummy weights (the 7B decoder's config), or why it did not run."""
    try:
        from vllm import LLM, SamplingParams as VP
        from vllm.inputs import TokensPrompt
    except ImportError:
        return "not installed (pip install vllm on the GPU machine)"
    with tempfile.TemporaryDirectory() as d:
        cfg = text_config(c)
        cfg.architectures = ["Qwen2ForCausalLM"]
        cfg.torch_dtype = "bfloat16"
        cfg.save_pretrained(d)
        word_tokenizer().save_pretrained(d)
        llm = LLM(model=d, load_format="dummy", dtype="bfloat16", skip_tokenizer_init=True, enforce_eager=False,
                  gpu_memory_utilization=0.85, max_model_len=prompt_len + new_tokens + 16, seed=0)
        rows = []
        for b in batches:
            prompts = [TokensPrompt(prompt_token_ids=[(k * 7 + j) % 256 for j in range(prompt_len)]) for k in range(b)]
            sp = VP(max_tokens=new_tokens, ignore_eos=True, temperature=1.0, seed=0)
            llm.generate(prompts[:1], VP(max_tokens=2, ignore_eos=True), use_tqdm=False)
            t = time.perf_counter()
            outs = llm.generate(prompts, sp, use_tqdm=False)
            dt = time.perf_counter() - t
            n = sum(len(o.outputs[0].token_ids) for o in outs)
            rows.append({"engine": "vLLM", "batch": b, "tokens": n, "seconds": round(dt, 3), "tokens_per_s": n / dt})
        del llm
    return rows


def lora_step(c: dict, device: str, dtype, batch: int, seq: int) -> dict:
    """One LoRA step of the whole VLM on text tokens: seconds and peak memory (CUDA)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = random_model(Qwen2_5_VLForConditionalGeneration, vlm_config(c), device, dtype)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(LORA_TARGETS), lora_dropout=0.0))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    ids = torch.randint(0, 256, (batch, seq), device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(2):  # the first step warms up kernels and allocates AdamW's state
        sync(device)
        t = time.perf_counter()
        logits = model(input_ids=ids).logits[:, :-1]
        loss = -torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - t)
        del logits, loss
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    out = {"batch": batch, "seq": seq, "seconds": round(times[-1], 3), "peak_bytes": peak,
           "weights_bytes": weight_bytes(model.get_base_model()) - sum(
               p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)}
    del model, opt
    gc.collect()
    return out


def planned(c: dict, batch: int, seq: int):
    """The memory plan of ``ssui train --dry-run`` for this configuration."""
    from ssui_lib.srpo.memory_plan import plan_memory, shape_from_config

    cfg = {**c["text"], "vision_config": c["vision"]}
    return plan_memory(shape_from_config(cfg), batch_size=batch, seq_len=seq, lora_rank=8)


def table(res: dict) -> str:
    g = 1024 ** 3
    lines = [f"device: {res['device']}   config: {res['config']}   decoder weights: {res['decoder_weight_bytes'] / g:.2f} GiB",
             f"HBM bandwidth: measured copy {res['bandwidth_gbps']:.0f} GB/s, spec "
             + (f"{res['spec_gbps']:.0f} GB/s" if res["spec_gbps"] else "unknown (--hbm-gbps)"),
             "", f"{'engine':<10} {'batch':>5} {'tokens/s':>10} {'roofline':>10} {'of roofline':>11}"]
    for r in res["decode"]:
        lines.append(f"{r['engine']:<10} {r['batch']:>5} {r['tokens_per_s']:>10.0f} {r['roofline']:>10.0f} "
                     f"{r['tokens_per_s'] / r['roofline']:>10.0%}")
    if isinstance(res.get("vllm"), str):
        lines.append(f"vLLM: {res['vllm']}")
    t = res["train"]
    peak = f"{t['peak_bytes'] / g:.1f} GiB" if t["peak_bytes"] else "n/a (CPU)"
    lines += ["", f"LoRA step (rank 8, grad. checkpointing, AdamW) at batch {t['batch']} x {t['seq']} tokens: "
              f"{t['seconds']:.2f} s, peak {peak}; memory plan (ssui train --dry-run): {t['planned_bytes'] / g:.1f} GiB"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--train-seq", type=int, default=1024)
    ap.add_argument("--hbm-gbps", type=float, help="the device's HBM bandwidth (GB/s) for the roofline")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--tiny", action="store_true", help="a tiny configuration instead of the 7B one (tests)")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU (with --tiny; tests)")
    a = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not a.allow_cpu:
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False): this check needs an NVIDIA GPU; "
              "nothing was measured", file=sys.stderr)
        return 2
    if a.allow_cpu and not a.tiny:
        print("gpu_check: --allow-cpu needs --tiny (the 7B model on a CPU would take hours)", file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() and not a.allow_cpu else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    c = TINY if a.tiny else QWEN25_VL_7B
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    res = {"device": name, "config": "tiny" if a.tiny else "Qwen2.5-VL-7B", "spec_gbps": a.hbm_gbps or spec_bandwidth(name),
           "bandwidth_gbps": measure_bandwidth(device, 2.0 if device == "cuda" else 0.125)}
    bw = (res["spec_gbps"] or res["bandwidth_gbps"]) * 1e9
    book, wb = decode_book(c, device, dtype, a.batches, a.new_tokens, a.prompt_len)
    res["decoder_weight_bytes"] = wb
    vllm = "skipped (--skip-vllm)" if a.skip_vllm else "skipped (no CUDA)" if device != "cuda" else decode_vllm(
        c, a.batches, a.new_tokens, a.prompt_len)
    res["vllm"] = vllm if isinstance(vllm, str) else "ran"
    res["decode"] = [{**r, "roofline": r["batch"] / (wb / bw)} for r in book + (vllm if isinstance(vllm, list) else [])]
    res["train"] = lora_step(c, device, dtype, a.train_batch, a.train_seq)
    res["train"]["planned_bytes"] = planned(c, a.train_batch, a.train_seq).total_with(True)
    print(table(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
