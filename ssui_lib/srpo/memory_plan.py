"""Know before you spend: the memory one LoRA training step needs per device, from a model's
``config.json`` and the training settings, without loading a weight (``ssui train --dry-run``).

The parts (bytes, per device):
  * **weights**: every parameter of the frozen base model in the training dtype (the
    safetensors files' size when the folder has them, else counted from the config: embeddings,
    attention, MLP and norms of each decoder layer, an untied LM head, and a ViT-style vision
    tower when the config has ``vision_config``);
  * **LoRA state**: the adapter on the decoder's attention and MLP projections
    (``models.trainable.LM_TARGETS``), rank r: ``r·(in + out)`` parameters per projection and
    layer, kept in float32 with their gradient and AdamW's two moments (16 bytes each);
  * **activations** saved for the backward pass, per token and decoder layer, in elements of the
    training dtype: ``7·h + 2·kv + 4·i + 7·r`` without gradient checkpointing (the norms' inputs,
    the projections' inputs, q/k/v and the attention output as SDPA / flash attention keeps them,
    the gate, up, activation and product of the MLP, the LoRA A outputs: coefficients measured with
    :func:`measure_activations` on tiny Llamas, h, i, r and kv varied one at a time) and ``h`` with
    it (each layer's input, and the final norm's), plus one layer's full set, rebuilt during backward; plus the
    log-softmax over the vocabulary at the scored positions (float32);
  * **tokens per step**: micro-batch × sequence length on each device; the global batch is the
    micro-batch × devices × gradient-accumulation steps.
:func:`measure_activations` counts what autograd really saves on a small model, and the tests
hold the per-layer formula to it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ssui_lib.core.errors import SSUIError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
LORA_BYTES_PER_PARAM = 16  # float32 weight + gradient + AdamW exp_avg + exp_avg_sq
GIB = 1024 ** 3


@dataclass(frozen=True)
class Shape:
    """The sizes of a decoder (and its vision tower) that memory depends on."""
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False
    vision_params: int = 0

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads


def _get(cfg: dict[str, Any], key: str, where: str) -> Any:
    if key not in cfg:
        raise SSUIError(f"{where}: field '{key}' missing (needed for the memory plan)")
    return cfg[key]


def shape_from_config(cfg: dict[str, Any], where: str = "config.json") -> Shape:
    """The :class:`Shape` of a transformers ``config.json`` (a VLM's text part is its
    ``text_config`` when it has one, else the top level, as in Qwen2.5-VL)."""
    text = cfg.get("text_config") or cfg
    h, layers = int(_get(text, "hidden_size", where)), int(_get(text, "num_hidden_layers", where))
    heads = int(_get(text, "num_attention_heads", where))
    vision = cfg.get("vision_config") or None
    vp = 0
    if vision:  # a ViT: attention (4·hv²) and a gated MLP (3·hv·iv) per block, a patch merger to h
        hv = int(vision.get("hidden_size") or vision.get("embed_dim") or 0)
        iv = int(vision.get("intermediate_size") or 4 * hv)
        depth = int(vision.get("depth") or vision.get("num_hidden_layers") or 0)
        patch = int(vision.get("patch_size", 14)) ** 2 * int(vision.get("in_channels", 3)) * int(vision.get("temporal_patch_size", 1))
        merge = int(vision.get("spatial_merge_size", 1)) ** 2
        vp = depth * (4 * hv * hv + 3 * hv * iv) + patch * hv + (hv * merge) ** 2 + hv * merge * h
    return Shape(hidden=h, intermediate=int(_get(text, "intermediate_size", where)), layers=layers, heads=heads,
                 kv_heads=int(text.get("num_key_value_heads") or heads), vocab=int(_get(text, "vocab_size", where)),
                 tied=bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False))), vision_params=vp)


def count_params(s: Shape) -> int:
    """Parameters of the base model from its shape (biases and rotary tables left out)."""
    layer = s.hidden * (2 * s.hidden + 2 * s.kv_dim) + 3 * s.hidden * s.intermediate + 2 * s.hidden
    return s.vocab * s.hidden * (1 if s.tied else 2) + s.layers * layer + s.hidden + s.vision_params


def lora_params(s: Shape, rank: int) -> int:
    """LoRA parameters on q, k, v, o, gate, up and down of every decoder layer."""
    h, kv, i = s.hidden, s.kv_dim, s.intermediate
    per_layer = (h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h)
    return s.layers * rank * per_layer


def activation_elements_per_token(s: Shape, rank: int, checkpointing: bool) -> int:
    """Elements saved for backward per token, summed over the decoder layers (see module doc; with
    checkpointing, the layer inputs kept through the step, without the one layer rebuilt)."""
    if checkpointing:
        return (s.layers + 1) * s.hidden  # every layer's input and the final norm's
    return s.layers * layer_elements_per_token(s, rank)


def layer_elements_per_token(s: Shape, rank: int) -> int:
    """Elements one decoder layer saves for backward per token (no checkpointing)."""
    return 7 * s.hidden + 2 * s.kv_dim + 4 * s.intermediate + 7 * rank


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device for one training step (see the module doc)."""
    weights: int
    lora_state: int
    activations: int
    activations_checkpointed: int
    logits: int
    tokens_per_step: int
    global_batch: int
    devices: int
    checkpointing: bool

    def total_with(self, checkpointing: bool) -> int:
        act = self.activations_checkpointed if checkpointing else self.activations
        return self.weights + self.lora_state + act + self.logits

    @property
    def total(self) -> int:
        """The total under the plan's own ``checkpointing`` setting."""
        return self.total_with(self.checkpointing)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}

    def table(self) -> str:
        """The plan as a small text table in GiB."""
        rows = [("weights (frozen base)", self.weights), ("LoRA state (weights, grads, AdamW)", self.lora_state),
                ("activations, no checkpointing", self.activations),
                ("activations, gradient checkpointing", self.activations_checkpointed),
                ("log-softmax at scored positions", self.logits),
                ("total without checkpointing", self.total_with(False)),
                ("total with checkpointing", self.total_with(True))]
        lines = [f"memory per device ({self.devices} device(s), global batch {self.global_batch}, "
                 f"{self.tokens_per_step} tokens per step per device):"]
        lines += [f"  {name:<40} {b / GIB:9.3f} GiB" for name, b in rows]
        return "\n".join(lines)


