"""Dense process rewards for one training batch: the implicit PRM scores the step's rollouts and learns
from their verifier outcomes, in the order the config asks.

    reference log-probs -> score and update (update=after: score, then one PRM step on the same
    forward; update=before: one PRM step, then score) -> step ends -> process values -> gate

The reference is the frozen initial model (PRIME, prm.reference=frozen) or the policy that sampled the
rollouts (OPRL / iStar, prm.reference=policy: the batch's logp_old). The values feed a
PROCESS_ADVANTAGES estimator (reasonrl/algorithms/process_advantages.py).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch

from reasonrl.algorithms.process_advantages import close_last_step, gate_rows, process_values
from reasonrl.algorithms.process_rewards import auroc, implicit_q
from reasonrl.batching import collate
from reasonrl.config import PrmConfig
from reasonrl.models import frozen_copy, load_model
from reasonrl.prm import ImplicitPRM
from reasonrl.steps import step_end_tokens
from reasonrl.types import RolloutGroup, TrainBatch


@dataclass
class ProcessRewards:
    values: torch.Tensor  # (N, T) process values on step ends
    ends: torch.Tensor  # (N, T) 1 on the last token of each step
    metrics: dict


def build_prm(policy: torch.nn.Module, cfg: PrmConfig, *, dtype: str, attn_implementation: str,
              max_tokens_per_microbatch: int, initial_ref: torch.nn.Module | None = None) -> ImplicitPRM:
    """The PRM and its reference, both starting from prm.path or from a copy of the policy's weights.
    initial_ref: a frozen copy of the policy's initial weights that already exists (the KL reference);
    it is the PRM's reference too when the PRM starts from the policy, instead of a second copy."""
    if cfg.path:
        model = load_model(cfg.path, dtype=dtype, attn_implementation=attn_implementation,
                           device=next(policy.parameters()).device)
        if model.config.vocab_size != policy.config.vocab_size:
            raise ValueError(f"prm.path={cfg.path!r} has a vocabulary of {model.config.vocab_size} tokens but the "
                             f"policy has {policy.config.vocab_size}: the PRM must share the policy's tokenizer")
    else:
        model = copy.deepcopy(policy)
    model.requires_grad_(True)
    ref = None
    if cfg.reference == "frozen":
        ref = initial_ref if (initial_ref is not None and not cfg.path) else frozen_copy(model)
    return ImplicitPRM(model, ref, beta=cfg.beta, lr=cfg.lr, loss=cfg.loss, max_grad_norm=cfg.max_grad_norm,
                       max_tokens_per_microbatch=max_tokens_per_microbatch)


def reference_logp(prm: ImplicitPRM, batch: TrainBatch, cfg: PrmConfig) -> torch.Tensor:
    if cfg.reference == "policy":
        assert batch.logp_old is not None, "fill the batch's log-probs before scoring with reference=policy"
        return batch.logp_old
    if cfg.path is None and batch.logp_ref is not None:
        return batch.logp_ref  # the KL reference is the PRM's reference (build_prm): reuse its forward
    return prm.logp(batch, prm.ref)


def score_and_learn(prm: ImplicitPRM, batch: TrainBatch, correct: torch.Tensor, cfg: PrmConfig
                    ) -> tuple[torch.Tensor, dict]:
    """(N, T) q = log pi_phi - log pi_ref for the batch, and the PRM update's metrics."""
    ref = reference_logp(prm, batch, cfg)
    metrics, phi = prm.update(batch, correct, ref)
    if cfg.update == "after":  # scored by the PRM as it was before this step (its update's own forward)
        return implicit_q(phi, ref, batch.loss_mask), metrics
    return prm.token_rewards(batch, ref), metrics


def step_ends(groups: list[RolloutGroup], batch: TrainBatch, tokenizer, split: str) -> torch.Tensor:
    """(N, T) 1 on the token that closes each step of each response (steps.py's splitter)."""
    ends = torch.zeros_like(batch.loss_mask)
    pieces: dict[int, str] = {}
    row = 0
    for group in groups:
        start = len(group.prompt_ids) - 1  # target index of the first response token
        for r in group.rollouts:
            texts = []
            for t in r.response_ids:
                if t not in pieces:
                    pieces[t] = tokenizer.decode([t], skip_special_tokens=True)
                texts.append(pieces[t])
            for e in step_end_tokens(texts, split):
                ends[row, start + e] = 1
            row += 1
    return close_last_step(ends, batch.loss_mask)


def process_rewards(prm: ImplicitPRM, batch: TrainBatch, groups: list[RolloutGroup], outcome: torch.Tensor,
                    correct: torch.Tensor, tokenizer, cfg: PrmConfig) -> ProcessRewards:
    """Score, learn, and turn q into process values for the batch. outcome, correct: (N,)."""
    q, metrics = score_and_learn(prm, batch, correct.float(), cfg)
    mask = batch.loss_mask
    ends = mask.clone() if cfg.granularity == "token" else step_ends(groups, batch, tokenizer, cfg.step_split)
    values = process_values(q, ends, mask, beta=cfg.beta, shaping=cfg.shaping, eta=cfg.eta)
    values = gate_rows(values, outcome, cfg.gate_threshold)
    per_row = values.sum(-1)
    metrics.update({"process/return": per_row.mean().item(), "process/steps": ends.sum(-1).float().mean().item(),
                    "process/return_correct": per_row[correct.bool()].mean().item() if correct.any() else 0.0,
                    "process/return_wrong": per_row[~correct.bool()].mean().item() if (~correct.bool()).any() else 0.0})
    return ProcessRewards(values, ends, metrics)


def held_out_auroc(prm: ImplicitPRM, groups: list[RolloutGroup], correct: torch.Tensor, pad_id: int,
                   cfg: PrmConfig, policy_logp: Callable[[TrainBatch], torch.Tensor]) -> float:
    """AUROC of beta * sum q predicting correctness on responses the PRM never trained on."""
    batch = collate(groups, pad_id)
    ref = policy_logp(batch) if cfg.reference == "policy" else prm.logp(batch, prm.ref)
    return auroc(prm.sequence_scores(batch, ref), correct)
