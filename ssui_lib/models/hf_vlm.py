"""The transformers backend for the papers' vision-language models (Qwen2.5-VL, LLaVA-NeXT).

``HFVisionChatModel(path)`` loads ``AutoModelForImageTextToText`` + ``AutoProcessor`` from a local
folder (never the hub), optionally with a peft LoRA adapter, and implements the ``ChatModel``
interface with real pixels:

* ``generate``  -- the model's own chat template, an optional assistant prefix the model continues,
  ``n`` samples per prompt, greedy or temperature/top-p sampling, stop strings, a seed;
* ``encode``    -- the tensors training uses: prompt (+ image tokens) followed by the continuation,
  with ``labels`` = -100 everywhere except on the continuation's tokens;
* ``logprobs``  -- per-token log-probabilities of each continuation, built on ``encode``;
* ``lora_target_modules`` -- the language model's attention + MLP projections (not the vision
  tower, not the projector), also available as the module-level ``lora_targets(model_type)``.

Prompt and continuation are tokenized separately and concatenated (as TRL's preference trainers
do), so the boundary between the masked prompt and the scored continuation is exact even where a
BPE merge could otherwise straddle it.
"""
from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Generation, ImageRef, Prompt, SamplingParams, caption_text

# The language model's projections, by architecture. Qwen2.5-VL's vision blocks reuse the names
# gate_proj/up_proj/down_proj and CLIP's attention uses q_proj/k_proj/v_proj, so a bare list of
# names would also adapt the vision tower: the pattern is anchored on the ``language_model``
# submodule (peft full-matches a string ``target_modules`` against each module's dotted name).
_DECODER_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_LORA_TARGETS: dict[str, str] = {
    model_type: r".*\blanguage_model\b.*\.(" + "|".join(_DECODER_PROJECTIONS) + r")"
    for model_type in ("qwen2_5_vl", "qwen2_vl", "llava_next", "llava")
}

