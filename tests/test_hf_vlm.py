"""The transformers VLM backend on tiny random Qwen2.5-VL and LLaVA-NeXT models built in the tests
(tests/tiny_vlms.py): loading, generation with real pixels, stop strings, seeds, encode/logprobs
masking, a LoRA step and adapter save/reload, errors."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import tiny_vlms  # noqa: E402

from ssui_lib.core.errors import SSUIError  # noqa: E402
from ssui_lib.data.images import load_image  # noqa: E402
from ssui_lib.models.base import Generation, ImageRef, SamplingParams  # noqa: E402
from ssui_lib.models.hf_vlm import (  # noqa: E402
    HFVisionChatModel,
    lora_targets,
    read_model_type,
    to_processor_messages,
    truncate_at_stop,
)

ARCHS = ["qwen2_5_vl", "llava_next"]
PIXEL_KEYS = {"qwen2_5_vl": {"pixel_values", "image_grid_thw"}, "llava_next": {"pixel_values", "image_sizes"}}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {arch: build(root / arch) for arch, build in tiny_vlms.BUILDERS.items()}


@pytest.fixture(scope="module", params=ARCHS)
def vlm(request, folders) -> HFVisionChatModel:
    """A loaded tiny model, shared by the read-only tests of one architecture."""
    return HFVisionChatModel(str(folders[request.param]), device="cpu")


@pytest.fixture(scope="module")
def coffee() -> ImageRef:
    return ImageRef("a cup of coffee with latte art", load_image("skimage:coffee.png"), "skimage:coffee.png")


@pytest.fixture(scope="module")
def cat() -> ImageRef:
    return ImageRef("a tabby cat", load_image("skimage:chelsea.png"), "skimage:chelsea.png")


def image_prompt(image: ImageRef, text: str = "What is in this picture?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def prompts(coffee, cat) -> list[list[dict]]:
    return [
        image_prompt(coffee),
        [{"role": "system", "content": "Answer safely."},
         {"role": "user", "content": [{"type": "image", "image": cat}, {"type": "text", "text": "Describe it, step by step."}]}],
    ]


# ---------------------------------------------------------------- loading


def test_loads_from_folder(vlm, folders):
    d = vlm.describe()
    assert d["backend"] == "hf-vlm" and d["adapter"] is None
    assert d["model_type"] == read_model_type(d["path"]) in ARCHS
    assert Path(d["path"]) == folders[d["model_type"]]
    assert vlm.supports_images and vlm.trainable and vlm.supports_prefix


def test_render_uses_the_chat_template_and_the_prefix(vlm, coffee):
    text, images = vlm.render(image_prompt(coffee), prefix="Step 1:")
    assert text.endswith("Step 1:") and len(images) == 1
    assert vlm.processor.image_token in text
    # caption-only ImageRef -> its caption as text, no pixels
    text, images = vlm.render(image_prompt(ImageRef("a red motorcycle")))
    assert images == [] and "[Image: a red motorcycle]" in text and vlm.processor.image_token not in text


def test_to_processor_messages_rejects_unknown_parts():
    with pytest.raises(SSUIError, match="part type 'audio'"):
        to_processor_messages([{"role": "user", "content": [{"type": "audio", "audio": b""}]}])
    with pytest.raises(SSUIError, match="ImageRef"):
        to_processor_messages([{"role": "user", "content": [{"type": "image", "image": "coffee.png"}]}])


# ---------------------------------------------------------------- generation


def test_generate_shapes_types_and_seed(vlm, prompts):
    params = SamplingParams(n=2, temperature=0.9, top_p=0.95, max_new_tokens=8, seed=3)
    state = torch.random.get_rng_state()
    out = vlm.generate(prompts, params)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone
    assert len(out) == 2 and all(len(row) == 2 for row in out)
    for row in out:
        for g in row:
            assert isinstance(g, Generation) and isinstance(g.text, str)
            assert 0 < g.n_tokens <= 8 and g.n_tokens == len(g.extra["token_ids"])
            assert g.finish_reason in ("stop", "length")
            assert isinstance(g.logprob, float) and g.logprob < 0
    again = vlm.generate(prompts, params)
    assert [[g.text for g in r] for r in again] == [[g.text for g in r] for r in out]
    other = vlm.generate(prompts, SamplingParams(n=2, temperature=0.9, top_p=0.95, max_new_tokens=8, seed=4))
    assert [[g.text for g in r] for r in other] != [[g.text for g in r] for r in out]


def test_greedy_is_deterministic_and_batch_independent(vlm, prompts):
    params = SamplingParams(n=2, max_new_tokens=8)
    out = vlm.generate(prompts, params)
    assert all(row[0].text == row[1].text for row in out)  # n identical greedy samples
    alone = [vlm.generate([p], params)[0] for p in prompts]  # left padding does not change results
    assert [r[0].text for r in alone] == [r[0].text for r in out]
    assert [r[0].logprob for r in alone] == pytest.approx([r[0].logprob for r in out], abs=1e-4)


def test_pixels_and_prefix_matter(vlm, coffee, cat):
    params = SamplingParams(max_new_tokens=6)
    a, b = vlm.generate([image_prompt(coffee), image_prompt(cat)], params)
    assert a[0].extra["token_ids"] != b[0].extra["token_ids"] or a[0].logprob != pytest.approx(b[0].logprob)
    plain, prefixed = vlm.generate([image_prompt(coffee)] * 2, params, prefixes=["", "Step 1:"])
    assert plain[0].logprob != pytest.approx(prefixed[0].logprob)


def test_generation_logprob_equals_scoring_its_tokens(vlm, prompts):
    for params in (SamplingParams(max_new_tokens=10), SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=1)):
        out = vlm.generate(prompts, params, prefixes=["Step 1:", ""])
        gens = [g for row in out for g in row]
        n = params.n
        scored = vlm.logprobs([p for p in prompts for _ in range(n)], [g.extra["token_ids"] for g in gens],
                              prefixes=[x for x in ["Step 1:", ""] for _ in range(n)])
        for g, lp in zip(gens, scored):
            assert len(lp) == g.n_tokens
            assert sum(lp) == pytest.approx(g.logprob, abs=1e-3)


def test_stop_strings_truncate(vlm, prompts):
    full = vlm.generate(prompts[:1], SamplingParams(max_new_tokens=24))[0][0]
    # a two-letter stop string that first occurs after the start of the greedy text
    words = [m for m in re.finditer(r"[A-Za-z]{2,}", full.text) if m.start() > 0]
    assert words, f"no usable stop string in {full.text!r}"
    stop = words[0].group()[:2]
    cut = full.text[: full.text.find(stop)]
    calls: list[int] = []
    hook = vlm.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        stopped = vlm.generate(prompts[:1], SamplingParams(max_new_tokens=24, stop=(stop, "never-there")))[0][0]
    finally:
        hook.remove()
    assert len(calls) < 24  # generation ended early, not just truncated afterwards
    assert stopped.text == cut and stop not in stopped.text
    assert stopped.finish_reason == "stop"
    assert 0 < stopped.n_tokens < full.n_tokens
    assert stopped.extra["token_ids"] == full.extra["token_ids"][: stopped.n_tokens]
    assert stopped.logprob > full.logprob


def test_truncate_at_stop():
    assert truncate_at_stop("abc STOP def END", ["END", "STOP"]) == ("abc ", True)
    assert truncate_at_stop("abc", ["x", ""]) == ("abc", False)


# ---------------------------------------------------------------- encode / logprobs


def test_encode_masks_prompt_and_image_tokens(vlm, coffee):
    cont = "Step 1: The image shows a cup of coffee."
    batch = vlm.encode(image_prompt(coffee), cont)
    assert PIXEL_KEYS[vlm.model_type] <= set(batch)
    ids, labels = batch["input_ids"], batch["labels"]
    assert ids.shape == labels.shape == batch["attention_mask"].shape and ids.shape[0] == 1
    n_cont = len(vlm.tokenizer(cont, add_special_tokens=False)["input_ids"])
    scored = labels != -100
    assert int(scored.sum()) == n_cont
    assert scored[0, -n_cont:].all() and not scored[0, :-n_cont].any()  # only the tail is scored
    image_tokens = ids == vlm.processor.image_token_id
    assert int(image_tokens.sum()) > 1 and (labels[image_tokens] == -100).all()  # placeholders expanded, masked
    assert vlm.tokenizer.decode(ids[0, -n_cont:]) == cont
    with_eos = vlm.encode(image_prompt(coffee), cont, add_eos=True)
    assert int((with_eos["labels"] != -100).sum()) == n_cont + 1


def test_logprobs_length_and_batching(vlm, prompts):
    conts = ["Step 1: a cup of coffee", "It is a cat."]
    lps = vlm.logprobs(prompts, conts)
    for lp, c in zip(lps, conts):
        assert len(lp) == len(vlm.tokenizer(c, add_special_tokens=False)["input_ids"])
        assert all(isinstance(x, float) and x <= 0 for x in lp)
    alone = [vlm.logprobs([p], [c])[0] for p, c in zip(prompts, conts)]  # right padding changes nothing
    for a, b in zip(alone, lps):
        assert a == pytest.approx(b, abs=1e-4)
    assert vlm.logprobs(prompts[:1], [""]) == [[]]


def test_logprobs_depend_on_the_image(vlm, coffee, cat):
    a, b = vlm.logprobs([image_prompt(coffee), image_prompt(cat)], ["a cup of coffee"] * 2)
    assert a != pytest.approx(b, abs=1e-6)


# ---------------------------------------------------------------- LoRA


def test_lora_targets_language_model_only():
    for arch in ARCHS:
        pattern = lora_targets(arch)
        assert re.fullmatch(pattern, "model.language_model.layers.0.self_attn.q_proj")
        assert re.fullmatch(pattern, "base_model.model.model.language_model.layers.1.mlp.down_proj")
        for name in ("model.visual.blocks.0.mlp.gate_proj", "model.vision_tower.encoder.layers.0.self_attn.q_proj",
                     "model.multi_modal_projector.linear_1", "model.visual.merger.mlp.0", "lm_head"):
            assert not re.fullmatch(pattern, name)
    with pytest.raises(SSUIError, match="unknown VLM architecture"):
        lora_targets("mamba")


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_step_and_adapter_reload(arch, folders, prompts, tmp_path):
    from peft import LoraConfig, get_peft_model

    m = HFVisionChatModel(str(folders[arch]), device="cpu")  # a fresh copy: peft edits modules in place
    base = m.logprobs(prompts, ["Step 1: a cup of coffee", "It is a cat."])
    torch.manual_seed(0)
    peft_model = get_peft_model(m.model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                    target_modules=m.lora_target_modules()))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    assert len(trainable) == 2 * 7 * 2  # A and B x 7 projections x 2 layers

    batch = m.encode_batch(prompts, ["Step 1: a cup of coffee", "It is a cat."], add_eos=True)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    losses = []
    for _ in range(3):
        loss = peft_model(**m.forward_inputs(batch), labels=batch["labels"]).loss
        loss.backward()
        grads = {n: p.grad for n, p in peft_model.named_parameters() if p.grad is not None}
        assert grads and set(grads) <= set(trainable) and any(g.abs().sum() > 0 for g in grads.values())
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    peft_model.eval()
    m.model = peft_model
    tuned = m.logprobs(prompts, ["Step 1: a cup of coffee", "It is a cat."])
    assert tuned[0] != pytest.approx(base[0], abs=1e-4)
    peft_model.save_pretrained(tmp_path / "adapter")
    reloaded = HFVisionChatModel(str(folders[arch]), adapter=str(tmp_path / "adapter"), device="cpu")
    assert reloaded.describe()["adapter"] == str(tmp_path / "adapter")
    again = reloaded.logprobs(prompts, ["Step 1: a cup of coffee", "It is a cat."])
    for a, b in zip(again, tuned):
        assert a == pytest.approx(b, abs=1e-5)


# ---------------------------------------------------------------- errors


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SSUIError, match="model folder not found: .*nowhere"):
        HFVisionChatModel(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSUIError, match="no config.json"):
        HFVisionChatModel(str(tmp_path / "empty"))


def test_folder_without_weights_is_a_clear_error(folders, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folders["llava_next"] / "config.json").read_text())
    with pytest.raises(SSUIError, match="could not load a vision-language model"):
        HFVisionChatModel(str(broken))
    (broken / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    with pytest.raises(SSUIError, match="could not load"):
        HFVisionChatModel(str(broken))


def test_bad_adapter_and_dtype_are_clear_errors(folders, tmp_path):
    with pytest.raises(SSUIError, match="adapter folder not found"):
        HFVisionChatModel(str(folders["llava_next"]), adapter=str(tmp_path / "no-adapter"))
    with pytest.raises(SSUIError, match="dtype"):
        HFVisionChatModel(str(folders["llava_next"]), dtype="float8")
