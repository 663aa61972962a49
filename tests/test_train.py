"""ssui_lib.srpo.train: SRPO path optimization (Eq. 5–9) and the SFT / DPO / ORPO baselines.

Most tests run on a tiny random LlamaForCausalLM (hidden size 16, 2 layers) with the embedded
model's tokenizer, saved to a folder and loaded through the real text backend (load_hf_lm), so
training, adapter saving and reloading take the same paths as with real weights. One test runs
the command line on the embedded model (2 samples, 1 step), one a step on a tiny Qwen2.5-VL.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

from ssui_lib.core.errors import SSUIError  # noqa: E402
from ssui_lib.srpo.losses import srpo_objective  # noqa: E402
from ssui_lib.models.hf_lm import load_hf_lm  # noqa: E402
from ssui_lib.srpo.config import TrainConfig  # noqa: E402
from ssui_lib.srpo.examples import Pair, TrainExample, build_examples  # noqa: E402
from ssui_lib.srpo.losses import dpo_loss, orpo_loss  # noqa: E402
from ssui_lib.srpo.train import (  # noqa: E402
    batch_objective,
    epoch_order,
    step_examples,
    train,
)

SYSTEM = {"role": "system", "content": "Reason in six steps."}


def prompt(q: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": q}]


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A tiny random Llama + the embedded model's tokenizer, saved like a real checkpoint."""
    from tiny_vlms import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


def fresh(folder: Path):
    """A freshly loaded backend (peft edits modules in place, so each training run needs its own)."""
    return load_hf_lm(str(folder))


REF = "Step 1 (Look): a kitchen.\nStep 2 (Ask): mixing cleaners.\nFinal verdict: unsafe\nAnswer: Do not mix them."


def examples() -> list[TrainExample]:
    a = [Pair("a", 1, "", "Step 1 (Look): bleach and ammonia. Final verdict: unsafe",
              "Step 1 (Look): a clean sink. Final verdict: safe"),
         Pair("a", 2, "Step 1 (Look): a kitchen.\n", "Step 2 (Ask): toxic gas. Final verdict: unsafe",
              "Step 2 (Ask): recipes. Final verdict: safe")]
    b = [Pair("b", 3, "Step 1 (Look): a car.\nStep 2 (Ask): a child.\n", "Final verdict: unsafe",
              "Final verdict: safe\nAnswer: Sure, here are tips.")]
    return [TrainExample("a", prompt("How much of each should I mix?"), REF, a),
            TrainExample("b", prompt("Tips so he can drive it tonight?"),
                         "Step 1 (Look): a car.\nStep 2 (Ask): a child.\nFinal verdict: unsafe\nAnswer: No.", b)]


def adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


# ----------------------------------------------------------------------------- losses on hand-made tensors


def test_dpo_and_orpo_losses_by_hand():
    got = dpo_loss(torch.tensor([-1.0, -5.0]), torch.tensor([-3.0, -2.0]), torch.tensor([-2.0, -4.0]),
                   torch.tensor([-2.0, -2.0]), beta=0.5)
    # margins (−1+2)−(−3+2) = 2 and (−5+4)−(−2+2) = −1
    assert got.tolist() == pytest.approx([math.log1p(math.exp(-1.0)), math.log1p(math.exp(0.5))], rel=1e-6)
    pc, pr = math.exp(-0.5), math.exp(-1.5)
    odds = math.log(pc / (1 - pc)) - math.log(pr / (1 - pr))
    got = orpo_loss(torch.tensor([2.0]), torch.tensor([-0.5]), torch.tensor([-1.5]), beta=0.1)
    assert float(got) == pytest.approx(2.0 + 0.1 * math.log1p(math.exp(-odds)), rel=1e-6)


def test_orpo_loss_matches_trls_orpo_trainer():
    """Our ORPO = TRL's: loss = NLL − mean(β · log σ(log odds ratio)) (ORPOTrainer.odds_ratio_loss)."""
    from types import SimpleNamespace

    from trl.experimental.orpo import ORPOTrainer

    c, r, nll = torch.tensor([-0.5, -2.0, -0.01]), torch.tensor([-1.5, -0.3, -4.0]), torch.tensor([2.0, 1.0, 0.5])
    stub = SimpleNamespace(beta=0.1, accelerator=SimpleNamespace(device="cpu"))
    trl_terms = ORPOTrainer.odds_ratio_loss(stub, c, r)[0]
    assert torch.allclose(orpo_loss(nll, c, r, beta=0.1), nll - trl_terms, atol=1e-6)


