"""The PRM in the loop's terms: step ends from real token texts, update timing, the reference choice,
held-out AUROC, and the config rules that guard the dense advantages."""
from __future__ import annotations

import copy

import pytest
import torch

from reasonrl.config import ConfigError, PrmConfig
from reasonrl.batching import Forward, collate
from reasonrl.models import load_model, load_tokenizer
from reasonrl.process import ProcessStep, build_prm, step_ends
from reasonrl.types import Record, Rollout, RolloutGroup
from reasonrl.validate import load_config


def process_step(policy, tok, **prm) -> ProcessStep:
    cfg = PrmConfig(enabled=True, **prm)
    return ProcessStep(build_prm(policy, cfg, dtype="float32", attn_implementation="sdpa",
                                 max_tokens_per_microbatch=4096), cfg, tok)


def group(tok, prompt: str, responses: list[str]) -> RolloutGroup:
    rollouts = []
    for text in responses:
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rollouts.append(Rollout(ids, [0.0] * len(ids), text, "eos"))
    return RolloutGroup(Record(prompt, "7"), tok(prompt, add_special_tokens=False)["input_ids"], rollouts)


@pytest.fixture()
def setup(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    torch.manual_seed(0)
    policy = load_model(str(tiny_model_dir))
    groups = [group(tok, "Q: 3+4\n", ["a=3\nb=7\nx=7", "a=3\nx=9", "a=1\nb=2\nc=7\nx=7", "x=9"]),
              group(tok, "Q: 1+6\n", ["x=7", "a=6\nx=9", "x=7", "a=2\nb=9\nx=9"])]
    batch = collate(groups, tok.pad_token_id)
    correct = torch.tensor([g.rollouts[i].text.endswith("7") for g in groups for i in range(4)], dtype=torch.float32)
    return tok, policy, groups, batch, correct


def test_step_ends_sit_on_each_newline_and_the_last_step_takes_the_eos(setup):
    tok, _, groups, batch, _ = setup
    ends = step_ends(groups, batch, tok, "newline")
    prompt_len = len(groups[0].prompt_ids)
    # "a=3\nb=7\nx=7" + EOS: steps end on the two newlines (response tokens 3 and 7) and on the EOS (token 11)
    assert ends[0].nonzero().flatten().tolist() == [prompt_len - 1 + j for j in (3, 7, 11)]
    assert ends.sum(-1).tolist() == [3, 2, 4, 1, 1, 2, 1, 3]
    assert (ends <= batch.loss_mask).all()


def test_update_after_scores_with_the_pre_update_prm_and_before_with_the_updated_one(setup):
    tok, policy, groups, batch, correct = setup
    for update in ("after", "before"):  # token granularity, no shaping: the values are beta * q per token
        step = process_step(policy, tok, lr=1e-2, beta=0.5, update=update)
        out = step(batch, groups, correct, correct)
        assert out.metrics["prm/loss"] == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-6)  # s = 0 at start
        if update == "after":  # phi == ref when scored: every q is 0
            assert out.values.abs().max() == 0
        else:  # scored after one step: non-zero, on the response only, and rising for the correct ones
            assert out.values.abs().max() > 0 and (out.values[batch.loss_mask == 0] == 0).all()
            s = out.values.sum(-1)
            assert s[correct.bool()].mean() > s[~correct.bool()].mean()


