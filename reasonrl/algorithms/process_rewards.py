"""Implicit process rewards (PRIME, ALGORITHMS.md 2). Pure tensor math.

Shapes: logp_prm, logp_ref, q, mask (N, T) with the rows of a prompt's K samples contiguous
(asserted where it matters); acc (N,) 0/1 outcome labels; K samples per prompt.

Variants chosen (section 10): token scores are q without beta, batch-normalised (the original
repo; beta cancels in the normalisation anyway), the leave-one-out baseline is the released code's
form r*K/(K-1) - sum_j mean_j/(K-1) (it reproduces the released models; the paper's form is kept
for comparison), and returns (gamma = 1) are whitened over the whole batch, as both codebases do.
"""
from __future__ import annotations

import torch

from reasonrl.algorithms.masked import masked_sum, masked_whiten


def implicit_q(logp_prm: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """q = log pi_phi - log pi_ref on response tokens, 0 elsewhere. The process reward is beta * q."""
    return torch.where(mask.bool(), logp_prm - logp_ref, torch.zeros_like(logp_prm))


def sequence_logit(q: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """(N,) s_i = beta * sum_t q[i, t]: the implicit ORM's logit of being correct."""
    return beta * masked_sum(q, mask, dim=-1)


def prm_ce_loss(q: torch.Tensor, mask: torch.Tensor, acc: torch.Tensor, beta: float) -> torch.Tensor:
    """PRIME's PRM objective: mean binary cross-entropy of sigmoid(beta * sum q) against the outcome."""
    logits = sequence_logit(q, mask, beta)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, acc.to(logits.dtype))


def batch_norm_scores(scores: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """scores / (max over the batch of |reverse cumulative sum| + eps); returns (scores, denominator)."""
    s = torch.where(mask.bool(), scores, torch.zeros_like(scores))
    to_go = torch.flip(torch.cumsum(torch.flip(s, [-1]), -1), [-1])
    denom = to_go.abs().max() + eps
    return s / denom, denom


def _group_means(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) mean of x over each row's mask, then (N/K, K)."""
    n = x.shape[0]
    assert n % k == 0, f"PRIME needs contiguous groups of K={k} rows; got {n} rows"
    return (masked_sum(x, mask, dim=-1) / mask.sum(-1).clamp(min=1)).view(n // k, k)


def loo_code(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out as released: x*K/(K-1) - sum_j mean_j / (K-1), per group, on the mask."""
    means = _group_means(x, mask, k)
    base = (means.sum(-1, keepdim=True) / (k - 1)).repeat_interleave(k, 0)
    return torch.where(mask.bool(), x * k / (k - 1) - base.view(-1, 1), torch.zeros_like(x))


def loo_paper(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out as written in the paper: x - mean over the other responses of their mean."""
    means = _group_means(x, mask, k)
    others = ((means.sum(-1, keepdim=True) - means) / (k - 1)).view(-1, 1)
    return torch.where(mask.bool(), x - others, torch.zeros_like(x))


def last_token_mask(mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    return (m & (m.cumsum(-1) == m.sum(-1, keepdim=True))).to(mask.dtype)


def prime_returns(process: torch.Tensor, acc: torch.Tensor, mask: torch.Tensor, k: int, *,
                  form: str = "code", process_coef: float = 1.0, outcome_coef: float = 1.0) -> torch.Tensor:
    """Per-token returns (gamma = 1) of LOO process rewards plus the LOO outcome at the last token."""
    loo = loo_code if form == "code" else loo_paper
    last = last_token_mask(mask)
    outcome = last * acc.to(process.dtype)[:, None]
    r = process_coef * loo(process, mask, k) + outcome_coef * loo(outcome, last, k)
    r = torch.where(mask.bool(), r, torch.zeros_like(r))
    return torch.flip(torch.cumsum(torch.flip(r, [-1]), -1), [-1]) * mask


def prime_advantages(logp_prm, logp_ref, acc, mask, k: int, *, form: str = "code") -> torch.Tensor:
    """The whole PRIME advantage: q -> batch-norm -> LOO per source -> returns -> batch whitening."""
    scores, _ = batch_norm_scores(implicit_q(logp_prm, logp_ref, mask), mask)
    return masked_whiten(prime_returns(scores, acc, mask, k, form=form), mask)


def accuracy_filter(group_acc: torch.Tensor, lo: float = 0.2, hi: float = 0.8) -> torch.Tensor:
    """(B, K) outcomes -> (B,) keep prompts whose accuracy lies in [lo, hi] (both inclusive)."""
    acc = group_acc.to(torch.float64).mean(-1)
    return (acc >= lo) & (acc <= hi)


# --------------------------------------------------------------------------- OPRL / iStar (section 3)
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


def oprl_advantages_paper(step_rewards: torch.Tensor, traj: torch.Tensor, success: torch.Tensor, *,
                          alpha: float = 1.0, ddof: int = 1) -> torch.Tensor:
    """A = z(R(tau)) + alpha * z(r_step), the step z-score taken over all steps of the group."""
    return _zscore(success.to(step_rewards.dtype), ddof)[traj] + alpha * _zscore(step_rewards, ddof)


def oprl_advantages_code(step_rewards: torch.Tensor, traj: torch.Tensor, success: torch.Tensor, *,
                         alpha: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """The released istar_rloo: RLOO on outcomes plus alpha * RLOO on batch-normalised step rewards, whose
    group baseline uses only the first step of each trajectory (the code's dedup; order dependent)."""
    n = success.shape[0]
    episode = success.to(step_rewards.dtype) * n / (n - 1) - success.sum() / (n - 1)
    r = step_rewards / (step_rewards.abs().max() + eps)
    first = torch.stack([r[(traj == i).nonzero()[0, 0]] for i in range(n)])
    step = r * n / (n - 1) - first.sum() / (n - 1)
    return episode[traj] + alpha * step


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of `scores` predicting `labels` (0/1), ties counted half; nan if one class."""
    pos, neg = scores[labels.bool()], scores[~labels.bool()]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def group_dpo_loss(scores: torch.Tensor, acc: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Trajectory DPO over every (correct, incorrect) pair inside each group: mean of -log sigmoid(s+ - s-).
    scores (N,) are sequence scores (beta * sum q); groups with no pair contribute nothing."""
    losses = []
    for g in torch.unique(group_ids):
        rows = group_ids == g
        pos, neg = scores[rows & acc.bool()], scores[rows & ~acc.bool()]
        if len(pos) and len(neg):
            losses.append(pairwise_dpo_losses(pos, neg))
    return torch.cat(losses).mean() if losses else scores.sum() * 0.0
