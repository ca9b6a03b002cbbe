"""Dense process rewards on a batch, and the two advantage estimators that use them. Pure tensor math.

Shapes: q, mask, ends, values (N, T) in the learner's target layout, rows of a prompt's K samples
contiguous; outcome (N,) the outcome reward of each row.

A response is cut into steps; `ends` marks the token that closes each step (every response token
for token granularity). The process source is a value on each step-end token (docs/algorithms.md 5.1, 6):

  shaping none        value_k = beta * sum of q over step k              (PRIME / OPRL step reward)
  shaping clip|delta|clip_delta|delta_keep_last|raw
                      value_k = shaped p_k, p_k = sigmoid(beta * sum of q up to the end of step k)

p_k is the implicit PRM's probability that the prefix ending at step k leads to a correct answer
(the implicit Q value, squashed), so Clip and Delta see scores in [0, 1] as in Gao et al. The bounds
of shaping.py then hold for every response's process values, whatever its number of steps.

Estimators (registered in ADVANTAGES with the one AdvantageInputs signature, `needs_process`; both end
in an (N, T) advantage that the unchanged policy loss consumes):
  prime  batch-normalised process values and the outcome, each with its own leave-one-out baseline,
         summed, turned into returns (gamma = 1) and whitened over the batch's groups with any signal
         (docs/algorithms.md 5). Under Clip / Delta (prime_defaults) the process baseline is the other
         responses' whole return and the values keep their scale, so the bounds reach the advantages.
         norm="none" (verl's prime_norm=none) keeps the values' own scale instead of dividing by the
         batch's largest |return-to-go|: batch normalisation gives the process source the outcome's
         weight however little the PRM has learned yet, none lets it grow with the PRM's confidence.
  oprl   iStar, the paper's form: A = z(outcome within the group) + alpha * z(step value over all the
         group's steps); each token gets the advantage of the step it belongs to. step_norm=center keeps the
         step values' scale (minus their group mean) instead of the z-score. The paper's form is
         chosen over the released code's (whose baseline depends on row order, docs/algorithms.md 5.4).
"""
from __future__ import annotations

import torch

from reasonrl.algorithms.advantages import ADVANTAGES, AdvantageInputs
from reasonrl.algorithms.masked import masked_whiten, reverse_cumsum
from reasonrl.algorithms.process_rewards import LOO_FORMS, batch_norm_scores, last_token_mask, oprl_advantages_paper
from reasonrl.algorithms.shaping import SHAPINGS
from reasonrl.registry import Registry

PROCESS_NORMS: Registry = Registry("process-value normalisation")
PROCESS_NORMS.register("batch")(lambda values, ends: batch_norm_scores(values, ends)[0])
PROCESS_NORMS.register("none")(lambda values, ends: values * ends)
PROCESS_SHAPINGS = ("none", *SHAPINGS.names())  # none: beta * sum of q per step; the rest shape p_k
BOUNDED_SHAPINGS = ("clip", "delta", "clip_delta", "delta_keep_last")  # a response's process return is bounded


def prime_defaults(shaping: str, loo_form: str = "auto", norm: str = "auto") -> tuple[str, str]:
    """prm.loo_form / prm.norm `auto`: under a bounded shaping the baseline is the others' whole return (`return`)
    and the values keep their scale (`none`), so the bound reaches the advantages; unshaped, PRIME as released
    (`code`, `batch`)."""
    bounded = shaping in BOUNDED_SHAPINGS
    return (("return" if bounded else "code") if loo_form == "auto" else loo_form,
            ("none" if bounded else "batch") if norm == "auto" else norm)


# --------------------------------------------------------------------------- steps on the token grid

