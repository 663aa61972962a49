"""What a backend must offer to be trained (``ssui_lib.srpo.train``): the shape of a TRL collator.

A training loop scores rows "prompt ⊕ prefix ⊕ continuation" with labels on the continuation only.
How rows become forward batches differs per backend — a text LM pads many rows into one batch, a
VLM carries per-batch pixel and image-grid tensors and forwards one row at a time — so the backend
collates (``collate_rows``) and names the modules a LoRA adapter wraps (``lora_target_modules``:
a VLM names its language model's projections, never its vision tower). The loop asks for nothing
else, and never probes a backend with ``hasattr``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from ssui_lib.models.base import Prompt

# A text LM's attention + MLP projections (Llama / Qwen / SmolLM names).
LM_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Row:
    """One sequence to score: prompt ⊕ prefix ⊕ continuation; only the continuation is labelled."""

    prompt: Prompt
    continuation: str
    prefix: str = ""
    add_eos: bool = False


@runtime_checkable
class TrainableBackend(Protocol):
    """A local model the training loop can wrap with LoRA and score rows with."""

    name: str
    model: Any  # the torch module (wrapped in place by peft)

    def collate_rows(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """Forward batches (``input_ids``, ``attention_mask``, ``labels`` and any pixel tensors) that
        together hold ``rows`` in order."""
        ...

    def lora_target_modules(self) -> list[str] | str:
        """The module names (or a regex) a LoRA adapter wraps."""
        ...
