"""The loop's named steps with a scripted engine: dynamic sampling refills, rewards, advantages."""
from __future__ import annotations

import torch

from reasonrl.batching import collate
from reasonrl.config import load
from reasonrl.data import TaskSampler
from reasonrl.loop import advantages, generate_and_verify, shaped_rewards
from reasonrl.process import ProcessRewards
from reasonrl.tasks.arithmetic import ArithmeticTask
from reasonrl.types import Rollout, SamplingParams
from verifiers import VerifierPool
from tests.conftest import close


class ScriptedEngine:
    """Answers prompt k (in order of asking) from a script: a list of G booleans (right / wrong)."""

    pad_id = 0

    def __init__(self, script: list[list[bool]], length: int = 5):
        self.script, self.asked, self.length = script, 0, length

    def prompt_ids(self, prompt: str) -> list[int]:
        return [3] * 4

    def generate(self, prompts, params, generator):
        out = []
        for p in prompts:
            answer = p.split(": ")[1].strip()
            value = eval(answer)
            pattern = self.script[self.asked % len(self.script)]
            self.asked += 1
            out.append([Rollout([5] * self.length + [1], [-0.1] * (self.length + 1),
                                f"\\boxed{{{value if ok else value + 1}}}", "eos") for ok in pattern])
        return out


def run_collect(script, *overrides):
    cfg = load(["rollout.prompts_per_step=3", "rollout.group_size=2", *overrides])
    engine = ScriptedEngine(script)
    sampler = TaskSampler(ArithmeticTask(), 0)
    with VerifierPool(workers=0) as pool:
        r = generate_and_verify(sampler, engine, pool, SamplingParams(n=2), cfg, torch.Generator())
    return r, engine, sampler


def test_without_dynamic_sampling_every_group_is_kept():
    r, engine, _ = run_collect([[True, True], [True, False], [False, False]])
    assert len(r.groups) == 3 and r.rounds == 1 and r.zero_variance == 2
    assert r.correct.tolist() == [[True, True], [True, False], [False, False]]


def test_dynamic_sampling_drops_flat_groups_and_refills():
    script = [[True, True], [True, False], [False, False]]  # one group in three has signal
    r, engine, sampler = run_collect(script, "algorithm.dynamic_sampling=true", "algorithm.max_gen_batches=4")
    assert len(r.groups) == 3 and r.rounds == 3 and engine.asked == 9 and sampler.cursor == 9
    assert all(row == [True, False] for row in r.correct.tolist())
    r, *_ = run_collect(script, "algorithm.dynamic_sampling=true", "algorithm.max_gen_batches=2")
    assert len(r.groups) == 2 and r.rounds == 2  # retries are capped; train on what was found


def test_rewards_with_overlong_penalty_and_kl_in_reward_feed_advantages():
    r, engine, _ = run_collect([[True, False]], "algorithm.overlong_buffer=4", "rollout.max_new_tokens=8",
                               "algorithm.kl_coef=0.5", "algorithm.kl_in_reward=true")
    batch = collate(r.groups, engine.pad_id)
    batch.logp_old = torch.full_like(batch.loss_mask, -1.0)
    batch.logp_ref = torch.full_like(batch.loss_mask, -1.5)
    cfg = load(["rollout.group_size=2", "algorithm.overlong_buffer=4", "rollout.max_new_tokens=8",
                "algorithm.kl_coef=0.5", "algorithm.kl_in_reward=true"])
    rewards = shaped_rewards(r, batch, cfg)
    # length 6 in an 8-token limit with a 4-token buffer: penalty (4 - 6) / 4 = -0.5;
    # KL in reward: 6 tokens x -0.5 x (-1.0 - -1.5) = -1.5
    close(rewards, [[1 - 0.5 - 1.5, 0 - 0.5 - 1.5]] * 3)
    adv = advantages(rewards, batch, ProcessRewards(), cfg)
    row0 = adv[0][batch.loss_mask[0].bool()]
    close(row0, torch.full_like(row0, 0.5 / 0.5 ** 0.5), rtol=1e-5)  # (1-0.5)/std([1,0], ddof 1) = 0.5/sqrt(0.5)
    assert (adv[~batch.loss_mask.bool()] == 0).all()


def test_mask_truncated_drops_truncated_rows_from_the_loss():
    r, engine, _ = run_collect([[True, False]])
    r.groups[0].rollouts[1].finish_reason = "length"
    assert collate(r.groups, 0, mask_truncated=True).loss_mask[1].sum() == 0
    assert collate(r.groups, 0, mask_truncated=False).loss_mask[1].sum() == 6


