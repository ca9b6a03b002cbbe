"""GRPO / DAPO math against tests/fixtures/algorithm_vectors.json (keys grpo, dapo), with junk in the padding."""
from __future__ import annotations

import pytest
import torch

from reasonrl.algorithms import (ADVANTAGES, POLICY_LOSSES, AdvantageInputs, AdvantageOptions, ClipRange, aggregate,
                                 groups_with_signal, kl_in_reward, kl_penalty, overlong_penalty)
from tests.conftest import close, padded


def group_advantages(name: str, rewards: torch.Tensor, **options) -> torch.Tensor:
    """(B, G) rewards -> (B, G) per-response advantages through the registry (one token per response)."""
    b, g = rewards.shape
    x = AdvantageInputs(rewards, torch.ones(b * g, 1, dtype=rewards.dtype), options=AdvantageOptions(**options))
    return ADVANTAGES.get(name)(x)[:, 0].view(b, g)


def token_advantages(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GRPO (ddof 1) advantages of one group broadcast over its rows' tokens."""
    return ADVANTAGES.get("grpo")(AdvantageInputs(rewards[None], mask))


@pytest.fixture()
def grpo(vectors):
    g = vectors["grpo"]
    inp = g["inputs"]
    logp, mask = padded(inp["logp_new(current policy)"], inp["T_max"])
    old, _ = padded(inp["logp_old(rollout policy)"], inp["T_max"])
    ref, _ = padded(inp["logp_ref"], inp["T_max"])
    rewards = torch.tensor(inp["outcome_rewards"], dtype=torch.float64)
    assert mask.tolist() == inp["mask_padded_layout"]
    return g, logp, old, ref, rewards, mask


def test_group_advantages(grpo):
    g, *_, rewards, _ = grpo
    out = g["outputs"]["advantages"]
    close(group_advantages("grpo", rewards[None], ddof=1)[0], out["grpo_std_ddof1_eps1e-6"])
    close(group_advantages("grpo", rewards[None], ddof=0)[0], out["grpo_std_ddof0_eps1e-6"])
    close(group_advantages("dr_grpo", rewards[None])[0], out["drgrpo_no_std"])
    close(group_advantages("rloo", rewards[None])[0], out["rloo"])


def test_advantages_broadcast_over_each_rows_tokens_only(grpo):
    *_, rewards, mask = grpo
    adv = token_advantages(rewards, mask)
    for i, a in enumerate(group_advantages("grpo", rewards[None])[0]):
        assert torch.equal(adv[i][mask[i].bool()], a.expand(int(mask[i].sum())))
    assert (adv[~mask.bool()] == 0).all()


def test_all_equal_group_gets_zero_advantage():
    assert torch.equal(group_advantages("grpo", torch.ones(1, 4)), torch.zeros(1, 4))


def test_group_of_one_is_an_error():
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages("grpo", torch.ones(3, 1))


CASES = {  # vector key -> (clip_low, clip_high, dual_clip)
    "ppo_clip_eps0.2": (0.2, 0.2, None),
    "ppo_clip_eps0.2_dualclip3": (0.2, 0.2, 3.0),
    "dapo_cliphigher_0.2_0.28_dualclip10": (0.2, 0.28, 10.0),
}


@pytest.mark.parametrize("key", list(CASES))
def test_clipped_surrogate_and_aggregation(grpo, key):
    g, logp, old, _, rewards, mask = grpo
    want = g["outputs"]["losses_using_grpo_std_ddof1_advantages"][key]
    adv = token_advantages(rewards, mask)
    loss, metrics = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, ClipRange(*CASES[key]))
    for i, row in enumerate(want["per_token_loss"]):
        close(loss[i, : len(row)], row)
    close(metrics["clip_frac"], want["clipped_token_fraction"])
    close(aggregate(loss, mask, "token-mean"), want["token-mean"])
    close(aggregate(loss, mask, "seq-mean-token-mean"), want["seq-mean-token-mean"])
    close(aggregate(loss, mask, "seq-mean-token-sum"), want["seq-mean-token-sum"])
    close(aggregate(loss, mask, "seq-mean-token-sum-norm", scale=5), want["seq-mean-token-sum-norm(L=5)"])
    close(aggregate(loss, mask, "drgrpo", scale=5), want["drgrpo(L_max=5)"])


