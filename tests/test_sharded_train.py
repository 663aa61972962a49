"""ssui_lib.srpo.sharded: the LoRA loop under FSDP2 (the shipped configs/accelerate/fsdp.yaml), in lockstep.

The two-process test runs ``ssui train`` on 2 CPU processes (torchrun, gloo) with the environment
``accelerate launch --config_file configs/accelerate/fsdp.yaml`` gives each worker (computed by accelerate's
own launcher code from the shipped file), on the tiny random Llama: the frozen base is sharded with torch's
``fully_shard`` and every forward pass all-gathers it, so processes with unequal work would hang (an SRPO
sample here has 1-3 forward passes, and steps of 4 and 1 examples leave one process without an example).
Tolerance against the 1-process run: max |Δ| ≤ 1e-5 over the adapter, as in tests/test_distributed_train.py
(the all-gathered weights are the same numbers, so only the order of the gradient sum differs; the
config's activation checkpointing recomputes the same activations: ≤ 1e-6 in that file's test).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssui_lib.cli import main
from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.config import TrainConfig
from ssui_lib.srpo.distributed import Processes
from ssui_lib.srpo.examples import Pair, TrainExample
from ssui_lib.srpo.sharded import (
    ForwardCounter, Slot, bounds, forward_plan, fsdp_settings, is_row_by_row, schedule, sharded_engine, wrap_targets,
)
from test_distributed_train import TOL, TRAIN, Launch, adapter, data, jsonl, max_diff, tiny_llama  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
FSDP_YAML = ROOT / "configs" / "accelerate" / "fsdp.yaml"
ZERO3_YAML = ROOT / "configs" / "accelerate" / "zero3.yaml"
FSDP_ENV = ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "FSDP_OFFLOAD_PARAMS", "FSDP_AUTO_WRAP_POLICY",
            "FSDP_TRANSFORMER_CLS_TO_WRAP", "FSDP_RESHARD_AFTER_FORWARD", "FSDP_ACTIVATION_CHECKPOINTING",
            "ACCELERATE_USE_DEEPSPEED")


def launcher_env(path: Path) -> dict[str, str]:
    """The environment ``accelerate launch --config_file PATH`` gives each worker (accelerate's own code)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "ssui_lib", "train", "--help"])
    args, _, _ = _validate_launch_command(args)
    return prepare_multi_gpu_env(args)


@pytest.fixture
def fsdp_env(monkeypatch):
    for k in FSDP_ENV:
        monkeypatch.delenv(k, raising=False)
    env = launcher_env(FSDP_YAML)
    for k, v in env.items():
        if k.startswith(("FSDP_", "ACCELERATE_USE_")):
            monkeypatch.setenv(k, v)
    return env


def _ex(sid: str, n_pairs: int) -> TrainExample:
    q = [{"role": "user", "content": f"Question {sid}?"}]
    pairs = [Pair(sid, i, f"Step {i}: a.", f" Step {i + 1}: fine. Final verdict: safe", f" Step {i + 1}: no. Final verdict: unsafe")
             for i in range(1, n_pairs + 1)]
    return TrainExample(sid, q, "Step 1: a kitchen.\nFinal verdict: safe\nAnswer: Yes.", pairs)


# ----------------------------------------------------------------------------- two processes under FSDP2


def _fsdp_args(tiny_llama, data) -> list[str]:
    return [*TRAIN, "--lora-dropout", "0", "--mixed-precision", "no", "--model", f"hf:{tiny_llama}", "--data", str(data)]


def _fsdp_env() -> dict[str, str]:
    return {k: v for k, v in launcher_env(FSDP_YAML).items() if k.startswith(("FSDP_", "ACCELERATE_USE_"))}


@pytest.fixture(scope="module")
def fsdp_run(tiny_llama, data, tmp_path_factory) -> Path:
    """One uninterrupted 2-process run under the shipped FSDP config."""
    out = tmp_path_factory.mktemp("fsdp") / "run"
    Launch([*_fsdp_args(tiny_llama, data), "--out", str(out)], out.parent / "fsdp.log", extra_env=_fsdp_env()).wait()
    return out


@pytest.mark.slow
def test_two_fsdp_processes_in_lockstep_equal_one_process(tiny_llama, data, fsdp_run, tmp_path):
    from ssui_lib.models.hf_lm import load_hf_lm

    one = tmp_path / "one"
    assert main([*_fsdp_args(tiny_llama, data), "--out", str(one)]) == 0
    a, b = adapter(one), adapter(fsdp_run)
    assert max_diff(a, b) <= TOL  # measured: 2.3e-7
    assert all(float(b[k].abs().max()) > 0 for k in b if "lora_B" in k)

    s = json.loads((fsdp_run / "summary.json").read_text())
    assert (s["processes"], s["sharding"]) == (2, "fsdp2")
    # every frozen base parameter is a shard (a DTensor) on each process; the LoRA ones are whole
    assert s["sharded_parameters"] == len(list(load_hf_lm(str(tiny_llama)).model.parameters()))
    # lockstep: both processes ran the same number of forward passes, and padding was needed: the
    # 5 examples (0, 1, 2, 0, 1 pairs) take 2 x (5 + 4) = 18 real passes over 2 epochs (26 ran); without the padding
    # (slots of the plain shares) the run fails at once, gloo: "Received data size doesn't match expected size.
    # Is there a distributed collective mismatch in your code?" (an FSDP all-gather met a backward's)
    assert s["forward_passes"][0] == s["forward_passes"][1] and sum(s["forward_passes"]) > 18
    for r1, r2 in zip(jsonl(one / "log.jsonl"), jsonl(fsdp_run / "log.jsonl")):
        for k in ("loss", "ref", "align", "margin"):
            assert r2[k] == pytest.approx(r1[k], rel=1e-5, abs=1e-7), (r1["step"], k)


@pytest.mark.slow
def test_a_killed_fsdp_run_resumes_to_the_uninterrupted_result(tiny_llama, data, fsdp_run, tmp_path):
    out = tmp_path / "run"
    args = [*_fsdp_args(tiny_llama, data), "--out", str(out)]
    r = Launch(args, tmp_path / "killed.log", stop="log.jsonl:3:after", extra_env=_fsdp_env())
    r.stopped()
    r.kill()
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 2
    Launch(args, tmp_path / "resumed.log", extra_env=_fsdp_env()).wait()
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed_from"] == 2 and s["steps"] == 4
    a, b = adapter(fsdp_run), adapter(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- the lockstep plan


def test_bounds_are_accelerates_split():
    from accelerate import PartialState

    state = PartialState(cpu=True)
    for n in range(0, 9):
        for world in (1, 2, 3):
            got = bounds(n, world)
            assert [e - s for s, e in got] == [len(range(n)[s:e]) for s, e in got] and got[-1][1] == n
            assert sum(e - s for s, e in got) == n and all(got[i][1] == got[i + 1][0] for i in range(world - 1))
    # this process's share is accelerate's own
    with state.split_between_processes(list(range(5))) as mine:
        assert list(mine) == list(range(*bounds(5, 1)[0]))
    assert bounds(5, 2) == [(0, 3), (3, 5)] and bounds(1, 2) == [(0, 1), (1, 1)]


def test_schedule_pads_every_slot_to_its_largest():
    plans = [(1, 0), (3, 0), (2, 0), (1, 0), (5, 0)]  # shares [0, 1, 2] and [3, 4] on 2 processes
    r0, r1 = schedule(plans, 2, 0), schedule(plans, 2, 1)
    assert [(s.index, s.dummy, s.pad) for s in r0] == [(0, False, 0), (1, False, 2), (2, False, 0)]
    assert [(s.index, s.dummy, s.pad) for s in r1] == [(3, False, 0), (4, False, 0), (0, True, 1)]
    for t in range(3):  # the same passes with gradients in every slot on both processes
        assert r0[t].plan[0] + r0[t].pad == r1[t].plan[0] + r1[t].pad
    # one example, two processes: the second runs a dummy of it
    assert schedule([(2, 1)], 2, 1) == [Slot(0, True, 0, (2, 1))]
    with pytest.raises(SSUIError, match="passes without gradients"):
        schedule([(1, 1), (1, 2)], 2, 0)


def _count(cm, cfg, ex) -> tuple[int, int]:
    from ssui_lib.srpo.train import batch_objective

    seen = [0, 0]
    model = cm.model
    original = model.forward

    def forward(*a, **kw):
        seen[0 if torch.is_grad_enabled() else 1] += 1
        return original(*a, **kw)

    model.forward = forward
    try:
        batch_objective(cm, cfg, [ex], backward=True, scale=0.0)
    finally:
        del model.forward
    return tuple(seen)


@pytest.mark.parametrize("method,lam", [("srpo", 0.5), ("srpo", 0.0), ("sft", 0.5), ("dpo", 0.5), ("orpo", 0.5)])
def test_forward_plan_is_what_the_loop_runs(tiny_llama, method, lam):
    from ssui_lib.models.hf_lm import load_hf_lm
    from ssui_lib.srpo.train import attach_lora

    cm = load_hf_lm(str(tiny_llama))
    cfg = TrainConfig(method=method, lam=lam, mixed_precision="no")
    attach_lora(cm, cfg)
    assert not is_row_by_row(cm.model)
    for n in ((0, 1, 2) if method in ("srpo", "sft") else (1,)):
        ex = _ex(f"s{n}", n)
        assert _count(cm, cfg, ex) == forward_plan(cfg, ex, False), (method, lam, n)


def test_forward_plan_of_a_vlm_is_per_row(tmp_path):
    from tiny_vlms import build_tiny_qwen2_5_vl

    from ssui_lib.models import resolve_model
    from ssui_lib.srpo.train import attach_lora

    cm = resolve_model(f"hf:{build_tiny_qwen2_5_vl(tmp_path / 'vlm')}")
    cfg = TrainConfig(method="srpo", lam=0.5, mixed_precision="no")
    attach_lora(cm, cfg)
    assert is_row_by_row(cm.model)
    ex = _ex("v", 2)
    assert forward_plan(cfg, ex, True) == (5, 0) == _count(cm, cfg, ex)
    assert forward_plan(TrainConfig(method="dpo"), _ex("d", 1), True) == (2, 2)


def test_forward_counter_pads_with_zero_weight_passes_and_refuses_unplanned_ones():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)

    class Out(dict):
        __getattr__ = dict.__getitem__

        def __setattr__(self, k, v):
            self[k] = v

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return Out(logits=self.lin(x))

    m = M()
    x = torch.randn(4, 3)
    plain = m(x).logits.sum()
    plain.backward()
    want = lin.weight.grad.clone()
    lin.weight.grad = None
    with ForwardCounter(m) as c:
        def step():
            out = m(x).logits
            assert torch.equal(out, m.lin(x))  # padding changes no value
            out.sum().backward()
        c.run(Slot(0, False, 2, (1, 0)), "a", step)
        assert m.calls == 4 and c.total == 3  # 1 real + 2 zero-weight passes
        assert torch.equal(lin.weight.grad, want)  # and no gradient
        with pytest.raises(SSUIError, match="forward pass 2 with gradients was not planned"):
            c.run(Slot(0, False, 0, (1, 0)), "b", lambda: (m(x), m(x)))
        with pytest.raises(SSUIError, match=r"sample 'c' ran \(0, 0\) forward passes .* planned \(1, 0\)"):
            c.run(Slot(0, False, 0, (1, 0)), "c", lambda: None)
    assert "forward" not in vars(m)


# ----------------------------------------------------------------------------- the shipped configs, refusals


def test_fsdp_config_parses_and_names_the_decoder_layers(fsdp_env):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLDecoderLayer

    cfg = load_config_from_file(str(FSDP_YAML))
    assert (cfg.distributed_type, cfg.num_processes, cfg.mixed_precision) == (DistributedType.FSDP, 8, "bf16")
    assert cfg.fsdp_config["fsdp_use_orig_params"] is True
    assert fsdp_env["ACCELERATE_USE_FSDP"] == "true" and fsdp_env["FSDP_VERSION"] == "2"
    assert sharded_engine() == "fsdp"
    s = fsdp_settings()  # accelerate's FullyShardedDataParallelPlugin reading the launcher's environment
    assert s.wrap == (Qwen2_5_VLDecoderLayer.__name__, LlamaDecoderLayer.__name__)
    assert s.reshard_after_forward is True and s.activation_checkpointing is True


def test_wrap_class_must_be_in_the_model(tiny_llama):
    from ssui_lib.models.hf_lm import load_hf_lm

    model = load_hf_lm(str(tiny_llama)).model
    assert len(wrap_targets(model, ["Qwen2_5_VLDecoderLayer", "LlamaDecoderLayer"])) == model.config.num_hidden_layers
    with pytest.raises(SSUIError, match="matches no module of LlamaForCausalLM; its layer classes are: LlamaDecoderLayer"):
        wrap_targets(model, ["Qwen2_5_VLDecoderLayer"])


def test_zero3_config_parses():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(ZERO3_YAML))
    assert (cfg.distributed_type, cfg.num_processes, cfg.mixed_precision) == (DistributedType.DEEPSPEED, 8, "bf16")
    ds_file = ROOT / cfg.deepspeed_config["deepspeed_config_file"]
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] is True
    assert ds["train_batch_size"] == 8 and ds["gradient_accumulation_steps"] == 1


