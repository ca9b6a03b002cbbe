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
    first = prm.update(batch, acc)
    for _ in range(15):
        last = prm.update(batch, acc)
    assert last["prm/loss"] < first["prm/loss"] and last["prm/auroc"] == 1.0
    q = prm.token_rewards(batch)
    seq = q.sum(-1)
    assert seq[acc.bool()].min() > seq[~acc.bool()].max()  # the implicit reward ranks every correct one higher
