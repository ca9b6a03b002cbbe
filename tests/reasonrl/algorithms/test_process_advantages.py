"""Process rewards on the batch grid: steps on tokens, Clip / Delta on the implicit PRM's prefix scores,
the G-RA gate, and the prime / oprl estimators, against hand-computed numbers and tests/fixtures/algorithm_vectors.json."""
from __future__ import annotations

import math
import random

import pytest
import torch

from reasonrl.algorithms import ADVANTAGES, AdvantageInputs, AdvantageOptions
from reasonrl.algorithms.process_advantages import (broadcast_steps, close_last_step, gate_rows, prefix_probs,
                                                    process_values, step_index, step_sums, zero_flat_groups)
from tests.conftest import close


def dense(name: str, values, ends, outcome, mask, k: int, **options) -> torch.Tensor:
    """A dense estimator through the registry: outcome (N,) as (N/k, k) rewards."""
    x = AdvantageInputs(torch.as_tensor(outcome, dtype=torch.float64).view(-1, k), mask, values, ends,
                        AdvantageOptions(**options))
    return ADVANTAGES.get(name)(x)


MASK = torch.tensor([[0, 1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0, 0]], dtype=torch.float64)
ENDS = torch.tensor([[0, 0, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0, 0]], dtype=torch.float64)


def test_last_step_is_closed_on_the_last_valid_token():
    # row 0: ends at 2, 4; the tokens 5 (e.g. EOS) join the last step, which now ends at 5
    # row 1: its only end is at 2, but token 3 is valid: the step ends at 3
    ends = close_last_step(ENDS, MASK)
    assert ends.tolist() == [[0, 0, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0, 0]]
    assert close_last_step(torch.zeros(1, 3), torch.zeros(1, 3)).sum() == 0  # an empty row has no steps
    assert step_index(ends, MASK).tolist() == [[-1, 0, 0, 1, 1, 1, -1], [-1, -1, 0, 0, -1, -1, -1]]


def test_step_sums_prefix_probs_and_broadcast():
    ends = close_last_step(ENDS, MASK)
    x = torch.arange(7, dtype=torch.float64).repeat(2, 1)
    # row 0: step 0 = tokens 1, 2 -> 3 on token 2; step 1 = tokens 3..5 -> 12 on token 5; row 1: 2 + 3 = 5 on token 3
    assert step_sums(x, ends, MASK).tolist() == [[0, 0, 3, 0, 0, 12, 0], [0, 0, 0, 5, 0, 0, 0]]
    p = prefix_probs(x, ends, MASK, beta=0.1)
    close(p[0, [2, 5]], [1 / (1 + math.exp(-0.3)), 1 / (1 + math.exp(-1.5))])
    assert p[0, [0, 1, 3, 4, 6]].abs().sum() == 0
    b = broadcast_steps(step_sums(x, ends, MASK), ends, MASK)
    assert b.tolist() == [[0, 3, 3, 12, 12, 12, 0], [0, 0, 5, 5, 0, 0, 0]]


def test_clip_and_delta_on_prefix_scores_reproduce_the_vectors(vectors):
    """q built so the implicit PRM's prefix scores are the vector's p = [0.9, 0.3, 0.6, 0.95], one token per step."""
    v = vectors["clip_delta"]
    p = torch.tensor(v["inputs"]["prm_step_scores"], dtype=torch.float64)
    beta, eta = 0.05, v["inputs"]["eta"]
    cum = torch.log(p / (1 - p)) / beta
    q = torch.diff(cum, prepend=torch.zeros(1))[None]
    mask = torch.ones_like(q)
    close(prefix_probs(q, mask, mask, beta)[0], p)
    for mode in ("clip", "delta", "clip_delta"):
        close(process_values(q, mask, mask, beta=beta, shaping=mode, eta=eta)[0], v["outputs"][mode]["refined_process_reward"])
    close(process_values(q, mask, mask, beta=beta, shaping="none")[0], beta * q[0])