def test_reference_policy_uses_the_sampling_policy_and_needs_no_frozen_copy(setup):
    tok, policy, groups, batch, correct = setup
    step = process_step(policy, tok, reference="policy", update="before", lr=1e-2, beta=0.5)
    assert step.needs_logp_old
    with pytest.raises(ValueError, match="no reference model of its own"):
        step.prm.ref_logp(batch)  # no frozen copy was made
    with pytest.raises(ValueError, match="needs the batch's logp_old"):
        step(batch, groups, correct, correct)
    batch.logp_old = step.prm.logp(batch) - 1.0  # a stand-in that is visibly not a copy of the PRM
    out = step(batch, groups, correct, correct)
    q = (step.prm.logp(batch) - batch.logp_old) * batch.loss_mask
    torch.testing.assert_close(out.values, 0.5 * q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reference", ["frozen", "policy"])
def test_the_reference_is_scored_under_the_prms_own_forward(setup, reference):
    """Audit finding 1: the learner's logp_ref / logp_old come from its forward (bf16 autocast on CUDA) while the
    PRM's is fp32. At step 1 the PRM equals its reference, so q must be exactly 0: it is when the reference is
    scored under the PRM's forward, and it is not when the learner's bf16 tensors are reused."""
    tok, policy, groups, _, correct = setup
    learner = Forward(4096, autocast=True)
    q_max = {}
    for forward in (learner, None):  # None: the caller says the learner's tensors match (the old behaviour)
        cfg = PrmConfig(enabled=True, reference=reference, update="after", lr=1e-2, beta=0.5)
        prm = build_prm(policy, cfg, dtype="float32", attn_implementation="sdpa", max_tokens_per_microbatch=4096)
        step = ProcessStep(prm, cfg, tok, reuse_kl_ref=True, learner_forward=forward and (lambda: forward), policy=policy)
        batch = collate(groups, tok.pad_token_id)
        batch.logp_ref = batch.logp_old = learner.all_logprobs(policy, batch)
        assert step.needs_logp_old == (forward is None and reference == "policy")
        q_max[forward is None] = step(batch, groups, correct, correct).values.abs().max().item()
    assert q_max[False] == 0.0
    assert q_max[True] > 1e-4  # bf16 rounding of the reused reference (batch normalisation would blow it up)


def test_a_budget_halved_mid_step_that_makes_the_forwards_match_still_scores_the_policy(setup):
    """The learner's forward differed from the PRM's when it decided not to fill logp_old early; an
    out-of-memory halving during the step then made them equal. The OPRL reference is the sampling policy
    scored under the PRM's forward, not a missing tensor."""
    tok, policy, groups, batch, correct = setup
    cfg = PrmConfig(enabled=True, reference="policy", update="after", lr=1e-2, beta=0.5)
    prm = build_prm(policy, cfg, dtype="float32", attn_implementation="sdpa", max_tokens_per_microbatch=2048)
    learner = {"forward": Forward(4096)}
    step = ProcessStep(prm, cfg, tok, learner_forward=lambda: learner["forward"], policy=policy)
    assert not step.needs_logp_old  # 4096 vs 2048: the learner keeps logp_old for the update
    learner["forward"] = Forward(2048)  # halved after an out-of-memory: now the PRM's forward
    assert step.reuse.learner_tensors and batch.logp_old is None
    out = step(batch, groups, correct, correct)
    assert out.values.abs().max().item() == 0.0  # the PRM is the sampling policy at step 1: q is exactly 0


def test_a_logp_old_computed_before_a_halving_is_not_reused_under_the_halved_layout(setup):
    """Review finding: OPRL with a KL term (or several mini-batches) fills logp_old early under the learner's
    budget; an out-of-memory halving while it computes logp_ref then makes the learner's forward equal the
    PRM's. The forwards match now, but logp_old was computed under the old layout (q ~ 1e-7, not 0, with real
    tensors): the batch's stamp says so, and the PRM scores the policy itself. The stand-in logp_old is visibly
    not the policy's, so reusing it would give q = 1 on every response token."""
    tok, policy, groups, batch, correct = setup
    cfg = PrmConfig(enabled=True, reference="policy", update="after", lr=1e-2, beta=0.5)
    prm = build_prm(policy, cfg, dtype="float32", attn_implementation="sdpa", max_tokens_per_microbatch=2048)
    learner = {"forward": Forward(4096)}
    step = ProcessStep(prm, cfg, tok, learner_forward=lambda: learner["forward"], policy=policy)
    batch.logp_old = Forward(4096).all_logprobs(policy, batch) - 1.0
    batch.layouts["logp_old"] = Forward(4096)  # what the learner's prepare() records
    learner["forward"] = Forward(2048)  # halved while computing logp_ref: equal to the PRM's now
    assert step.reuse.learner_tensors
    assert step(batch, groups, correct, correct).values.abs().max().item() == 0.0
    batch.layouts["logp_old"] = Forward(2048)  # had it been computed under the PRM's layout, it is reused
    expected = 0.5 * (prm.logp(batch) - batch.logp_old) * batch.loss_mask  # update=after: the pre-update PRM's q
    torch.testing.assert_close(step(batch, groups, correct, correct).values, expected, rtol=1e-5, atol=1e-6)


def test_a_halving_inside_the_prm_update_rescores_the_reference_under_the_new_layout(setup, monkeypatch):
    """phi comes from the PRM update's forward; if that update runs out of memory and halves the PRM's budget,
    phi is the halved layout's, so the reference q compares it with is scored again under the same layout."""
    tok, policy, groups, batch, correct = setup
    cfg = PrmConfig(enabled=True, reference="frozen", update="after", lr=1e-2, beta=0.5)
    prm = build_prm(policy, cfg, dtype="float32", attn_implementation="sdpa", max_tokens_per_microbatch=2048)
    step = ProcessStep(prm, cfg, tok, reuse_kl_ref=True, learner_forward=lambda: Forward(2048), policy=policy)
    batch.logp_ref = Forward(2048).all_logprobs(policy, batch) - 1.0  # a stand-in, stamped with the PRM's layout
    batch.layouts["logp_ref"] = Forward(2048)
    real = prm._backward_separable
    calls = []

    def out_of_memory_once(*args):
        calls.append(prm.forward.max_tokens)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("injected")
        return real(*args)
    monkeypatch.setattr(prm, "_backward_separable", out_of_memory_once)
    out = step(batch, groups, correct, correct)
    assert calls == [2048, 1024] and prm.forward.max_tokens == 1024
    assert out.values.abs().max().item() == 0.0  # the stale stand-in would give 0.5 * 1 on every token


@pytest.mark.parametrize("gate", [1.0, None])
def test_process_rewards_with_shaping_and_gate(setup, gate):
    """A PRM that has learned (update=before, after a few steps) scores some steps below eta: clip makes
    those negative. With the gate, only correct answers keep them; without it, wrong answers do too."""
    tok, policy, groups, batch, correct = setup
    step = process_step(policy, tok, lr=1e-2, beta=0.5, update="before", granularity="step", shaping="clip",
                        eta=0.5, gate_threshold=gate)
    for _ in range(3):
        out = step(batch, groups, correct, correct)
    assert torch.equal(out.ends, step_ends(groups, batch, tok, "newline"))
    assert (out.values[~out.ends.bool()] == 0).all() and (out.values <= 0).all()  # clip: no step reward is positive
    right, wrong = out.values[correct.bool()], out.values[~correct.bool()]
    assert (right < 0).any()  # the shaped values are not all zero: the gate below has something to remove
    if gate is None:
        assert (wrong < 0).any()  # wrong answers' steps score lowest of all
    else:
        assert (wrong == 0).all()  # the gate: wrong answers get no process reward
    assert out.metrics["process/steps"] == pytest.approx(17 / 8)


def test_held_out_auroc_rises_once_the_prm_has_learned(setup):
    from reasonrl.rollout.hf import HFEngine

    tok, policy, groups, batch, correct = setup
    step = process_step(policy, tok, lr=3e-3, beta=0.5, update="before")
    held = [group(tok, "Q: 2+5\n", [r]) for r in ("x=7", "a=5\nx=9", "b=2\nx=7", "x=9")]
    records, rollouts = [g.record for g in held], [g.rollouts[0] for g in held]
    engine, labels = HFEngine(policy, tok), torch.tensor([1, 0, 1, 0])
    assert step.held_out_auroc(records, rollouts, labels, engine, None) == 0.5  # phi == ref: all scores tie
    for _ in range(15):
        step(batch, groups, correct, correct)
    assert step.held_out_auroc(records, rollouts, labels, engine, None) == 1.0
    assert ProcessStep(None, PrmConfig(), tok).held_out_auroc(records, rollouts, labels, engine, None) is None


def test_without_a_prm_the_step_does_nothing(setup):
    tok, _, groups, batch, correct = setup
    step = ProcessStep(None, PrmConfig(), tok)
    out = step(batch, groups, correct, correct)
    assert out.values is None and out.ends is None and out.metrics == {} and not step.needs_logp_old


def test_prm_from_a_path_must_share_the_vocabulary(setup, tiny_model_dir, tmp_path):
    _, policy, *_ = setup
    other = copy.deepcopy(policy)
    other.resize_token_embeddings(policy.config.vocab_size + 3)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="must share the policy's tokenizer"):
        build_prm(policy, PrmConfig(enabled=True, path=str(tmp_path / "other")), dtype="float32",
                  attn_implementation="sdpa", max_tokens_per_microbatch=4096)


