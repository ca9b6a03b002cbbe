"""A KV cache that writes in place into buffers sized for the whole generation.

transformers' DynamicCache grows by `torch.cat` every decode step, copying the whole cache each
time: O(length^2) copying, measured at 36 % of the transformers engine's decode time for the
embedded model (8 prompts x 8 samples x 32 tokens, one thread). Here each layer allocates
(rows, heads, capacity, head_dim) once, writes the new keys/values into the next slots, and hands
attention a view of the filled prefix. Dropping finished rows and repeating prompt rows G times
index the buffers (a copy, but once per event, not once per token).
"""
from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        rows, heads, _, dim = key_states.shape
        self.key_buf = key_states.new_empty(rows, heads, self.capacity, dim)
        self.value_buf = value_states.new_empty(rows, heads, self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({end} positions)")
        self.key_buf[:, :, self.length:end] = key_states
        self.value_buf[:, :, self.length:end] = value_states
        self.length = end
        self._refresh()
        return self.keys, self.values

    def _refresh(self) -> None:
        self.keys, self.values = self.key_buf[:, :, :self.length], self.value_buf[:, :, :self.length]

    def get_seq_length(self) -> int:
        return self.length

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.key_buf = self.key_buf.repeat_interleave(repeats, dim=0)
            self.value_buf = self.value_buf.repeat_interleave(repeats, dim=0)
            self._refresh()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.key_buf, self.value_buf = self.key_buf[indices], self.value_buf[indices]
            self._refresh()


def preallocated_cache(model: torch.nn.Module, capacity: int) -> Cache | None:
    """A preallocated cache for a model whose layers all use full attention, else None (use the default)."""
    cfg = getattr(model.config, "get_text_config", lambda: model.config)()
    types = getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers
    if any(t != "full_attention" for t in types) or getattr(cfg, "use_sliding_window", False):
        return None
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(cfg.num_hidden_layers)])
