"""Tiny, randomly initialised vision-language models saved to a folder like real weights.

No weights can be downloaded here, so the transformers VLM backend (``ssui_lib.models.hf_vlm``)
is tested on miniature versions of the papers' two architectures:

* ``build_tiny_qwen2_5_vl(folder)``  -- Qwen2.5-VL (Qwen2_5_VLConfig, ViT with 2x2 patch merger)
* ``build_tiny_llava_next(folder)``  -- LLaVA-NeXT (LlavaNextConfig = tiny CLIP + tiny Llama)

Each folder holds ``config.json`` + ``model.safetensors`` + ``generation_config.json``, a tokenizer
(``tokenizer.json`` etc.), the image processor's config and a ``chat_template.jinja``: the same
files a real checkpoint ships, so the backend loads them with ``AutoModelForImageTextToText`` and
``AutoProcessor`` exactly as it would load Qwen2.5-VL-7B or llama3-llava-next-8b.

The tokenizer is a byte-level BPE trained (deterministically, in milliseconds) with the
``tokenizers`` library on a few sentences, plus the special tokens each processor needs. The
models have hidden size 64 and 2 layers, so a forward pass takes milliseconds on CPU.
This is a test helper, not a test file.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast

# A few sentences in the register of the book (the reasoning chain, safety replies) so the BPE
# learns some multi-byte merges; every other string still encodes, byte by byte.
_CORPUS = [
    "Step 1: Analyze the visual context. The image shows a cup of coffee on a saucer.",
    "Step 2: Analyze the textual request. The user asks how to make it stronger.",
    "Step 3: Synthesize visual and textual cues. Together they are harmless.",
    "Step 4: Determine the deeper intent and categorize the risk.",
    "Step 5: Evaluate the potential consequences of answering.",
    "Step 6: Formulate a safety-aligned response strategy.",
    "Final answer: I can't help with that, but here is a safe alternative.",
    "Describe the image. What is in this picture? Answer briefly and safely.",
    "You are a helpful assistant. The answer is safe and effective.",
]

QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
]
LLAVA_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>", "<image>", "<pad>",
]

# Qwen2-VL's template (image placeholders between vision_start/end), without the counters.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# llama3-llava-next-8b's template: Llama-3 headers, images first, then the text.
LLAVA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}<image>\n{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% endif %}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_tokenizer(special_tokens: list[str], vocab_size: int = 384, **roles: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``_CORPUS`` with ``special_tokens`` added as
    atomic special tokens; ``roles`` names them (``eos_token="<|im_end|>"``, ``pad_token=...``)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in special_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **roles)


def _save_model(model: torch.nn.Module, gen: GenerationConfig, folder: Path) -> None:
    model.generation_config = gen
    model.save_pretrained(folder)


def build_tiny_qwen2_5_vl(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen2.5-VL (model + tokenizer + image processor + chat template)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(QWEN_SPECIALS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    hidden, heads = 64, 4
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=1024,
            # multimodal RoPE: (temporal, height, width) sections sum to head_dim / 2 = 8
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, window_size=56, out_hidden_size=hidden, fullatt_block_indexes=[1],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).float().eval()
    gen = GenerationConfig(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                           bos_token_id=ids["<|endoftext|>"])
    _save_model(model, gen, folder)
    # A real Qwen2.5-VL folder: tokenizer files + preprocessor_config.json + chat template.
    # (Qwen2_5_VLProcessor itself also wants a video processor, which needs torchvision: the
    # backend assembles an image-only processor when torchvision is missing.)
    tok.save_pretrained(folder)
    # 14-pixel patches merged 2x2: at most 112x112 pixels = 16 merged tokens per image.
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14,
                             temporal_patch_size=2, merge_size=2).save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE, encoding="utf-8")
    return folder


def build_tiny_llava_next(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random LLaVA-NeXT (CLIP 28x28 + Llama; model + processor + chat template)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration
    from transformers import LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(LLAVA_SPECIALS, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<pad>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in LLAVA_SPECIALS}
    side, patch = 28, 14
    pinpoints = [[side, 2 * side], [2 * side, side], [2 * side, 2 * side]]
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=side, patch_size=patch, projection_dim=32,
        ).to_dict(),
        text_config=LlamaConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
            bos_token_id=ids["<|begin_of_text|>"], eos_token_id=ids["<|eot_id|>"], pad_token_id=ids["<pad>"],
        ).to_dict(),
        image_token_index=ids["<image>"],
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(side // patch) ** 2,
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).float().eval()
    gen = GenerationConfig(eos_token_id=ids["<|eot_id|>"], pad_token_id=ids["<pad>"],
                           bos_token_id=ids["<|begin_of_text|>"])
    _save_model(model, gen, folder)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}, image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=patch,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    processor.save_pretrained(folder)
    return folder


BUILDERS = {"qwen2_5_vl": build_tiny_qwen2_5_vl, "llava_next": build_tiny_llava_next}


def describe_folder(folder: str | Path) -> dict:
    """File names and the config's model_type (handy when a load fails)."""
    folder = Path(folder)
    return {"files": sorted(p.name for p in folder.iterdir()),
            "model_type": json.loads((folder / "config.json").read_text())["model_type"]}


def build_tiny_llama(folder: str | Path, seed: int = 0) -> Path:
    """A tiny random Llama with the embedded model's tokenizer, saved like a real checkpoint."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ssui_lib.models.embedded import ensure_converted

    folder = Path(folder)
    tok = AutoTokenizer.from_pretrained(ensure_converted(), local_files_only=True)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
