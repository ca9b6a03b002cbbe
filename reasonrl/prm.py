"""The implicit PRM (PRIME / OPRL): a causal LM pi_phi, trained online from outcome labels only, and
a frozen reference pi_ref; the per-token process reward is beta * (log pi_phi - log pi_ref).

`token_rewards(batch)` gives q = log pi_phi - log pi_ref on the response tokens (no gradient).
`update(batch, acc)` takes one optimiser step on either PRIME's cross-entropy of sigmoid(beta * sum q)
against correctness, or a trajectory DPO loss over (correct, incorrect) pairs within each group.
The gradient is exact over micro-batches: a no-grad pass gives every sequence score, autograd on
those gives dL/ds, and each micro-batch back-propagates s * dL/ds, so pairwise losses need no
whole-batch graph. Metrics: loss, accuracy of sigmoid(beta * sum q) against the verifier, AUROC.
Not yet wired into the training loop (the implicit-PRM issue continues from here).
"""
from __future__ import annotations

import torch

from reasonrl.algorithms.masked import masked_sum
from reasonrl.algorithms.process_rewards import auroc, group_dpo_loss
from reasonrl.batching import micro_batches
from reasonrl.models import token_logprobs
from reasonrl.registry import Registry
from reasonrl.types import TrainBatch

PRM_LOSSES: Registry = Registry("PRM loss")


@PRM_LOSSES.register("ce")
def ce_loss(scores: torch.Tensor, acc: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(scores, acc.to(scores.dtype))


PRM_LOSSES.register("dpo")(group_dpo_loss)


class ImplicitPRM:
    def __init__(self, model: torch.nn.Module, ref: torch.nn.Module, *, beta: float = 0.05, lr: float = 1e-6,
                 loss: str = "ce", max_grad_norm: float = 10.0, max_tokens_per_microbatch: int = 16384):
        self.model, self.ref = model, ref
        self.beta, self.loss_fn, self.max_grad_norm = beta, PRM_LOSSES.get(loss), max_grad_norm
        self.max_tokens = max_tokens_per_microbatch
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _logp(self, model: torch.nn.Module, batch: TrainBatch) -> torch.Tensor:
        out = torch.zeros_like(batch.loss_mask)
        for rows in micro_batches(batch.attention_mask.sum(1), self.max_tokens):
            mb = batch.select(rows)
            logp, _ = token_logprobs(model, mb.input_ids.to(self.device), mb.attention_mask.to(self.device))
            out[rows, : logp.shape[1]] = logp.cpu().to(out.dtype)
        return out

    def token_rewards(self, batch: TrainBatch, logp_ref: torch.Tensor | None = None) -> torch.Tensor:
        """(N, T) q = log pi_phi - log pi_ref on the loss mask (multiply by beta for the process reward)."""
        ref = self._logp(self.ref, batch) if logp_ref is None else logp_ref
        q = self._logp(self.model, batch) - ref
        return torch.where(batch.loss_mask.bool(), q, torch.zeros_like(q))

    def update(self, batch: TrainBatch, acc: torch.Tensor, logp_ref: torch.Tensor | None = None) -> dict[str, float]:
        """One optimiser step on the PRM from outcome labels acc (N,). Returns metrics before the step."""
        self.model.train()
        ref = self._logp(self.ref, batch) if logp_ref is None else logp_ref
        mask = batch.loss_mask
        with torch.no_grad():
            scores = self.beta * masked_sum(self._logp(self.model, batch) - ref, mask, dim=-1)
        leaf = scores.clone().requires_grad_(True)
        loss = self.loss_fn(leaf, acc.to(leaf.dtype), batch.group_ids)
        (grad,) = torch.autograd.grad(loss, leaf)
        self.optimizer.zero_grad(set_to_none=True)
        for rows in micro_batches(batch.attention_mask.sum(1), self.max_tokens):
            mb = batch.select(rows)
            dev = self.device
            logp, _ = token_logprobs(self.model, mb.input_ids.to(dev), mb.attention_mask.to(dev))
            s = self.beta * masked_sum(logp - ref[rows, : logp.shape[1]].to(dev), mb.loss_mask.to(dev), dim=-1)
            (s * grad[rows].to(dev)).sum().backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm) if self.max_grad_norm > 0 else 0.0
        self.optimizer.step()
        return {"prm/loss": loss.item(), "prm/accuracy": ((scores > 0) == acc.bool()).float().mean().item(),
                "prm/auroc": auroc(scores, acc), "prm/grad_norm": float(grad_norm)}

