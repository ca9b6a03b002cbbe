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
    assert torch.equal(q, torch.zeros_like(q))  # phi starts as a copy of the reference: exactly zero
    assert (q[batch.loss_mask == 0] == 0).all()


@pytest.mark.parametrize("loss", ["ce", "dpo"])
def test_micro_batched_update_equals_the_full_batch_update(parts, loss):
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    sgd = lambda params: torch.optim.SGD(params, lr=1.0)  # noqa: E731  (the change is the gradient itself)
    a = ImplicitPRM(copy.deepcopy(model), ref, loss=loss, max_tokens_per_microbatch=10_000, max_grad_norm=0.0,
                    optimizer=sgd)
    b = ImplicitPRM(copy.deepcopy(model), ref, loss=loss, max_tokens_per_microbatch=20, max_grad_norm=0.0,
                    optimizer=sgd)
    before = model.state_dict()
    for prm in (a, b):
        prm.update(batch, acc)
    wa, wb = a.state_dict()["model"], b.state_dict()["model"]
    moved = 0.0
    for name, p0 in before.items():
        torch.testing.assert_close(wa[name] - p0, wb[name] - p0, rtol=1e-4, atol=1e-7, msg=name)
        moved += (wa[name] - p0).abs().sum().item()
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
    moved = copy.deepcopy(model)
    with torch.no_grad():  # move phi away from ref so the scores are not all zero
        for p in list(moved.parameters())[:3]:
            p.add_(0.05)
    sgd = lambda params: torch.optim.SGD(params, lr=1.0)  # noqa: E731  (the step is minus the gradient)
    one = ImplicitPRM(copy.deepcopy(moved), ref, beta=0.5, loss="ce", max_tokens_per_microbatch=20, max_grad_norm=0.0,
                      optimizer=sgd)
    two = ImplicitPRM(copy.deepcopy(moved), ref, beta=0.5, loss="ce", max_tokens_per_microbatch=20, max_grad_norm=0.0,
                      optimizer=sgd)
    two.loss_fn = lambda s, a, g: torch.nn.functional.binary_cross_entropy_with_logits(s, a)  # not marked separable
    steps = []
    for prm in (one, two):
        logp_before = prm.logp(batch)
        metrics, phi = prm.update(batch, acc)
        assert torch.equal(phi * batch.loss_mask, logp_before * batch.loss_mask)  # its pre-step log-probs
        after = prm.state_dict()["model"]
        steps.append(torch.cat([(after[k] - v).flatten() for k, v in moved.state_dict().items()]))
    assert steps[0].abs().sum() > 0
    torch.testing.assert_close(steps[0], steps[1], rtol=1e-4, atol=1e-7)


def test_state_round_trips_and_warmstart_fits_soft_targets(parts, tmp_path):
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    prm = ImplicitPRM(copy.deepcopy(model), ref, beta=0.5, lr=3e-3)
    targets = torch.tensor([0.9, 0.1, 0.8, 0.2, 0.9, 0.7, 0.2, 0.1])
    losses = prm.warmstart([(batch, targets)] * 10)
    assert len(losses) == 10 and losses[-1] < losses[0]
    prm.save_pretrained(tmp_path / "prm")
    again = ImplicitPRM(copy.deepcopy(model), ref, beta=0.5, lr=3e-3)
    again.load_pretrained(tmp_path / "prm")
    for name, value in prm.state_dict()["model"].items():
        assert torch.equal(value, again.state_dict()["model"][name]), name
    prm.update(batch, acc)  # the restored optimiser state takes the same next step
    again.update(batch, acc)
    for name, value in prm.state_dict()["model"].items():
        assert torch.equal(value, again.state_dict()["model"][name]), name
    with pytest.raises(ValueError, match="prm.loss=ce"):
        ImplicitPRM(copy.deepcopy(model), ref, loss="dpo").warmstart([(batch, targets)])
    # checkpoints written before the PRM saved its own optimizer.pt kept the state in trainer_state.pt
    prm.save_pretrained(tmp_path / "old")
    (tmp_path / "old" / "optimizer.pt").unlink()
    with pytest.raises(RuntimeError, match="no optimizer state"):
        again.load_pretrained(tmp_path / "old")
    again.load_pretrained(tmp_path / "old", optimizer_state=copy.deepcopy(prm.state_dict()["optimizer"]))
    prm.update(batch, acc)
    again.update(batch, acc)
    for name, value in prm.state_dict()["model"].items():
        assert torch.equal(value, again.state_dict()["model"][name]), name


def test_the_prms_adamw_has_no_weight_decay(parts):
    """Audit finding 5: PRIME and verl train the implicit PRM with AdamW at weight decay 0, i.e. plain Adam. The
    default optimiser takes exactly Adam's step (torch's AdamW default, 0.01, would also shrink every weight)."""
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    default = ImplicitPRM(copy.deepcopy(model), ref, lr=1e-3)
    adam = ImplicitPRM(copy.deepcopy(model), ref, lr=1e-3, optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-3))
    for prm in (default, adam):
        prm.update(batch, acc)
    a, b = default.state_dict()["model"], adam.state_dict()["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], v) for k, v in model.state_dict().items())  # the step moved the weights


@pytest.mark.parametrize("max_grad_norm", [10.0, 0.0], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("loss", ["ce", "dpo"])
def test_a_non_finite_prm_gradient_skips_its_step(parts, loss, max_grad_norm):
    """An inf in one gradient tensor: the PRM takes no step (weights and Adam state untouched) and says so; with
    clipping off the guard must still see the gradient (not only the loss)."""
    tok, model, ref = parts
    batch, acc = toy_batch(tok)
    prm = ImplicitPRM(copy.deepcopy(model), ref, beta=0.5, lr=1e-2, loss=loss, max_grad_norm=max_grad_norm)
    next(prm.model.parameters()).register_hook(lambda g: g * float("inf"))
    before = {k: v.clone() for k, v in prm.model.state_dict().items()}
    metrics, _ = prm.update(batch, acc)
    assert metrics["prm/nonfinite_updates"] == 1 and not prm.optimizer.state
    assert all(torch.equal(before[k], v) for k, v in prm.model.state_dict().items())


def test_an_oom_in_the_prm_update_is_retried_at_half_the_budget(parts, monkeypatch):
    from tests.conftest import small_device

    tok, model, ref = parts
    batch, acc = toy_batch(tok)

    def update(budget: int):
        prm = ImplicitPRM(copy.deepcopy(model), ref, beta=0.5, lr=1e-2, max_tokens_per_microbatch=budget)
        with monkeypatch.context() as mp:
            small_device(mp, 64, backward_only=True)  # the update's forward only
            metrics, _ = prm.update(batch, acc)
        return metrics, prm.model.state_dict(), prm.forward.max_tokens

    m, w, halved = update(1024)
    m_ref, w_ref, _ = update(halved)  # a PRM that had that budget from the start
    assert m["prm/oom_retries"] >= 1 and halved < 1024 and m_ref["prm/oom_retries"] == 0
    assert m["prm/loss"] == m_ref["prm/loss"] and all(torch.equal(w[k], w_ref[k]) for k in w)