@pytest.mark.parametrize("env,match", [
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, r"DeepSpeed .*configs/accelerate/fsdp.yaml"),
    ({"FSDP_VERSION": "1"}, "FSDP version 1 .*set fsdp_version: 2"),
    ({"FSDP_OFFLOAD_PARAMS": "true"}, "fsdp_offload_params: true is not supported"),
    ({"FSDP_AUTO_WRAP_POLICY": "SIZE_BASED_WRAP"}, "fsdp_auto_wrap_policy SIZE_BASED_WRAP"),
    ({"FSDP_TRANSFORMER_CLS_TO_WRAP": ""}, "fsdp_transformer_layer_cls_to_wrap is empty"),
])
def test_a_sharded_setup_the_loop_cannot_run_is_one_clear_error(fsdp_env, monkeypatch, env, match):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SSUIError, match=match):
        Processes(TrainConfig(mixed_precision="no"))


def test_no_launcher_means_no_sharding(monkeypatch):
    for k in FSDP_ENV:
        monkeypatch.delenv(k, raising=False)
    assert sharded_engine() is None
    p = Processes(TrainConfig(mixed_precision="no"))
    assert p.lockstep is False and p.engine is None


def test_one_fsdp_process_is_the_plain_loop(fsdp_env):
    from accelerate.state import AcceleratorState

    try:
        p = Processes(TrainConfig(mixed_precision="no"))  # accelerate launch --num_processes 1 with fsdp.yaml
        assert p.engine == "fsdp" and p.world == 1 and p.lockstep is False
        assert p.describe() == {"processes": 1, "mixed_precision": "no", "device": "cpu"}
    finally:
        AcceleratorState._reset_state(True)  # the next test's Accelerator starts without this one's FSDP plugin
