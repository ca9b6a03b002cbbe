"""PyTorch's variable-length flash attention as a transformers attention function: `torch_varlen`.

`model.attn_implementation=torch_varlen` runs attention through `torch.nn.attention.varlen.varlen_attn`
(CUDA only) without the flash-attn package. Rows are never padded inside the kernel:

* packed micro-batches (trainer.packing; one row, position_ids restarting at 0 per sequence): the
  sequence boundaries come from the restarts;
* padded micro-batches (right-padded, the 2-D mask transformers hands flash-style functions): the
  real tokens are gathered, attended per row, and scattered back;
* anything else (a KV cache during generation, where queries and keys differ in length) goes through
  SDPA with a causal + padding mask, so one model serves both the learner and the engine.

The kernel takes bf16/fp16; fp32 inputs on CUDA are cast to bf16 for the kernel and back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "torch_varlen"


def varlen_kernel(q, k, v, cu_seq, max_len, *, scale, gqa):
    """(T, H, D) causal attention within the segments cu_seq delimits. Swapped for a reference in CPU tests."""
    from torch.nn.attention.varlen import varlen_attn

    return varlen_attn(q, k, v, cu_seq, cu_seq, max_len, max_len, scale=scale, window_size=(-1, 0), enable_gqa=gqa)


def _kernel(q, k, v, cu_seq, max_len, scale, gqa):
    dtype = q.dtype
    if dtype == torch.float32 and q.is_cuda:
        q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
    return varlen_kernel(q.contiguous(), k.contiguous(), v.contiguous(), cu_seq, max_len, scale=scale, gqa=gqa).to(dtype)


def segments_from_positions(position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(L,) positions restarting at 0 per sequence -> cu_seq (S+1,) int32 and the longest segment."""
    starts = torch.nonzero(position_ids == 0).flatten()
    cu = torch.cat([starts, starts.new_tensor([position_ids.numel()])]).to(torch.int32)
    return cu, int((cu[1:] - cu[:-1]).max())


def sdpa_fallback(query, key, value, mask2d, scale, gqa):
    """(B, H, Lq, D) queries over (B, H, Lk, D) keys: causal with the queries at the end, padding masked;
    every query sees at least itself, so padded rows stay finite."""
    lq, lk = query.shape[2], key.shape[2]
    allowed = torch.ones(lq, lk, dtype=torch.bool, device=query.device).tril(diagonal=lk - lq)[None, None]
    if mask2d is not None:
        allowed = allowed & mask2d[:, None, None, -lk:].bool()
    allowed = allowed | torch.eye(lq, lk, dtype=torch.bool, device=query.device).roll(lk - lq, dims=1)[None, None]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scale, enable_gqa=gqa)
    return out.transpose(1, 2)


def torch_varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                           position_ids=None, **kwargs):
    """transformers' attention-function contract: (B, H, L, D) in, ((B, L, H, D), None) out."""
    b, heads, length, dim = query.shape
    gqa = key.shape[1] != heads
    if key.shape[2] != length:  # a KV cache: not a training forward
        return sdpa_fallback(query, key, value, attention_mask, scaling, gqa), None
    q, k, v = (x.transpose(1, 2) for x in (query, key, value))  # (B, L, H, D)
    if attention_mask is None and b == 1 and position_ids is not None:  # packed
        cu, longest = segments_from_positions(position_ids.reshape(-1))
        return _kernel(q[0], k[0], v[0], cu, longest, scaling, gqa)[None], None
    if attention_mask is None:
        attention_mask = torch.ones(b, length, dtype=torch.long, device=query.device)
    real = attention_mask.bool()  # right-padded rows: gather the real tokens, attend, scatter back
    lengths = real.sum(1)
    cu = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)]).to(torch.int32)
    out = _kernel(q[real], k[real], v[real], cu, int(lengths.max()), scaling, gqa)
    full = q.new_zeros(b, length, heads, v.shape[-1])
    full[real] = out
    return full, None


def register() -> None:
    """Make `torch_varlen` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(NAME, torch_varlen_attention)
    AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["flash_attention_2"])
