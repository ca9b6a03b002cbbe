"""The policy-loss registry (algorithm.policy_loss): ppo_clip, gspo and cispo against values computed by hand
on a ragged batch, and their gradients.

The batch: logp_old = 0, so each token's ratio is exp(logp); clip range [0.8, 1.2].
    row 0 (3 tokens, A = +1): ratios 1.5, 0.5, 1.1
    row 1 (1 token,  A = +1): ratio 2
    row 2 (2 tokens, A = -1): ratios 3, 3
Padding holds junk (123), which no value may see.
"""
from __future__ import annotations

import math

import pytest
import torch

from reasonrl.algorithms import POLICY_LOSSES, ClipRange, aggregate
from tests.conftest import close, padded

RATIOS = [[1.5, 0.5, 1.1], [2.0], [3.0, 3.0]]
ADV = [1.0, 1.0, -1.0]
CLIP = ClipRange(0.2, 0.2)


def batch():
    logp, mask = padded([[math.log(r) for r in row] for row in RATIOS])
    adv = torch.where(mask.bool(), torch.tensor(ADV, dtype=torch.float64)[:, None].expand_as(mask), 0.0)
    return logp.requires_grad_(True), torch.zeros_like(logp), adv, mask


def valid(x, mask):
    return [x[i, : int(mask[i].sum())].tolist() for i in range(x.shape[0])]


def test_ppo_clip_by_hand():
    """max(-A r, -A clip(r)): row 0 t0 is clipped at 1.2 (-1.2), t1 (0.5 < 0.8 with A > 0) keeps -0.5, t2 -1.1;
    row 1 is clipped at 1.2; row 2 (A < 0) keeps -A r = 3, capped at c = 2 by the dual clip."""
    logp, old, adv, mask = batch()
    loss, m = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, CLIP)
    for got, want in zip(valid(loss, mask), [[-1.2, -0.5, -1.1], [-1.2], [3.0, 3.0]]):
        close(got, want)
    close(m["clip_frac"], 2 / 6)
    close(m["clip_frac_high"], 2 / 6)
    close(m["clip_frac_low"], 0.0)
    dual, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, ClipRange(0.2, 0.2, dual=2.0))
    close(valid(dual, mask)[2], [2.0, 2.0])


def test_gspo_by_hand():
    """s_i = geometric mean of row i's ratios: s0 = (1.5 * 0.5 * 1.1)^(1/3) = 0.825^(1/3) = 0.93784 (inside the
    range: every token of row 0 costs -s0), s1 = 2 (clipped: -1.2), s2 = 3 (A < 0: -A s = 3). With
    seq-mean-token-mean over 3 rows, d/d logp_t = -A s_i / (3 L_i): row 0 -s0/9, row 1 0 (clipped), row 2 3/6."""
    logp, old, adv, mask = batch()
    loss, m = POLICY_LOSSES.get("gspo")(logp, old, adv, mask, CLIP)
    s0 = 0.825 ** (1 / 3)
    for got, want in zip(valid(loss, mask), [[-s0] * 3, [-1.2], [3.0, 3.0]]):
        close(got, want)
    close(m["clip_frac"], 1 / 6)
    aggregate(loss, mask, "seq-mean-token-mean").backward()
    for got, want in zip(valid(logp.grad, mask), [[-s0 / 9] * 3, [0.0], [0.5, 0.5]]):
        close(got, want)


def test_gspo_is_the_sequence_objective():
    """Its gradient equals that of (1/N) sum_i -A_i clip(s_i) computed directly from the sequence ratios."""
    logp, old, adv, mask = batch()
    loss, _ = POLICY_LOSSES.get("gspo")(logp, old, adv, mask, CLIP)
    aggregate(loss, mask, "seq-mean-token-mean").backward()
    token_grad = logp.grad.clone()
    logp.grad = None
    s = torch.exp(torch.where(mask.bool(), logp - old, 0.0).sum(-1) / mask.sum(-1))
    a = torch.tensor(ADV, dtype=torch.float64)
    torch.maximum(-a * s, -a * s.clamp(0.8, 1.2)).mean().backward()
    close(token_grad * mask, logp.grad * mask)


def test_cispo_by_hand():
    """w = sg(clip(r, 0.8, 1.2)), l = -w A logp: row 0 w = 1.2, 0.8, 1.1 -> -1.2 ln 1.5, +0.8 ln 2, -1.1 ln 1.1;
    row 1 -1.2 ln 2; row 2 +1.2 ln 3. The gradient -w A is never zero: clipping bounds the weight, it does
    not drop the token (5 of 6 weights were clipped)."""
    logp, old, adv, mask = batch()
    loss, m = POLICY_LOSSES.get("cispo")(logp, old, adv, mask, CLIP)
    ln = math.log
    want = [[-1.2 * ln(1.5), 0.8 * ln(2), -1.1 * ln(1.1)], [-1.2 * ln(2)], [1.2 * ln(3), 1.2 * ln(3)]]
    for got, w in zip(valid(loss, mask), want):
        close(got, w)
    close(m["clip_frac"], 5 / 6)
    (loss * mask).sum().backward()
    for got, w in zip(valid(logp.grad, mask), [[-1.2, -0.8, -1.1], [-1.2], [1.2, 1.2]]):
        close(got, w)


@pytest.mark.parametrize("name", POLICY_LOSSES.names())
def test_on_policy_every_loss_is_the_policy_gradient(name):
    """At ratio 1 (logp_old = logp) each loss's gradient is -A grad log pi per token: they differ only off-policy."""
    logp, _, adv, mask = batch()
    loss, m = POLICY_LOSSES.get(name)(logp, logp.detach(), adv, mask, CLIP)
    aggregate(loss, mask, "token-mean").backward()
    close(logp.grad * mask, -adv * mask / mask.sum())
    close(m["clip_frac"], 0.0)


def test_padding_junk_never_reaches_a_loss():
    logp, old, adv, mask = batch()
    for name in POLICY_LOSSES.names():
        clean, _ = POLICY_LOSSES.get(name)(logp, old, adv, mask, CLIP)
        dirty_logp = torch.where(mask.bool(), logp, torch.tensor(float("nan"), dtype=logp.dtype))
        dirty, _ = POLICY_LOSSES.get(name)(dirty_logp, old, adv, mask, CLIP)
        for mode in ("token-mean", "seq-mean-token-mean"):
            close(aggregate(dirty, mask, mode), aggregate(clean, mask, mode))
