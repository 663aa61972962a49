"""A key/value cache that reserves room for the whole generation up front.

transformers' ``DynamicCache`` grows each layer's keys and values with ``torch.cat`` at every decode
step, so step t copies the whole cache (t tokens × rows × heads × head_dim, twice per layer): on a
2-core CPU decoding 32 rows that copy alone took about a tenth of the decode time. Here each layer
owns a buffer sized for prompt + ``max_new_tokens``, new keys and values are written into it in
place, and attention reads a view of the filled part. Results are identical to ``DynamicCache``
(the same numbers reach attention); only the copying is gone. A buffer that would overflow (a
caller under-estimated the length) doubles, so a wrong estimate costs time, never correctness.

A layer may also hold a *shared* prefix (:meth:`ReservedCache.share`): keys and values of S
positions common to every row, stored once as ``[1, heads, S, head_dim]`` and not in the row
buffers, for ``cascade.cascade_attention``. Its sequence length then counts those S positions
(so masks and positions are as if every row held them) while ``keys``/``values`` are the rows' own.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class ReservedLayer(DynamicLayer):
    """One layer's keys and values in a pre-allocated ``[rows, heads, capacity, head_dim]`` buffer."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = max(int(capacity), 1)
        self.length = 0
        self._k = self._v = None
        self.shared_k = self.shared_v = None
        self.shared_len = 0

    def share(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Hold ``keys``/``values`` ``[1, heads, S, head_dim]`` as a prefix every row has (not copied)."""
        if self.length:
            raise ValueError("share: the shared prefix must be set before any row's own tokens")
        self.lazy_initialization(keys, values)
        self.shared_k, self.shared_v, self.shared_len = keys, values, keys.shape[-2]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def _alloc(self, like: torch.Tensor, rows: int, capacity: int) -> torch.Tensor:
        return torch.empty((rows, like.shape[1], capacity, like.shape[3]), dtype=like.dtype, device=like.device)

    def _views(self) -> None:
        self.keys = self._k[:, :, : self.length]
        self.values = self._v[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        need = self.length + n
        if self._k is None or need > self._k.shape[2] or self._k.shape[0] != key_states.shape[0]:
            cap = max(self.capacity, need) if self._k is None else max(2 * self._k.shape[2], need)
            k, v = self._alloc(key_states, key_states.shape[0], cap), self._alloc(value_states, value_states.shape[0], cap)
            if self._k is not None and self.length:
                k[:, :, : self.length] = self._k[:, :, : self.length]
                v[:, :, : self.length] = self._v[:, :, : self.length]
            self._k, self._v = k, v
        self._k[:, :, self.length: need] = key_states
        self._v[:, :, self.length: need] = value_states
        self.length = need
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.shared_len + self.length

    def place(self, src: "ReservedLayer", rows: slice, total_rows: int, src_start: int, dst_start: int, n: int) -> None:
        """Copy ``n`` positions of ``src`` (from ``src_start``) into ``rows`` of this layer at
        ``dst_start`` (a source of one row is broadcast). The buffer is allocated zeroed on first use:
        positions never written hold zeros (finite), which an attention mask then hides."""
        if self._k is None:
            self.lazy_initialization(src._k, src._v)
            shape = (total_rows, src._k.shape[1], self.capacity, src._k.shape[3])
            self._k, self._v = src._k.new_zeros(shape), src._v.new_zeros(shape)
        if dst_start + n > self._k.shape[2]:
            raise ValueError(f"place: positions up to {dst_start + n} exceed the capacity {self._k.shape[2]}")
        self._k[rows, :, dst_start: dst_start + n] = src._k[:, :, src_start: src_start + n]
        self._v[rows, :, dst_start: dst_start + n] = src._v[:, :, src_start: src_start + n]
        self.length = max(self.length, dst_start + n)
        self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.length:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        if tokens_to_remove and self.length:
            self.length = max(self.length + tokens_to_remove, 0)
            self._views()

    def reset(self) -> None:
        self.length = 0
        self._k = self._v = self.keys = self.values = None
        self.shared_k = self.shared_v = None
        self.shared_len = 0
        self.is_initialized = False


class ReservedCache(Cache):
    """A cache of ``n_layers`` :class:`ReservedLayer`, each reserving ``capacity`` positions."""

    def __init__(self, n_layers: int, capacity: int):
        super().__init__(layers=[ReservedLayer(capacity) for _ in range(n_layers)])

    def share(self, base: "ReservedCache") -> None:
        """Every layer holds ``base``'s filled positions (a prefill of one row) as a shared prefix."""
        for mine, theirs in zip(self.layers, base.layers):
            mine.share(theirs._k[:, :, : theirs.length], theirs._v[:, :, : theirs.length])

    def place(self, src: "ReservedCache", rows: slice, total_rows: int, src_start: int, dst_start: int, n: int) -> None:
        """:meth:`ReservedLayer.place` on every layer (``src`` from a prefill of some of the rows)."""
        for mine, theirs in zip(self.layers, src.layers):
            mine.place(theirs, rows, total_rows, src_start, dst_start, n)
