"""Policy losses and the terms composed around them (docs/algorithms.md 2). Per-token values are to be
minimised; the learner aggregates them with the configured loss_agg and adds TIS weights, KL and entropy.

Shapes: logp, logp_old, logp_ref, adv, mask (N, T).

POLICY_LOSSES (algorithm.policy_loss), each fn(logp, logp_old, adv, mask, clip) -> (loss (N, T), metrics):
  ppo_clip  rho = pi / pi_old per token; max(-A rho, -A clip(rho, 1-lo, 1+hi)), dual clip caps A < 0 at -A c
  gspo      s_i = exp(mean_t log(pi / pi_old)) per sequence (the geometric mean of its token ratios),
            clipped per sequence; written token-wise (GSPO-token: value s_i, gradient s_i * grad log pi_t)
            so that with loss_agg=seq-mean-token-mean it is the paper's sequence objective
  cispo     -sg(clip(rho, 1-lo, 1+hi)) * A * log pi: the importance weight is clipped and carries no
            gradient, so no token's gradient is ever dropped (MiniMax-M1)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from reasonrl.algorithms.masked import masked_mean
from reasonrl.registry import Registry

POLICY_LOSSES: Registry = Registry("policy loss")
KL_ESTIMATORS: Registry = Registry("KL estimator")


@dataclass(frozen=True)
class ClipRange:
    """Ratios are kept in [1 - low, 1 + high] (high > low: DAPO clip-higher); dual (> 1) caps negative-advantage
    losses at -A * dual (ppo_clip only; None = off)."""

    low: float = 0.2
    high: float = 0.2
    dual: Optional[float] = None


def _clip_metrics(ratio: torch.Tensor, clipped: torch.Tensor, mask: torch.Tensor, clip: ClipRange) -> dict:
    """Share of valid tokens whose ratio was clipped (below / above the range), and the mean ratio."""
    with torch.no_grad():
        clipped = clipped.float()
        return {
            "clip_frac": masked_mean(clipped, mask),
            "clip_frac_low": masked_mean(clipped * (ratio < 1.0 - clip.low).float(), mask),
            "clip_frac_high": masked_mean(clipped * (ratio > 1.0 + clip.high).float(), mask),
            "ratio_mean": masked_mean(ratio, mask),
        }


def _clipped_objective(ratio: torch.Tensor, adv: torch.Tensor, clip: ClipRange) -> tuple[torch.Tensor, torch.Tensor]:
    """max(-A r, -A clip(r)) per token, and where the clipped branch won."""
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1.0 - clip.low, 1.0 + clip.high)
    return torch.maximum(l1, l2), l2 > l1


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
             clip: ClipRange = ClipRange()) -> tuple[torch.Tensor, dict]:
    """PPO clipped surrogate with decoupled clip range (DAPO clip-higher) and optional dual clip:
    rho = exp(clamp(logp - logp_old, -20, 20)); l = max(-A rho, -A clip(rho, 1-lo, 1+hi));
    with dual clip c, negative-advantage tokens are capped at -A c."""
    ratio = torch.exp(torch.clamp(logp - logp_old, -20.0, 20.0))
    loss, clipped = _clipped_objective(ratio, adv, clip)
    if clip.dual is not None:
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * clip.dual), loss)
    return loss, _clip_metrics(ratio, clipped, mask, clip)


@POLICY_LOSSES.register("gspo")
def gspo(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
         clip: ClipRange = ClipRange()) -> tuple[torch.Tensor, dict]:
    """GSPO (Zheng et al. 2025): the sequence ratio s_i = exp(mean over i's valid tokens of logp - logp_old),
    clipped per sequence. Token-wise: s_it = sg(s_i) * pi_t / sg(pi_t) has the value s_i on every token of
    row i and the gradient s_i * grad log pi_t; aggregated with seq-mean-token-mean this is the paper's
    objective (1/G) sum_i min(s_i A_i, clip(s_i) A_i)."""
    seq = masked_mean(torch.where(mask.bool(), logp - logp_old, torch.zeros_like(logp)), mask, dim=-1)
    log_s = torch.clamp(seq, -20.0, 20.0).detach()[:, None] + logp - logp.detach()
    ratio = torch.exp(log_s)
    loss, clipped = _clipped_objective(ratio, adv, clip)
    return loss, _clip_metrics(ratio, clipped, mask, clip)


@POLICY_LOSSES.register("cispo")
def cispo(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
          clip: ClipRange = ClipRange()) -> tuple[torch.Tensor, dict]:
    """CISPO (MiniMax-M1, 2025): l = -sg(clip(rho, 1-lo, 1+hi)) * A * logp. The weight is a constant, so the
    gradient is -w A grad log pi for every token (clipping bounds the weight instead of dropping the token)."""
    ratio = torch.exp(torch.clamp(logp - logp_old, -20.0, 20.0))
    weight = torch.clamp(ratio, 1.0 - clip.low, 1.0 + clip.high).detach()
    outside = (ratio < 1.0 - clip.low) | (ratio > 1.0 + clip.high)
    return -weight * adv * logp, _clip_metrics(ratio.detach(), outside, mask, clip)


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