def test_worked_example_dual_clip_token(grpo):
    """docs/algorithms.md 2.2: the token with log-ratio 1.3 and A = -1.5 (-1.499997 with eps on the std) costs
    -A e^1.3 = 5.504, or -A * 3 = 4.5 under dual clip 3."""
    g, logp, old, _, rewards, mask = grpo
    a = g["outputs"]["advantages"]["grpo_std_ddof1_eps1e-6"][1]
    adv = token_advantages(rewards, mask)
    plain, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask)
    dual, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, ClipRange(dual=3.0))
    close(logp[1, 4] - old[1, 4], 1.3, rtol=1e-12)
    close(plain[1, 4], -a * torch.tensor(1.3, dtype=torch.float64).exp())
    close(dual[1, 4], -a * 3)


def test_kl_estimators(grpo):
    g, logp, old, ref, rewards, mask = grpo
    want = g["outputs"]["losses_using_grpo_std_ddof1_advantages"]["kl"]
    k3 = kl_penalty(logp, ref, "k3")
    for i, row in enumerate(want["k3_per_token(current_vs_ref)"]):
        close(k3[i, : len(row)], row)
    close(aggregate(k3, mask, "token-mean"), want["k3_token-mean"])
    close(aggregate(k3, mask, "seq-mean-token-mean"), want["k3_seq-mean-token-mean"])
    k1 = kl_penalty(old, ref, "k1")
    for i, row in enumerate(want["k1_per_token(old_vs_ref)"]):
        close(k1[i, : len(row)], row)
    d = ref - logp  # k2 by hand
    close(torch.where(mask.bool(), kl_penalty(logp, ref, "k2"), 0), torch.where(mask.bool(), 0.5 * d * d, 0))


def test_kl_in_reward(grpo):
    g, _, old, ref, rewards, mask = grpo
    want = g["outputs"]["losses_using_grpo_std_ddof1_advantages"]["kl_in_reward_beta0.001"]
    tok = kl_in_reward(rewards, old, ref, mask, beta=0.001)
    for i, row in enumerate(want["token_level_rewards"]):
        close(tok[i, : len(row)], row)
    close(tok.sum(-1), want["sequence_score_sum"])


def test_total_losses(grpo):
    g, logp, old, ref, rewards, mask = grpo
    out = g["outputs"]["losses_using_grpo_std_ddof1_advantages"]
    adv = token_advantages(rewards, mask)
    k3 = kl_penalty(logp, ref, "k3")
    pg, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask)
    deepseek = aggregate(pg, mask, "seq-mean-token-mean") + 0.04 * aggregate(k3, mask, "seq-mean-token-mean")
    close(deepseek, out["grpo_total_loss_deepseekmath_style(seq-mean-token-mean, beta=0.04)"])
    pg3, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, ClipRange(dual=3.0))
    verl = aggregate(pg3, mask, "token-mean") + 0.001 * aggregate(k3, mask, "token-mean")
    close(verl, out["grpo_total_loss_verl_style(token-mean, kl_loss_coef=0.001, dualclip3)"])


def test_dapo_overlong_and_dynamic_sampling(vectors):
    d = vectors["dapo"]
    inp, out = d["inputs"], d["outputs"]
    pen = overlong_penalty(torch.tensor(inp["response_lengths"]), inp["L_max"], inp["L_cache(overlong_buffer.len)"],
                           inp["penalty_factor"])
    close(pen, out["overlong_reward_added"])
    keep = groups_with_signal(torch.tensor(inp["group_accuracies"], dtype=torch.float64))
    assert keep.tolist() == out["dynamic_sampling_keep_group"]


def test_padding_junk_never_leaks(grpo):
    """inf / nan in padded slots must not change any aggregate (where(), not multiply-by-mask)."""
    g, logp, old, ref, rewards, mask = grpo
    adv = token_advantages(rewards, mask)
    loss, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask)
    dirty = torch.where(mask.bool(), loss, torch.tensor(float("nan"), dtype=loss.dtype))
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "drgrpo"):
        close(aggregate(dirty, mask, mode), aggregate(loss, mask, mode))
