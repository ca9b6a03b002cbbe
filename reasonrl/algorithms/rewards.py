"""Outcome-reward transforms and group filters (docs/algorithms.md 3).

Shapes: lengths, scores (N,); rewards (B, G); token tensors (N, T).
"""
from __future__ import annotations

import torch


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO overlong shaping, added to the task reward:
    0 if L <= max_len - buffer; ((max_len - buffer) - L) / buffer * factor inside the buffer; -factor past max_len.
    """
    lengths = lengths.to(torch.float64)
    free = max_len - buffer
    inside = (free - lengths) / buffer
    pen = torch.where(lengths <= free, torch.zeros_like(lengths), inside)
    pen = torch.where(lengths > max_len, torch.full_like(lengths, -1.0), pen)
    return pen * factor


def groups_with_signal(rewards: torch.Tensor) -> torch.Tensor:
    """DAPO dynamic sampling: (B, G) -> (B,) True where the group's rewards are not all equal."""
    return (rewards.max(-1).values - rewards.min(-1).values) > 0


def kl_in_reward(scores: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor,
                 beta: float) -> torch.Tensor:
    """PPO-style KL in the reward: token rewards -beta*k1 everywhere, the outcome score added at the last
    valid token. Returns token rewards (N, T); their row sums are the scalar rewards R_i."""
    m = mask.bool()
    tok = torch.where(m, -beta * (logp_old - logp_ref), torch.zeros_like(logp_old))
    last = (m.cumsum(-1) == m.sum(-1, keepdim=True)) & m
    return tok + torch.where(last, scores[:, None].to(tok.dtype), torch.zeros_like(tok))