@pytest.mark.parametrize("seed", range(20))
def test_batch_process_returns_are_bounded_and_repeated_steps_never_pay(seed):
    """For random q and step layouts, the process return of every response stays inside the shaping's
    bound, and repeating a step (same prefix score: a repeated step's q sums to zero) never raises it."""
    rng = random.Random(seed)
    eta, beta = 0.5, 0.5
    k = rng.randint(1, 6)
    qs = [rng.uniform(-8, 8) for _ in range(k)]
    repeat_at = rng.randrange(k)
    grown = qs[: repeat_at + 1] + [0.0] * rng.randint(1, 5) + qs[repeat_at + 1:]
    bounds = {"clip": (-len(grown) * eta, 0.0), "delta": (-1.0, 1.0), "clip_delta": (-eta, eta)}
    for mode, (lo, hi) in bounds.items():
        totals = []
        for steps in (qs, grown):
            q = torch.tensor(steps, dtype=torch.float64)[None]
            total = process_values(q, torch.ones_like(q), torch.ones_like(q), beta=beta, shaping=mode, eta=eta).sum()
            assert lo - 1e-9 <= total <= hi + 1e-9, (mode, steps, total)
            totals.append(float(total))
        assert totals[1] <= totals[0] + 1e-9, (mode, qs, grown, totals)
    raw = [process_values(torch.tensor(s, dtype=torch.float64)[None], torch.ones(1, len(s)), torch.ones(1, len(s)),
                          beta=beta, shaping="raw").sum() for s in (qs, grown)]
    assert raw[1] > raw[0]  # what the shaping prevents: unshaped prefix scores pay for every repeat


def test_gate_zeroes_rows_below_the_threshold():
    values = torch.tensor([[0.5, -0.25], [0.3, 0.1], [-1.0, 2.0]])
    assert gate_rows(values, torch.tensor([1.0, 0.0, 0.5]), 0.5).tolist() == [[0.5, -0.25], [0.0, 0.0], [-1.0, 2.0]]
    assert torch.equal(gate_rows(values, torch.zeros(3), None), values)


def test_flat_groups_lose_their_process_values():
    """Three groups of two: all wrong, mixed, all right (a score of 0.5 counts as its own value)."""
    values = torch.arange(12, dtype=torch.float32).view(6, 2) + 1
    outcome = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    assert zero_flat_groups(values, outcome, 2).tolist() == [[0, 0], [0, 0], [5, 6], [7, 8], [0, 0], [0, 0]]
    assert torch.equal(zero_flat_groups(values, torch.tensor([0.5, 1.0, 0.0, 0.0, 1.0, 0.5]), 2)[:2], values[:2])


def test_prime_with_token_granularity_is_the_prime_vector(prime):
    """The loop's route: values = beta * q per token; beta cancels in the batch norm (up to its eps)."""
    out, prm, ref, mask, acc, beta, k = prime
    q = torch.where(mask.bool(), prm - ref, torch.zeros_like(prm))
    adv = dense("prime", process_values(q, mask, mask, beta=beta), mask, acc, mask, k)
    expected = out["rloo"]["advantages_code(masked_whiten of returns)"]
    for i, row in enumerate(expected):
        close(adv[i, : len(row)], row, rtol=1e-5)


def test_prime_with_one_token_steps_equals_token_granularity():
    torch.manual_seed(0)
    mask = torch.ones(4, 5, dtype=torch.float64)
    mask[1, 3:] = 0
    q = torch.randn(4, 5, dtype=torch.float64) * mask
    acc = torch.tensor([1.0, 0.0, 0.0, 1.0])
    by_token = dense("prime", process_values(q, mask, mask, beta=0.05), mask, acc, mask, 2)
    ends = close_last_step(mask.clone(), mask)
    by_step = dense("prime", process_values(q, ends, mask, beta=0.05), ends, acc, mask, 2)
    close(by_step, by_token)