def test_logprob_gap_is_measured_on_the_response_and_warns_past_the_bound(tiny_model_dir, tmp_path, capsys):
    """The HF engine's log-probs match the learner's recomputation; a stale learner is caught and warned about."""
    import copy

    from reasonrl.batching import collate
    from reasonrl.config import LoggingConfig
    from reasonrl.learner import Learner, LossSettings
    from reasonrl.loop import warn_on_logprob_gap
    from reasonrl.metrics import RunLogger
    from reasonrl.models import load_model, load_tokenizer
    from reasonrl.rollout.hf import HFEngine
    from reasonrl.types import Record, RolloutGroup, SamplingParams

    tok = load_tokenizer(str(tiny_model_dir))
    model = load_model(str(tiny_model_dir))
    engine = HFEngine(model, tok)
    prompts = ["Compute: 1+2\n", "Compute: 30-4-5\n"]
    outs = engine.generate(prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=10),
                           torch.Generator().manual_seed(0))
    batch = collate([RolloutGroup(Record(p, "0"), engine.prompt_ids(p), o) for p, o in zip(prompts, outs)],
                    engine.pad_id)
    learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), None, loss=LossSettings())
    synced = learner.update(copy.deepcopy(batch), torch.Generator())  # on-policy: logp_old from the update's forward
    assert synced["rollout/logprob_gap_mean"] < 1e-4 and synced["rollout/logprob_gap_max"] < 1e-3
    assert batch.logp_engine[batch.loss_mask == 0].abs().sum() == 0 and batch.logp_engine.abs().sum() > 0

    stale = copy.deepcopy(model)
    with torch.no_grad():
        for p in stale.parameters():
            p.add_(0.05 * torch.randn_like(p))
    stale_learner = Learner(stale, torch.optim.SGD(stale.parameters(), lr=0.0), None, loss=LossSettings())
    metrics = stale_learner.update(batch, torch.Generator())  # as if the engine served other weights than the learner's
    assert metrics["rollout/logprob_gap_mean"] > 1e-3 and metrics["rollout/logprob_gap_max"] >= metrics["rollout/logprob_gap_mean"]
    logger = RunLogger(tmp_path, LoggingConfig(progress=False), total_steps=1)
    try:
        warn_on_logprob_gap(metrics, 1e-3, step=7, logger=logger)
        warn_on_logprob_gap(synced, 1e-3, step=8, logger=logger)
    finally:
        logger.close()
    out = capsys.readouterr().out
    assert "warning: step 7: engine and learner log-probs differ" in out and "step 8" not in out


def test_train_accuracy_counts_every_generated_group_and_kept_accuracy_the_kept_ones():
    from reasonrl.loop import rollout_metrics

    script = [[True, True], [True, False], [True, True]]  # one group in three has signal
    r, *_ = run_collect(script, "algorithm.dynamic_sampling=true", "algorithm.max_gen_batches=4")
    m = rollout_metrics(r)
    assert (r.generated, r.generated_correct) == (18, 15)  # 3 rounds x 3 prompts x 2 samples
    assert m["accuracy/train"] == 15 / 18 and m["accuracy/kept"] == 0.5 and m["groups/kept"] == 3


def test_a_first_step_of_empty_answers_is_warned_about(tmp_path, capsys):
    """A chat model fed raw text ends at once: the share of empty responses is measured and, past half, the
    first step warns and names data.chat_template."""
    from reasonrl.config import LoggingConfig
    from reasonrl.loop import rollout_metrics, warn_on_empty_responses
    from reasonrl.metrics import RunLogger

    r, *_ = run_collect([[True, False]])
    for g in r.groups:
        for x in g.rollouts[:1]:
            x.text = ""  # one of each group's two answers is empty
    m = rollout_metrics(r)
    assert m["response_length/empty"] == 0.5
    logger = RunLogger(tmp_path, LoggingConfig(progress=False), total_steps=1)
    try:
        warn_on_empty_responses(m, load([]), logger)
        assert capsys.readouterr().out == ""  # half is not most
        for g in r.groups:
            g.rollouts[1].text = " "
        warn_on_empty_responses(rollout_metrics(r), load([]), logger)
    finally:
        logger.close()
    assert "100% of the first step's responses are empty" in capsys.readouterr().out
