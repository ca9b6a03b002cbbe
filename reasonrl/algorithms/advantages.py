"""Group-relative outcome advantages (ALGORITHMS.md 1.1, 1.7, 1.8).

Every estimator maps rewards (B, G) -> advantages (B, G): one scalar per response, to be
broadcast over its valid tokens. Groups are rows of the input, so membership is by prompt,
never by position in a flattened batch.
"""
from __future__ import annotations

import torch

from reasonrl.registry import Registry

ADVANTAGES: Registry = Registry("advantage estimator")


@ADVANTAGES.register("grpo")
def grpo(rewards: torch.Tensor, *, eps: float = 1e-6, ddof: int = 1) -> torch.Tensor:
    """A_i = (R_i - mean R) / (std R + eps). ddof=1 is torch.std / verl; eps is added to the std."""
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True, correction=ddof)
    return (rewards - mean) / (std + eps)


@ADVANTAGES.register("dr_grpo")
def dr_grpo(rewards: torch.Tensor, *, eps: float = 1e-6, ddof: int = 1) -> torch.Tensor:
    """A_i = R_i - mean R (Dr. GRPO: no std normalisation)."""
    return rewards - rewards.mean(-1, keepdim=True)


@ADVANTAGES.register("rloo")
def rloo(rewards: torch.Tensor, *, eps: float = 1e-6, ddof: int = 1) -> torch.Tensor:
    """A_i = R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean R)."""
    g = rewards.shape[-1]
    return (rewards - rewards.mean(-1, keepdim=True)) * g / (g - 1)


def compute_advantages(name: str, rewards: torch.Tensor, *, eps: float = 1e-6, ddof: int = 1) -> torch.Tensor:
    if rewards.shape[-1] < 2:
        raise ValueError(f"group advantages need G >= 2 responses per prompt, got G={rewards.shape[-1]}")
    return ADVANTAGES.get(name)(rewards, eps=eps, ddof=ddof)


def broadcast_to_tokens(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """adv (N,), mask (N, T) -> (N, T), zero off the mask."""
    return torch.where(mask.bool(), adv[:, None].to(mask.device).expand_as(mask).to(torch.float32), 0.0)
