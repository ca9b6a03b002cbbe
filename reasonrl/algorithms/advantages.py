"""Advantage estimators: one registry, one signature (docs/algorithms.md 2.1 and 5).

Every estimator is `fn(x: AdvantageInputs) -> (N, T)` per-token advantages, zero off the mask. It
reads what it needs from x: the outcome rewards (B, G) of every group, the token mask (N, T), the
options, and -- estimators marked `needs_process` -- the process values on step ends and the step
ends (N, T). Rows of a group are contiguous (N = B * G), so membership is by prompt, never by
position in a flattened batch. The loop builds one AdvantageInputs and calls the configured
estimator; it never asks which kind it has.

Outcome estimators (this file) give each response one scalar A_i, broadcast over its valid tokens:
  grpo     A_i = (R_i - mean R) / (std R + eps)       std with `ddof` (1: torch.std / verl)
  dr_grpo  A_i = R_i - mean R                           (Dr. GRPO: no std)
  rloo     A_i = R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean R)
Dense estimators (prime, oprl) live in process_advantages.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from reasonrl.registry import Registry

ADVANTAGES: Registry = Registry("advantage estimator")


@dataclass(frozen=True)
class AdvantageOptions:
    """The scalars estimators may use (each reads only its own)."""

    eps: float = 1e-6  # grpo: added to the group std
    ddof: int = 1  # grpo, oprl: ddof of the std (1 = torch.std / verl, 0 = numpy)
    loo_form: str = "code"  # prime: leave-one-out as released ("code"), the paper's ("paper"), on whole returns ("return")
    process_coef: float = 1.0  # prime: weight of the process source (the outcome's is 1)
    norm: str = "batch"  # prime: process values / the batch's largest |return-to-go| ("batch"), or as they are
    alpha: float = 1.0  # oprl: weight of the step-level advantage
    step_norm: str = "z"  # oprl: the step values' normalisation over the group (STEP_NORMS: z, center)


@dataclass(frozen=True)
class AdvantageInputs:
    """What an advantage estimator may read.

    rewards  (B, G)        scalar outcome reward of each response
    mask     (N, T)        1 on the response tokens the loss uses, N = B * G, groups contiguous
    values   (N, T) | None process values on step ends (a process source ran: implicit PRM, step verifier)
    ends     (N, T) | None 1 on the token that closes each step
    """

    rewards: torch.Tensor
    mask: torch.Tensor
    values: Optional[torch.Tensor] = None
    ends: Optional[torch.Tensor] = None
    options: AdvantageOptions = AdvantageOptions()

    def __post_init__(self):
        b, g = self.rewards.shape
        if g < 2:
            raise ValueError(f"group advantages need G >= 2 responses per prompt, got G={g}")
        if self.mask.shape[0] != b * g:
            raise ValueError(f"rewards hold {b} x {g} responses but the mask has {self.mask.shape[0]} rows")

    @property
    def group_size(self) -> int:
        return self.rewards.shape[1]

    def process(self, estimator: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, ends) for an estimator that needs a process source."""
        if self.values is None or self.ends is None:
            raise ValueError(f"the {estimator} advantage needs process values: enable a process source (prm.enabled)")
        return self.values, self.ends


def broadcast_to_tokens(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """adv (N,), mask (N, T) -> (N, T) in adv's dtype, zero off the mask."""
    return torch.where(mask.bool(), adv[:, None].to(mask.device).expand(mask.shape), 0.0)


@ADVANTAGES.register("grpo")
def grpo(x: AdvantageInputs) -> torch.Tensor:
    """A_i = (R_i - mean R) / (std R + eps), eps added to the std (verl), broadcast over row i."""
    r = x.rewards
    adv = (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True, correction=x.options.ddof) + x.options.eps)
    return broadcast_to_tokens(adv.flatten(), x.mask)


@ADVANTAGES.register("dr_grpo")
def dr_grpo(x: AdvantageInputs) -> torch.Tensor:
    """A_i = R_i - mean R (Dr. GRPO: no std normalisation)."""
    r = x.rewards
    return broadcast_to_tokens((r - r.mean(-1, keepdim=True)).flatten(), x.mask)


@ADVANTAGES.register("rloo")
def rloo(x: AdvantageInputs) -> torch.Tensor:
    """A_i = R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean R)."""
    r, g = x.rewards, x.group_size
    return broadcast_to_tokens(((r - r.mean(-1, keepdim=True)) * g / (g - 1)).flatten(), x.mask)
