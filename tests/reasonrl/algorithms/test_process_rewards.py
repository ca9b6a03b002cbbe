"""PRIME process-reward math and Clip / Delta / gated shaping against tests/fixtures/algorithm_vectors.json
(keys prime, clip_delta, g_ra), plus property tests: shaped returns stay bounded and repeating a
high-scoring step never raises them."""
from __future__ import annotations

import random

import pytest
import torch

from reasonrl.algorithms import ADVANTAGES, AdvantageInputs, reverse_cumsum
from reasonrl.algorithms.process_advantages import gate_rows, prime_returns
from reasonrl.algorithms.process_rewards import (accuracy_filter, batch_norm_scores, implicit_q, loo_code, loo_paper,
                                                 sequence_logit)
from reasonrl.algorithms.shaping import SHAPINGS
from reasonrl.prm import ce_loss
from tests.conftest import close


def returns(step_rewards: torch.Tensor, success: float) -> torch.Tensor:
    """(K,) return-to-go of the step rewards with `success` added at the last step (gamma = 1)."""
    r = step_rewards.clone()
    r[-1:] += success
    return reverse_cumsum(r)


def rows(x, mask):
    return [x[i, : int(mask[i].sum())].tolist() for i in range(x.shape[0])]


def test_implicit_rewards_and_ce_loss(prime):
    out, prm, ref, mask, acc, beta, k = prime
    q = implicit_q(prm, ref, mask)
    for got, want in zip(rows(q, mask), out["q_log_ratio"]):
        close(got, want)
    for got, want in zip(rows(torch.cumsum(beta * q, -1), mask), out["implicit_q_value_prefix_sums(beta*cumsum q)"]):
        close(got, want)
    close(sequence_logit(q, mask, beta), out["prm_ce"]["sequence_logit(beta*sum q)"])
    close(torch.sigmoid(sequence_logit(q, mask, beta)), out["prm_ce"]["predicted_p_correct"])
    close(ce_loss(sequence_logit(q, mask, beta), acc, None), out["prm_ce"]["bce_loss_mean"])


def test_batch_norm_loo_returns_and_advantages(prime):
    out, prm, ref, mask, acc, beta, k = prime
    scores, denom = batch_norm_scores(implicit_q(prm, ref, mask), mask)
    close(denom, out["orig_repo_batchnorm_denominator"])
    for got, want in zip(rows(scores, mask), out["orig_repo_rm_scores(q/batchnorm)"]):
        close(got, want)
    r = out["rloo"]
    for got, want in zip(rows(loo_code(scores, mask, k), mask), r["process_loo_rewards_code"]):
        close(got, want)
    for got, want in zip(rows(loo_paper(scores, mask, k), mask), r["process_loo_rewards_paper"]):
        close(got, want)
    q = implicit_q(prm, ref, mask)  # token granularity: every token closes a step, the values are q itself
    for form, key in (("code", "returns_code(gamma=1,coef 1:1)"), ("paper", "returns_paper(gamma=1)")):
        for got, want in zip(rows(prime_returns(q, mask, acc, mask, k, loo_form=form), mask), r[key]):
            close(got, want)
    adv = ADVANTAGES.get("prime")(AdvantageInputs(acc.view(-1, k), mask, q, mask))
    for got, want in zip(rows(adv, mask), r["advantages_code(masked_whiten of returns)"]):
        close(got, want)


def test_prime_accuracy_filter(prime, vectors):
    ex = vectors["prime"]["inputs"]["filter_example"]
    keep = accuracy_filter(torch.tensor(ex["group_acc"]), *ex["accuracy_bounds"])
    assert keep.tolist() == vectors["prime"]["outputs"]["filter_example"]["keep_by_accuracy"]


def test_groups_must_be_whole(prime):
    out, prm, ref, mask, acc, beta, k = prime
    with pytest.raises(AssertionError, match="contiguous groups"):
        loo_code(prm[:3], mask[:3], k)


@pytest.mark.parametrize("mode", ["raw", "clip", "delta", "delta_keep_last", "clip_delta"])
def test_clip_delta_vectors(vectors, mode):
    cd = vectors["clip_delta"]
    p = torch.tensor(cd["inputs"]["prm_step_scores"], dtype=torch.float64)
    want = cd["outputs"][mode]
    r = SHAPINGS.get(mode)(p, eta=cd["inputs"]["eta"])
    close(r, want["refined_process_reward"])
    close(returns(r, cd["inputs"]["success_reward_at_last_step"]), want["returns"])


