"""ssui_lib.srpo.distributed: the LoRA loop on several processes (accelerate), bf16 and gradient checkpointing.

The multi-process tests start real processes: ``torch.distributed.run --standalone --nproc_per_node 2``
running ``ssui train`` (through tests/kill_harness.py) on a tiny random Llama, CPU only, gloo backend —
the same code path ``accelerate launch --config_file configs/accelerate/ddp.yaml -m ssui_lib train`` takes
on GPUs (accelerate's launcher hands CPU-only multi-process jobs to mpirun, so torchrun starts them here).
Five examples with a global batch of 4: steps of 4 and 1 examples, so in every second step one process
has no example at all.

Tolerance of the 2-process vs 1-process comparison: max |Δ| over adapter weights ≤ 1e-5 (float32). The
two runs compute the same terms with the same weights; they differ only in the order of the gradient sum
(two shares, each summed in its process, then added by the all-reduce, against one sequential sum), so each
gradient element differs by float32 rounding (~1e-7 relative). Adam divides by √v, which amplifies that
only for elements whose gradient is near ε; measured here: 2.3e-7 after 4 steps at lr 1e-2. 1e-5 is a
thousandth of one step's largest move (lr) and 40× the measured difference; the control below (a global
batch of 2 instead of 4) ends 6e-2 away. A resumed 2-process run must equal an uninterrupted one exactly.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssui_lib.cli import main
from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo import distributed
from ssui_lib.srpo.config import TrainConfig, config_key
from ssui_lib.srpo.distributed import (
    Processes, combine_parts, enable_gradient_checkpointing, process_state, resolve_precision,
)

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_name("kill_harness.py")
TOL = 1e-5
TRAIN = ["train", "--method", "srpo", "--dataset", "bundled:train", "--batch-size", "4", "--epochs", "2",
         "--save-every", "1", "--lr", "1e-2", "--lam", "0.5", "--no-progress"]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    from tiny_vlms import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """An exploration folder by hand: five bundled training samples, their chains as references,
    0-2 pairs each (uneven work per example)."""
    from ssui_lib.core.chain import render_chain
    from ssui_lib.data.bundled import load_bundled
    from ssui_lib.srpo.explore import step_prefix

    folder = tmp_path_factory.mktemp("explore")
    rows = []
    for n, s in enumerate(load_bundled("train")[:5]):
        pairs = [{"i": i, "prefix": step_prefix(s, i), "pos": f" Step {i} holds.\nFinal verdict: {s.verdict}",
                  "neg": f" Step {i} is fine.\nFinal verdict: {'safe' if s.verdict == 'unsafe' else 'unsafe'}"}
                 for i in range(1, 1 + n % 3)]
        rows.append({"id": s.id, "verdict": s.verdict, "reference": render_chain(s), "exemplar_ids": [],
                     "steps": [], "pairs": pairs})
    (folder / "trees.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


class Launch:
    """``ssui ARGS`` on 2 CPU processes (torchrun, gloo), output in a log."""

    def __init__(self, args: list[str], log: Path, stop: str | None = None, extra_env: dict[str, str] | None = None):
        env = {k: v for k, v in os.environ.items() if k not in ("SSUI_TEST_STOP", "LOCAL_RANK", "RANK", "WORLD_SIZE")}
        env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT), **(extra_env or {}))
        if stop:
            env["SSUI_TEST_STOP"] = stop
        self.log = log
        self._f = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             str(HARNESS), *args], stdout=self._f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 900) -> None:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"2-process run did not finish in {timeout} s:\n{self.text()[-3000:]}")
        self._f.close()
        assert rc == 0, f"2-process run failed (exit {rc}):\n{self.text()[-3000:]}"

    def stopped(self, timeout: float = 900) -> None:
        t = time.time()
        while "STOPPED" not in self.text():
            if self.proc.poll() is not None:
                raise AssertionError(f"ended before the stop point:\n{self.text()[-3000:]}")
            if time.time() - t > timeout:
                self.kill()
                raise AssertionError(f"no stop in {timeout} s:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL both workers and the launcher (torchrun starts each worker in a session of its own,
        so they are found as the launcher's children, not by its process group)."""
        import psutil

        procs = psutil.Process(self.proc.pid).children(recursive=True) + [psutil.Process(self.proc.pid)]
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)
        self.proc.wait()
        self._f.close()


