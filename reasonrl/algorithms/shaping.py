"""Step-reward shaping that cannot be farmed (docs/algorithms.md 6).

Shapes: p (K,) PRM scores of one response's K steps -> (K,) per-step process rewards; the return
from step k is the sum of the rewards from k to the end (gamma = 1).

  raw        r_k = p_k                          return grows with the number of steps (farmable)
  clip       r_k = min(p_k - eta, 0)            every reward <= 0: return in [-K*eta, 0]
  delta      r_k = p_k - p_{k+1}, r_K = 0       telescopes: return-to-go = p_k - p_K, in [-1, 1]
  clip_delta delta applied to the clipped values: return-to-go = c_k - c_K, in [-eta, eta]
Variant chosen for Delta: the last step's own reward is dropped (the paper's figure); the
alternative reading that keeps it (`delta_keep_last`) is provided for comparison.
Gated accumulation (G-RA: process rewards count only when the outcome reaches a threshold) is applied
to whole rows on the batch grid: process_advantages.gate_rows.
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
