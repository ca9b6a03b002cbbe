"""run(cfg): the training loop, top to bottom, as named steps.

    sample prompts -> generate G each -> verify -> filter groups -> log-probs (old, ref)
    -> rewards -> [implicit PRM: score and learn] -> advantages -> update -> sync engine
    -> log -> evaluate -> checkpoint
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from reasonrl import checkpoint
from reasonrl.algorithms import (PROCESS_ADVANTAGES, ProcessOptions, broadcast_to_tokens, compute_advantages,
                                 groups_with_signal, kl_in_reward, logprob_gap, overlong_penalty)
from reasonrl.algorithms.process_rewards import accuracy_filter
from reasonrl.batching import collate
from reasonrl.config import Config, to_yaml
from reasonrl.data import build_data
from reasonrl.evaluation import evaluate_greedy
from reasonrl.learner import Learner, LossSettings, build_optimizer
from reasonrl.metrics import RunLogger, read_metrics, write_plots
from reasonrl.models import frozen_copy, load_model, load_tokenizer, resolve_device
from reasonrl.prm import ImplicitPRM
from reasonrl.process import ProcessRewards, build_prm, held_out_auroc, process_rewards
from reasonrl.rollout import ENGINES
from reasonrl.types import RolloutGroup, SamplingParams, TrainBatch
from verifiers import VerifierPool


@dataclass
class Rollouts:
    """The groups kept for training this step, with their rewards (B, G) and verdicts."""

    groups: list[RolloutGroup]
    scores: torch.Tensor  # (B, G) verifier scores
    correct: torch.Tensor  # (B, G) bool
    statuses: list[list[str]]
    extracted: list[list[str | None]]
    rounds: int
    zero_variance: int
    dropped_accuracy: int
    generated_tokens: int
    seconds_generate: float
    seconds_verify: float


@dataclass
class Parts:
    """Everything a run builds once: models, engine, verifier, data, optimiser, generators."""

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
    prm: ImplicitPRM | None = None


def run(cfg: Config) -> dict:
    """Train with cfg; return the summary (also written to summary.json)."""
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    run_dir, resume_from = prepare_run_dir(cfg)
    parts = build(cfg)
    state = checkpoint.TrainState()
    if resume_from is not None:
        state = checkpoint.load(resume_from, policy=parts.policy, optimizer=parts.optimizer,
                                scheduler=parts.scheduler, sampler=parts.sampler, generators=parts.generators,
                                prm=parts.prm)
        parts.engine.sync_weights(parts.policy)  # an engine with its own copy must serve the restored weights
        truncate_logs(run_dir, state.step)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    logger = RunLogger(run_dir, cfg.logging, cfg.trainer.steps, start_step=state.step)
    if resume_from is not None:
        logger.print(f"resumed {run_dir} from {resume_from.name} (step {state.step})")
    try:
        train(cfg, parts, state, run_dir, logger)
    finally:
        parts.verifier.close()
        parts.engine.close()
        logger.close()
    return finish(run_dir, state, cfg)


def build(cfg: Config) -> Parts:
    tokenizer = load_tokenizer(cfg.model.path)
    torch.manual_seed(cfg.trainer.seed)
    policy = load_model(cfg.model.path, dtype=cfg.model.dtype, attn_implementation=cfg.model.attn_implementation,
                        device=resolve_device(cfg.trainer.device))
    if cfg.model.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
    ref = frozen_copy(policy) if cfg.algorithm.kl_coef > 0 else None  # no reference when it is unused
    prm = None
    if cfg.prm.enabled:
        prm = build_prm(policy, cfg.prm, dtype=cfg.model.dtype, attn_implementation=cfg.model.attn_implementation,
                        max_tokens_per_microbatch=cfg.trainer.max_tokens_per_microbatch, initial_ref=ref)
    sampler, held_out = build_data(cfg.data, cfg.eval.size, cfg.trainer.seed)
    updates_per_step = cfg.trainer.ppo_epochs * cfg.trainer.mini_batches
    optimizer, scheduler = build_optimizer(policy, lr=cfg.trainer.lr, weight_decay=cfg.trainer.weight_decay,
                                           betas=cfg.trainer.betas, schedule=cfg.trainer.lr_schedule,
                                           warmup=cfg.trainer.warmup_steps * updates_per_step,
                                           total_steps=cfg.trainer.steps * updates_per_step)
    learner = Learner(policy, optimizer, scheduler, loss=loss_settings(cfg), ref=ref,
                      ppo_epochs=cfg.trainer.ppo_epochs, mini_batches=cfg.trainer.mini_batches,
                      max_tokens_per_microbatch=cfg.trainer.max_tokens_per_microbatch,
                      max_grad_norm=cfg.trainer.max_grad_norm, packing=cfg.trainer.packing,
                      pack_tokens=cfg.trainer.pack_tokens, share_prompts=cfg.trainer.share_prompts,
                      autocast=cfg.trainer.autocast == "bf16" or (cfg.trainer.autocast == "auto" and
                                                                   next(policy.parameters()).is_cuda))
    r = cfg.rollout
    return Parts(
        policy=policy, tokenizer=tokenizer, engine=ENGINES.get(r.engine)(policy, tokenizer, cfg),
        verifier=VerifierPool(cfg.verifier.options, workers=cfg.verifier.workers, timeout_s=cfg.verifier.timeout_s,
                              plugins=cfg.verifier.plugins),
        sampler=sampler, held_out=held_out, learner=learner, optimizer=optimizer, scheduler=scheduler,
        generators={"sample": torch.Generator().manual_seed(cfg.trainer.seed),
                    "update": torch.Generator().manual_seed(cfg.trainer.seed + 1)},
        sampling=SamplingParams(n=r.group_size, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                                max_new_tokens=r.max_new_tokens, stop=tuple(r.stop), ignore_eos=r.ignore_eos),
        prm=prm,
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
        t_step = time.perf_counter()
        rollouts = generate_and_verify(p.sampler, p.engine, p.verifier, p.sampling, cfg, p.generators["sample"])
        metrics = rollout_metrics(rollouts)
        if rollouts.groups:
            batch = collate(rollouts.groups, p.engine.pad_id, mask_truncated=cfg.algorithm.mask_truncated)
            t0 = time.perf_counter()
            reuse = reuse_update_logprobs(p.learner, cfg)
            p.learner.fill_logprobs(batch, old=not reuse)
            metrics["time/logprobs"] = time.perf_counter() - t0
            if not reuse:
                metrics.update(check_logprobs(batch, cfg.rollout.logprob_warn, step, logger))
            rewards = shaped_rewards(rollouts, batch, cfg)
            process = None
            if p.prm is not None:
                t0 = time.perf_counter()
                process = process_rewards(p.prm, batch, rollouts.groups, rewards.flatten(), rollouts.correct.flatten(),
                                          p.tokenizer, cfg.prm)
                metrics.update(process.metrics)
                metrics["time/prm"] = time.perf_counter() - t0
            batch.advantages = advantages(rewards, batch, cfg, process)
            metrics.update(advantage_metrics(rewards, batch))
            t0 = time.perf_counter()
            metrics.update(p.learner.update(batch, p.generators["update"]))
            metrics["time/update"] = time.perf_counter() - t0
            if reuse:  # logp_old came out of the update's forward, taken before the optimizer step
                metrics.update(check_logprobs(batch, cfg.rollout.logprob_warn, step, logger))
            p.engine.sync_weights(p.policy)
        else:
            logger.print(f"step {step}: no group with reward variance after {rollouts.rounds} rounds; update skipped")
        state.step, state.tokens_generated = step, state.tokens_generated + rollouts.generated_tokens
        metrics["time/step"] = time.perf_counter() - t_step
        metrics["tokens_per_s"] = rollouts.generated_tokens / metrics["time/step"]
        state.seconds += metrics["time/step"]

        if p.held_out and (step == cfg.trainer.steps or (cfg.eval.every and step % cfg.eval.every == 0)):
            state.evals.append(evaluate(p, cfg, step=step, logger=logger))
            metrics.update({f"eval/{k}": v for k, v in state.evals[-1].items() if k not in ("step", "seconds")})
        logger.log_step(step, metrics)
        logger.log_samples(step, sample_rows(rollouts, cfg.logging.samples_per_step))
        if step == cfg.trainer.steps or (cfg.checkpoint.every and step % cfg.checkpoint.every == 0):
            save_checkpoint(p, cfg, state, run_dir)


def save_checkpoint(p: Parts, cfg: Config, state: checkpoint.TrainState, run_dir: Path) -> None:
    checkpoint.save(run_dir / "checkpoints", state, policy=p.policy, tokenizer=p.tokenizer, optimizer=p.optimizer,
                    scheduler=p.scheduler, sampler=p.sampler, generators=p.generators, keep=cfg.checkpoint.keep,
                    prm=p.prm)


# ------------------------------------------------------------------------------- the steps

def generate_and_verify(sampler, engine, verifier, sampling: SamplingParams, cfg: Config,
                        generator: torch.Generator) -> Rollouts:
    """Sample prompts, generate G responses each, verify them, and keep the groups to train on.

    Filters drop groups and draw more prompts (up to algorithm.max_gen_batches rounds) until
    prompts_per_step groups are kept: dynamic sampling (DAPO) drops groups whose rewards are all
    equal, the accuracy filter (PRIME) groups whose accuracy lies outside [low, high]."""
    a = cfg.algorithm
    want = cfg.rollout.prompts_per_step
    kept: list = []
    zero_var = dropped_acc = rounds = tokens = 0
    t_gen = t_ver = 0.0
    while len(kept) < want and rounds < (a.max_gen_batches if a.dynamic_sampling or a.accuracy_filter else 1):
        rounds += 1
        records = sampler.next(want)
        t0 = time.perf_counter()
        outs = engine.generate([r.prompt for r in records], sampling, generator)
        t_gen += time.perf_counter() - t0
        t0 = time.perf_counter()
        flat = [(rec, r) for rec, group in zip(records, outs) for r in group]
        verdicts = verifier.verify_batch([r.text for _, r in flat], [rec.reference for rec, _ in flat],
                                         [rec.verifier for rec, _ in flat])
        t_ver += time.perf_counter() - t0
        tokens += sum(len(r.response_ids) for _, r in flat)
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
    kept = kept[:want]
    return Rollouts(
        groups=[k[0] for k in kept],
        scores=torch.stack([k[2] for k in kept]) if kept else torch.zeros(0, sampling.n),
        correct=torch.tensor([[x.correct for x in k[1]] for k in kept], dtype=torch.bool).view(-1, sampling.n),
        statuses=[[x.status for x in k[1]] for k in kept],
        extracted=[[x.extracted for x in k[1]] for k in kept],
        rounds=rounds, zero_variance=zero_var, dropped_accuracy=dropped_acc, generated_tokens=tokens,
        seconds_generate=t_gen, seconds_verify=t_ver,
    )


def run_stages(p: Parts, cfg: Config, logger: RunLogger) -> None:
    """Before RL, from search-collected data: SFT on verified traces, PRM warm start on value targets."""
    from reasonrl.stages import prm_warmstart, sft_stage

    gen = torch.Generator().manual_seed(cfg.trainer.seed + 2)
    if cfg.trainer.sft_path:
        m = sft_stage(p.policy, p.tokenizer, cfg.trainer.sft_path, epochs=cfg.trainer.sft_epochs,
                      lr=cfg.trainer.sft_lr, batch_rows=64, generator=gen, pad_id=p.engine.pad_id)
        p.engine.sync_weights(p.policy)
        logger.print(f"SFT stage: {m['sft/rows']} traces, loss {m['sft/first_loss']:.3f} -> {m['sft/last_loss']:.3f}")
    if cfg.prm.warmstart and p.prm is not None:
        m = prm_warmstart(p.prm, p.tokenizer, cfg.prm.warmstart, epochs=cfg.prm.warmstart_epochs, batch_rows=64,
                          generator=gen, pad_id=p.engine.pad_id)
        logger.print(f"PRM warm start: {m['prm_warmstart/rows']} value targets, loss "
                     f"{m['prm_warmstart/first_loss']:.3f} -> {m['prm_warmstart/last_loss']:.3f}")


def reuse_update_logprobs(learner: Learner, cfg: Config) -> bool:
    """Whether the old log-probs can come from the update's own forward (one pass fewer per step): only
    on-policy (one optimizer step per batch), and only when nothing needs them before the update (the
    OPRL PRM's reference, a KL penalty in the reward)."""
    needed_early = (cfg.prm.enabled and cfg.prm.reference == "policy") or cfg.algorithm.kl_in_reward
    return learner.on_policy and not needed_early


def check_logprobs(batch: TrainBatch, warn_above: float, step: int, logger: RunLogger) -> dict:
    """The engine's log-probs of the sampled tokens against the learner's recomputation (logp_old):
    they must agree when the engine serves the current weights. Logged every step; warns past the bound."""
    mean, worst = logprob_gap(batch.logp_engine, batch.logp_old, batch.loss_mask)
    if mean > warn_above:
        logger.print(f"warning: step {step}: engine and learner log-probs differ by {mean:.2e} on average "
                     f"(max {worst:.2e}, bound rollout.logprob_warn={warn_above:g}): are the engine's weights synced, "
                     f"in the learner's dtype, and sampling without logit processors?")
    return {"rollout/logprob_gap_mean": mean, "rollout/logprob_gap_max": worst}


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


def advantages(rewards: torch.Tensor, batch: TrainBatch, cfg: Config,
               process: ProcessRewards | None = None) -> torch.Tensor:
    """(B, G) rewards [+ process values] -> (N, T) per-token advantages on the loss mask."""
    a = cfg.algorithm
    if a.advantage in PROCESS_ADVANTAGES:
        opts = ProcessOptions(loo_form=cfg.prm.loo_form, process_coef=cfg.prm.process_coef, norm=cfg.prm.norm,
                              alpha=cfg.prm.alpha, ddof=a.std_ddof)
        return PROCESS_ADVANTAGES.get(a.advantage)(process.values, process.ends, rewards.flatten(), batch.loss_mask,
                                                   rewards.shape[1], opts)
    adv = compute_advantages(a.advantage, rewards, eps=a.adv_eps, ddof=a.std_ddof)
    return broadcast_to_tokens(adv.flatten(), batch.loss_mask)


def evaluate(p: Parts, cfg: Config, *, step: int, logger: RunLogger) -> dict:
    """Greedy held-out accuracy; with a PRM, also its AUROC at telling those answers' correctness."""
    t0 = time.perf_counter()
    res = evaluate_greedy(p.engine, p.verifier, p.held_out, cfg.eval.max_new_tokens)
    entry = {"step": step, "accuracy": res["accuracy"], "response_length": res["response_length"]}
    line = f"eval step {step}: held-out greedy accuracy {res['accuracy']:.3f} on {len(p.held_out)} problems"
    if p.prm is not None:
        groups = [RolloutGroup(rec, p.engine.prompt_ids(rec.prompt), [r]) for rec, r in zip(p.held_out, res["rollouts"])]
        correct = torch.tensor([x["correct"] for x in res["results"]])
        entry["prm_auroc"] = held_out_auroc(p.prm, groups, correct, p.engine.pad_id, cfg.prm,
                                            lambda b: p.learner.logprobs(b, p.policy))
        line += f", PRM AUROC {entry['prm_auroc']:.3f}"
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    logger.print(line)
    return entry


def advantage_metrics(rewards: torch.Tensor, batch: TrainBatch) -> dict:
    valid = batch.advantages[batch.loss_mask.bool()]
    return {"reward/mean": rewards.mean().item(), "adv/mean": valid.mean().item() if valid.numel() else 0.0,
            "adv/std": valid.std().item() if valid.numel() > 1 else 0.0}


def rollout_metrics(r: Rollouts) -> dict:
    lengths = [len(x.response_ids) for g in r.groups for x in g.rollouts]
    statuses = [s for row in r.statuses for s in row]
    m = {
        "reward/mean": r.scores.mean().item() if r.groups else 0.0,
        "accuracy/train": r.correct.float().mean().item() if r.groups else 0.0,
        "response_length/mean": sum(lengths) / max(len(lengths), 1),
        "response_length/truncated": sum(x.truncated for g in r.groups for x in g.rollouts) / max(len(lengths), 1),
        "groups/kept": len(r.groups), "groups/zero_variance": r.zero_variance,
        "groups/dropped_accuracy": r.dropped_accuracy, "gen_rounds": r.rounds,
        "time/generate": r.seconds_generate, "time/verify": r.seconds_verify, "tokens/generated": r.generated_tokens,
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
    return LossSettings(clip_low=a.clip_low, clip_high=a.clip_high, dual_clip=a.dual_clip, loss_agg=a.loss_agg,
                        loss_scale=a.loss_scale_factor or float(cfg.rollout.max_new_tokens), kl_coef=a.kl_coef,
                        kl_estimator=a.kl_estimator, kl_in_loss=not a.kl_in_reward, entropy_coef=a.entropy_coef,
                        tis_cap=a.tis_cap)


# ------------------------------------------------------------------------------- run directory

def prepare_run_dir(cfg: Config) -> tuple[Path, Path | None]:
    """-> (run directory, checkpoint to resume from or None)."""
    root = Path(cfg.logging.run_dir)
    resume = cfg.checkpoint.resume
    if resume not in ("auto", "never"):
        ckpt = Path(resume)
        if (ckpt / "checkpoints" / "latest").exists():  # a run directory was given
            ckpt = ckpt / "checkpoints" / "latest"
        if not (ckpt / "trainer_state.pt").is_file():
            raise FileNotFoundError(f"checkpoint.resume={resume!r}: no checkpoint there (expected trainer_state.pt); "
                                    f"pass a checkpoints/step_N directory, a run directory, or auto")
        ckpt = ckpt.resolve()
        return ckpt.parent.parent, ckpt
    if cfg.logging.name:
        run_dir = root / cfg.logging.name
    elif resume == "auto" and (newest := _newest_run_with_checkpoint(root)) is not None:
        run_dir = newest
    else:
        run_dir = root / datetime.now().strftime("%Y%m%d-%H%M%S")
    ckpt = checkpoint.latest(run_dir) if resume == "auto" else None
    if ckpt is None and run_dir.exists() and (run_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"run directory {run_dir} already holds a run; pass checkpoint.resume=auto to continue "
                              f"it, or choose another logging.name")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, ckpt


def _newest_run_with_checkpoint(root: Path) -> Path | None:
    runs = [p for p in root.glob("*") if (p / "checkpoints" / "latest").exists()] if root.is_dir() else []
    return max(runs, key=lambda p: (p / "checkpoints" / "latest").stat().st_mtime, default=None)


def truncate_logs(run_dir: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from, so the files stay consistent."""
    import json

    for name in ("metrics.jsonl", "samples.jsonl"):
        path = run_dir / name
        if path.is_file():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
            path.write_text("".join(ln + "\n" for ln in keep))


def finish(run_dir: Path, state: checkpoint.TrainState, cfg: Config) -> dict:
    import json

    evals = state.evals
    summary = {
        "run_dir": str(run_dir), "steps": state.step, "seconds": round(state.seconds, 1),
        "tokens_generated": state.tokens_generated,
        "eval_accuracy_before": evals[0]["accuracy"] if evals else None,
        "eval_accuracy_after": evals[-1]["accuracy"] if evals else None,
        "evals": evals,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if cfg.logging.plots:
        write_plots(run_dir, read_metrics(run_dir), evals)
    return summary