@pytest.fixture(scope="module")
def two_process_run(tiny_llama, data, tmp_path_factory) -> Path:
    """One uninterrupted 2-process run without dropout (compared with the 1-process run)."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    tmp = out.parent
    Launch([*TRAIN, "--lora-dropout", "0", "--model", f"hf:{tiny_llama}", "--data", str(data), "--out", str(out)],
           tmp / "launch.log").wait()
    return out


# ----------------------------------------------------------------------------- two processes (gloo)


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(tiny_llama, data, two_process_run, tmp_path):
    one = tmp_path / "one"
    assert main([*TRAIN, "--lora-dropout", "0", "--model", f"hf:{tiny_llama}", "--data", str(data),
                 "--out", str(one)]) == 0
    a, b = adapter(one), adapter(two_process_run)
    assert max_diff(a, b) <= TOL
    assert all(float(b[k].abs().max()) > 0 for k in b if "lora_B" in k)  # every adapter moved from B = 0

    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two_process_run / "summary.json").read_text())
    assert (s1["processes"], s2["processes"]) == (1, 2) and s1["mixed_precision"] == s2["mixed_precision"] == "no"
    l1, l2 = jsonl(one / "log.jsonl"), jsonl(two_process_run / "log.jsonl")
    assert [r["step"] for r in l2] == [1, 2, 3, 4]  # one writer: no line twice
    assert [r["examples"] for r in l2] == [4, 1, 4, 1]
    for r1, r2 in zip(l1, l2):  # the gathered parts are the global means the 1-process run logs
        for k in ("loss", "ref", "align", "margin", "grad_norm"):
            assert r2[k] == pytest.approx(r1[k], rel=1e-5, abs=1e-7), (r1["step"], k)

    # control: another global batch (2 instead of 4) ends far outside the tolerance
    other = tmp_path / "other"
    assert main([*TRAIN, "--batch-size", "2", "--max-steps", "4", "--lora-dropout", "0", "--model", f"hf:{tiny_llama}",
                 "--data", str(data), "--out", str(other)]) == 0
    assert max_diff(adapter(other), b) > 100 * TOL


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(tiny_llama, data, tmp_path):
    # dropout on: each process's dropout masks must come back the same after the restart
    args = [*TRAIN, "--lora-dropout", "0.1", "--model", f"hf:{tiny_llama}", "--data", str(data), "--out"]
    ref = tmp_path / "ref"
    Launch([*args, str(ref)], tmp_path / "ref.log").wait()

    out = tmp_path / "run"
    r = Launch([*args, str(out)], tmp_path / "killed.log", stop="log.jsonl:3:after")  # main stops after step 3's line
    r.stopped()
    r.kill()
    assert [row["step"] for row in jsonl(out / "log.jsonl")] == [1, 2, 3]
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 2  # step 3 was not saved
    Launch([*args, str(out)], tmp_path / "resumed.log").wait()

    s = json.loads((out / "summary.json").read_text())
    assert s["resumed_from"] == 2 and s["steps"] == 4 and s["processes"] == 2
    assert [row["step"] for row in jsonl(out / "log.jsonl")] == [1, 2, 3, 4]
    assert [row["loss"] for row in jsonl(out / "log.jsonl")] == [row["loss"] for row in jsonl(ref / "log.jsonl")]
    a, b = adapter(ref), adapter(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- one process: precision, checkpointing


def test_one_process_is_the_plain_loop(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    p = Processes(TrainConfig(mixed_precision="no", seed=3))
    assert (p.world, p.rank, p.is_main, p.device.type) == (1, 0, True, "cpu")
    assert p.share([1, 2, 3]) == [1, 2, 3]
    torch.manual_seed(7)
    state = torch.get_rng_state()
    p.start_step(5)  # one process keeps its own random stream (checkpointed as before)
    assert torch.equal(torch.get_rng_state(), state)
    assert p.describe() == {"processes": 1, "mixed_precision": "no", "device": "cpu"}
    assert process_state().num_processes == 1
    seen = []
    parts = p.objective(torch.nn.Linear(2, 2), lambda exs, scale: seen.append((exs, scale)) or {"loss": 1.0}, [4, 5], [])
    assert seen == [([4, 5], None)] and parts == {"loss": 1.0}
    p.sum_gradients([])  # nothing to sum alone
    w = torch.nn.Parameter(torch.ones(3))
    w.grad = torch.full((3,), 2.0)
    assert p.clip_grad_norm([w], 1.0) == pytest.approx(12 ** 0.5)
    assert float(w.grad.norm()) == pytest.approx(1.0, rel=1e-5)
    p.wait()


def test_per_step_seeds_differ_by_step_and_process():
    seeds = {distributed._step_seed(0, s, r) for s in range(3) for r in range(2)}
    assert len(seeds) == 6 and distributed._step_seed(0, 1, 1) == distributed._step_seed(0, 1, 1)


def test_combine_parts_gives_the_global_means():
    # shares of 3 and 1 examples: means weighted by examples, margin by pairs, pairs summed
    a = {"loss": 2.0, "ref": 1.0, "align": 0.5, "margin": 1.0, "n_pairs": 3}
    b = {"loss": 6.0, "ref": 3.0, "align": None, "margin": None, "n_pairs": 0}
    got = combine_parts([(3, a), (1, b), (0, None)])
    assert got == {"loss": pytest.approx(3.0), "ref": pytest.approx(1.5), "align": pytest.approx(0.5),
                   "margin": pytest.approx(1.0), "n_pairs": 3}
    assert combine_parts([(2, {"loss": 1.0, "align": None, "n_pairs": 0})])["align"] is None
    with pytest.raises(SSUIError, match="no training examples in this step"):
        combine_parts([(0, None), (0, None)])


def test_precision_choice(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert resolve_precision("auto", cpu) == "no"  # bf16 matmuls are slow on these CPUs
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("no", cpu) == "no"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what accelerate launch sets from its config
    assert resolve_precision("auto", cpu) == "bf16" and resolve_precision("no", cpu) == "no"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(SSUIError, match="fp16 would need loss scaling"):
        resolve_precision("auto", cpu)


def test_config_fields_and_old_checkpoints_resume():
    assert "mixed_precision" not in config_key(TrainConfig())  # keys written before the field still match
    assert config_key(TrainConfig(mixed_precision="bf16"))["mixed_precision"] == "bf16"
    assert "gradient_checkpointing" not in config_key(TrainConfig(gradient_checkpointing=True))  # memory, not maths
    with pytest.raises(SSUIError, match="field 'mixed_precision'"):
        TrainConfig(mixed_precision="fp16")
    with pytest.raises(SSUIError, match="field 'gradient_checkpointing'"):
        TrainConfig(gradient_checkpointing="yes")


def _examples():
    from ssui_lib.srpo.examples import Pair, TrainExample

    q = [{"role": "user", "content": "How much of each should I mix?"}]
    pairs = [Pair("a", 1, "", "Step 1: bleach and ammonia. Final verdict: unsafe", "Step 1: a sink. Final verdict: safe")]
    return [TrainExample("a", q, "Step 1: a kitchen.\nFinal verdict: unsafe\nAnswer: Do not mix them.", pairs),
            TrainExample("b", [{"role": "user", "content": "Is this fine?"}], "Final verdict: safe\nAnswer: Yes.", [])]


def test_bf16_autocasts_forward_passes_only(tiny_llama, tmp_path, monkeypatch):
    from ssui_lib.models.hf_lm import load_hf_lm
    from ssui_lib.srpo.train import train

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    cm = load_hf_lm(str(tiny_llama))
    p = Processes(TrainConfig(mixed_precision="bf16"))
    ids = torch.tensor([[1, 2, 3, 4]])
    seen = []
    hook = cm.model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad():
        plain = cm.model(input_ids=ids).logits
        with p.autocast(cm.model):
            cast = cm.model(input_ids=ids).logits
    hook.remove()
    assert seen == [torch.float32, torch.bfloat16]  # inside: bf16 matmuls; outputs back in float32
    assert cast.dtype == torch.float32 and torch.allclose(cast, plain, atol=0.05) and not torch.equal(cast, plain)
    assert "forward" not in vars(cm.model)  # the model's own forward is back

    s = train(load_hf_lm(str(tiny_llama)), _examples(), TrainConfig(mixed_precision="bf16", batch_size=2, max_steps=1),
              tmp_path / "bf16", progress=False)
    assert s["mixed_precision"] == "bf16" and s["steps"] == 1 and s["final_loss"] > 0
    # the same process trains in float32 afterwards (accelerate's state follows the new precision)
    s = train(load_hf_lm(str(tiny_llama)), _examples(), TrainConfig(mixed_precision="no", batch_size=2, max_steps=1),
              tmp_path / "fp32", progress=False)
    assert s["mixed_precision"] == "no"


def test_gradient_checkpointing_gives_the_same_adapter(tiny_llama, tmp_path):
    from ssui_lib.models.hf_lm import load_hf_lm
    from ssui_lib.srpo.train import train

    cfg = dict(batch_size=2, epochs=2, lr=1e-2, lora_dropout=0.1, mixed_precision="no")  # dropout: recomputed alike
    calls = {}
    for name, gc in (("plain", False), ("gc", True)):
        cm = load_hf_lm(str(tiny_llama))
        calls[name] = 0
        cm.model.model.layers[0].self_attn.register_forward_hook(lambda *a, name=name: calls.__setitem__(name, calls[name] + 1))
        train(cm, _examples(), TrainConfig(**cfg, gradient_checkpointing=gc), tmp_path / name, progress=False)
    assert calls["gc"] == 2 * calls["plain"] > 0  # each layer's inner passes ran again in the backward pass
    assert max_diff(adapter(tmp_path / "plain"), adapter(tmp_path / "gc")) <= 1e-6

    class NoCheckpointing(torch.nn.Module):
        supports_gradient_checkpointing = False

    with pytest.raises(SSUIError, match="field 'gradient_checkpointing': NoCheckpointing"):
        enable_gradient_checkpointing(type("CM", (), {"model": NoCheckpointing()})())


# ----------------------------------------------------------------------------- the shipped launcher config


def test_ddp_config_loads_with_accelerates_own_parser(monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType, prepare_multi_gpu_env

    path = ROOT / "configs" / "accelerate" / "ddp.yaml"
    cfg = load_config_from_file(str(path))  # a ClusterConfig: an unknown key would be a TypeError here
    assert (cfg.distributed_type, cfg.num_processes, cfg.mixed_precision) == (DistributedType.MULTI_GPU, 8, "bf16")
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "ssui_lib", "train", "--help"])
    args, _, _ = _validate_launch_command(args)
    assert args.multi_gpu and args.num_processes == 8 and args.module and args.training_script == "ssui_lib"
    env = prepare_multi_gpu_env(args)  # what each worker process receives
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16" and "ACCELERATE_USE_FSDP" not in env
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", env["ACCELERATE_MIXED_PRECISION"])
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"  # a worker's "auto" follows the config
