"""One policy update: log-probs for the rollout batch, then the configured policy loss (with TIS, KL and
entropy composed around it) over mini-batches and token-budget micro-batches. Returns metrics.

The loss of a mini-batch is aggregated with the mini-batch's *global* token and sequence counts, so
gradient accumulation over micro-batches gives exactly the full-batch gradient.

On-policy (one optimizer step per batch) the old log-probs are the update's own forward, detached:
ratio exactly 1, the same gradient, one forward pass fewer per step. The learner makes that choice
itself (`prepare`), and after every update compares the engine's log-probs of the sampled tokens with
its own (`rollout/logprob_gap_*` in the metrics): they must agree when the engine serves its weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import torch

from reasonrl import faults
from reasonrl.algorithms import (POLICY_LOSSES, ClipRange, aggregate, kl_penalty, logprob_gap, masked_sum,
                                 truncated_is_weights)
from reasonrl.batching import Forward
from reasonrl.distributed import Dist, to_float
from reasonrl.logprobs import DEFAULT_MAX_LOGITS
from reasonrl.models import DEVICES, Reference
from reasonrl.registry import Problems, Registry
from reasonrl.types import TrainBatch

LR_SCHEDULES: Registry = Registry("learning-rate schedule")  # trainer.lr_schedule: fraction done -> lr factor
LR_SCHEDULES.register("constant")(lambda frac: 1.0)
LR_SCHEDULES.register("cosine")(lambda frac: 0.5 * (1 + math.cos(math.pi * frac)))
LR_SCHEDULES.register("linear")(lambda frac: 1.0 - frac)
AUTOCAST = ("auto", "bf16", "none")  # trainer.autocast


@dataclass(frozen=True)
class LossSettings:
    """The scalars the loss needs, copied out of the config so the math never sees a config."""

    policy_loss: str = "ppo_clip"  # a POLICY_LOSSES name
    clip: ClipRange = field(default_factory=ClipRange)
    loss_agg: str = "token-mean"
    loss_scale: Optional[float] = None
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    kl_in_loss: bool = True
    entropy_coef: float = 0.0
    tis_cap: Optional[float] = None  # truncated importance weight pi_learner / pi_engine, capped (None = off)


class Learner:
    def __init__(self, policy: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, *,
                 loss: LossSettings, ref: Optional[Reference] = None, ppo_epochs: int = 1,
                 mini_batches: int = 1, max_tokens_per_microbatch: int = 16384, max_grad_norm: float = 1.0,
                 packing: bool = False, pack_tokens: int = 4096, share_prompts: bool = False,
                 autocast: bool = False, max_logits: int = DEFAULT_MAX_LOGITS, dist: Dist = Dist()):
        """dist: the ranks this update spans (each holds its slice of the batch; Dist() is one process)."""
        self.policy, self.ref, self.dist = policy, ref, dist
        self.optimizer, self.scheduler = optimizer, scheduler
        self.loss, self.policy_loss = loss, POLICY_LOSSES.get(loss.policy_loss)
        self.ppo_epochs, self.mini_batches = ppo_epochs, mini_batches
        self.max_grad_norm = max_grad_norm
        self.forward = Forward(max_tokens_per_microbatch, packing, pack_tokens, share_prompts, autocast, max_logits)
        self.oom_retries = 0  # micro-batch budget halvings this step (reasonrl/faults.py)
        self.nonfinite = 0  # optimiser steps skipped in the current update: a non-finite loss or gradient

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    # ------------------------------------------------------------------ log-probs
    def logprobs(self, batch: TrainBatch, model: torch.nn.Module | None = None) -> torch.Tensor:
        """(N, T) log-probs of every target under `model` (default: the policy), one forward per micro-batch."""
        model = self.policy if model is None else model
        return faults.halving_retries(lambda: self.forward.all_logprobs(model, batch), self, self.optimizer, self.dist)

    @property
    def on_policy(self) -> bool:
        """One optimizer step per batch: the policy that sampled is the one the single update starts from."""
        return self.ppo_epochs == 1 and self.mini_batches == 1

    def prepare(self, batch: TrainBatch, *, old_needed_early: bool = False) -> None:
        """Fill batch.logp_ref (when a KL reference exists) and batch.logp_old -- unless the update can take the
        old log-probs from its own forward (on-policy, and nothing needs them before the update: the OPRL
        PRM's reference, a KL penalty in the reward)."""
        if not self.on_policy or old_needed_early:
            batch.logp_old = self.logprobs(batch)
            batch.layouts["logp_old"] = replace(self.forward)  # as it was when the tensor was computed
        if self.ref is not None:
            with self.ref.scoring() as ref:
                batch.logp_ref = self.logprobs(batch, ref)
            batch.layouts["logp_ref"] = replace(self.forward)

    # ------------------------------------------------------------------ update
    def update(self, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]:
        """PPO epochs x mini-batches of optimizer steps. With batch.logp_old None (on-policy only), the
        old log-probs are the update's own forward, detached, and are written into batch.logp_old.
        The metrics include the engine/learner log-prob gap of the sampled tokens."""
        self.policy.train()
        self.nonfinite = 0
        if batch.logp_old is None:
            if not self.on_policy:
                raise ValueError("logp_old may come from the update's forward only with one optimizer step per batch")
            stats = self._step(batch, capture=True)
        else:
            totals: dict[str, float] = {}
            count = 0
            for _ in range(self.ppo_epochs):
                order = torch.randperm(batch.num_rows, generator=generator)
                for rows in torch.tensor_split(order, self.mini_batches):
                    if len(rows) == 0:
                        continue
                    for k, v in self._step(batch.select(rows)).items():
                        totals[k] = totals.get(k, 0.0) + v
                    count += 1
            stats = {k: v / max(count, 1) for k, v in totals.items()}
        if batch.logp_engine is not None:
            mean, worst = logprob_gap(batch.logp_engine, batch.logp_old, batch.loss_mask)
            stats.update({"rollout/logprob_gap_mean": mean, "rollout/logprob_gap_max": worst})
        stats.update({"fault/nonfinite_updates": self.nonfinite, "fault/oom_retries": self.oom_retries,
                      "trainer/microbatch_tokens": self.forward.max_tokens})
        self.oom_retries = 0  # counted per step (prepare's and the update's)
        return stats

    def _step(self, mini: TrainBatch, capture: bool = False) -> dict[str, float]:
        """One optimizer step on a mini-batch: the gradients accumulated over micro-batches (out of memory, that
        is retried with half the micro-batch budget; the optimiser step itself is outside the retry, so it never
        runs twice), then clipped and applied. A non-finite loss or gradient norm skips the optimiser step (the
        schedule still advances)."""
        stats = faults.halving_retries(lambda: self._accumulate(mini, capture), self, self.optimizer, self.dist)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        if self.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        faults.kill_point("update")
        stepped = faults.finite(self.dist, stats["loss"], grad_norm)
        if stepped:
            self.optimizer.step()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite += 1
        if self.scheduler is not None:
            faults.advance(self.scheduler, stepped)
        stats["grad_norm"] = to_float(grad_norm)
        stats["lr"] = self.optimizer.param_groups[0]["lr"]
        return stats

    def _accumulate(self, mini: TrainBatch, capture: bool) -> dict[str, float]:
        """The mini-batch's gradients, accumulated over micro-batches, and its loss statistics. capture:
        mini.logp_old is filled from each micro-batch's forward (detached) before its loss uses it."""
        s, d = self.loss, self.dist
        # the whole batch's counts, over every rank: each rank's loss is its share of the global loss
        norm = {"num_tokens": max(d.sum(mini.loss_mask.sum().item()), 1.0), "num_seqs": float(d.sum(mini.num_rows)),
                "scale": s.loss_scale}
        self.optimizer.zero_grad(set_to_none=True)
        stats = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0, "entropy": 0.0, "clip_frac": 0.0,
                 "clip_frac_low": 0.0, "clip_frac_high": 0.0}
        n_tok = norm["num_tokens"]
        if capture:
            mini.logp_old = torch.zeros_like(mini.loss_mask)
        splits = self.forward.split(mini)
        padding = int(d.max(len(splits))) - len(splits)  # sharded: every rank runs as many micro-batches
        for rows in [*splits, *[None] * padding]:
            if rows is None:  # a zero-weight pass through FSDP's collectives, no gradient of its own
                self.forward.padding_pass(self.policy, mini.select(splits[0] if splits else torch.arange(0)))
                continue
            mb = mini.select(rows)
            dev = self.device
            mask, adv = mb.loss_mask.to(dev), mb.advantages.to(dev)
            logp, entropy = self.forward.logprobs(self.policy, mb, with_entropy=True)
            if capture:
                mb.logp_old = logp.detach()
                mini.logp_old[rows, : logp.shape[1]] = mb.logp_old.cpu().to(mini.loss_mask.dtype)
            pg, m = self.policy_loss(logp, mb.logp_old.to(dev), adv, mask, s.clip)
            if s.tis_cap is not None and mb.logp_engine is not None:
                pg = pg * truncated_is_weights(mb.logp_old.to(dev), mb.logp_engine.to(dev), s.tis_cap)
            loss = aggregate(pg, mask, s.loss_agg, **norm)
            stats["pg_loss"] += loss.item()
            if s.kl_coef > 0 and s.kl_in_loss:
                kl_term = aggregate(kl_penalty(logp, mb.logp_ref.to(dev), s.kl_estimator), mask, s.loss_agg, **norm)
                loss = loss + s.kl_coef * kl_term
                stats["kl"] += kl_term.item()
            if s.entropy_coef > 0:
                loss = loss - s.entropy_coef * aggregate(entropy, mask, s.loss_agg, **norm)
            (loss * d.grad_scale if d.enabled else loss).backward()
            stats["loss"] += loss.item()
            share = mask.sum().item() / n_tok  # token-weighted averages of the per-micro-batch metrics
            stats["entropy"] += masked_sum(entropy.detach(), mask).item() / n_tok
            for k in ("clip_frac", "clip_frac_low", "clip_frac_high"):
                stats[k] += m[k].item() * share
        return {k: d.sum(v) for k, v in stats.items()}  # shares of global averages: their sum is the average


