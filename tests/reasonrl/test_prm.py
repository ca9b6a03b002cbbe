"""The implicit PRM: rewards on the response only, exact micro-batched gradients, and learning from labels."""
from __future__ import annotations

import copy

import pytest
import torch

from reasonrl.batching import collate
from reasonrl.models import frozen_copy, load_model, load_tokenizer
from reasonrl.prm import ImplicitPRM
from reasonrl.types import Record, Rollout, RolloutGroup


def toy_batch(tok):
    """Two prompts x 4 responses; the correct ones end with '7', the wrong ones with '9'."""
    groups = []
    for prompt, answers in (("Compute: 3+4\n", ["7", "9", "7", "9"]), ("Compute: 1+6\n", ["7", "7", "9", "9"])):
        rollouts = []
        for a in answers:
            ids = tok(f"x={a}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rollouts.append(Rollout(ids, [0.0] * len(ids), f"x={a}", "eos"))
        groups.append(RolloutGroup(Record(prompt, "7"), tok(prompt, add_special_tokens=False)["input_ids"], rollouts))
    batch = collate(groups, tok.pad_token_id)
    acc = torch.tensor([a == "7" for _, answers in (("", ["7", "9", "7", "9"]), ("", ["7", "7", "9", "9"]))
                        for a in answers], dtype=torch.float32)
    return batch, acc


@pytest.fixture()
def parts(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    torch.manual_seed(0)
    model = load_model(str(tiny_model_dir))
    return tok, model, frozen_copy(model)


def test_rewards_live_on_the_response_and_start_at_zero(parts):
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    q = ImplicitPRM(model, ref).token_rewards(batch)
    assert torch.allclose(q, torch.zeros_like(q))  # phi starts as a copy of the reference
    assert (q[batch.loss_mask == 0] == 0).all()


@pytest.mark.parametrize("loss", ["ce", "dpo"])
def test_micro_batched_update_equals_the_full_batch_update(parts, loss):
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    a = ImplicitPRM(copy.deepcopy(model), ref, lr=1e-2, loss=loss, max_tokens_per_microbatch=10_000)
    b = ImplicitPRM(copy.deepcopy(model), ref, lr=1e-2, loss=loss, max_tokens_per_microbatch=20)
    before = copy.deepcopy(model)
    for prm in (a, b):  # plain SGD, so the parameter change is the gradient itself (Adam would amplify rounding)
        prm.optimizer = torch.optim.SGD(prm.model.parameters(), lr=1.0)
        prm.max_grad_norm = 0.0
        prm.update(batch, acc)
    moved = 0.0
    for (name, pa), (_, pb), (_, p0) in zip(a.model.named_parameters(), b.model.named_parameters(),
                                          before.named_parameters()):
        assert torch.allclose(pa - p0, pb - p0, atol=1e-7, rtol=1e-4), name
        moved += (pa - p0).abs().sum().item()
    assert moved > 0


@pytest.mark.parametrize("loss", ["ce", "dpo"])
def test_learns_to_tell_correct_from_wrong(parts, loss):
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    prm = ImplicitPRM(model, ref, beta=0.5, lr=3e-3, loss=loss)
    first, _ = prm.update(batch, acc)
    for _ in range(15):
        last, _ = prm.update(batch, acc)
    assert last["prm/loss"] < first["prm/loss"] and last["prm/auroc"] == 1.0
    q = prm.token_rewards(batch)
    seq = q.sum(-1)
    assert seq[acc.bool()].min() > seq[~acc.bool()].max()  # the implicit reward ranks every correct one higher


def test_one_pass_cross_entropy_gradient_equals_the_two_pass_route(parts):
    """ce takes the one-forward path (a mean of per-row terms); the two-pass s * dL/ds route must agree."""
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    one = ImplicitPRM(copy.deepcopy(model), ref, beta=0.5, loss="ce", max_tokens_per_microbatch=20)
    two = ImplicitPRM(copy.deepcopy(model), ref, beta=0.5, loss="ce", max_tokens_per_microbatch=20)
    two.loss_fn = lambda s, a, g: torch.nn.functional.binary_cross_entropy_with_logits(s, a)  # not marked separable
    with torch.no_grad():  # move phi away from ref so the scores are not all zero
        for p in list(one.model.parameters())[:3] + list(two.model.parameters())[:3]:
            p.add_(0.05)
    grads = []
    for prm in (one, two):
        prm.optimizer = torch.optim.SGD(prm.model.parameters(), lr=0.0)
        metrics, phi = prm.update(batch, acc)
        grads.append(torch.cat([p.grad.flatten() for p in prm.model.parameters()]))
        assert torch.allclose(phi * batch.loss_mask, prm.logp(batch) * batch.loss_mask)  # pre-step log-probs
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-7, rtol=1e-4)