def close_last_step(ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Step ends restricted to the mask, with each row's final step moved to its last valid token
    (so trailing tokens such as EOS belong to the last step). Rows with an empty mask get no steps."""
    ends = ends * mask
    return ends - last_token_mask(ends) + last_token_mask(mask)


def step_index(ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, T) long: the step each valid token belongs to (0, 1, ...), -1 off the mask."""
    e = ends.long()
    return torch.where(mask.bool(), torch.cumsum(e, -1) - e, torch.full_like(e, -1))


def _per_step(values: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """(N, T) values on step ends -> (N, S_max), row i's steps in order, zero-padded."""
    counts = ends.long().sum(-1)
    out = torch.zeros(values.shape[0], int(counts.max()) if counts.numel() else 0, dtype=values.dtype)
    rows, cols = ends.bool().nonzero(as_tuple=True)
    k = torch.cumsum(ends.long(), -1)[rows, cols] - 1
    out[rows, k] = values[rows, cols]
    return out


def broadcast_steps(step_values: torch.Tensor, ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, T) values on step ends -> (N, T): every valid token carries its step's value."""
    per_step = _per_step(step_values, ends)
    idx = step_index(ends, mask)
    if per_step.shape[1] == 0:
        return torch.zeros_like(step_values)
    out = per_step.gather(1, idx.clamp(min=0))
    return torch.where(idx >= 0, out, torch.zeros_like(out))


def step_sums(x: torch.Tensor, ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, T) -> (N, T): the sum of x over each step, placed on the step's last token, zero elsewhere."""
    idx = step_index(ends, mask)
    sums = torch.zeros(x.shape[0], x.shape[1] + 1, dtype=x.dtype)
    sums.scatter_add_(1, idx.clamp(min=0), torch.where(idx >= 0, x, torch.zeros_like(x)))
    out = torch.zeros_like(x)
    rows, cols = ends.bool().nonzero(as_tuple=True)
    out[rows, cols] = sums[rows, idx[rows, cols]]
    return out


def prefix_probs(q: torch.Tensor, ends: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """p_k = sigmoid(beta * sum of q up to the end of step k), on step ends."""
    cum = torch.cumsum(torch.where(mask.bool(), q, torch.zeros_like(q)), -1)
    return torch.where(ends.bool(), torch.sigmoid(beta * cum), torch.zeros_like(q))


def shape_steps(p: torch.Tensor, ends: torch.Tensor, mode: str, eta: float) -> torch.Tensor:
    """Apply a SHAPINGS rule to each row's sequence of step scores (values on step ends)."""
    out = torch.zeros_like(p)
    fn = SHAPINGS.get(mode)
    for i in range(p.shape[0]):
        cols = ends[i].bool().nonzero(as_tuple=True)[0]
        if len(cols):
            out[i, cols] = fn(p[i, cols], eta=eta).to(out.dtype)
    return out


def process_values(q: torch.Tensor, ends: torch.Tensor, mask: torch.Tensor, *, beta: float, shaping: str = "none",
                   eta: float = 0.5) -> torch.Tensor:
    """The process source on step ends (see the module docstring; shaping is one of PROCESS_SHAPINGS)."""
    if shaping == "none":
        return step_sums(beta * q, ends, mask)
    return shape_steps(prefix_probs(q, ends, mask, beta), ends, shaping, eta)


def gate_rows(values: torch.Tensor, outcome: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """G-RA: a row's process rewards count only when its outcome reaches the threshold (None = no gate)."""
    if threshold is None:
        return values
    return values * (outcome >= threshold).to(values.dtype)[:, None]


def zero_flat_groups(values: torch.Tensor, outcome: torch.Tensor, k: int) -> torch.Tensor:
    """values (N, T), outcome (N,), groups of k rows: the rows of a group whose outcomes are all equal (all right,
    all wrong) get no process values. A probe (prm.flat_groups=zero): in such a group the outcome gives no
    gradient, so an ungated process reward is all the policy learns from there."""
    flat = (outcome.view(-1, k) == outcome.view(-1, k)[:, :1]).all(-1).repeat_interleave(k)
    return values * (~flat).to(values.dtype)[:, None]


# --------------------------------------------------------------------------- estimators

def prime_returns(values: torch.Tensor, ends: torch.Tensor, outcome: torch.Tensor, mask: torch.Tensor, k: int, *,
                  loo_form: str = "code", process_coef: float = 1.0, norm: str = "batch") -> torch.Tensor:
    """(N, T) PRIME returns (gamma = 1): normalised process values with their leave-one-out baseline over
    the step ends, plus the outcome's leave-one-out at the last token, summed from each token to the end."""
    loo = LOO_FORMS.get(loo_form)
    scores = PROCESS_NORMS.get(norm)(values, ends)
    last = last_token_mask(mask)
    out = last * outcome.to(values.dtype)[:, None]
    r = process_coef * loo(scores, ends, k) + loo(out, last, k)
    return reverse_cumsum(torch.where(mask.bool(), r, torch.zeros_like(r))) * mask


def groups_with_returns(returns: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) bool: the row's group has a non-zero return somewhere on its mask."""
    live = (torch.where(mask.bool(), returns, torch.zeros_like(returns)) != 0).any(-1)
    return live.view(-1, k).any(-1).repeat_interleave(k)


@ADVANTAGES.register("prime")
def prime(x: AdvantageInputs) -> torch.Tensor:
    """PRIME: prime_returns whitened over the valid tokens of the groups with any signal; a group whose returns
    are all zero keeps a zero advantage (whitened with the rest, it would take a small constant one)."""
    values, ends = x.process("prime")
    o = x.options
    returns = prime_returns(values, ends, x.rewards.flatten(), x.mask, x.group_size, loo_form=o.loo_form,
                            process_coef=o.process_coef, norm=o.norm)
    live = groups_with_returns(returns, x.mask, x.group_size)
    return masked_whiten(returns, x.mask * live[:, None].to(x.mask.dtype))


@ADVANTAGES.register("oprl")
def oprl(x: AdvantageInputs) -> torch.Tensor:
    """iStar per group of k rows: z(outcome) + alpha * n(step values) (n: options.step_norm), broadcast to step tokens."""
    values, ends = x.process("oprl")
    k, outcome = x.group_size, x.rewards.flatten()
    step_adv = torch.zeros_like(values)
    for g in range(0, values.shape[0], k):
        rows, cols = ends[g:g + k].bool().nonzero(as_tuple=True)  # row-major: a trajectory's steps in order
        if len(rows) < 2:
            continue
        a = oprl_advantages_paper(values[g:g + k][rows, cols], rows, outcome[g:g + k], alpha=x.options.alpha,
                                  ddof=x.options.ddof, step_norm=x.options.step_norm)
        step_adv[g + rows, cols] = a.to(values.dtype)
    return broadcast_steps(step_adv, ends, x.mask)


prime.needs_process = oprl.needs_process = True