def test_config_rules_for_dense_advantages():
    with pytest.raises(ConfigError) as e:
        load_config(["algorithm.advantage=prime"])
    assert "algorithm.advantage='prime': dense advantages need the PRM: set prm.enabled=true" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(["prm.enabled=true", "prm.shaping=clamp", "prm.update=during", "prm.step_split=regex:(",
                     "prm.beta=0", "algorithm.accuracy_low=0.9", "prm.process_coef=-1",
                     "prm.flat_groups=drop"])
    msg = str(e.value)
    for key in ("prm.shaping='clamp'", "prm.update='during'", "prm.step_split='regex:('", "prm.beta=0",
                "algorithm.accuracy_low=0.9", "prm.process_coef=-1", "prm.flat_groups='drop'"):
        assert key in msg, key
    cfg = load_config(["prm.enabled=true", "algorithm.advantage=oprl", "prm.granularity=step", "prm.shaping=clip_delta"])
    assert cfg.prm.shaping == "clip_delta"


def test_the_step_verifier_as_process_source(setup):
    """prm.source=verifier: each line `a op b = c` checked exactly; p_k stays 1 while every checked step is right,
    drops to 0 at the first wrong one, and the last step also needs the right answer. No PRM is trained."""
    from reasonrl.process import StepScores

    tok, *_ = setup
    responses = ["3+4=7\n\\boxed{7}", "3+4=8\n8-1=7\n\\boxed{7}", "3+4=7\n\\boxed{9}", "so 3+4=7 obviously\n\\boxed{7}"]
    groups = [group(tok, "Compute: 3+4\n", responses)]
    batch = collate(groups, tok.pad_token_id)
    correct = torch.tensor([1.0, 1.0, 0.0, 1.0])
    cfg = PrmConfig(enabled=True, source="verifier", granularity="step", shaping="clip", eta=0.5)
    step = ProcessStep(None, cfg, tok, step_scores=StepScores({}).of_record)
    out = step(batch, groups, correct, correct)
    assert torch.equal(out.ends, step_ends(groups, batch, tok, "newline"))  # the PRM's step ends, EOS included
    per_row = [out.values[i][out.ends[i].bool()].tolist() for i in range(4)]
    # clip(p - 0.5): right steps 0, a step at or after the first wrong one -0.5; prose is not checked
    assert per_row == [[0.0, 0.0], [-0.5, -0.5, -0.5], [0.0, -0.5], [0.0, 0.0]]
    assert out.metrics["process/first_error_step"] == pytest.approx((1 + 2) / 2)
    with pytest.raises(ConfigError, match="prm.source=verifier scores prefixes"):
        load_config(["prm.enabled=true", "prm.source=verifier", "algorithm.advantage=prime"])


