"""run(cfg): the training loop, top to bottom, as named steps.

    sample prompts -> generate G each -> verify -> filter groups -> log-probs (old, ref)
    -> rewards -> [process rewards: the implicit PRM scores and learns] -> advantages -> update
    -> sync engine -> log -> evaluate -> checkpoint
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import torch

from reasonrl import checkpoint, distributed, faults
from reasonrl.advice import AutoSettings, advise, auto_settings, facts
from reasonrl.algorithms import (ADVANTAGES, AdvantageInputs, AdvantageOptions, ClipRange, groups_with_signal,
                                 kl_in_reward, overlong_penalty, prime_defaults)
from reasonrl.algorithms.process_rewards import accuracy_filter, auroc
from reasonrl.batching import collate
from reasonrl.config import Config, ConfigError, to_yaml, verifier_names, verifier_options
from reasonrl.data import build_data, chat_renderer
from reasonrl.evaluation import evaluate_greedy
from reasonrl.learner import Learner, LossSettings, build_optimizer
from reasonrl.metrics import QuietLogger, RunLogger, Timer
from reasonrl.lora import apply_lora, reference_of
from reasonrl.memory import mmapped, release_free
from reasonrl.models import load_model, load_tokenizer, resolve_device
from reasonrl.process import ProcessRewards, ProcessStep, StepScores, build_prm, solution_steps
from reasonrl.rollout import ENGINES
from reasonrl.rundir import finish, prepare_run_dir, truncate_logs
from reasonrl.types import RolloutGroup, SamplingParams, TrainBatch
from reasonrl.validate import validate
from verifiers import VerifierPool


@dataclass
class Rollouts:
    """The groups kept for training this step, with their rewards (B, G) and verdicts, and counts over
    every response generated (all rounds, dropped groups included)."""

    groups: list[RolloutGroup]
    scores: torch.Tensor  # (B, G) verifier scores
    correct: torch.Tensor  # (B, G) bool
    statuses: list[list[str]]
    extracted: list[list[str | None]]
    rounds: int
    zero_variance: int
    dropped_accuracy: int
    generated: int  # responses generated
    generated_correct: int  # of those, marked correct
    generated_tokens: int


@dataclass
class Parts:
    """Everything a run builds once: models, engine, verifier, data, optimiser, process step, generators."""

    policy: torch.nn.Module
    tokenizer: object
    engine: object
    verifier: VerifierPool
    sampler: object
    held_out: list
    learner: Learner
    optimizer: torch.optim.Optimizer
    scheduler: object
    generators: dict
    sampling: SamplingParams
    process: ProcessStep
    auto: AutoSettings  # what the config's `auto` memory settings resolved to for this model
    dist: distributed.Dist  # this process's rank in the job (Dist(): one process)
    stage_metrics: dict  # what the SFT stage reported ({} without one)


def run(cfg: Config) -> dict:
    """Train with cfg; return the summary (also written to summary.json). Raises ConfigError first if any part
    of the config fails its check (reasonrl/validate.py), however the Config was built. Under torchrun every
    rank runs this; rank 0 writes the run directory."""
    d = distributed.init(cfg.trainer.device)
    try:
        return run_ranked(cfg, d)
    finally:
        d.close()


def run_ranked(cfg: Config, d: distributed.Dist) -> dict:
    validate(cfg, world=d.world)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    run_dir, resume_from = on_main(d, prepare_run_dir, cfg)
    parts, logger = build(cfg, d), None
    try:  # whatever stops the run, the engine and the verifier pool are closed (vLLM's engine before the process group)
        state, logger = start(cfg, parts, run_dir, resume_from)
        train(cfg, parts, state, run_dir, logger)
    finally:
        parts.verifier.close()
        parts.engine.close()
        if logger is not None:
            logger.close()
    return finish(run_dir, state, cfg, write=d.is_main)


def start(cfg: Config, parts: Parts, run_dir: Path, resume_from: Path | None) -> tuple[checkpoint.TrainState, RunLogger]:
    """The state to train from (a checkpoint's when resuming, the engine synced to it) and the logger, with what
    the run says before its first step."""
    d = parts.dist
    if d.enabled and 0 < len(parts.held_out) < d.world:
        raise ConfigError([f"eval.size={cfg.eval.size}: {len(parts.held_out)} held-out problems for {d.world} ranks; "
                           f"every rank needs one (use eval.size >= {d.world} with enough problems, or eval.size=0)"])
    state, restored = checkpoint.TrainState(), []
    state.microbatch_budgets = faults.budget_record(budget_owners(parts), {})  # as configured, before any OOM
    if resume_from is not None:
        state = checkpoint.load(resume_from, policy=parts.policy, optimizer=parts.optimizer,
                                scheduler=parts.scheduler, sampler=parts.sampler, generators=parts.generators,
                                prm=parts.process.prm, dist=d)
        parts.engine.sync_weights(parts.policy)  # an engine with its own copy must serve the restored weights
        state.microbatch_budgets, restored = faults.resume_budgets(budget_owners(parts), state.microbatch_budgets)
        if d.is_main:
            truncate_logs(run_dir, state.step)
    if d.is_main:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    logger = RunLogger(run_dir, cfg.logging, cfg.trainer.steps, start_step=state.step) if d.is_main else QuietLogger()
    if d.enabled:
        logger.print(f"{d.world} ranks ({d.device.type}), FSDP2; {cfg.rollout.prompts_per_step} prompts a step in all")
    if resume_from is not None:
        logger.print(f"resumed {run_dir} from {resume_from.name} (step {state.step})")
        for line in restored:
            logger.print(line)
    logger.print(f"for this model: {parts.auto.describe()}")
    for line in advise(cfg, facts(parts.policy)):
        logger.print(f"advice: {line}")
    return state, logger


def on_main(d: distributed.Dist, fn, *args):
    """fn(*args) on rank 0, its result (or its exception) on every rank."""
    if not d.enabled:
        return fn(*args)
    out = None
    if d.is_main:
        try:
            out = ("ok", fn(*args))
        except Exception as e:  # every rank raises it, so none waits on the others
            out = ("error", e)
    kind, value = d.broadcast(out)
    if kind == "error":
        raise value
    return value


def build(cfg: Config, d: distributed.Dist = distributed.Dist()) -> Parts:
    """The verifier pool first (its plug-ins import, every verifier name resolves), then the models; on several
    ranks the policy, the PRM and the references are sharded (FSDP2) before their optimisers are built."""
    verifier = VerifierPool(verifier_options(cfg, "train"), workers=d.cpu_share(cfg.verifier.workers),
                            timeout_s=cfg.verifier.timeout_s, plugins=cfg.verifier.plugins).require(verifier_names(cfg))
    tokenizer = load_tokenizer(cfg.model.path)
    torch.manual_seed(cfg.trainer.seed)
    m, t, r = cfg.model, cfg.trainer, cfg.rollout
    policy = load_model(m.path, dtype=m.dtype, attn_implementation=m.attn_implementation,
                        device=d.device if d.enabled else resolve_device(t.device))
    if m.lora.rank > 0:
        policy = apply_lora(policy, m.lora)
    auto = auto_settings(cfg, facts(policy))
    if auto.gradient_checkpointing:  # non-reentrant: gradients reach adapters even when the embeddings are frozen
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    stage_metrics = sft(policy, tokenizer, cfg)  # before any copy is made: every reference is the SFT model
    if stage_metrics:
        distributed.broadcast_weights(policy, d)  # every rank ran the stage on the whole set: rank 0's result
    ref = reference_of(policy) if cfg.algorithm.kl_coef > 0 else None  # no reference when it is unused
    prm = None
    if cfg.prm.enabled and cfg.prm.source == "implicit":
        prm = build_prm(policy, cfg.prm, dtype=m.dtype, attn_implementation=m.attn_implementation,
                        max_tokens_per_microbatch=auto.microbatch_tokens, max_logits=max_logits(t),
                        initial_ref=ref, share_prompts=t.share_prompts and not t.packing, dist=d)
    distributed.shard(policy, d)
    if ref is not None:
        distributed.shard(ref.model, d)
    sampler, held_out = build_data(cfg.data, cfg.eval.size, t.seed,
                                   render=chat_renderer(tokenizer, cfg.data.chat_template, cfg.data.system_prompt))
    updates_per_step = t.ppo_epochs * t.mini_batches
    optimizer, scheduler = build_optimizer(policy, lr=t.lr, weight_decay=t.weight_decay, betas=t.betas,
                                           schedule=t.lr_schedule, warmup=t.warmup_steps * updates_per_step,
                                           total_steps=t.steps * updates_per_step)
    learner = Learner(policy, optimizer, scheduler, loss=loss_settings(cfg), ref=ref, ppo_epochs=t.ppo_epochs,
                      mini_batches=t.mini_batches, max_tokens_per_microbatch=auto.microbatch_tokens,
                      max_grad_norm=t.max_grad_norm, packing=t.packing, pack_tokens=t.pack_tokens,
                      share_prompts=t.share_prompts, max_logits=max_logits(t),
                      autocast=t.autocast == "bf16" or (t.autocast == "auto" and next(policy.parameters()).is_cuda),
                      dist=d)
    return Parts(
        policy=policy, tokenizer=tokenizer, verifier=verifier, sampler=sampler, held_out=held_out, learner=learner,
        engine=ENGINES.get(r.engine)(policy, tokenizer, r, dtype=m.dtype, seed=t.seed, dist=d),
        optimizer=optimizer, scheduler=scheduler,
        generators={"sample": torch.Generator().manual_seed(t.seed), "update": torch.Generator().manual_seed(t.seed + 1)},
        sampling=SamplingParams(n=r.group_size, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                                max_new_tokens=r.max_new_tokens, stop=tuple(r.stop), ignore_eos=r.ignore_eos),
        process=ProcessStep(prm, cfg.prm, tokenizer, reuse_kl_ref=cfg.prm.path is None, learner_forward=lambda: learner.forward,
                            policy=policy, step_scores=step_scores(cfg)), auto=auto, dist=d, stage_metrics=stage_metrics,
    )


def train(cfg: Config, p: Parts, state: checkpoint.TrainState, run_dir: Path, logger: RunLogger) -> None:
    """The loop: one named step per line."""
    if state.step == 0:
        run_stages(p, cfg, logger)
    if state.step == 0 and p.held_out:
        state.evals.append(evaluate(p, cfg, step=0, logger=logger))
    if cfg.trainer.steps == 0:  # stages only (SFT, PRM warm start): save what they produced
        save_checkpoint(p, cfg, state, run_dir)

    for step in range(state.step + 1, cfg.trainer.steps + 1):
        timer = Timer()
        with timer("step"):
            rollouts = generate_and_verify(p.sampler, p.engine, p.verifier, p.sampling, cfg, p.generators["sample"],
                                           timer, p.dist)
            metrics = rollout_metrics(rollouts)
            if can_learn(rollouts, cfg, p.dist):
                with mmapped(p.auto.mmap_threshold_mb):
                    metrics.update(learn(p, rollouts, cfg, timer))
                if p.auto.release_memory_every and step % p.auto.release_memory_every == 0:
                    release_free()  # what the updates freed goes back to the OS (reasonrl/memory.py)
            else:
                logger.print(f"step {step}: no group with reward variance after {rollouts.rounds} rounds; update skipped")
        metrics = p.dist.reduce_metrics({**metrics, **timer.metrics()})
        metrics["tokens_per_s"] = metrics["tokens/generated"] / metrics["time/step"]
        state.step, state.tokens_generated = step, state.tokens_generated + int(metrics["tokens/generated"])
        state.seconds += timer.seconds["step"]
        metrics.update(count_faults(metrics, state, logger))
        warn_on_logprob_gap(metrics, cfg.rollout.logprob_warn, step, logger)
        if step == 1:
            warn_on_empty_responses(metrics, cfg, logger)
        if p.held_out and due(step, cfg.eval.every, cfg.trainer.steps):
            state.evals.append(evaluate(p, cfg, step=step, logger=logger))
            metrics.update({f"eval/{k}": v for k, v in state.evals[-1].items() if k not in ("step", "seconds")})
        logger.log_step(step, metrics)
        logger.log_samples(step, sample_rows(rollouts, cfg.logging.samples_per_step))
        stop_on_nonfinite(state, cfg.trainer.max_nonfinite_steps, run_dir)
        if due(step, cfg.checkpoint.every, cfg.trainer.steps):
            logger.sync()  # the logs up to this step are on disk before the checkpoint that stands for them
            save_checkpoint(p, cfg, state, run_dir)


def count_faults(metrics: dict, state: checkpoint.TrainState, logger: RunLogger) -> dict:
    """Steps whose update skipped an optimiser step for a NaN / inf (the policy's or the PRM's), in all and in a
    row; an out-of-memory retry is said."""
    skipped = metrics.get("fault/nonfinite_updates", 0) + metrics.get("prm/nonfinite_updates", 0) > 0
    state.nonfinite_steps += skipped
    state.nonfinite_in_a_row = state.nonfinite_in_a_row + 1 if skipped else 0
    if skipped:
        logger.print(f"step {state.step}: a non-finite loss or gradient; optimiser step skipped "
                     f"({state.nonfinite_in_a_row} in a row)")
    if metrics.get("fault/oom_retries", 0) + metrics.get("prm/oom_retries", 0) > 0:
        logger.print(f"step {state.step}: out of memory in a micro-batch; retried with the budget halved "
                     f"(now {metrics.get('trainer/microbatch_tokens')} tokens for the policy)")
    return {"fault/nonfinite_steps": state.nonfinite_steps}


def stop_on_nonfinite(state: checkpoint.TrainState, limit: int, run_dir: Path) -> None:
    """RunStopped after `limit` steps in a row whose updates were non-finite (0: never), naming the checkpoint to
    resume from: the newest intact one from before the streak (this step's is not written)."""
    if limit and state.nonfinite_in_a_row >= limit:
        good = checkpoint.before(run_dir, state.step - state.nonfinite_in_a_row)
        where = (f"the last good checkpoint is {good} (step {good.name.removeprefix('step_')})" if good
                 else "no checkpoint from before it is left")
        raise faults.RunStopped(f"{limit} steps in a row (to step {state.step}) had a NaN / inf loss or gradient "
                                f"and were skipped; {where}. Lower trainer.lr or check the data and reward, then "
                                f"resume with checkpoint.resume=<that checkpoint>")


def max_logits(t) -> int:
    """trainer.logits_mb as fp32 elements."""
    return t.logits_mb * 2**20 // 4


def due(step: int, every: int, last: int) -> bool:
    """Whether a periodic action (every N steps, 0 = only at the end) runs at this step."""
    return step == last or (every > 0 and step % every == 0)


def budget_owners(p: Parts) -> dict:
    """The parts whose micro-batch budget an out-of-memory halves (reasonrl/faults.py)."""
    return {"policy": p.learner, **({"prm": p.process.prm} if p.process.prm is not None else {})}


def save_checkpoint(p: Parts, cfg: Config, state: checkpoint.TrainState, run_dir: Path) -> None:
    state.microbatch_budgets = faults.budget_record(budget_owners(p), state.microbatch_budgets)
    checkpoint.save(run_dir / "checkpoints", state, policy=p.policy, tokenizer=p.tokenizer, optimizer=p.optimizer,
                    scheduler=p.scheduler, sampler=p.sampler, generators=p.generators, keep=cfg.checkpoint.keep,
                    prm=p.process.prm, merged=cfg.model.lora.save_merged, dist=p.dist)


# ------------------------------------------------------------------------------- the steps

def generate_and_verify(sampler, engine, verifier, sampling: SamplingParams, cfg: Config,
                        generator: torch.Generator, timer: Timer | None = None,
                        d: distributed.Dist = distributed.Dist()) -> Rollouts:
    """Sample prompts, generate G responses each, verify them, and keep the groups to train on.

    Filters drop groups and draw more prompts (up to algorithm.max_gen_batches rounds) until
    prompts_per_step groups are kept: dynamic sampling (DAPO) drops groups whose rewards are all
    equal, the accuracy filter (PRIME) groups whose accuracy lies outside [low, high].

    On several ranks every rank draws the same global prompts (and per-prompt seeds) and serves its slice
    (d.share): a group never spans ranks. Filters refill each rank up to its own share; the ranks draw in step
    (a rank whose share is full still draws, so every sampler stays at the same place)."""
    a, timer = cfg.algorithm, timer or Timer()
    want = cfg.rollout.prompts_per_step
    lo, hi = d.share(want)
    per_prompt = cfg.rollout.seeding == "prompt" or (cfg.rollout.seeding == "auto" and d.enabled)
    kept: list = []
    zero_var = dropped_acc = rounds = tokens = generated = right = 0
    while rounds < (a.max_gen_batches if a.dynamic_sampling or a.accuracy_filter else 1) and not d.all(len(kept) >= hi - lo):
        rounds += 1
        records = sampler.next(want)[lo:hi]  # this rank's slice of the global draw
        gens = prompt_generators(generator, want)[lo:hi] if per_prompt else generator
        if len(kept) >= hi - lo:  # full: no prompts, but the engine's phase (a collective when sharded) still runs
            records, gens = [], ([] if per_prompt else generator)
        with timer("generate"):
            outs = engine.generate([r.prompt for r in records], sampling, gens)
        faults.kill_point("generate")
        flat = [(rec, r) for rec, group in zip(records, outs) for r in group]
        with timer("verify"):
            verdicts = verifier.verify_batch([r.text for _, r in flat], [rec.reference for rec, _ in flat],
                                             [rec.verifier for rec, _ in flat])
        tokens += sum(len(r.response_ids) for _, r in flat)
        generated, right = generated + len(verdicts), right + sum(v.correct for v in verdicts)
        g = sampling.n
        for i, (rec, group) in enumerate(zip(records, outs)):
            v = verdicts[i * g:(i + 1) * g]
            scores = torch.tensor([x.score for x in v], dtype=torch.float32)
            has_signal = bool(groups_with_signal(scores[None])[0])
            in_range = bool(accuracy_filter(torch.tensor([[x.correct for x in v]]), a.accuracy_low, a.accuracy_high)[0])
            zero_var += not has_signal
            dropped_acc += a.accuracy_filter and not in_range
            if (has_signal or not a.dynamic_sampling) and (in_range or not a.accuracy_filter):
                kept.append((RolloutGroup(rec, engine.prompt_ids(rec.prompt), group), v, scores))
    kept = kept[:hi - lo]
    return Rollouts(
        groups=[k[0] for k in kept],
        scores=torch.stack([k[2] for k in kept]) if kept else torch.zeros(0, sampling.n),
        correct=torch.tensor([[x.correct for x in k[1]] for k in kept], dtype=torch.bool).view(-1, sampling.n),
        statuses=[[x.status for x in k[1]] for k in kept],
        extracted=[[x.extracted for x in k[1]] for k in kept],
        rounds=rounds, zero_variance=zero_var, dropped_accuracy=dropped_acc, generated=generated,
        generated_correct=right, generated_tokens=tokens,
    )


def can_learn(rollouts: Rollouts, cfg: Config, d: distributed.Dist) -> bool:
    """Groups were kept; on several ranks, every rank kept rows for each of its mini-batches (an update runs on
    all ranks or on none: its collectives must match)."""
    if not d.enabled:
        return bool(rollouts.groups)
    return d.all(len(rollouts.groups) * cfg.rollout.group_size >= cfg.trainer.mini_batches)


def prompt_generators(generator: torch.Generator, n: int) -> list[torch.Generator]:
    """One generator per prompt of the global draw, seeded from the run's: a prompt's samples are the same
    whichever rank serves it and whichever prompts share its batch (rollout.seeding=prompt)."""
    seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
    return [torch.Generator().manual_seed(s) for s in seeds]


def free_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Drop the gradients of a step already taken: a 135 M model's are 0.5 GB the next phase can use."""
    optimizer.zero_grad(set_to_none=True)


def learn(p: Parts, rollouts: Rollouts, cfg: Config, timer: Timer) -> dict:
    """Train on the kept groups: log-probs, rewards, process rewards, advantages, update, engine sync."""
    batch = collate(rollouts.groups, p.engine.pad_id, mask_truncated=cfg.algorithm.mask_truncated)
    with timer("logprobs"):
        p.learner.prepare(batch, old_needed_early=p.process.needs_logp_old or cfg.algorithm.kl_in_reward)
    rewards = shaped_rewards(rollouts, batch, cfg)
    with timer("prm"):
        process = p.process(batch, rollouts.groups, rewards.flatten(), rollouts.correct.flatten())
    if p.process.prm is not None:
        free_gradients(p.process.prm.optimizer)  # the PRM's gradients are not needed while the policy learns
    batch.advantages = advantages(rewards, batch, process, cfg, p.dist)
    with timer("update"):
        metrics = p.learner.update(batch, p.generators["update"])
    free_gradients(p.learner.optimizer)  # nor the policy's while the engine generates and the PRM learns
    with timer("sync"):
        p.engine.sync_weights(p.policy)
    if getattr(p.engine, "last_sync_gap", None) is not None:  # vLLM: the probe's |engine - learner| after this sync
        metrics["rollout/sync_probe_gap"] = p.engine.last_sync_gap
    return {**process.metrics, **advantage_metrics(rewards, batch, p.dist), **metrics}


def step_scores(cfg: Config) -> Callable | None:
    """prm.source=verifier: the verifiers' own step checks (verify_steps) are the process source; solution: the
    task's own solution's steps (record.meta["steps"]). (record, steps) -> a score or None per step."""
    if not cfg.prm.enabled or cfg.prm.source == "implicit":
        return None
    if cfg.prm.source == "solution":
        return solution_steps
    try:
        return StepScores(cfg.verifier.options).require([cfg.data.verifier]).of_record  # rows naming others: at their step
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None


def sft(policy: torch.nn.Module, tokenizer, cfg: Config) -> dict:
    """The SFT stage on verified traces (trainer.sft_path), in place, before build() copies the policy into the KL
    reference, the PRM and the PRM's reference (PRIME starts all three from the SFT model). It runs again when a
    run resumes: the frozen references are not checkpointed, and the stage is deterministic (its own generator).
    Under torchrun every rank runs it on the whole trace set, unsharded (not data-parallel: the stage is small
    beside RL), and build() then gives every rank rank 0's weights."""
    t = cfg.trainer
    if not t.sft_path:
        return {}
    from reasonrl.stages import sft_stage

    return sft_stage(policy, tokenizer, t.sft_path, epochs=t.sft_epochs, lr=t.sft_lr, batch_rows=64,
                     generator=torch.Generator().manual_seed(t.seed + 2),
                     pad_id=tokenizer.pad_token_id)  # load_tokenizer falls back to EOS when a model has no pad token


def run_stages(p: Parts, cfg: Config, logger: RunLogger) -> None:
    """Before RL, from search-collected data: report the SFT stage (build() ran it), warm-start the PRM on value
    targets."""
    from reasonrl.stages import prm_warmstart

    m = p.stage_metrics
    if m:
        logger.print(f"SFT stage: {m['sft/rows']} traces, loss {m['sft/first_loss']:.3f} -> {m['sft/last_loss']:.3f}")
    if cfg.prm.warmstart and p.process.prm is not None:
        m = prm_warmstart(p.process.prm, p.tokenizer, cfg.prm.warmstart, epochs=cfg.prm.warmstart_epochs,
                          batch_rows=64, generator=torch.Generator().manual_seed(cfg.trainer.seed + 3),
                          pad_id=p.engine.pad_id, dist=p.dist)
        logger.print(f"PRM warm start: {m['prm_warmstart/rows']} value targets, loss "
                     f"{m['prm_warmstart/first_loss']:.3f} -> {m['prm_warmstart/last_loss']:.3f}")


def warn_on_logprob_gap(metrics: dict, bound: float, step: int, logger: RunLogger) -> None:
    """The engine's log-probs of the sampled tokens must match the learner's (metrics from Learner.update)
    when the engine serves the current weights: warn past the bound."""
    mean = metrics.get("rollout/logprob_gap_mean", 0.0)
    if mean > bound:
        logger.print(f"warning: step {step}: engine and learner log-probs differ by {mean:.2e} on average "
                     f"(max {metrics['rollout/logprob_gap_max']:.2e}, bound rollout.logprob_warn={bound:g}): are the "
                     f"engine's weights synced, in the learner's dtype, and sampling without logit processors?")


def warn_on_empty_responses(metrics: dict, cfg: Config, logger: RunLogger) -> None:
    """Most first-step responses empty: the model ends its answer at once, the mark of a chat model fed a prompt
    without its chat template (or a prompt its EOS follows)."""
    empty = metrics.get("response_length/empty", 0.0)
    if empty > 0.5:
        logger.print(f"warning: {empty:.0%} of the first step's responses are empty: the model ends its answer at once. "
                     f"A chat model does this when the prompt is not in its chat template (data.chat_template="
                     f"{cfg.data.chat_template}; the template is applied only when the tokenizer has one); check the "
                     f"first prompt as fed in samples.jsonl, or run train.py --dry-run")


def shaped_rewards(rollouts: Rollouts, batch: TrainBatch, cfg: Config) -> torch.Tensor:
    """(B, G) scalar rewards: verifier score (+ DAPO overlong penalty) (- KL in reward)."""
    a = cfg.algorithm
    rewards = rollouts.scores.clone()
    if a.overlong_buffer > 0:
        lengths = torch.tensor([[len(r.response_ids) for r in g.rollouts] for g in rollouts.groups])
        rewards = rewards + overlong_penalty(lengths, cfg.rollout.max_new_tokens, a.overlong_buffer,
                                             a.overlong_penalty).float()
    if a.kl_coef > 0 and a.kl_in_reward:
        tok = kl_in_reward(rewards.flatten(), batch.logp_old, batch.logp_ref, batch.loss_mask, a.kl_coef)
        rewards = tok.sum(-1).view_as(rewards)
    return rewards


def advantages(rewards: torch.Tensor, batch: TrainBatch, process: ProcessRewards, cfg: Config,
               d: distributed.Dist = distributed.Dist()) -> torch.Tensor:
    """(B, G) rewards [+ process values] -> (N, T) per-token advantages on the loss mask. On several ranks the
    estimator sees the whole batch (every rank's rows, gathered), so batch-wide statistics -- PRIME's
    normalisation and whitening -- are global; each rank keeps its own rows."""
    a, q = cfg.algorithm, cfg.prm
    loo_form, norm = prime_defaults(q.shaping, q.loo_form, q.norm)
    options = AdvantageOptions(eps=a.adv_eps, ddof=a.std_ddof, loo_form=loo_form, process_coef=q.process_coef,
                               norm=norm, alpha=q.alpha, step_norm=q.step_norm)
    estimator = ADVANTAGES.get(a.advantage)
    if not d.enabled:
        return estimator(AdvantageInputs(rewards, batch.loss_mask, process.values, process.ends, options))
    (n, t), gather = batch.loss_mask.shape, (lambda x: None if x is None else d.gather_rows(x)[0])
    mask, first = d.gather_rows(batch.loss_mask)
    whole = estimator(AdvantageInputs(gather(rewards), mask, gather(process.values), gather(process.ends), options))
    return whole[first:first + n, :t].contiguous()


def evaluate(p: Parts, cfg: Config, *, step: int, logger: RunLogger) -> dict:
    """Greedy held-out accuracy; with a PRM, also its AUROC at telling those answers' correctness. On several
    ranks each answers its slice of the problems and the results are gathered (in problem order)."""
    t0 = time.perf_counter()
    lo, hi = p.dist.share(len(p.held_out))
    res = evaluate_greedy(p.engine, p.verifier, p.held_out[lo:hi], cfg.eval.max_new_tokens)
    scores = p.process.held_out_scores(p.held_out[lo:hi], res["rollouts"], p.engine, p.learner.logprobs)
    if p.dist.enabled:
        parts = p.dist.gather((res["results"], [len(r.response_ids) for r in res["rollouts"]], scores))
        results, lengths = [x for part in parts for x in part[0]], [x for part in parts for x in part[1]]
        res = {"results": results, "accuracy": sum(x["correct"] for x in results) / max(len(results), 1),
               "response_length": sum(lengths) / max(len(lengths), 1)}
        scores = None if scores is None else torch.cat([part[2] for part in parts])
    entry = {"step": step, "accuracy": res["accuracy"], "response_length": res["response_length"]}
    line = f"eval step {step}: held-out greedy accuracy {res['accuracy']:.3f} on {len(p.held_out)} problems"
    if scores is not None:
        entry["prm_auroc"] = auroc(scores, torch.tensor([x["correct"] for x in res["results"]]))
        line += f", PRM AUROC {entry['prm_auroc']:.3f}"
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    logger.log_eval(step, res["results"])
    logger.print(line)
    return entry


def advantage_metrics(rewards: torch.Tensor, batch: TrainBatch, d: distributed.Dist = distributed.Dist()) -> dict:
    """Mean reward, mean and std of the advantages on the loss mask: the whole batch's, on every rank."""
    valid = batch.advantages[batch.loss_mask.bool()]
    if not d.enabled:
        return {"reward/mean": rewards.mean().item(), "adv/mean": valid.mean().item() if valid.numel() else 0.0,
                "adv/std": valid.std().item() if valid.numel() > 1 else 0.0}
    n, s, ss = (d.sum(x) for x in (float(valid.numel()), valid.double().sum().item(), valid.double().square().sum().item()))
    mean = s / max(n, 1)
    return {"reward/mean": d.sum(rewards.sum().item()) / d.sum(float(rewards.numel())), "adv/mean": mean,
            "adv/std": math.sqrt(max(ss - n * mean * mean, 0.0) / (n - 1)) if n > 1 else 0.0}


def rollout_metrics(r: Rollouts) -> dict:
    lengths = [len(x.response_ids) for g in r.groups for x in g.rollouts]
    statuses = [s for row in r.statuses for s in row]
    m = {
        "accuracy/train": r.generated_correct / max(r.generated, 1),
        "accuracy/kept": r.correct.float().mean().item() if r.groups else 0.0,
        "response_length/mean": sum(lengths) / max(len(lengths), 1),
        "response_length/truncated": sum(x.truncated for g in r.groups for x in g.rollouts) / max(len(lengths), 1),
        "response_length/empty": sum(not x.text.strip() for g in r.groups for x in g.rollouts) / max(len(lengths), 1),
        "groups/kept": len(r.groups), "groups/zero_variance": r.zero_variance,
        "groups/dropped_accuracy": r.dropped_accuracy, "gen_rounds": r.rounds, "tokens/generated": r.generated_tokens,
        "responses/generated": r.generated,
    }
    for s in set(statuses):
        m[f"verifier/{s}"] = statuses.count(s)
    return m


def sample_rows(r: Rollouts, k: int) -> list[dict]:
    rows = []
    for gi, g in enumerate(r.groups):
        for j, x in enumerate(g.rollouts):
            if len(rows) >= k:
                return rows
            rows.append({"prompt": g.record.prompt, "response": x.text, "reference": str(g.record.reference),
                         "extracted": r.extracted[gi][j], "correct": bool(r.correct[gi, j]),
                         "status": r.statuses[gi][j], "score": float(r.scores[gi, j]),
                         "finish_reason": x.finish_reason})
    return rows


def loss_settings(cfg: Config) -> LossSettings:
    a = cfg.algorithm
    return LossSettings(policy_loss=a.policy_loss, clip=ClipRange(a.clip_low, a.clip_high, a.dual_clip),
                        loss_agg=a.loss_agg, loss_scale=a.loss_scale_factor or float(cfg.rollout.max_new_tokens),
                        kl_coef=a.kl_coef, kl_estimator=a.kl_estimator, kl_in_loss=not a.kl_in_reward,
                        entropy_coef=a.entropy_coef, tis_cap=a.tis_cap)