def test_prime_step_granularity_by_hand():
    """K=2, one step each from 2 tokens; process values 2 and -2 after batch-norm become 1 and -1, each
    row's LOO (code form) is x*2 - (1 + -1) = 2x; outcomes 1, 0 give 2*1 - 1 = 1 and -1 at the last token.
    Returns: row 0 [1+1, 1+1] = [2, 2], row 1 [-2, -2]; whitened over 4 tokens (mean 0, std 2.309)."""
    mask = torch.ones(2, 2, dtype=torch.float64)
    ends = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    values = torch.tensor([[0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    adv = dense("prime", values, ends, [1.0, 0.0], mask, 2)
    std = math.sqrt(16 / 3)
    close(adv, [[2 / std, 2 / std], [-2 / std, -2 / std]], rtol=1e-5)


def test_oprl_on_the_batch_grid_is_the_istar_vector(vectors):
    """Each trajectory is one row of concatenated step tokens; the advantage of every token is its step's."""
    v = vectors["oprl_istar"]
    inp, out = v["inputs"], v["outputs"]
    names = sorted(inp["trajectory_success"])
    steps = {n: [r for r in inp["rows(traj, step, logp_old_tokens, logp_prm_tokens)"] if r[0] == n] for n in names}
    width = max(sum(len(r[2]) for r in s) for s in steps.values())
    q = torch.zeros(len(names), width, dtype=torch.float64)
    mask, ends = torch.zeros_like(q), torch.zeros_like(q)
    order = []  # (row, step) in the vector's row order, and the token span of each step
    for i, n in enumerate(names):
        t = 0
        for _, _, old, new in steps[n]:
            q[i, t:t + len(old)] = torch.tensor(new, dtype=torch.float64) - torch.tensor(old, dtype=torch.float64)
            mask[i, t:t + len(old)] = 1
            ends[i, t + len(old) - 1] = 1
            order.append((i, t, t + len(old)))
            t += len(old)
    values = process_values(q, ends, mask, beta=inp["beta"])
    close(values[ends.bool()], out["implicit_step_reward(beta*sum)"])
    success = torch.tensor([inp["trajectory_success"][n] for n in names], dtype=torch.float64)
    adv = dense("oprl", values, ends, success, mask, len(names), alpha=inp["alpha(step_advantage_w)"])
    for (i, a, b), want in zip(order, out["advantages_paper(zscore, ddof=1)"]["combined_per_step_row"]):
        close(adv[i, a:b], [want] * (b - a), rtol=1e-5)
    assert adv[~mask.bool()].abs().sum() == 0


@pytest.mark.parametrize("step_norm, step_part", [("z", 1e-4 / (math.sqrt(2e-8) + 1e-6)), ("center", 1e-4)])
def test_oprl_step_norm_center_keeps_a_barely_trained_prms_scale(step_norm, step_part):
    """K=2, one one-token step each, outcomes 1 / 0, step rewards +-1e-4 (a PRM barely moved from its reference).
    By hand: z(outcome), ddof 1: (1 - 0.5) / sqrt(0.5) = +-0.7071. The paper's z-score of the step rewards
    (std sqrt(2e-8), eps 1e-6) is +-0.702: noise of 1e-4 weighs as much as the outcome. Centred: +-1e-4."""
    mask = torch.ones(2, 1, dtype=torch.float64)
    values = torch.tensor([[1e-4], [-1e-4]], dtype=torch.float64)
    adv = dense("oprl", values, mask, [1.0, 0.0], mask, 2, step_norm=step_norm)
    outcome = 0.5 / (math.sqrt(0.5) + 1e-6)  # _zscore adds eps 1e-6 to the std
    close(adv, [[outcome + step_part], [-outcome - step_part]], rtol=1e-6)


@pytest.mark.parametrize("norm, returns", [("none", [[1.5, 0.75], [-1.5, -1.25]]), ("batch", [[2.0, 0.5], [-2.0, -1.5]])])
def test_prime_norm_none_keeps_the_process_scale(norm, returns):
    """K=2, token granularity; process 0.5 on row 0's first token, outcomes 1 / 0. By hand:
    none:  LOO (code) x*2 - (0.25 + 0)/1 -> [0.75, -0.25], [-0.25, -0.25]; + outcome LOO +-1 on the last token
           -> rewards [0.75, 0.75], [-0.25, -1.25] -> returns [1.5, 0.75], [-1.5, -1.25]
    batch: values / 0.5 (the largest |return-to-go|) = [1, 0] -> LOO [1.5, -0.5], [-0.5, -0.5] -> returns [2, 0.5], [-2, -1.5]"""
    mask = torch.ones(2, 2, dtype=torch.float64)
    values = torch.tensor([[0.5, 0.0], [0.0, 0.0]], dtype=torch.float64)
    adv = dense("prime", values, mask, [1.0, 0.0], mask, 2, norm=norm)
    r = torch.tensor(returns, dtype=torch.float64)
    close(adv, (r - r.mean()) / r.flatten().std(), rtol=1e-5)


@pytest.mark.parametrize("name", ["prime", "oprl"])
def test_dense_estimators_say_what_they_need(name):
    assert getattr(ADVANTAGES.get(name), "needs_process", False)
    with pytest.raises(ValueError, match=f"the {name} advantage needs process values"):
        ADVANTAGES.get(name)(AdvantageInputs(torch.ones(1, 2), torch.ones(2, 3)))
    assert not any(getattr(ADVANTAGES.get(n), "needs_process", False) for n in ("grpo", "dr_grpo", "rloo"))


def steps_q(p: list[float], beta: float) -> torch.Tensor:
    """q with one token per step whose implicit prefix scores sigmoid(beta * cumsum q) are p."""
    logit = torch.log(torch.tensor(p, dtype=torch.float64) / (1 - torch.tensor(p, dtype=torch.float64))) / beta
    return torch.diff(logit, prepend=torch.zeros(1))


def batch_of(rows: list[list[float]], beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, mask) right-padded, one token per step."""
    width = max(len(r) for r in rows)
    q, mask = torch.zeros(len(rows), width, dtype=torch.float64), torch.zeros(len(rows), width, dtype=torch.float64)
    for i, r in enumerate(rows):
        q[i, : len(r)], mask[i, : len(r)] = steps_q(r, beta), 1
    return q, mask


def first_returns(rows, outcome, mode, loo_form, norm="none", beta=0.5, eta=0.5, k=None):
    from reasonrl.algorithms.process_advantages import prime_returns

    q, mask = batch_of(rows, beta)
    values = process_values(q, mask, mask, beta=beta, shaping=mode, eta=eta)
    returns = prime_returns(values, mask, torch.tensor(outcome, dtype=torch.float64), mask, k or len(rows),
                            loo_form=loo_form, norm=norm)
    return returns[:, 0], (q, mask, values)


@pytest.mark.parametrize("mode, paper", [("clip", -0.2), ("delta", 0.6)])
def test_padding_a_response_with_good_steps_does_not_pay_under_the_whole_return_baseline(mode, paper):
    """Audit finding 3, the example: p = [.9, .3] vs [.9, .9, .9, .3] (K = 2, eta 0.5, same outcome). Their process
    returns are equal (Clip -0.2 / -0.2, Delta 0.6 / 0.6), so the returns the policy sees must be equal. The
    per-step baseline as released gives the longer response more under Clip (-0.1 / +0.2) and less under
    Delta (+0.3 / -0.6): it scales a response's return with its number of steps."""
    rows = [[0.9, 0.3], [0.9, 0.9, 0.9, 0.3]]
    got, (_, _, values) = first_returns(rows, [1.0, 1.0], mode, "return")
    close(values.sum(-1), [paper, paper])
    close(got, [0.0, 0.0])
    old, _ = first_returns(rows, [1.0, 1.0], mode, "code")
    close(old, {"clip": [-0.1, 0.2], "delta": [0.3, -0.6]}[mode])
    # whitened (prime, auto options) beside a second group that gives the whitening its scale: the two responses
    # still get the same advantage; under the released per-step form the padded one gets more (Clip)
    from reasonrl.algorithms import prime_defaults

    q, mask = batch_of(rows + [[0.6], [0.4]], 0.5)
    values = process_values(q, mask, mask, beta=0.5, shaping=mode, eta=0.5)
    adv = {form: dense("prime", values, mask, [1.0, 1.0, 1.0, 0.0], mask, 2, loo_form=form, norm="none")
           for form in (prime_defaults(mode)[0], "code")}
    close(adv["return"][0, 0], adv["return"][1, 0])
    assert (adv["code"][1, 0] > adv["code"][0, 0]) == (mode == "clip")
    assert prime_defaults("none") == ("code", "batch") and prime_defaults(mode, "paper", "batch") == ("paper", "batch")


@pytest.mark.parametrize("seed", range(20))
def test_returns_the_policy_sees_keep_the_bound_and_repeats_never_raise_them(seed):
    """Through prime_returns (whole-return baseline, values at their own scale): a group of K random responses, one
    of them then repeats a step. The repeating response's return at every token of its original steps never
    rises, and its process part at the first token stays within the shaping's bound minus the others' mean."""
    rng = random.Random(seed)
    eta, beta, k = 0.5, 0.5, rng.randint(2, 4)
    rows = [[rng.uniform(0.02, 0.98) for _ in range(rng.randint(1, 6))] for _ in range(k)]
    at = rng.randrange(len(rows[0]))
    grown = rows[0][: at + 1] + [rows[0][at]] * rng.randint(1, 4) + rows[0][at + 1:]  # repeat step `at`
    outcome = [float(rng.random() < 0.5) for _ in range(k)]
    bounds = {"clip": lambda n: (-n * eta, 0.0), "delta": lambda n: (-1.0, 1.0), "clip_delta": lambda n: (-eta, eta),
              "delta_keep_last": lambda n: (0.0, 1.0)}
    for mode, bound in bounds.items():
        from reasonrl.algorithms.process_advantages import prime_returns

        out = {}
        for name, first in (("original", rows[0]), ("grown", grown)):
            q, mask = batch_of([first, *rows[1:]], beta)
            values = process_values(q, mask, mask, beta=beta, shaping=mode, eta=eta)
            process = prime_returns(values, mask, torch.zeros(k, dtype=torch.float64), mask, k, loo_form="return",
                                    norm="none")
            whole = prime_returns(values, mask, torch.tensor(outcome, dtype=torch.float64), mask, k,
                                  loo_form="return", norm="none")
            sums = values.sum(-1)
            lo, hi = bound(len(first))
            assert lo - 1e-9 <= sums[0] <= hi + 1e-9, (mode, first, sums[0])
            close(process[0, 0], sums[0] - sums[1:].mean())  # own process return minus the others' mean
            out[name] = whole[0]
        # token j of the original row sits at j (before the repeats) or j + extra (after them) in the grown row
        extra = len(grown) - len(rows[0])
        for j in range(len(rows[0])):
            g = j if j <= at else j + extra
            assert out["grown"][g] <= out["original"][j] + 1e-9, (mode, rows[0], grown, j)


def test_whitening_leaves_groups_without_signal_at_zero():
    """Audit finding 5: a group whose returns are all zero (both right, no process values) keeps a zero advantage;
    whitened with the rest, it would take -mean/std."""
    mask = torch.ones(4, 2, dtype=torch.float64)
    values = torch.zeros(4, 2, dtype=torch.float64)
    values[0, 0] = 0.5  # group 0 has signal; group 1 (rows 2, 3) has none
    adv = dense("prime", values, mask, [1.0, 0.0, 1.0, 1.0], mask, 2, norm="none")
    assert adv[2:].abs().max() == 0
    r = torch.tensor([[1.5, 0.75], [-1.5, -1.25]], dtype=torch.float64)  # group 0 as in test_prime_norm_none_...
    close(adv[:2], (r - r.mean()) / r.flatten().std(), rtol=1e-5)
