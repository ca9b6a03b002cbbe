"""Masked reductions and loss-aggregation modes.

Shapes: x, mask (N, T). Padding may hold garbage (inf, nan): every reduction uses
`where(mask, x, 0)`, never `x * mask`.

Aggregation across micro-batches: each mode is written as a *partial sum* over the rows it is
given divided by a *global* normaliser (`num_tokens` or `num_seqs` of the whole mini-batch), so
the partials of the micro-batches add up to exactly the mini-batch value (docs/algorithms.md 1.3:
a mean of micro-batch means is not the global token mean). Called on a whole batch with the
normalisers left as None, each mode gives its textbook value.
"""
from __future__ import annotations

from typing import Optional

import torch

from reasonrl.registry import Registry

LOSS_AGGREGATIONS: Registry = Registry("loss aggregation mode")


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    z = torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return z.sum() if dim is None else z.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    return masked_sum(x, mask, dim) / mask.sum(dim).clamp(min=1)


def reverse_cumsum(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sums from each position to the end along `dim` (returns-to-go with gamma = 1)."""
    return torch.flip(torch.cumsum(torch.flip(x, [dim]), dim), [dim])


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (unbiased variance), zero off the mask."""
    mean = masked_mean(x, mask)
    var = masked_sum((x - mean) ** 2, mask) / (mask.sum() - 1).clamp(min=1)
    return torch.where(mask.bool(), (x - mean) * torch.rsqrt(var + eps), torch.zeros_like(x))


@LOSS_AGGREGATIONS.register("token-mean")
def token_mean(loss, mask, *, num_tokens: Optional[float] = None, num_seqs=None, scale=None):
    """sum_{i,t} m*l / (tokens in the mini-batch). verl's default; DAPO; PRIME."""
    return masked_sum(loss, mask) / (num_tokens if num_tokens is not None else mask.sum().clamp(min=1))


@LOSS_AGGREGATIONS.register("seq-mean-token-mean")
def seq_mean_token_mean(loss, mask, *, num_seqs: Optional[float] = None, num_tokens=None, scale=None):
    """mean_i (sum_t m*l / L_i). Original GRPO (DeepSeekMath); biased toward long wrong answers."""
    per_seq = masked_sum(loss, mask, dim=-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / (num_seqs if num_seqs is not None else loss.shape[0])


@LOSS_AGGREGATIONS.register("seq-mean-token-sum")
def seq_mean_token_sum(loss, mask, *, num_seqs: Optional[float] = None, num_tokens=None, scale=None):
    """mean_i sum_t m*l."""
    return masked_sum(loss, mask) / (num_seqs if num_seqs is not None else loss.shape[0])


@LOSS_AGGREGATIONS.register("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(loss, mask, *, scale: Optional[float] = None, num_seqs=None, num_tokens=None):
    """sum_{i,t} m*l / C with a constant C (verl's Dr. GRPO mode; no 1/N, docs/algorithms.md 1.3)."""
    return masked_sum(loss, mask) / (scale if scale is not None else loss.shape[-1])


@LOSS_AGGREGATIONS.register("drgrpo")
def drgrpo(loss, mask, *, scale: Optional[float] = None, num_seqs: Optional[float] = None, num_tokens=None):
    """The Dr. GRPO paper's (1/G) sum_i sum_t m*l / L_max, averaged over groups: sum / (N * C)."""
    n = num_seqs if num_seqs is not None else loss.shape[0]
    return masked_sum(loss, mask) / (n * (scale if scale is not None else loss.shape[-1]))


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str, **normalisers) -> torch.Tensor:
    return LOSS_AGGREGATIONS.get(mode)(loss, mask, **normalisers)