_DTYPES = {"auto": "auto", "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NON_PER_TOKEN_KEYS = ("pixel_values", "image_grid_thw", "image_sizes", "labels")


def lora_targets(model_type: str) -> str:
    """peft ``target_modules`` (a regex) for the language model of a VLM architecture."""
    try:
        return _LORA_TARGETS[model_type]
    except KeyError:
        raise SSUIError(
            f"LoRA targets: unknown VLM architecture {model_type!r} (known: {', '.join(sorted(_LORA_TARGETS))})"
        ) from None


# ---------------------------------------------------------------- loading


def _check_model_folder(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise SSUIError(f"hf-vlm: model folder not found: {p} (weights are never downloaded; give a local folder)")
    if not (p / "config.json").is_file():
        raise SSUIError(f"hf-vlm: {p}: no config.json, so no transformers model to load")
    return p


def _check_adapter_folder(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise SSUIError(f"hf-vlm: adapter folder not found: {p}")
    if not (p / "adapter_config.json").is_file():
        raise SSUIError(f"hf-vlm: {p}: no adapter_config.json, so no peft adapter to load")
    return p


def _image_only(processor_cls: type) -> type:
    """``processor_cls`` without its video processor.

    Qwen2.5-VL's processor insists on a video processor, which in transformers 5 needs
    torchvision (absent on CPU-only machines here: the only torchvision wheels need CUDA). This
    backend never sends videos, so a subclass whose ``__init__`` omits ``video_processor`` (the
    processor's sub-processors are read from its ``__init__`` signature) loads the tokenizer and
    image processor as usual and behaves identically on text and images.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        processor_cls.__init__(self, image_processor, tokenizer, video_processor=None,
                               chat_template=chat_template, **kwargs)

    return type(f"{processor_cls.__name__}ImageOnly", (processor_cls,), {"__init__": __init__})


def load_processor(path: str | Path):
    """``AutoProcessor`` from a local folder; an image-only variant where videos need torchvision."""
    from transformers import AutoConfig, AutoProcessor
    from transformers.utils import is_torchvision_available

    try:
        return AutoProcessor.from_pretrained(str(path), local_files_only=True)
    except ImportError:
        if is_torchvision_available():
            raise
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    return _image_only(PROCESSOR_MAPPING[type(config)]).from_pretrained(str(path), local_files_only=True)


def _torch_dtype(dtype: str, device: str):
    """``"auto"`` = the checkpoint's dtype on an accelerator, float32 on CPU (bfloat16 matmuls are
    very slow on the CPUs here); otherwise the named dtype."""
    if dtype == "auto" and torch.device(device).type == "cpu":
        return torch.float32
    return _DTYPES[dtype]


def _resolve_device(device: str | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ---------------------------------------------------------------- prompts


def to_processor_messages(prompt: Prompt) -> tuple[list[dict[str, Any]], list[Any]]:
    """Our OpenAI-style messages -> the processor's ``{"type": "image"}`` / ``{"type": "text"}``
    parts, plus the PIL images in order of appearance. An ``ImageRef`` without pixels becomes its
    caption (caption mode); content is always a list of parts (some templates iterate it)."""
    messages, images = [], []
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise SSUIError(f"prompt message {i}: expected a dict with 'role' and 'content'")
        content = m["content"]
        if isinstance(content, str):
            messages.append({"role": m["role"], "content": [{"type": "text", "text": content}]})
            continue
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "image":
                ref = part.get("image")
                if isinstance(ref, ImageRef):
                    if ref.pil is None:
                        parts.append({"type": "text", "text": caption_text(ref)})
                        continue
                    pil = ref.pil
                elif hasattr(ref, "convert"):  # a bare PIL image
                    pil = ref
                else:
                    raise SSUIError(f"prompt message {i}, part {j}: an image part needs an ImageRef or a PIL image")
                parts.append({"type": "image"})
                images.append(pil.convert("RGB"))
            else:
                raise SSUIError(f"prompt message {i}, part {j}: unknown content part type {kind!r}")
        messages.append({"role": m["role"], "content": parts})
    return messages, images


def _check_prefixes(prompts: Sequence[Prompt], prefixes: Sequence[str] | None) -> list[str]:
    if prefixes is None:
        return [""] * len(prompts)
    if len(prefixes) != len(prompts):
        raise SSUIError(f"hf-vlm: {len(prefixes)} prefixes for {len(prompts)} prompts")
    return [p or "" for p in prefixes]


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to (excluding) the earliest stop string, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


# ---------------------------------------------------------------- the backend


class HFVisionChatModel(ChatModel):
    """A local transformers vision-language model (Qwen2.5-VL, LLaVA-NeXT, ...) behind ``ChatModel``."""

    supports_images = True
    supports_prefix = True
    trainable = True
    supports_logprobs = True

    def __init__(
        self,
        path: str,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        device: str | None = None,
        name: str | None = None,
        batch_size: int = 8,
    ):
        from transformers import AutoModelForImageTextToText

        folder = _check_model_folder(path)
        adapter_folder = _check_adapter_folder(adapter) if adapter else None
        if dtype not in _DTYPES:
            raise SSUIError(f"hf-vlm: dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        self.path, self.adapter = str(folder), (str(adapter_folder) if adapter_folder else None)
        self.name = name or folder.name + (f"+{adapter_folder.name}" if adapter_folder else "")
        self.device = _resolve_device(device)
        self.batch_size = batch_size
        try:
            with ledger.phase("model_loading", load=f"hf:{folder}"):
                self.processor = load_processor(folder)
                model = AutoModelForImageTextToText.from_pretrained(
                    str(folder), dtype=_torch_dtype(dtype, self.device), device_map=self.device, local_files_only=True
                )
        except SSUIError:
            raise
        except Exception as e:  # a config without weights, an unknown architecture, a broken file
            raise SSUIError(f"hf-vlm: {folder}: could not load a vision-language model: "
                            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
        if adapter_folder is not None:
            from peft import PeftModel

            try:
                with ledger.phase("model_loading"):
                    model = PeftModel.from_pretrained(model, str(adapter_folder), is_trainable=False)
            except Exception as e:
                raise SSUIError(f"hf-vlm: {adapter_folder}: could not load the LoRA adapter: "
                                f"{type(e).__name__}: {e}") from e
        self.model = model.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        self.model_type = self.model.config.model_type
        self._pad_id = self._pad_token_id()
        self._eos_ids = self._eos_token_ids()
        cfg = self.model.config
        self._image_token_ids = {
            t for t in (getattr(cfg, "image_token_id", None), getattr(cfg, "image_token_index", None),
                        getattr(cfg, "video_token_id", None), getattr(self.processor, "image_token_id", None))
            if t is not None
        }

    # -- special tokens

    def _eos_token_ids(self) -> list[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        ids = eos if isinstance(eos, (list, tuple)) else [eos]
        return [int(i) for i in ids if i is not None]

    def _pad_token_id(self) -> int:
        for pad in (self.tokenizer.pad_token_id, getattr(self.model.generation_config, "pad_token_id", None),
                    self.tokenizer.eos_token_id):
            if pad is not None:
                return int(pad)
        raise SSUIError(f"hf-vlm: {self.path}: the tokenizer has neither a pad nor an eos token")

    # -- prompts -> tensors

    def render(self, prompt: Prompt, prefix: str = "") -> tuple[str, list[Any]]:
        """The prompt as the model's chat template writes it (ending in the generation prompt),
        followed by the assistant prefix; and the images it shows."""
        messages, images = to_processor_messages(prompt)
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return text + prefix, images

    def _process(self, prompts: Sequence[Prompt], prefixes: Sequence[str], padding_side: str):
        """Run the processor on a batch: token ids with expanded image placeholders + pixels."""
        texts, images = [], []
        for prompt, prefix in zip(prompts, prefixes):
            text, imgs = self.render(prompt, prefix)
            texts.append(text)
            images.extend(imgs)
        # The chat template already writes every special token (BOS included).
        return self.processor(text=texts, images=images or None, padding=True, padding_side=padding_side,
                              add_special_tokens=False, return_tensors="pt")

    def encode_batch(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[str | Sequence[int]],
        prefixes: Sequence[str] | None = None,
        add_eos: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Training tensors for a batch: each row is prompt (+ prefix) then continuation (+ the
        end-of-turn token if ``add_eos``), right-padded. ``labels`` copies ``input_ids`` on the
        continuation and is -100 on prompt, image and padding tokens. A continuation is a string
        or token ids (e.g. ``Generation.extra["token_ids"]``, to rescore exactly what was sampled)."""
        if len(prompts) != len(continuations):
            raise SSUIError(f"hf-vlm: {len(continuations)} continuations for {len(prompts)} prompts")
        prefixes = _check_prefixes(prompts, prefixes)
        batch = self._process(prompts, prefixes, padding_side="right")
        ids, mask = batch["input_ids"], batch["attention_mask"].bool()
        per_token = [k for k, v in batch.items()
                     if k not in _NON_PER_TOKEN_KEYS and k != "input_ids" and isinstance(v, torch.Tensor)
                     and v.shape[:2] == ids.shape]
        rows: list[dict[str, torch.Tensor]] = []
        for i, cont in enumerate(continuations):
            if isinstance(cont, str):
                cont_ids = self.tokenizer(cont, add_special_tokens=False)["input_ids"]
            else:
                cont_ids = [int(t) for t in cont]
            if add_eos:
                cont_ids = cont_ids + self._eos_ids[:1]
            cont_t = torch.tensor(cont_ids, dtype=ids.dtype)
            prompt_ids = ids[i][mask[i]]
            row = {"input_ids": torch.cat([prompt_ids, cont_t]),
                   "labels": torch.cat([torch.full_like(prompt_ids, -100), cont_t])}
            for k in per_token:
                fill = 1 if k == "attention_mask" else 0
                row[k] = torch.cat([batch[k][i][mask[i]], torch.full((len(cont_ids),), fill, dtype=batch[k].dtype)])
            rows.append(row)
        out = {k: v for k, v in batch.items() if k not in per_token and k != "input_ids"}
        width = max(len(r["input_ids"]) for r in rows)
        pads = {"input_ids": self._pad_id, "labels": -100}
        for k in rows[0]:
            out[k] = torch.stack([
                torch.cat([r[k], torch.full((width - len(r[k]),), pads.get(k, 0), dtype=r[k].dtype)]) for r in rows
            ])
        for t in self._image_token_ids:  # image tokens are never scored
            out["labels"][out["input_ids"] == t] = -100
        return out

    def encode(self, prompt: Prompt, continuation: str | Sequence[int], prefix: str = "", add_eos: bool = False) -> dict[str, torch.Tensor]:
        """Training tensors (batch of one) for ``continuation`` after ``prompt`` (+ ``prefix``):
        ``input_ids``, ``attention_mask``, the pixels and whatever the architecture needs
        (``image_grid_thw`` for Qwen2.5-VL, ``image_sizes`` for LLaVA-NeXT), and ``labels``."""
        return self.encode_batch([prompt], [continuation], [prefix], add_eos=add_eos)

    def forward_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch`` without ``labels``, on the model's device (what ``model(**...)`` takes)."""
        return {k: v.to(self.device) for k, v in batch.items() if k != "labels"}

    # -- scoring

    @staticmethod
    def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> list[list[float]]:
        """Per-row log-probabilities of the labelled tokens (label != -100) under ``logits``
        (position t predicts token t+1)."""
        logits, targets = logits[:, :-1].float(), labels[:, 1:].to(logits.device)
        keep = targets != -100
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return [logp[i][keep[i]].tolist() for i in range(logp.shape[0])]

    @ledger.timed("scoring")
    @torch.no_grad()
    def logprobs(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[str | Sequence[int]],
        prefixes: Sequence[str] | None = None,
    ) -> list[list[float]]:
        """Per-token log-probabilities of each continuation (a string, or token ids) given its
        prompt (+ prefix)."""
        prefixes = _check_prefixes(prompts, prefixes)
        out: list[list[float]] = []
        for s in range(0, len(prompts), self.batch_size):
            batch = self.encode_batch(prompts[s:s + self.batch_size], continuations[s:s + self.batch_size],
                                      prefixes[s:s + self.batch_size])
            logits = self.model(**self.forward_inputs(batch)).logits
            out.extend(self.token_logprobs(logits, batch["labels"]))
        return out

    # -- generation

    @ledger.timed("generation")
    def generate(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams = SamplingParams(),
        prefixes: Sequence[str] | None = None,
        progress: bool = False,
    ) -> list[list[Generation]]:
        """``params.n`` continuations of each prompt's prefix. ``logprob`` is the sum of the
        returned tokens' log-probabilities under the model's own (untempered) distribution;
        ``extra["token_ids"]`` holds those tokens (the end-of-turn token is not among them)."""
        prompts = list(prompts)
        prefixes = _check_prefixes(prompts, prefixes)
        starts = range(0, len(prompts), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"generate {self.name}", unit="batch")
        out: list[list[Generation]] = []
        for b, s in enumerate(starts):
            out.extend(self._generate_batch(prompts[s:s + self.batch_size], prefixes[s:s + self.batch_size],
                                            params, seed=params.seed + b))
        return out

    def _generation_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        kw: dict[str, Any] = dict(max_new_tokens=params.max_new_tokens, return_dict_in_generate=True,
                                  output_logits=True, pad_token_id=self._pad_id, eos_token_id=self._eos_ids)
        if params.temperature > 0:
            # Explicit values override a checkpoint's own sampling defaults (Qwen2.5-VL ships top_k=1).
            kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0,
                      repetition_penalty=1.0, num_return_sequences=params.n)
        else:
            kw.update(do_sample=False, num_beams=1)
        if params.stop:
            kw.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kw

    @torch.no_grad()
    def _generate_batch(self, prompts: list[Prompt], prefixes: list[str], params: SamplingParams,
                        seed: int) -> list[list[Generation]]:
        inputs = self._process(prompts, prefixes, padding_side="left").to(self.device)
        devices = [torch.device(self.device).index or 0] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # reproducible without touching the caller's RNG
            torch.manual_seed(seed)
            out = self.model.generate(**inputs, **self._generation_kwargs(params))
        new = out.sequences[:, inputs["input_ids"].shape[1]:]
        # one step at a time: a (rows, steps, vocab) float32 stack would not fit for real vocabularies
        logp = torch.stack([torch.log_softmax(step.float(), dim=-1).gather(-1, new[:, t:t + 1]).squeeze(-1)
                            for t, step in enumerate(out.logits)], dim=1).cpu()
        new = new.cpu()
        per_prompt = params.n if params.temperature > 0 else 1
        gens = [self._finish(new[r], logp[r], params) for r in range(new.shape[0])]
        ledger.count("tokens_prefilled", int(inputs["attention_mask"].sum()))
        ledger.count("tokens_generated", sum(g.n_tokens for g in gens))
        ledger.count("sequences_generated", len(gens))
        grouped = [gens[i * per_prompt:(i + 1) * per_prompt] for i in range(len(prompts))]
        if per_prompt == 1 and params.n > 1:  # greedy: n identical samples, computed once
            grouped = [[Generation(g.text, g.n_tokens, g.finish_reason, g.logprob,
                                   {"token_ids": list(g.extra["token_ids"])}) for _ in range(params.n)]
                        for (g,) in grouped]
        return grouped

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _finish(self, ids: torch.Tensor, logp: torch.Tensor, params: SamplingParams) -> Generation:
        """One generated row -> Generation: cut at end-of-turn, then at the first stop string."""
        ids_l = ids.tolist()
        eos_at = next((t for t, tok in enumerate(ids_l) if tok in self._eos_ids), None)
        kept = ids_l if eos_at is None else ids_l[:eos_at]
        full = self._decode(kept)
        text, hit = truncate_at_stop(full, params.stop)
        if hit:
            # The fewest tokens whose text covers the kept text (a stop string may begin inside
            # a token; that token is counted). Decoded length grows with the token count.
            lengths = _LazyDecodedLengths(self._decode, kept)
            kept = kept[: bisect.bisect_left(lengths, len(text))] if text else []
        if hit or eos_at is not None:
            reason = "stop"
        else:  # the stop-string criterion may end a row without the string surviving decoding
            reason = "length" if len(kept) >= params.max_new_tokens else "stop"
        return Generation(text=text, n_tokens=len(kept), finish_reason=reason,
                          logprob=float(logp[: len(kept)].sum()), extra={"token_ids": kept})

    # -- training helpers and metadata

    def collate_rows(self, rows: Sequence[Any]) -> list[dict[str, torch.Tensor]]:
        """Training rows (``models.trainable.Row``) as forward batches, one per row: pixels and
        image-grid tensors are per batch (TrainableBackend)."""
        return [self.encode(r.prompt, r.continuation, prefix=r.prefix, add_eos=r.add_eos) for r in rows]

    def lora_target_modules(self) -> str:
        """peft ``target_modules`` for this model's language model (attention + MLP projections)."""
        return lora_targets(self.model_type)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": "hf-vlm", "path": self.path, "adapter": self.adapter,
                "model_type": self.model_type}


class _LazyDecodedLengths(Sequence):
    """``len(decode(ids[:k]))`` for k = 0..len(ids), computed on demand (for ``bisect``)."""

    def __init__(self, decode, ids: list[int]):
        self._decode, self._ids = decode, ids

    def __len__(self) -> int:
        return len(self._ids) + 1

    def __getitem__(self, k):
        return len(self._decode(self._ids[:k]))


def read_model_type(path: str | Path) -> str:
    """The ``model_type`` in a local folder's config.json (without loading the model)."""
    folder = _check_model_folder(path)
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"]
    except (ValueError, KeyError) as e:
        raise SSUIError(f"hf-vlm: {folder / 'config.json'}: no readable model_type") from e