def test_unchecked_wrong_gives_no_credit_to_lines_the_verifier_cannot_check(setup):
    """prm.unchecked=wrong: a step before the last with nothing checkable scores 0 (a policy whose answers are
    rarely right learned to write bare numbers, "4\n4\n4", to keep p at 1: BENCHMARKS.md, long chains). The last
    step (the boxed answer) is still the outcome's, and checked steps score as before."""
    from reasonrl.process import StepScores

    tok, *_ = setup
    responses = ["3+4=7\n\\boxed{7}", "3+4=8\n8-1=7\n\\boxed{7}", "3+4=7\n\\boxed{9}", "so 3+4=7 obviously\n\\boxed{7}",
                 "4\n4\n\\boxed{9}"]
    groups = [group(tok, "Compute: 3+4\n", responses)]
    batch = collate(groups, tok.pad_token_id)
    correct = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0])
    rows = {}
    for unchecked in ("carry", "wrong"):
        cfg = PrmConfig(enabled=True, source="verifier", granularity="step", shaping="clip", eta=0.5, unchecked=unchecked)
        out = ProcessStep(None, cfg, tok, step_scores=StepScores({}).of_record)(batch, groups, correct, correct)
        rows[unchecked] = [out.values[i][out.ends[i].bool()].tolist() for i in range(5)]
    assert rows["carry"][3:] == [[0.0, 0.0], [0.0, 0.0, -0.5]]  # the bare numbers keep p at 1 until the answer
    assert rows["wrong"] == [[0.0, 0.0], [-0.5, -0.5, -0.5], [0.0, -0.5], [-0.5, -0.5], [-0.5, -0.5, -0.5]]
    with pytest.raises(ConfigError, match="prm.unchecked"):
        load_config(["prm.enabled=true", "prm.source=verifier", "prm.shaping=clip", "prm.unchecked=skip"])


