"""Implicit process rewards (PRIME, docs/algorithms.md 4-5). Pure tensor math.

Shapes: logp_prm, logp_ref, q, mask (N, T) with the rows of a prompt's K samples contiguous
(asserted where it matters); acc (N,) 0/1 outcome labels; K samples per prompt.

Variants chosen (docs/algorithms.md 5.2): the process values are beta * q, batch-normalised (verl's
recipe; the original repo feeds q, and beta cancels in the normalisation), the leave-one-out baseline is
the released code's form r*K/(K-1) - sum_j mean_j/(K-1) for unshaped values (it reproduces the released models;
the paper's form is the `paper` entry of LOO_FORMS), a baseline on the whole return (`return`) for Clip / Delta,
whose bounds a per-step baseline would break; returns (gamma = 1) are whitened over the batch, as both codebases
do (over the groups with any signal: process_advantages.prime).
"""
from __future__ import annotations

import torch

from reasonrl.algorithms.masked import masked_sum, reverse_cumsum
from reasonrl.registry import Registry

LOO_FORMS: Registry = Registry("leave-one-out form")


def implicit_q(logp_prm: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """q = log pi_phi - log pi_ref on response tokens, 0 elsewhere. The process reward is beta * q."""
    return torch.where(mask.bool(), logp_prm - logp_ref, torch.zeros_like(logp_prm))


def sequence_logit(q: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """(N,) s_i = beta * sum_t q[i, t] over the mask, q = log pi_phi - log pi_ref: the implicit ORM's logit
    that response i is correct (PRIME's CE loss is the BCE of sigmoid(s) against the outcome)."""
    return beta * masked_sum(q, mask, dim=-1)


def batch_norm_scores(scores: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """scores / (max over the batch of |reverse cumulative sum| + eps); returns (scores, denominator)."""
    s = torch.where(mask.bool(), scores, torch.zeros_like(scores))
    denom = reverse_cumsum(s).abs().max() + eps
    return s / denom, denom


def _group_means(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) mean of x over each row's mask, then (N/K, K)."""
    n = x.shape[0]
    assert n % k == 0, f"PRIME needs contiguous groups of K={k} rows; got {n} rows"
    return (masked_sum(x, mask, dim=-1) / mask.sum(-1).clamp(min=1)).view(n // k, k)


@LOO_FORMS.register("code")
def loo_code(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out as released: x*K/(K-1) - sum_j mean_j / (K-1), per group, on the mask."""
    means = _group_means(x, mask, k)
    base = (means.sum(-1, keepdim=True) / (k - 1)).repeat_interleave(k, 0)
    return torch.where(mask.bool(), x * k / (k - 1) - base.view(-1, 1), torch.zeros_like(x))


@LOO_FORMS.register("paper")
def loo_paper(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out as written in the paper: x - mean over the other responses of their mean."""
    means = _group_means(x, mask, k)
    others = ((means.sum(-1, keepdim=True) - means) / (k - 1)).view(-1, 1)
    return torch.where(mask.bool(), x - others, torch.zeros_like(x))


@LOO_FORMS.register("return")
def loo_return(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out on each response's whole return: x on the mask, minus the mean of the other responses' row
    sums on the row's last masked token. Every return-to-go of the row shifts by that one baseline, so a bound on
    a response's process return (Clip, Delta) is still a bound on what the policy sees, and padding a response
    with more steps cannot raise it. The per-step forms subtract per step: a row's return becomes
    n * (its mean - the others' mean) and grows with its number of steps n."""
    n = x.shape[0]
    assert n % k == 0, f"PRIME needs contiguous groups of K={k} rows; got {n} rows"
    sums = masked_sum(x, mask, dim=-1).view(n // k, k)
    others = ((sums.sum(-1, keepdim=True) - sums) / (k - 1)).reshape(-1, 1)
    return torch.where(mask.bool(), x, torch.zeros_like(x)) - last_token_mask(mask) * others


def last_token_mask(mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    return (m & (m.cumsum(-1) == m.sum(-1, keepdim=True))).to(mask.dtype)


def accuracy_filter(group_acc: torch.Tensor, lo: float = 0.2, hi: float = 0.8) -> torch.Tensor:
    """(B, K) outcomes -> (B,) keep prompts whose accuracy lies in [lo, hi] (both inclusive)."""
    acc = group_acc.to(torch.float64).mean(-1)
    return (acc >= lo) & (acc <= hi)


# --------------------------------------------------------------------------- OPRL / iStar (docs/algorithms.md 5.4)
# One group (the N trajectories of one prompt) at a time. Shapes: step values (S,) for the S steps of
# the group; traj (S,) the trajectory index 0..N-1 of each step, steps of a trajectory in order;
# success (N,) outcome per trajectory.

def pairwise_dpo_losses(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(s+ - s-) for every (preferred, dispreferred) pair: (P,), (Q,) -> (P*Q,).
    Paper form: s = beta * sum of the trajectory's log-ratios. Released-code form ("eto"): s = mean
    over its steps of beta * the step's log-ratio sum."""
    return -torch.nn.functional.logsigmoid(pos_scores[:, None] - neg_scores[None, :]).reshape(-1)


def _zscore(x: torch.Tensor, ddof: int = 1, eps: float = 1e-6) -> torch.Tensor:
    return (x - x.mean()) / (x.std(correction=ddof) + eps)


STEP_NORMS: Registry = Registry("OPRL step normalisation")  # prm.step_norm: (step rewards (S,), ddof) -> (S,)


@STEP_NORMS.register("z")
def step_zscore(step_rewards: torch.Tensor, ddof: int) -> torch.Tensor:
    """iStar's paper: the z-score over the group's steps. Unit scale whatever the PRM has learned: q of
    1e-4 (a PRM barely moved from its reference) weighs as much as the outcome's z-score."""
    return _zscore(step_rewards, ddof)


@STEP_NORMS.register("center")
def step_center(step_rewards: torch.Tensor, ddof: int) -> torch.Tensor:
    """Minus the group's mean step reward: the values keep their own scale (beta * sum q), so a PRM that knows
    little adds little (as prm.norm=none does for PRIME)."""
    return step_rewards - step_rewards.mean()


def oprl_advantages_paper(step_rewards: torch.Tensor, traj: torch.Tensor, success: torch.Tensor, *,
                          alpha: float = 1.0, ddof: int = 1, step_norm: str = "z") -> torch.Tensor:
    """A = z(R(tau)) + alpha * n(r_step), n taken over all steps of the group (STEP_NORMS; the paper: z)."""
    return _zscore(success.to(step_rewards.dtype), ddof)[traj] + alpha * STEP_NORMS.get(step_norm)(step_rewards, ddof)


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of `scores` predicting `labels` (0/1), ties counted half; nan if one class."""
    pos, neg = scores[labels.bool()], scores[~labels.bool()]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def group_dpo_pairs(scores: torch.Tensor, acc: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """(P,) -log sigmoid(s+ - s-) of every (correct, incorrect) pair inside each group (P may be 0)."""
    losses = [scores[:0]]  # empty, but on the graph: a rank with no pair still has a (zero) gradient
    for g in torch.unique(group_ids):
        rows = group_ids == g
        pos, neg = scores[rows & acc.bool()], scores[rows & ~acc.bool()]
        if len(pos) and len(neg):
            losses.append(pairwise_dpo_losses(pos, neg))
    return torch.cat(losses)


def group_dpo_loss(scores: torch.Tensor, acc: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Trajectory DPO over every (correct, incorrect) pair inside each group: mean of -log sigmoid(s+ - s-).
    scores (N,) are sequence scores (beta * sum q); groups with no pair contribute nothing."""
    pairs = group_dpo_pairs(scores, acc, group_ids)
    return pairs.mean() if len(pairs) else scores.sum() * 0.0


group_dpo_loss.pairs = group_dpo_pairs  # per-pair terms: a mean over several ranks' pairs (reasonrl/prm.py)
