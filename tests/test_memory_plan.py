"""ssui train --dry-run: the memory plan, held to what autograd really saves on tiny models."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from ssui_lib.cli import main
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.trainable import LM_TARGETS
from ssui_lib.srpo.memory_plan import (
    activation_elements_per_token, count_params, layer_elements_per_token, lora_params, measure_activations,
    plan_for_folder, plan_memory, shape_from_config,
)

TOL = 0.10  # the plan's activations within 10 % of the measurement


def tiny_llama(h=64, i=176, layers=3, kv=2, tied=False, vocab=512, rank=8):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(vocab_size=vocab, hidden_size=h, intermediate_size=i, num_hidden_layers=layers, num_attention_heads=4,
               num_key_value_heads=kv, max_position_embeddings=256, tie_word_embeddings=tied)
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="sdpa"))
    n_base = sum(p.numel() for p in base.parameters())
    model = get_peft_model(base, LoraConfig(r=rank, target_modules=list(LM_TARGETS), lora_dropout=0.0))
    return cfg, model, n_base


@pytest.mark.parametrize("dims", [dict(), dict(h=128), dict(i=352), dict(kv=4, rank=16)])
def test_activations_match_the_measurement(dims):
    rank = dims.get("rank", 8)
    cfg, model, _ = tiny_llama(**dims)
    ids = torch.randint(0, cfg["vocab_size"], (2, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measured = measure_activations(model, ids)
        measured_ck = measure_activations(model, ids, checkpointing=True)
    shape = shape_from_config(cfg)
    plan = plan_memory(shape, batch_size=2, seq_len=64, lora_rank=rank, dtype="float32")
    assert plan.activations + plan.logits == pytest.approx(measured, rel=TOL)
    stored = 128 * activation_elements_per_token(shape, rank, True) * 4 + plan.logits
    assert stored == pytest.approx(measured_ck, rel=TOL)
    assert plan.activations_checkpointed == stored - plan.logits + 128 * layer_elements_per_token(shape, rank) * 4
    assert measured_ck < measured / 2


@pytest.mark.parametrize("tied", [False, True])
def test_parameter_counts_are_exact_for_llama(tied):
    cfg, model, n_base = tiny_llama(tied=tied)
    shape = shape_from_config(cfg)
    assert count_params(shape) == n_base
    assert lora_params(shape, 8) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_plan_for_a_folder_reads_its_weights_and_the_vlm_config(tmp_path):
    from tiny_vlms import build_tiny_qwen2_5_vl

    folder = build_tiny_qwen2_5_vl(tmp_path / "qwen")
    from transformers import Qwen2_5_VLForConditionalGeneration

    n = sum(p.numel() for p in Qwen2_5_VLForConditionalGeneration.from_pretrained(folder).parameters())
    plan = plan_for_folder(folder, batch_size=8, seq_len=128, devices=2, dtype="bfloat16")
    assert plan.weights == n * 2 and plan.tokens_per_step == 4 * 128 and plan.global_batch == 8
    shape = shape_from_config(json.loads((folder / "config.json").read_text()))
    assert shape.vision_params > 0 and count_params(shape) == pytest.approx(n, rel=0.15)
    text = plan.table()
    assert "2 device(s), global batch 8, 512 tokens per step per device" in text
    assert "activations, gradient checkpointing" in text and "total with checkpointing" in text


def test_qwen2_5_vl_7b_published_config():
    cfg = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
           "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False,
           "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "patch_size": 14,
                             "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3}}
    n = count_params(shape_from_config(cfg))
    assert 8.0e9 < n < 8.6e9  # 8.29 B published
    plan = plan_memory(shape_from_config(cfg), batch_size=8, seq_len=1024)
    assert plan.activations > 10 * plan.activations_checkpointed / 2 and plan.total_with(True) < plan.total_with(False)


def test_bad_settings_and_configs_are_named(tmp_path):
    with pytest.raises(SSUIError, match="field 'hidden_size' missing"):
        shape_from_config({"num_hidden_layers": 2}, "x/config.json")
    shape = shape_from_config(tiny_llama()[0])
    with pytest.raises(SSUIError, match="does not split over 3 devices"):
        plan_memory(shape, batch_size=8, devices=3)
    with pytest.raises(SSUIError, match="dtype"):
        plan_memory(shape, dtype="int8")
    with pytest.raises(SSUIError, match="no config.json"):
        plan_for_folder(tmp_path)
    (tmp_path / "config.json").write_text("{bad")
    with pytest.raises(SSUIError, match=r"config.json:1: not valid JSON"):
        plan_for_folder(tmp_path)


def test_cli_dry_run_prints_the_plan(tmp_path, capsys):
    cfg, model, _ = tiny_llama()
    folder = tmp_path / "llama"
    model.get_base_model().save_pretrained(folder)
    assert main(["train", "--method", "srpo", "--dry-run", "--model", f"hf:{folder}", "--devices", "2",
                 "--seq-len", "256"]) == 0
    out = capsys.readouterr().out
    assert "1024 tokens per step per device" in out and "LoRA state" in out and "no checkpointing" in out
    assert main(["train", "--method", "srpo", "--model", f"hf:{folder}"]) == 2
    assert "--data is required (unless --dry-run)" in capsys.readouterr().err