def test_repetition_hack_returns(vectors):
    cd = vectors["clip_delta"]
    for k, want in cd["outputs"]["repetition_hack_return_at_step1"].items():
        p = torch.full((int(k),), 0.9, dtype=torch.float64)
        for mode, value in want.items():
            close(returns(SHAPINGS.get(mode)(p, eta=0.5), 0.0)[0], value)


@pytest.mark.parametrize("seed", range(5))
def test_shaped_returns_are_bounded_and_repetition_never_pays(seed):
    rng = random.Random(seed)
    for _ in range(300):
        k, eta = rng.randint(1, 30), rng.uniform(0.05, 0.95)
        p = torch.tensor([rng.random() for _ in range(k)], dtype=torch.float64)
        ret = {m: returns(SHAPINGS.get(m)(p, eta=eta), 0.0) for m in ("clip", "delta", "clip_delta")}
        assert (ret["clip"] <= 1e-12).all() and (ret["clip"] >= -k * eta - 1e-12).all()
        assert (ret["delta"].abs() <= 1 + 1e-12).all()
        assert (ret["clip_delta"].abs() <= eta + 1e-12).all()
        # repeat the best step any number of times: the return from the first step never rises
        best = int(torch.argmax(p))
        longer = torch.cat([p[: best + 1], p[best].repeat(rng.randint(1, 20)), p[best + 1:]])
        for m in ("clip", "delta", "clip_delta"):
            assert returns(SHAPINGS.get(m)(longer, eta=eta), 0.0)[0] <= ret[m][0] + 1e-12, m


def test_gated_accumulation(vectors):
    """G-RA on the batch grid: a row's step rewards count only when its outcome reaches the threshold."""
    g = vectors["g_ra"]
    low = torch.tensor(g["inputs"]["low_level_step_rewards"], dtype=torch.float64)
    thr = g["inputs"]["gate_threshold_delta"]
    cases = [g["outputs"]["two_level"][c] for c in ("outcome_below_gate", "outcome_meets_gate")]
    gated = gate_rows(low.repeat(2, 1), torch.tensor([c["r_high"] for c in cases], dtype=torch.float64), thr)
    for row, want in zip(gated, cases):
        close(row, want["G-RA_per_step_low_rewards"])
        close(want["r_high"] + row.sum(), want["G-RA_return"])
    assert set(SHAPINGS.names()) == {"raw", "clip", "delta", "delta_keep_last", "clip_delta"}


def test_oprl_istar_vectors(vectors):
    from reasonrl.algorithms.process_rewards import oprl_advantages_paper, pairwise_dpo_losses

    v = vectors["oprl_istar"]
    inp, out = v["inputs"], v["outputs"]
    beta, rows_ = inp["beta"], inp["rows(traj, step, logp_old_tokens, logp_prm_tokens)"]
    names = sorted(inp["trajectory_success"])
    traj = torch.tensor([names.index(r[0]) for r in rows_])
    log_ratio = torch.tensor([sum(p) - sum(o) for _, _, o, p in rows_], dtype=torch.float64)
    close(log_ratio, out["step_log_ratio_sum"])
    step_r = beta * log_ratio
    close(step_r, out["implicit_step_reward(beta*sum)"])
    success = torch.tensor([inp["trajectory_success"][n] for n in names], dtype=torch.float64)
    pos, neg = [i for i, s in enumerate(success) if s > 0], [i for i, s in enumerate(success) if s <= 0]
    traj_sum = torch.stack([log_ratio[traj == i].sum() for i in range(len(names))])
    paper = pairwise_dpo_losses(beta * traj_sum[pos], beta * traj_sum[neg])
    close(paper, out["prm_loss"]["paper_dpo_pair_losses"])
    close(paper.mean(), out["prm_loss"]["paper_dpo_loss_mean_over_pairs"])
    traj_mean = torch.stack([step_r[traj == i].mean() for i in range(len(names))])
    code = pairwise_dpo_losses(traj_mean[pos], traj_mean[neg])
    close(code, out["prm_loss"]["code_eto_pair_losses"])
    alpha = inp["alpha(step_advantage_w)"]
    close(oprl_advantages_paper(step_r, traj, success, alpha=alpha),
          out["advantages_paper(zscore, ddof=1)"]["combined_per_step_row"], rtol=1e-5)