def build_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, betas, schedule: str,
                    warmup: int, total_steps: int):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay, betas=tuple(betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(schedule, warmup, total_steps))
    return opt, sched


def lr_lambda(schedule: str, warmup: int, total: int):
    """Linear warm-up over `warmup` steps, then the LR_SCHEDULES entry over the rest."""
    decay = LR_SCHEDULES.get(schedule)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return decay(min(1.0, (step - warmup) / max(1, total - warmup)))

    return f


def check_trainer(t) -> Problems:
    """The trainer section (TrainerConfig)."""
    p = Problems()
    p.need(t.steps >= 0, "trainer.steps", t.steps, "must be >= 0")
    p.need(t.lr > 0, "trainer.lr", t.lr, "must be > 0")
    p.need(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas), "trainer.betas", t.betas, "two numbers in [0, 1)")
    p.known(LR_SCHEDULES, "trainer.lr_schedule", t.lr_schedule)
    p.need(t.ppo_epochs >= 1, "trainer.ppo_epochs", t.ppo_epochs, "must be >= 1")
    p.need(t.mini_batches >= 1, "trainer.mini_batches", t.mini_batches, "must be >= 1")
    p.need(t.max_tokens_per_microbatch >= 0, "trainer.max_tokens_per_microbatch", t.max_tokens_per_microbatch,
           "must be >= 1 (0 = auto)")
    p.need(t.pack_tokens >= 1, "trainer.pack_tokens", t.pack_tokens, "must be >= 1")
    p.need(t.logits_mb >= 1, "trainer.logits_mb", t.logits_mb, "must be >= 1 (MB)")
    p.need(t.mmap_threshold_mb >= -1, "trainer.mmap_threshold_mb", t.mmap_threshold_mb, "must be >= 0 (0 = glibc's default, -1 = auto)")
    p.need(t.release_memory_every >= 0, "trainer.release_memory_every", t.release_memory_every, "must be >= 0 (0 = never)")
    p.need(t.max_nonfinite_steps >= 0, "trainer.max_nonfinite_steps", t.max_nonfinite_steps, "must be >= 0 (0 = never stop)")
    p.need(t.max_grad_norm >= 0, "trainer.max_grad_norm", t.max_grad_norm, "must be >= 0 (0 = off)")
    p.need(t.threads >= 0, "trainer.threads", t.threads, "must be >= 0")
    p.one_of(AUTOCAST, "trainer.autocast", t.autocast)
    p.need(t.sft_epochs >= 1, "trainer.sft_epochs", t.sft_epochs, "must be >= 1")
    p.need(t.sft_lr > 0, "trainer.sft_lr", t.sft_lr, "must be > 0")
    p.one_of(DEVICES, "trainer.device", t.device)
    return p
