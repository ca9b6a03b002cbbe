"""Padding-free packing gives the padded path's log-probs, loss and gradients."""
from __future__ import annotations

import copy

import pytest
import torch

from reasonrl.batching import collate
from reasonrl.learner import Learner, LossSettings
from reasonrl.logprobs import token_logprobs
from reasonrl.models import load_model
from reasonrl.packing import pack, packed_micro_batches, packed_token_logprobs
from reasonrl.types import Record, Rollout, RolloutGroup
from tests.conftest import close, ragged_batch


def test_pack_layout_by_hand():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    flat, pos, index = pack(ids, mask)
    assert flat.tolist() == [[5, 6, 7, 8, 9]] and pos.tolist() == [[0, 1, 2, 0, 1]]
    # row 0 predicts 6, 7 from packed logits 0, 1; row 1 predicts 9 from logit 3 (logit 2 would cross rows)
    assert index.tolist() == [[0, 1, -1], [3, -1, -1]]


def test_packed_micro_batches_fit_the_budget_and_cover_every_row_once():
    lengths = torch.tensor([30, 5, 17, 9, 40, 3, 22, 11])
    groups = packed_micro_batches(lengths, 45)
    assert sorted(torch.cat(groups).tolist()) == list(range(8))
    assert all(int(lengths[g].sum()) <= 45 for g in groups)
    assert len(packed_micro_batches(torch.tensor([50, 3]), 45)) == 2  # an over-long row goes alone


def test_packed_log_probs_equal_padded(embedded_model_dir):
    model = load_model(str(embedded_model_dir))
    torch.manual_seed(0)
    lens = [5, 17, 9, 30, 2]
    ids = torch.randint(3, 90, (len(lens), max(lens)))
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lens):
        mask[i, :n] = 1
        ids[i, n:] = 0
    a, ea = token_logprobs(model, ids, mask, with_entropy=True)
    b, eb = packed_token_logprobs(model, ids, mask, with_entropy=True)
    valid = mask[:, 1:].bool()
    close(a[valid], b[valid], rtol=1e-5)
    close(ea[valid], eb[valid], rtol=1e-5)
    assert (b[~valid] == 0).all()


def test_packed_learner_step_equals_the_padded_step(embedded_model_dir):
    batch = ragged_batch()
    base = load_model(str(embedded_model_dir))
    grads, stats = [], []
    for packing in (False, True):
        model = copy.deepcopy(base)
        learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), None, loss=LossSettings(entropy_coef=0.01),
                          max_tokens_per_microbatch=200, packing=packing, pack_tokens=200)
        learner.prepare(batch, old_needed_early=True)
        batch.logp_old = batch.logp_old - 0.1 * batch.loss_mask  # ratios away from 1, so clipping is exercised
        stats.append(learner.update(batch, torch.Generator().manual_seed(0)))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    for k in ("loss", "pg_loss", "entropy", "clip_frac"):
        assert stats[0][k] == pytest.approx(stats[1][k], rel=1e-5, abs=1e-7), (k, stats)
    assert grads[0].abs().sum() > 0
    close(grads[0], grads[1], rtol=1e-4)


def test_truncated_importance_weights_by_hand_and_in_the_learner(embedded_model_dir):
    from reasonrl.algorithms import truncated_is_weights

    learner_lp = torch.log(torch.tensor([[0.5, 0.2, 0.9]]))
    engine_lp = torch.log(torch.tensor([[0.25, 0.4, 0.1]]))
    # ratios 2, 0.5, 9 -> capped at 3: 2, 0.5, 3
    close(truncated_is_weights(learner_lp, engine_lp, 3.0), [[2.0, 0.5, 3.0]])

    torch.manual_seed(0)
    rollouts = [Rollout(torch.randint(3, 90, (n,)).tolist(), [0.0] * n, "", "eos") for n in (5, 12, 8, 3)]
    batch = collate([RolloutGroup(Record("p", "1"), [10, 11, 12], rollouts)], pad_id=0)
    base = load_model(str(embedded_model_dir))
    losses = {}
    for name, cap, shift in (("off", None, 0.0), ("synced", 2.0, 0.0), ("stale", 2.0, 0.3)):
        model = copy.deepcopy(base)
        learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), None, loss=LossSettings(tis_cap=cap))
        learner.prepare(batch, old_needed_early=True)
        batch.logp_engine = batch.logp_old - shift * batch.loss_mask  # the engine gave lower log-probs: w = e^0.3
        batch.advantages = batch.loss_mask.clone()
        losses[name] = learner.update(batch, torch.Generator().manual_seed(0))["pg_loss"]
    assert losses["synced"] == pytest.approx(losses["off"], rel=1e-6)  # w = 1 when engine and learner agree
    assert losses["stale"] == pytest.approx(losses["off"] * torch.exp(torch.tensor(0.3)).item(), rel=1e-5)
