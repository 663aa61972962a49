"""benchmarks/gpu_check.py: a clear "no CUDA device" on a CPU machine; every code path on a tiny
configuration on the CPU (--tiny --allow-cpu)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_cuda_device_is_a_clear_message(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "nothing was measured" in err
    assert gpu_check.main(["--allow-cpu"]) == 2
    assert "--allow-cpu needs --tiny" in capsys.readouterr().err


def test_spec_bandwidth_lookup(gpu_check):
    assert gpu_check.spec_bandwidth("NVIDIA H200") == 4800
    assert gpu_check.spec_bandwidth("NVIDIA H100 80GB HBM3") == 3350
    assert gpu_check.spec_bandwidth("NVIDIA A100-SXM4-80GB") == 2039
    assert gpu_check.spec_bandwidth("Some Other GPU") is None


def test_published_config_builds_qwen2_5_vl_7b(gpu_check):
    from ssui_lib.srpo.memory_plan import count_params, shape_from_config

    c = gpu_check.QWEN25_VL_7B
    cfg = gpu_check.vlm_config(c)
    assert cfg.text_config.hidden_size == 3584 and cfg.vision_config.depth == 32
    assert 8.0e9 < count_params(shape_from_config({**c["text"], "vision_config": c["vision"]})) < 8.6e9
    with torch.device("meta"):
        from transformers import Qwen2_5_VLForConditionalGeneration

        n = sum(p.numel() for p in Qwen2_5_VLForConditionalGeneration(cfg).parameters())
    assert 8.2e9 < n < 8.4e9  # 8.29 B, as published


def test_tiny_run_on_cpu_prints_the_table(gpu_check, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--tiny", "--allow-cpu", "--batches", "1", "3", "--new-tokens", "4", "--prompt-len", "8",
                           "--train-batch", "2", "--train-seq", "16", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "book loop" in text and "roofline" in text and "LoRA step" in text and "vLLM: skipped (no CUDA)" in text
    res = json.loads(out.read_text())
    assert [r["batch"] for r in res["decode"]] == [1, 3]
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["roofline"] > 0 for r in res["decode"])
    assert res["train"]["seconds"] > 0 and res["train"]["planned_bytes"] > 0 and res["bandwidth_gbps"] > 0
