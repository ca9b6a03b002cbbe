"""Policy-gradient losses (ALGORITHMS.md 1.2-1.4). All per-token values are to be minimised.

Shapes: logp, logp_old, logp_ref, adv, mask (N, T); logits (N, T, V).
"""
from __future__ import annotations

from typing import Optional

import torch

from reasonrl.algorithms.masked import masked_mean
from reasonrl.registry import Registry

KL_ESTIMATORS: Registry = Registry("KL estimator")


def clipped_surrogate(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: Optional[float] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate with decoupled clip range (DAPO clip-higher) and optional dual clip.

    rho = exp(clamp(logp - logp_old, -20, 20)); l = max(-A rho, -A clip(rho, 1-lo, 1+hi));
    with dual clip c, negative-advantage tokens are capped at -A c.
    Returns per-token loss (N, T) and metrics (clip fractions over valid tokens).
    """
    log_ratio = torch.clamp(logp - logp_old, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(l1, l2)
    if dual_clip is not None:
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip), loss)
    with torch.no_grad():
        clipped = (l2 > l1).float()
        metrics = {
            "clip_frac": masked_mean(clipped, mask),
            "clip_frac_low": masked_mean(clipped * (ratio < 1.0 - clip_low).float(), mask),
            "clip_frac_high": masked_mean(clipped * (ratio > 1.0 + clip_high).float(), mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, metrics


@KL_ESTIMATORS.register("k1")
def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """logp - logp_ref: unbiased for KL(pi || ref); its gradient is zero in expectation."""
    return logp - logp_ref


@KL_ESTIMATORS.register("k2")
def kl_k2(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """(logp - logp_ref)^2 / 2: biased value, gradient of KL(pi || ref)."""
    return 0.5 * (logp - logp_ref) ** 2


@KL_ESTIMATORS.register("k3")
def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """exp(d) - d - 1 with d = logp_ref - logp (verl low_var_kl; d clamped to +-20, value to +-10)."""
    d = torch.clamp(logp_ref - logp, -20.0, 20.0)
    return torch.clamp(torch.exp(d) - d - 1.0, -10.0, 10.0)


def kl_penalty(logp: torch.Tensor, logp_ref: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    return KL_ESTIMATORS.get(estimator)(logp, logp_ref)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last axis: (..., V) -> (...)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def logprob_gap(engine: torch.Tensor, learner: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(mean, max) |engine log-prob - learner log-prob| over the mask: how far the sampler's numbers are
    from the policy being trained (unsynced weights, another dtype, processors applied). (N, T) each."""
    m = mask.bool()
    if not m.any():
        return 0.0, 0.0
    gap = (engine - learner).abs()[m]
    return gap.mean().item(), gap.max().item()


def truncated_is_weights(logp_learner: torch.Tensor, logp_engine: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling for a sampler that is not exactly the learner's policy (e.g. vLLM):
    w = min(pi_learner(y_t) / pi_engine(y_t), cap) per token, no gradient; multiply it into the per-token
    policy loss so the update estimates the learner policy's gradient. (N, T) -> (N, T)."""
    return torch.exp(logp_learner - logp_engine).clamp(max=cap).detach()
