"""Cascade attention: a prefix shared by every row of a batch is stored once and attended once.

SRPO's exploration decodes many rows that all begin with the same long text (system prompt, the
six-step instructions, the exemplars D_c: often over a thousand tokens). Repeating that prefix's
keys and values in every row (what ``batch_repeat_interleave`` does) makes each decode step read
rows × prefix × layers of cache: on the 2-core CPU, with 64 rows after a 1,200-token prefix, about
3.5 GB per step, twice the model's own weights and matrix products. Here the shared prefix's keys
and values stay one ``[1, kv_heads, S, head_dim]`` tensor per layer; attention is computed in two
parts and merged exactly by their log-sum-exps (the "cascade" / "Hydragen" decomposition):

    softmax over [shared ; own] · [V_s ; V_o]
      = w_s · softmax(q K_sᵀ) V_s + w_o · softmax(q K_oᵀ) V_o,   w_x = exp(lse_x − logaddexp(lse_s, lse_o))

The shared part is one matrix product of *all* rows' queries against the shared keys (read once);
the own part is ordinary masked attention over each row's own tokens. Both use PyTorch's CPU flash
attention kernel, which returns the log-sum-exp the merge needs. The result equals attention over
the concatenation up to float rounding (tests compare against ``scaled_dot_product_attention``).

The attention function is registered with transformers under :data:`NAME`; it is active only inside
:func:`active` (a context naming the cache whose layers hold the shared prefix) and otherwise is
transformers' own SDPA path. Used on CPU for models loaded with SDPA attention (the default).
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "ssui_cascade"
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("ssui_cascade_cache", default=None)
_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def merge(out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor) -> torch.Tensor:
    """Attention over the union of two key sets from the attention over each (outputs ``[..., D]``,
    log-sum-exps ``[...]``; a part with no visible key has lse −inf and weight 0)."""
    lse = torch.logaddexp(lse_a, lse_b)
    return out_a * torch.exp(lse_a - lse)[..., None] + out_b * torch.exp(lse_b - lse)[..., None]


def _additive(mask: torch.Tensor, dtype) -> torch.Tensor:
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))


def cascade_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers attention function: query ``[B, H, q, D]``; ``key``/``value`` the row's own
    cached tokens ``[B, Hkv, L, D]``; ``attention_mask`` boolean ``[B, 1, q, S + L]`` or None."""
    cache = _ACTIVE.get()
    layer = cache.layers[module.layer_idx] if cache is not None else None
    if layer is None or not getattr(layer, "shared_len", 0) or query.device.type != "cpu" or dropout:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    B, H, q, D = query.shape
    Hk, L, S = key.shape[1], key.shape[2], layer.shared_len
    g = H // Hk
    scale = scaling if scaling is not None else D ** -0.5
    # the g query heads of one key/value head as g·q rows (head h -> kv head h // g, as repeat_kv)
    qp = query.reshape(B, Hk, g * q, D)
    if attention_mask is None:  # no padding: causal within the row's own tokens (decode: all visible)
        own = torch.ones(q, L, dtype=torch.bool, device=query.device).tril(L - q)[None, None]
    else:
        if attention_mask.dtype != torch.bool:
            raise TypeError(f"{NAME}: expected a boolean attention mask, got {attention_mask.dtype}")
        own = attention_mask[..., S:]
    if g > 1 and q > 1:
        own = own.repeat(1, 1, g, 1)
    out_o, lse_o = _flash(qp, key, value, attn_mask=_additive(own, query.dtype), scale=scale)
    lse_o = lse_o.masked_fill(~own.any(-1).expand(B, Hk, g * q), float("-inf"))
    # the shared part: every row's queries against the one copy of the shared keys
    qs = qp.transpose(0, 1).reshape(1, Hk, B * g * q, D)
    out_s, lse_s = _flash(qs, layer.shared_k, layer.shared_v, scale=scale)
    out_s = out_s.reshape(Hk, B, g * q, D).transpose(0, 1)
    lse_s = lse_s.reshape(Hk, B, g * q).transpose(0, 1)
    out = merge(out_s.float(), lse_s.float(), out_o.float(), lse_o.float()).to(query.dtype)
    return out.reshape(B, H, q, D).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, cascade_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)


def usable(model) -> bool:
    """Whether ``model`` can run cascade attention: on CPU, with transformers' SDPA attention."""
    cfg = getattr(model, "config", None)
    return (cfg is not None and getattr(cfg, "_attn_implementation", None) in ("sdpa", NAME)
            and model.device.type == "cpu")


@contextlib.contextmanager
def active(model, cache):
    """Run the model's forward calls in this block with cascade attention over ``cache``'s shared
    prefix (``kv_cache.ReservedCache.share``)."""
    cfg = model.config
    old = cfg._attn_implementation
    token = _ACTIVE.set(cache)
    cfg._attn_implementation = NAME
    try:
        yield
    finally:
        cfg._attn_implementation = old
        _ACTIVE.reset(token)
