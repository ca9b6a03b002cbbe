"""Step-reward shaping that cannot be farmed (ALGORITHMS.md 4 and 5).

Shapes: p (K,) PRM scores of one response's K steps; the batched helpers take lists of those.
Every function returns per-step process rewards; `returns` adds the success reward at the last
step and sums from each step to the end (gamma = 1).

  raw        r_k = p_k                          return grows with the number of steps (farmable)
  clip       r_k = min(p_k - eta, 0)            every reward <= 0: return in [-K*eta, 0]
  delta      r_k = p_k - p_{k+1}, r_K = 0       telescopes: return-to-go = p_k - p_K, in [-1, 1]
  clip_delta delta applied to the clipped values: return-to-go = c_k - c_K, in [-eta, eta]
Variant chosen for Delta: the last step's own reward is dropped (the paper's figure); the
alternative reading that keeps it (`delta_keep_last`) is provided for comparison.
Gated accumulation (G-RA): process rewards count only when the outcome reaches a threshold.
"""
from __future__ import annotations

import torch

from reasonrl.registry import Registry

SHAPINGS: Registry = Registry("process-reward shaping")


@SHAPINGS.register("raw")
def raw(p: torch.Tensor, *, eta: float = 0.0) -> torch.Tensor:
    return p.clone()


@SHAPINGS.register("clip")
def clip(p: torch.Tensor, *, eta: float = 0.5) -> torch.Tensor:
    return torch.clamp(p - eta, max=0.0)


@SHAPINGS.register("delta")
def delta(p: torch.Tensor, *, eta: float = 0.0) -> torch.Tensor:
    out = torch.zeros_like(p)
    out[:-1] = p[:-1] - p[1:]
    return out


@SHAPINGS.register("delta_keep_last")
def delta_keep_last(p: torch.Tensor, *, eta: float = 0.0) -> torch.Tensor:
    out = delta(p)
    out[-1:] = p[-1:]
    return out


@SHAPINGS.register("clip_delta")
def clip_delta(p: torch.Tensor, *, eta: float = 0.5) -> torch.Tensor:
    return delta(clip(p, eta=eta))


def shape(p: torch.Tensor, mode: str, *, eta: float = 0.5) -> torch.Tensor:
    return SHAPINGS.get(mode)(p, eta=eta)


def returns(step_rewards: torch.Tensor, success: float, *, weight: float = 1.0) -> torch.Tensor:
    """(K,) -> (K,): return-to-go of weight * step rewards with `success` added at the last step."""
    r = weight * step_rewards
    r[-1:] = r[-1:] + success
    return torch.flip(torch.cumsum(torch.flip(r, [0]), 0), [0])


def gate(step_rewards: torch.Tensor, outcome: float, threshold: float) -> torch.Tensor:
    """G-RA: the step rewards count only when the outcome reaches the threshold."""
    return step_rewards if outcome >= threshold else torch.zeros_like(step_rewards)


def gated_levels(values: list[float], thresholds: list[float]) -> tuple[float, list[float]]:
    """L levels in priority order: level l counts only if every higher level met its threshold.
    Returns (total, per-level contributions)."""
    contrib, open_ = [], True
    for level, value in enumerate(values):
        contrib.append(value if open_ else 0.0)
        if level < len(thresholds):
            open_ = open_ and value >= thresholds[level]
    return sum(contrib), contrib


def steps_to_tokens(step_rewards: list[torch.Tensor], step_ends: list[list[int]], width: int) -> torch.Tensor:
    """Place each step's reward on its last token: ragged (K_i,) and end indices -> (N, width)."""
    out = torch.zeros(len(step_rewards), width, dtype=torch.float64)
    for i, (r, ends) in enumerate(zip(step_rewards, step_ends)):
        out[i, torch.tensor(ends, dtype=torch.long)] = r.to(out.dtype)
    return out