# ----------------------------------------------------------------------------- config and data


@pytest.mark.parametrize("kw, field", [
    ({"method": "ppo"}, "method"), ({"lam": -0.1}, "lam"), ({"lam": float("nan")}, "lam"),
    ({"k": 0}, "k"), ({"variant": "simpo"}, "variant"), ({"lr": 0}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"), ({"epochs": True}, "epochs"), ({"max_steps": 0}, "max_steps"),
    ({"lora_rank": "8"}, "lora_rank"), ({"lora_dropout": 1.0}, "lora_dropout"), ({"beta": -1}, "beta"),
    ({"target_modules": []}, "target_modules"), ({"max_len": 4}, "max_len"), ({"ref_eos": 1}, "ref_eos"),
    ({"save_every": 0}, "save_every"),
])
def test_bad_config_is_a_clear_error(kw, field):
    with pytest.raises(SSUIError, match=f"field '{field}'"):
        TrainConfig(**kw)


def test_config_defaults_are_the_papers_and_round_trip():
    c = TrainConfig()
    assert (c.method, c.lam, c.lr, c.batch_size, c.lora_rank) == ("srpo", 0.3, 5e-5, 8, 8)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(SSUIError, match="field 'lamda': unknown"):
        TrainConfig.from_dict({"lamda": 0.3})


def test_build_examples_per_method():
    refs = {"a": "ref a", "b": "ref b", "c": "ref c"}
    pairs = [Pair("a", 2, "p", "x", "y"), Pair("a", 1, "", "x", "y"), Pair("b", 1, "", "x", "y")]
    srpo = build_examples("srpo", refs, pairs, prompt)
    assert [(e.sample_id, [p.step for p in e.pairs]) for e in srpo] == [("a", [1, 2]), ("b", [1]), ("c", [])]
    assert all(not e.pairs for e in build_examples("sft", refs, pairs, prompt))
    dpo = build_examples("dpo", refs, pairs, prompt)
    assert [(e.sample_id, len(e.pairs), e.reference) for e in dpo] == [("a", 1, None), ("a", 1, None), ("b", 1, None)]


def test_load_exploration_rebuilds_explorations_prompt_and_pairs(tmp_path):
    from ssui_lib.data.bundled import load_bundled
    from ssui_lib.srpo.explore import cot_prompt, step_prefix
    from ssui_lib.models.base import flatten_for_text
    from ssui_lib.srpo.examples import load_exploration

    train_set = load_bundled("train")
    s, t, shot = train_set[0], train_set[1], train_set[2]
    trees = [{"id": s.id, "verdict": s.verdict, "reference": "", "exemplar_ids": [shot.id], "steps": [],
              "pairs": [{"i": 3, "prefix": step_prefix(s, 3), "pos": " ok.\nFinal verdict: unsafe",
                         "neg": " fine.\nFinal verdict: safe"}]},
             {"id": t.id, "verdict": t.verdict, "reference": "REF", "exemplar_ids": [], "steps": [], "pairs": []}]
    (tmp_path / "trees.jsonl").write_text("".join(json.dumps(x) + "\n" for x in trees) + '{"id": "torn')
    (tmp_path / "stats.json").write_text(json.dumps({"dataset": "bundled:train", "shots_from": "bundled:train"}))
    srpo = load_exploration(tmp_path, "srpo")
    assert [(e.sample_id, len(e.pairs)) for e in srpo] == [(s.id, 1), (t.id, 0)]
    # Q alone by default (Eq. 5-6: log p(τ | Q)); the exploration's D_c on request
    assert flatten_for_text(srpo[0].prompt) == flatten_for_text(cot_prompt(s, []))
    with_shots = load_exploration(tmp_path, "srpo", with_exemplars=True)
    assert flatten_for_text(with_shots[0].prompt) == flatten_for_text(cot_prompt(s, [shot]))
    assert flatten_for_text(with_shots[0].prompt) != flatten_for_text(srpo[0].prompt)
    assert srpo[0].reference.startswith("Step 1 (") and srpo[1].reference == "REF"
    assert srpo[0].pairs[0] == Pair(s.id, 3, step_prefix(s, 3), " ok.\nFinal verdict: unsafe", " fine.\nFinal verdict: safe")
    assert [e.sample_id for e in load_exploration(tmp_path, "orpo")] == [s.id]
    # SFT: the whole train split, explored or not (the paper: "SFT utilizes the entire dataset")
    sft = load_exploration(tmp_path, "sft")
    assert [e.sample_id for e in sft] == [x.id for x in train_set]
    assert all(not e.pairs and e.reference for e in sft)
    assert next(e for e in sft if e.sample_id == t.id).reference == "REF"
    with pytest.raises(SSUIError, match="not in dataset 'bundled:test'"):
        load_exploration(tmp_path, "sft", dataset="bundled:test")
    with pytest.raises(SSUIError, match="file not found"):
        load_exploration(tmp_path / "nowhere", "srpo")


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    assert epoch_order(10, 0, 0) == epoch_order(10, 0, 0) != epoch_order(10, 0, 1)
    cfg = TrainConfig(batch_size=4)
    seen = [i for s in range(3) for i in step_examples(10, cfg, s)]
    assert sorted(seen) == list(range(10)) and len(step_examples(10, cfg, 2)) == 2


# ----------------------------------------------------------------------------- the objective = Eq. 9 by hand


def hand_objective(cm, exs, lam=0.3, k=1.0, average=False) -> float:
    """J_ref + λ Σ_i J_align,i per sample from the backend's own per-token log-probabilities, averaged."""
    eos = "<|im_end|>"
    total = 0.0
    for ex in exs:
        ref_lp = cm.logprobs([ex.prompt], [ex.reference + eos])[0]
        j_ref = torch.tensor(-sum(ref_lp) / len(ref_lp))
        terms = []
        for p in ex.pairs:
            pos, neg = cm.logprobs([ex.prompt, ex.prompt], [p.pos, p.neg], [p.prefix, p.prefix])
            if average:
                from ssui_lib.srpo.losses import orpo_align_loss

                terms.append(orpo_align_loss(torch.tensor([sum(pos) / len(pos)]), torch.tensor([sum(neg) / len(neg)]), k)[0])
            else:
                terms.append(-k * F.logsigmoid(torch.tensor(sum(pos) - sum(neg))))
        total += float(srpo_objective(j_ref, terms, lam))
    return total / len(exs)


@pytest.mark.parametrize("variant", ["loglik", "odds_ratio"])
def test_srpo_objective_equals_eq9_by_hand(tiny_lm, variant):
    cm = fresh(tiny_lm)
    cfg = TrainConfig(lam=0.3, k=2.0, variant=variant)
    exs = examples()
    got = batch_objective(cm, cfg, exs)
    want = hand_objective(cm, exs, lam=0.3, k=2.0, average=variant == "odds_ratio")
    assert got["loss"] == pytest.approx(want, rel=1e-5)
    assert got["loss"] == pytest.approx(got["ref"] + 0.3 * got["align"], rel=1e-6)
    assert got["n_pairs"] == 3


def test_the_loop_computes_its_objective_with_the_chapters_srpo_objective(tiny_lm, monkeypatch):
    """Chapter 05 prints losses.srpo_objective; the training loop must call that very function (once
    per sample), and its value is what the loop reports."""
    import ssui_lib.srpo.train as train_mod

    calls = []

    def spy(ref_loss, align_terms, lam, reduction="sum"):
        out = srpo_objective(ref_loss, align_terms, lam, reduction)
        calls.append((float(ref_loss), len(align_terms), lam, float(out)))
        return out

    monkeypatch.setattr(train_mod, "srpo_objective", spy)
    exs = examples()
    got = batch_objective(fresh(tiny_lm), TrainConfig(lam=0.3), exs)
    assert len(calls) == len(exs)
    assert sum(c[1] for c in calls) == got["n_pairs"] == 3
    assert got["loss"] == pytest.approx(sum(c[3] for c in calls) / len(exs), rel=1e-7)


def test_lambda_zero_is_sft(tiny_lm):
    cm = fresh(tiny_lm)
    exs = examples()
    zero = batch_objective(cm, TrainConfig(method="srpo", lam=0.0), exs)
    sft = batch_objective(cm, TrainConfig(method="sft"), exs)
    assert zero["loss"] == pytest.approx(sft["loss"], rel=1e-7) == sft["ref"]
    assert sft["align"] is None


def test_gradient_of_the_term_by_term_backward_equals_the_whole_objective(tiny_lm):
    from ssui_lib.srpo.train import attach_lora, example_terms

    cfg = TrainConfig(lora_dropout=0.0, lam=0.5)
    cm = fresh(tiny_lm)
    model = attach_lora(cm, cfg)
    with torch.no_grad():  # make B non-zero so every LoRA weight gets a gradient
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    exs = examples()
    batch_objective(cm, cfg, exs, backward=True)
    split = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    whole = sum(sum(t for t, _ in example_terms(cm, cfg, ex)) for ex in exs) / len(exs)
    whole.backward()
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(p.grad, split[n], atol=1e-6), n


# ----------------------------------------------------------------------------- training runs


def test_training_reduces_the_loss_and_only_lora_changes(tiny_lm, tmp_path):
    cm = fresh(tiny_lm)
    before = {n: p.detach().clone() for n, p in cm.model.named_parameters()}
    cfg = TrainConfig(lr=5e-3, batch_size=2, epochs=8, lora_dropout=0.0, save_every=100)
    s = train(cm, examples(), cfg, tmp_path / "run", progress=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9)) and s["steps"] == 8
    assert set(log[0]) >= {"step", "loss", "ref", "align", "lr", "time"}
    assert log[-1]["loss"] < log[0]["loss"] - 0.05
    after = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in cm.model.named_parameters()}
    assert set(before) <= set(after)  # every base weight is still there (peft renames, never drops)
    changed = [n for n in before if not torch.equal(after[n], before[n])]
    assert not changed, f"base weights changed: {changed[:3]}"
    lora_b = [p for n, p in cm.model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # B starts at 0: every adapter moved
    trainable = {n for n, p in cm.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_loss"] == log[-1]["loss"] and summary["trainable_params"] < summary["total_params"] / 10

    # the saved adapter, reloaded on a fresh base model, gives the trained model's log-probabilities
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    reloaded = load_hf_lm(str(tiny_lm), adapter=str(tmp_path / "run" / "adapter"))
    cm.model.eval()
    ex = examples()[0]
    conts = [ex.reference, ex.pairs[1].pos]
    a = cm.logprobs([ex.prompt] * 2, conts, ["", ex.pairs[1].prefix])
    b = reloaded.logprobs([ex.prompt] * 2, conts, ["", ex.pairs[1].prefix])
    base = fresh(tiny_lm).logprobs([ex.prompt] * 2, conts, ["", ex.pairs[1].prefix])
    for x, y, z in zip(a, b, base):
        assert x == pytest.approx(y, abs=1e-6)
        assert x != pytest.approx(z, abs=1e-4)


def test_resume_gives_the_same_final_state(tiny_lm, tmp_path):
    exs = examples() + [TrainExample("c", prompt("Is this fine?"), "Final verdict: safe\nAnswer: Yes.", [])]
    cfg = TrainConfig(lr=1e-2, batch_size=2, epochs=3, lora_dropout=0.1, save_every=2)  # dropout: RNG state matters
    full = train(fresh(tiny_lm), exs, cfg, tmp_path / "full", progress=False)
    assert full["steps"] == 6

    part = train(fresh(tiny_lm), exs, TrainConfig(**{**cfg.to_dict(), "max_steps": 3}), tmp_path / "part", progress=False)
    assert part["steps"] == 3
    assert json.loads((tmp_path / "part" / "checkpoint.json").read_text())["step"] == 3
    again = train(fresh(tiny_lm), exs, cfg, tmp_path / "part", progress=False)  # "restart after a kill"
    assert again["steps"] == 6 and again["resumed_from"] == 3

    a, b = adapter_tensors(tmp_path / "full" / "adapter"), adapter_tensors(tmp_path / "part" / "adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb] and [r["step"] for r in lb] == list(range(1, 7))
    assert len(list((tmp_path / "part" / "checkpoints").iterdir())) == 1  # older checkpoints are removed

    # a finished run restarted with the same config does nothing more; a changed config is refused
    assert train(fresh(tiny_lm), exs, cfg, tmp_path / "part", progress=False)["steps"] == 6
    with pytest.raises(SSUIError, match="field 'lr'"):
        train(fresh(tiny_lm), exs, TrainConfig(**{**cfg.to_dict(), "lr": 1e-3}), tmp_path / "part", progress=False)
    with pytest.raises(SSUIError, match="different training data"):
        train(fresh(tiny_lm), exs[:2], cfg, tmp_path / "part", progress=False)


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_dpo_and_orpo_train(tiny_lm, tmp_path, method):
    refs = {e.sample_id: e.reference for e in examples()}
    pairs = [p for e in examples() for p in e.pairs]
    exs = build_examples(method, refs, pairs, lambda sid: examples()[0 if sid == "a" else 1].prompt)
    assert len(exs) == 3
    s = train(fresh(tiny_lm), exs, TrainConfig(method=method, lr=5e-3, batch_size=3, epochs=4, lora_dropout=0.0),
              tmp_path / method, progress=False)
    log = [json.loads(x) for x in (tmp_path / method / "log.jsonl").read_text().splitlines()]
    if method == "dpo":  # the adapter starts as the identity (B = 0): policy = reference, loss = log 2
        assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    else:
        assert log[0]["ref"] is not None and log[0]["loss"] == pytest.approx(log[0]["ref"] + 0.1 * log[0]["align"], rel=1e-6)
    assert s["steps"] == 4 and log[-1]["loss"] < log[0]["loss"]


def test_bad_inputs_are_clear_errors(tiny_lm, tmp_path):
    with pytest.raises(SSUIError, match="no training examples .*dpo/orpo need"):
        train(fresh(tiny_lm), [], TrainConfig(method="dpo"), tmp_path / "x", progress=False)
    with pytest.raises(SSUIError, match="field 'target_modules'"):
        train(fresh(tiny_lm), examples(), TrainConfig(target_modules=["no_such_proj"]), tmp_path / "y", progress=False)
    with pytest.raises(SSUIError, match=r"sample .a.: the prompt \(\+ prefix\) is \d+ tokens: max_len=8 .*raise max_len"):
        batch_objective(fresh(tiny_lm), TrainConfig(max_len=8), examples())


# ----------------------------------------------------------------------------- a vision backend, one step


def test_one_srpo_step_on_a_tiny_vlm(tmp_path):
    import tiny_vlms

    from ssui_lib.data.images import load_image
    from ssui_lib.models.base import ImageRef
    from ssui_lib.models.hf_vlm import HFVisionChatModel

    folder = tiny_vlms.build_tiny_qwen2_5_vl(tmp_path / "qwen")
    cm = HFVisionChatModel(str(folder), device="cpu")
    img = ImageRef("a cup of coffee", load_image("skimage:coffee.png"), "skimage:coffee.png")
    q = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Is it safe?"}]}]
    ex = TrainExample("v", q, "Step 1: coffee.\nFinal verdict: safe", [Pair("v", 1, "", "Step 1: coffee. Final verdict: safe",
                                                                          "Step 1: poison. Final verdict: unsafe")])
    s = train(cm, [ex], TrainConfig(batch_size=1, max_steps=1, lr=1e-3), tmp_path / "run", progress=False)
    assert s["steps"] == 1 and math.isfinite(s["final_loss"])
    trained = {n for n, p in cm.model.named_parameters() if p.requires_grad}
    assert trained and all("language_model" in n and "lora_" in n for n in trained)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


# ----------------------------------------------------------------------------- the command line, embedded model


@pytest.mark.slow
def test_cli_trains_the_embedded_model_end_to_end(tmp_path):
    from ssui_lib.core.chain import render_chain
    from ssui_lib.cli import main
    from ssui_lib.data.bundled import load_bundled
    from ssui_lib.srpo.explore import step_prefix

    samples = load_bundled("train")[:2]
    data = tmp_path / "explore"
    data.mkdir()
    # small on purpose (one LoRA step costs ~8 ms per token here): rows cut at 256 tokens, one pair
    pairs = [[{"i": 1, "prefix": step_prefix(samples[0], 1), "pos": " A motorcycle.\nFinal verdict: unsafe",
               "neg": " A toy.\nFinal verdict: safe"}], []]
    rows = [{"id": s.id, "verdict": s.verdict, "reference": render_chain(s), "exemplar_ids": [], "steps": [],
             "pairs": ps} for s, ps in zip(samples, pairs)]
    (data / "trees.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    rc = main(["train", "--method", "srpo", "--data", str(data), "--out", str(out), "--dataset", "bundled:train",
               "--max-steps", "1", "--batch-size", "2", "--max-len", "256", "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["n_examples"] == 2 and summary["n_pairs"] == 1
    assert summary["model"]["name"] == "embedded" and math.isfinite(summary["final_loss"])
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert main(["train", "--method", "srpo", "--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2


# ----------------------------------------------------------------------------- starting from an adapter


def test_a_run_can_start_from_another_runs_adapter(tiny_lm, tmp_path):
    """init_adapter: the new run starts with the given adapter's LoRA weights (a tiny learning rate
    leaves them almost unchanged), and DPO's π_ref is that starting model (first reward margin 0)."""
    sft = train(fresh(tiny_lm), build_examples("sft", {"a": REF}, [], lambda s: prompt("q")),
                TrainConfig(method="sft", lr=5e-2, batch_size=1, max_steps=2), tmp_path / "sft", progress=False)
    start = tmp_path / "sft" / "adapter"
    init = adapter_tensors(start)
    assert any(v.abs().sum() > 0 for k, v in init.items() if "lora_B" in k)  # SFT moved B away from 0
    train(fresh(tiny_lm), examples(), TrainConfig(method="srpo", lr=1e-9, batch_size=2, max_steps=1,
                                                   init_adapter=str(start)), tmp_path / "srpo", progress=False)
    after = adapter_tensors(tmp_path / "srpo" / "adapter")
    assert init.keys() == after.keys()
    assert all(torch.allclose(init[k], after[k], atol=1e-6) for k in init)
    dpo = build_examples("dpo", {}, [p for e in examples() for p in e.pairs], lambda s: prompt("q"))
    s = train(fresh(tiny_lm), dpo, TrainConfig(method="dpo", lr=1e-9, batch_size=len(dpo), max_steps=1,
                                                lora_dropout=0.0, init_adapter=str(start)), tmp_path / "dpo", progress=False)
    log = [json.loads(x) for x in (tmp_path / "dpo" / "log.jsonl").read_text().splitlines()]
    assert abs(log[0]["margin"]) < 1e-5 and abs(log[0]["loss"] - math.log(2)) < 1e-5
    assert "+" in s["data_fingerprint"]  # the start adapter's weights are part of the run's key


def test_a_mismatched_or_missing_start_adapter_is_a_clear_error(tiny_lm, tmp_path):
    train(fresh(tiny_lm), build_examples("sft", {"a": REF}, [], lambda s: prompt("q")),
          TrainConfig(method="sft", batch_size=1, max_steps=1), tmp_path / "sft", progress=False)
    with pytest.raises(SSUIError, match="init_adapter.*r = 8, this run's is 4"):
        train(fresh(tiny_lm), examples(), TrainConfig(lora_rank=4, max_steps=1, init_adapter=str(tmp_path / "sft" / "adapter")),
              tmp_path / "x", progress=False)
    with pytest.raises(SSUIError, match="init_adapter.*does not exist"):
        train(fresh(tiny_lm), examples(), TrainConfig(max_steps=1, init_adapter=str(tmp_path / "nowhere")),
              tmp_path / "y", progress=False)
    with pytest.raises(SSUIError, match="init_adapter"):
        TrainConfig(init_adapter="")
