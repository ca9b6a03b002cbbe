"""The on-policy learner takes the old log-probs from its own forward: one pass fewer per step,
the same loss, gradients and log-probs as the separate no-grad pass."""
from __future__ import annotations

import copy

import pytest
import torch

from reasonrl.learner import Learner, LossSettings
from reasonrl.models import load_model
from tests.conftest import ragged_batch


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_update_without_logp_old_equals_the_two_pass_update(embedded_model_dir, packing):
    base = load_model(str(embedded_model_dir))
    out = {}
    for mode in ("two_pass", "reuse"):
        model = copy.deepcopy(base)
        learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.1), None,
                          loss=LossSettings(entropy_coef=0.01), max_tokens_per_microbatch=200, packing=packing)
        batch = ragged_batch()
        learner.prepare(batch, old_needed_early=mode == "two_pass")
        assert (batch.logp_old is None) == (mode == "reuse")
        stats = learner.update(batch, torch.Generator().manual_seed(0))
        out[mode] = (stats, batch.logp_old, torch.cat([p.detach().flatten() for p in model.parameters()]))
    (s2, lp2, w2), (s1, lp1, w1) = out["two_pass"], out["reuse"]
    for k in ("loss", "pg_loss", "entropy", "clip_frac", "grad_norm"):
        assert s1[k] == pytest.approx(s2[k], rel=1e-5, abs=1e-7), k
    valid = ragged_batch().attention_mask[:, 1:].bool()  # every real target, prompt tokens included
    torch.testing.assert_close(lp1[valid], lp2[valid], rtol=1e-5, atol=1e-6)
    assert not torch.equal(w1, torch.cat([p.flatten() for p in base.parameters()]))  # the step moved the weights
    torch.testing.assert_close(w1, w2, rtol=1e-5, atol=1e-7)


def test_reuse_is_refused_off_policy(embedded_model_dir):
    model = load_model(str(embedded_model_dir))
    learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.1), None, loss=LossSettings(), mini_batches=2)
    with pytest.raises(ValueError, match="one optimizer step per batch"):
        learner.update(ragged_batch(), torch.Generator())


def test_group_micro_batches_keep_groups_whole_and_cover_every_row_once():
    from reasonrl.prefix import group_micro_batches

    lengths = torch.tensor([10, 30, 12, 5, 40, 41, 8, 9, 3])
    gids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    mbs = group_micro_batches(lengths, gids, max_tokens=130)
    assert sorted(torch.cat(mbs).tolist()) == list(range(9))
    for mb in mbs:
        assert len(mb) * int(lengths[mb].max()) <= 130
    # group 1 (longest 41, 3 rows = 123) fits alone; groups 0 and 2 together (6 x 30 = 180) do not
    assert [sorted(mb.tolist()) for mb in mbs] == [[3, 4, 5], [0, 1, 2], [6, 7, 8]]
    split = group_micro_batches(lengths, gids, max_tokens=90)  # group 1 alone needs 123: chunked
    assert sorted(torch.cat(split).tolist()) == list(range(9)) and [4, 5] in [sorted(m.tolist()) for m in split]


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "grad-checkpointing"])
def test_shared_prompt_update_equals_the_padded_update(embedded_model_dir, checkpointing):
    """With gradient checkpointing the backward reruns each layer: the shared prompt's caches must survive it."""
    base = load_model(str(embedded_model_dir))
    out = {}
    for shared in (False, True):
        model = copy.deepcopy(base)
        if checkpointing and shared:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), None, loss=LossSettings(entropy_coef=0.01),
                          max_tokens_per_microbatch=200, share_prompts=shared)
        batch = ragged_batch()
        learner.prepare(batch, old_needed_early=True)
        batch.logp_old = batch.logp_old - 0.1 * batch.loss_mask  # ratios away from 1: clipping is exercised
        stats = learner.update(batch, torch.Generator().manual_seed(0))
        out[shared] = (stats, batch.logp_old, torch.cat([p.grad.flatten() for p in model.parameters()]))
    (sp, lp_p, gp), (ss, lp_s, gs) = out[False], out[True]
    m = ragged_batch().loss_mask.bool()
    torch.testing.assert_close(lp_p[m], lp_s[m], rtol=1e-5, atol=1e-6)
    for k in ("loss", "pg_loss", "entropy", "clip_frac"):
        assert sp[k] == pytest.approx(ss[k], rel=1e-5, abs=1e-7), k
    assert gp.abs().sum() > 0
    torch.testing.assert_close(gp, gs, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_keeps_fp32_weights_and_stays_close(embedded_model_dir):
    base = load_model(str(embedded_model_dir))
    out = {}
    for autocast in (False, True):
        model = copy.deepcopy(base)
        learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), None, loss=LossSettings(), autocast=autocast)
        batch = ragged_batch()
        learner.prepare(batch, old_needed_early=True)
        stats = learner.update(batch, torch.Generator().manual_seed(0))
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert all(p.dtype == torch.float32 for p in model.parameters()) and grads.dtype == torch.float32
        out[autocast] = (batch.logp_old, stats, grads)
    m = ragged_batch().loss_mask.bool()
    gap = (out[True][0][m] - out[False][0][m]).abs()
    assert 0 < gap.mean() < 0.05 and gap.max() < 0.5  # bf16 matmuls: close, not equal
    cos = torch.nn.functional.cosine_similarity(out[True][2], out[False][2], dim=0)
    assert cos > 0.98 and torch.isfinite(out[True][2]).all()


def test_every_policy_loss_trains_through_the_learner(embedded_model_dir):
    """algorithm.policy_loss reaches the learner: on-policy every loss gives the same gradient (-A grad log pi);
    off-policy (old log-probs moved by N(0, 0.3) per token) they part ways, and each still yields finite, non-zero gradients."""
    from reasonrl.algorithms import POLICY_LOSSES, ClipRange

    base = load_model(str(embedded_model_dir))
    grads = {}
    for name in POLICY_LOSSES.names():
        for shift in (0.0, 0.3):
            model = copy.deepcopy(base)
            learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), None, max_tokens_per_microbatch=200,
                              loss=LossSettings(policy_loss=name, clip=ClipRange(0.2, 0.28)))
            batch = ragged_batch()
            learner.prepare(batch, old_needed_early=True)
            noise = torch.randn(batch.loss_mask.shape, generator=torch.Generator().manual_seed(2))
            batch.logp_old = batch.logp_old - shift * noise * batch.loss_mask  # ratios spread around 1
            learner.update(batch, torch.Generator().manual_seed(0))
            grads[name, shift] = torch.cat([p.grad.flatten() for p in model.parameters()])
            assert torch.isfinite(grads[name, shift]).all() and grads[name, shift].abs().sum() > 0
    for name in POLICY_LOSSES.names():
        torch.testing.assert_close(grads[name, 0.0], grads["ppo_clip", 0.0], rtol=1e-4, atol=1e-7)
    assert not torch.allclose(grads["gspo", 0.3], grads["ppo_clip", 0.3], rtol=1e-3)
    assert not torch.allclose(grads["cispo", 0.3], grads["ppo_clip", 0.3], rtol=1e-3)