def plan_memory(shape: Shape, *, batch_size: int = 8, seq_len: int = 1024, lora_rank: int = 8,
                dtype: str = "bfloat16", devices: int = 1, checkpointing: bool = True,
                scored_fraction: float = 1.0, weight_bytes: int | None = None) -> MemoryPlan:
    """The :class:`MemoryPlan` for ``batch_size`` (global) sequences of ``seq_len`` tokens split
    over ``devices`` data-parallel devices (each holds the whole model: DDP). ``scored_fraction``:
    the share of positions whose log-probabilities the loss needs (1.0: an upper bound).
    ``weight_bytes``: the weights' real size when known (safetensors files)."""
    if dtype not in DTYPE_BYTES:
        raise SSUIError(f"memory plan: dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    for name, v in (("batch_size", batch_size), ("seq_len", seq_len), ("lora_rank", lora_rank), ("devices", devices)):
        if not isinstance(v, int) or v < 1:
            raise SSUIError(f"memory plan: {name} must be an integer >= 1, got {v!r}")
    if batch_size % devices:
        raise SSUIError(f"memory plan: the global batch {batch_size} does not split over {devices} devices")
    if not 0 < scored_fraction <= 1:
        raise SSUIError(f"memory plan: scored_fraction must be in (0, 1], got {scored_fraction}")
    e = DTYPE_BYTES[dtype]
    tokens = batch_size // devices * seq_len
    return MemoryPlan(
        weights=weight_bytes if weight_bytes is not None else count_params(shape) * e,
        lora_state=lora_params(shape, lora_rank) * LORA_BYTES_PER_PARAM,
        activations=tokens * activation_elements_per_token(shape, lora_rank, False) * e,
        activations_checkpointed=tokens * (activation_elements_per_token(shape, lora_rank, True)
                                           + layer_elements_per_token(shape, lora_rank)) * e,
        logits=int(tokens * scored_fraction) * shape.vocab * 4,
        tokens_per_step=tokens, global_batch=batch_size, devices=devices, checkpointing=checkpointing)


def plan_for_folder(folder: str | Path, **kw: Any) -> MemoryPlan:
    """:func:`plan_memory` for a model folder (its config.json; the weights' size from its
    safetensors files, converted to the plan's dtype, when there are any)."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise SSUIError(f"{folder}: no config.json (a transformers model folder)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise SSUIError(f"{cfg_path}:{e.lineno}: not valid JSON ({e.msg})") from None
    shape = shape_from_config(cfg, str(cfg_path))
    files = sorted(folder.glob("*.safetensors"))
    if files and "weight_bytes" not in kw:
        from safetensors import safe_open

        n = 0
        for f in files:
            with safe_open(str(f), framework="pt") as st:
                for k in st.keys():
                    sl = st.get_slice(k)
                    size = 1
                    for d in sl.get_shape():
                        size *= d
                    n += size
        kw["weight_bytes"] = n * DTYPE_BYTES[kw.get("dtype", "bfloat16")]
    return plan_memory(shape, **kw)


def measure_activations(model, input_ids, *, checkpointing: bool = False) -> int:
    """Bytes autograd saves for backward in one forward of ``model`` on ``input_ids`` with the
    book's loss (log-softmax of every position), parameters excluded: each saved storage counted
    once. With ``checkpointing`` the model's gradient checkpointing is on for the forward."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        return t

    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = model(input_ids=input_ids).logits
            loss = torch.log_softmax(logits.float(), -1)[..., 0].sum()
        loss.backward()
    finally:
        if checkpointing:
            model.gradient_checkpointing_disable()
    return sum(seen.values())
