"""One policy update: log-probs for the rollout batch, then the clipped surrogate over
mini-batches and token-budget micro-batches. Returns metrics.

The loss of a mini-batch is aggregated with the mini-batch's *global* token and sequence
counts, so gradient accumulation over micro-batches gives exactly the full-batch gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from reasonrl.algorithms import aggregate, clipped_surrogate, kl_penalty, masked_sum, truncated_is_weights
from reasonrl.batching import Forward
from reasonrl.types import TrainBatch


@dataclass(frozen=True)
class LossSettings:
    """The scalars the loss needs, copied out of the config so the math never sees a config."""

    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: Optional[float] = None
    loss_agg: str = "token-mean"
    loss_scale: Optional[float] = None
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    kl_in_loss: bool = True
    entropy_coef: float = 0.0
    tis_cap: Optional[float] = None  # truncated importance weight pi_learner / pi_engine, capped (None = off)


class Learner:
    def __init__(self, policy: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, *,
                 loss: LossSettings, ref: Optional[torch.nn.Module] = None, ppo_epochs: int = 1,
                 mini_batches: int = 1, max_tokens_per_microbatch: int = 16384, max_grad_norm: float = 1.0,
                 packing: bool = False, pack_tokens: int = 4096, share_prompts: bool = False,
                 autocast: bool = False):
        self.policy, self.ref = policy, ref
        self.optimizer, self.scheduler = optimizer, scheduler
        self.loss = loss
        self.ppo_epochs, self.mini_batches = ppo_epochs, mini_batches
        self.max_grad_norm = max_grad_norm
        self.forward = Forward(max_tokens_per_microbatch, packing, pack_tokens, share_prompts, autocast)

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    # ------------------------------------------------------------------ log-probs
    def logprobs(self, batch: TrainBatch, model: torch.nn.Module) -> torch.Tensor:
        """(N, T) log-probs of every target under `model`, one forward per micro-batch."""
        return self.forward.all_logprobs(model, batch)

    def fill_logprobs(self, batch: TrainBatch, *, old: bool = True) -> None:
        """logp_old (unless `old` is False: the update will take it from its own forward) and logp_ref."""
        if old:
            batch.logp_old = self.logprobs(batch, self.policy)
        if self.ref is not None:
            batch.logp_ref = self.logprobs(batch, self.ref)

    @property
    def on_policy(self) -> bool:
        """One optimizer step per batch: the policy that sampled is the one the single update starts from."""
        return self.ppo_epochs == 1 and self.mini_batches == 1

    # ------------------------------------------------------------------ update
    def update(self, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]:
        """PPO epochs x mini-batches of optimizer steps. With batch.logp_old None (on-policy only), the
        old log-probs are the update's own forward, detached (ratio exactly 1, the same gradient), and
        are written into batch.logp_old for the caller: one forward pass fewer per step."""
        self.policy.train()
        if batch.logp_old is None:
            if not self.on_policy:
                raise ValueError("logp_old may come from the update's forward only with one optimizer step per batch")
            return self._step(batch, capture=True)
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
        return {k: v / max(count, 1) for k, v in totals.items()}

    def _step(self, mini: TrainBatch, capture: bool = False) -> dict[str, float]:
        """One optimizer step on a mini-batch, accumulating micro-batch gradients. capture: mini.logp_old
        is filled from each micro-batch's forward (detached) before its loss uses it."""
        s = self.loss
        norm = {"num_tokens": mini.loss_mask.sum().clamp(min=1).item(), "num_seqs": float(mini.num_rows),
                "scale": s.loss_scale}
        self.optimizer.zero_grad(set_to_none=True)
        stats = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0, "entropy": 0.0, "clip_frac": 0.0,
                 "clip_frac_low": 0.0, "clip_frac_high": 0.0}
        n_tok = norm["num_tokens"]
        if capture:
            mini.logp_old = torch.zeros_like(mini.loss_mask)
        for rows in self.forward.split(mini):
            mb = mini.select(rows)
            dev = self.device
            mask, adv = mb.loss_mask.to(dev), mb.advantages.to(dev)
            logp, entropy = self.forward.logprobs(self.policy, mb, with_entropy=True)
            if capture:
                mb.logp_old = logp.detach()
                mini.logp_old[rows, : logp.shape[1]] = mb.logp_old.cpu().to(mini.loss_mask.dtype)
            pg, m = clipped_surrogate(logp, mb.logp_old.to(dev), adv, mask, clip_low=s.clip_low,
                                      clip_high=s.clip_high, dual_clip=s.dual_clip)
            if s.tis_cap is not None and mb.logp_engine is not None:
                pg = pg * truncated_is_weights(mb.logp_old.to(dev), mb.logp_engine.to(dev), s.tis_cap)
            loss = aggregate(pg, mask, s.loss_agg, **norm)
            stats["pg_loss"] += loss.item()
            if s.kl_coef > 0 and s.kl_in_loss:
                kl = kl_penalty(logp, mb.logp_ref.to(dev), s.kl_estimator)
                kl_term = aggregate(kl, mask, s.loss_agg, **norm)
                loss = loss + s.kl_coef * kl_term
                stats["kl"] += kl_term.item()
            if s.entropy_coef > 0:
                loss = loss - s.entropy_coef * aggregate(entropy, mask, s.loss_agg, **norm)
            loss.backward()
            stats["loss"] += loss.item()
            share = mask.sum().item() / n_tok  # token-weighted averages of the per-micro-batch metrics
            stats["entropy"] += masked_sum(entropy.detach(), mask).item() / n_tok
            for k in ("clip_frac", "clip_frac_low", "clip_frac_high"):
                stats[k] += m[k].item() * share
        params = [p for p in self.policy.parameters() if p.requires_grad]
        if self.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        stats["grad_norm"] = float(grad_norm)
        stats["lr"] = self.optimizer.param_groups[0]["lr"]
        return stats


def build_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, betas, schedule: str,
                    warmup: int, total_steps: int):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay, betas=tuple(betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(schedule, warmup, total_steps))
    return opt, sched


def lr_lambda(schedule: str, warmup: int, total: int):
    import math

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        return {"constant": 1.0, "cosine": 0.5 * (1 + math.cos(math.pi * frac)), "linear": 1.0 - frac}[schedule]

    return f