def test_the_solution_source_checks_each_line_is_the_problems_next_step(setup):
    """prm.source=solution: step k is right when it is the task's solution's line k. A true line on the wrong
    operands, which the math step verifier passes (and which a policy learned to write against it on long
    chains: BENCHMARKS.md), is wrong here; bare numbers are wrong too; the last step is the outcome's."""
    from reasonrl.process import StepScores, solution_steps

    tok, *_ = setup
    responses = ["3+4=7\n7-1=6\n\\boxed{6}", "3+1=4\n4+4=8\n\\boxed{8}", "3+4=7\n7+1=8\n\\boxed{8}",
                 "3+4=7\n7-1=6\n\\boxed{5}", "7\n6\n\\boxed{6}"]
    g = group(tok, "Compute: 3+4-1\n", responses)
    g.record = Record("Compute: 3+4-1\n", "6", meta={"steps": ["3+4=7", "7-1=6"]})
    batch = collate([g], tok.pad_token_id)
    correct = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])
    rows = {}
    for source, scores in (("verifier", StepScores({}).of_record), ("solution", solution_steps)):
        cfg = PrmConfig(enabled=True, source=source, granularity="step", shaping="clip", eta=0.5)
        out = ProcessStep(None, cfg, tok, step_scores=scores)(batch, [g], correct, correct)
        rows[source] = [out.values[i][out.ends[i].bool()].tolist() for i in range(5)]
    # clip(p - 0.5): 0 while right, -0.5 from the first wrong step (the last step also needs the right answer)
    assert rows["verifier"] == [[0.0, 0.0, 0.0], [0.0, 0.0, -0.5], [0.0, 0.0, -0.5], [0.0, 0.0, -0.5], [0.0, 0.0, 0.0]]
    assert rows["solution"] == [[0.0, 0.0, 0.0], [-0.5, -0.5, -0.5], [0.0, -0.5, -0.5], [0.0, 0.0, -0.5],
                                [-0.5, -0.5, -0.5]]
    assert solution_steps(g.record, ["3+4=7", "7-1=6", "6-0=6", "\\boxed{6}"]) == [1.0, 1.0, 0.0, None]  # extra line
    with pytest.raises(ValueError, match="meta\\['steps'\\]"):
        solution_steps(Record("Q\n", "1"), ["a", "b"])
    with pytest.raises(ConfigError, match="prm.source=solution scores prefixes"):
        load_config(["prm.enabled=true", "prm.source=solution", "algorithm.advantage=prime"])


@pytest.mark.parametrize("flat", ["keep", "zero"])
def test_flat_groups_zero_keeps_process_values_only_where_the_outcome_varies(setup, flat):
    """prm.flat_groups=zero (the probe): an all-wrong group's wrong steps lose their process values; a group
    with right and wrong answers keeps them."""
    from reasonrl.process import StepScores

    tok, *_ = setup
    groups = [group(tok, "Compute: 3+4\n", ["3+4=8\n\\boxed{8}", "3+4=9\n\\boxed{9}"]),
              group(tok, "Compute: 3+4\n", ["3+4=7\n\\boxed{7}", "3+4=8\n\\boxed{8}"])]
    batch = collate(groups, tok.pad_token_id)
    correct = torch.tensor([0.0, 0.0, 1.0, 0.0])
    cfg = PrmConfig(enabled=True, source="verifier", granularity="step", shaping="clip", eta=0.5, flat_groups=flat)
    out = ProcessStep(None, cfg, tok, step_scores=StepScores({}).of_record)(batch, groups, correct, correct)
    per_row = [out.values[i].sum().item() for i in range(4)]
    assert per_row == ([-1.0, -1.0, 0.0, -1.0] if flat == "keep" else [0.0, 0.0, 0.0, -1.0])
