"""The implicit PRM (PRIME / OPRL): a causal LM pi_phi, trained online from outcome labels only, and
a frozen reference pi_ref; the per-token process reward is beta * (log pi_phi - log pi_ref)
(docs/algorithms.md 4).

`token_rewards(batch)` gives q = log pi_phi - log pi_ref on the response tokens (no gradient).
`update(batch, acc)` takes one optimiser step on either PRIME's cross-entropy of sigmoid(beta * sum q)
against correctness (acc may be soft: `warmstart` fits value targets in [0, 1] the same way), or a
trajectory DPO loss over (correct, incorrect) pairs within each group. The gradient is exact over
micro-batches: the cross-entropy is a mean of per-row terms, so each micro-batch back-propagates its
share in one forward; for the pairwise DPO loss a no-grad pass gives every sequence score, autograd
gives dL/ds, and each micro-batch back-propagates s * dL/ds. Metrics: loss, accuracy of
sigmoid(beta * sum q) against the verifier, AUROC.

Everything else reaches the PRM through these methods (and state_dict / save_pretrained for checkpoints);
the training loop drives it through reasonrl/process.py (reference choice, update timing, steps).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch

from reasonrl import faults
from reasonrl.algorithms.process_rewards import auroc, group_dpo_loss, sequence_logit
from reasonrl.batching import Forward
from reasonrl.checkpoint import safe_load
from reasonrl.distributed import Dist, to_float
from reasonrl.logprobs import DEFAULT_MAX_LOGITS
from reasonrl.lora import load_model_state, save_model
from reasonrl.models import Reference
from reasonrl.registry import Registry
from reasonrl.types import TrainBatch

PRM_LOSSES: Registry = Registry("PRM loss")


@PRM_LOSSES.register("ce")
def ce_loss(scores: torch.Tensor, acc: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(scores, acc.to(scores.dtype))


ce_loss.separable = True  # a mean of per-row terms: micro-batches can back-propagate their share directly


PRM_LOSSES.register("dpo")(group_dpo_loss)


def adamw(lr: float) -> Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]:
    return lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=0.0)  # PRIME, verl: no decay


class ImplicitPRM:
    def __init__(self, model: torch.nn.Module, ref: Reference | torch.nn.Module | None, *, beta: float = 0.05,
                 lr: float = 1e-6,
                 loss: str = "ce", max_grad_norm: float = 10.0, max_tokens_per_microbatch: int = 16384,
                 max_logits: int = DEFAULT_MAX_LOGITS, share_prompts: bool = False,
                 optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
                 dist: Dist = Dist()):
        """ref: the frozen reference (a module is taken as a frozen copy); None: the caller supplies the reference
        log-probs (OPRL: the sampling policy's). share_prompts: each group's prompt goes through the PRM and its
        reference once (reasonrl/prefix.py), as in the learner. dist: the ranks the batch is spread over (the loss,
        its normaliser and the metrics are the whole batch's; only the separable CE loss spans ranks)."""
        self.model, self.dist = model, dist
        self.ref = ref if ref is None or isinstance(ref, Reference) else Reference(ref)
        self.beta, self.loss_fn, self.max_grad_norm = beta, PRM_LOSSES.get(loss), max_grad_norm
        self.forward = Forward(max_tokens_per_microbatch, share_prompts=share_prompts, max_logits=max_logits)
        self.optimizer = (optimizer or adamw(lr))([p for p in model.parameters() if p.requires_grad])
        self.oom_retries = 0  # micro-batch budget halvings this update (reasonrl/faults.py)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ scoring
    def logp(self, batch: TrainBatch) -> torch.Tensor:
        """(N, T) log-probs of the targets under the PRM, no gradient."""
        return self.forward.all_logprobs(self.model, batch)

    def ref_logp(self, batch: TrainBatch) -> torch.Tensor:
        """(N, T) log-probs of the targets under the frozen reference, no gradient."""
        if self.ref is None:
            raise ValueError("this PRM has no reference model of its own (prm.reference=policy): pass the "
                             "sampling policy's log-probs instead")
        with self.ref.scoring() as ref:
            return self.forward.all_logprobs(ref, batch)

    def token_rewards(self, batch: TrainBatch, logp_ref: torch.Tensor | None = None) -> torch.Tensor:
        """(N, T) q = log pi_phi - log pi_ref on the loss mask (multiply by beta for the process reward)."""
        ref = self.ref_logp(batch) if logp_ref is None else logp_ref
        q = self.logp(batch) - ref
        return torch.where(batch.loss_mask.bool(), q, torch.zeros_like(q))

    def sequence_scores(self, batch: TrainBatch, logp_ref: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) beta * sum q: the implicit ORM's logit that each response is correct."""
        return sequence_logit(self.token_rewards(batch, logp_ref), batch.loss_mask, self.beta)

    # ------------------------------------------------------------------ learning
    def update(self, batch: TrainBatch, acc: torch.Tensor, logp_ref: torch.Tensor | None = None
               ) -> tuple[dict[str, float], torch.Tensor]:
        """One optimiser step on the PRM from outcome labels acc (N,) (0/1, or soft targets in [0, 1] with the
        CE loss). Returns the metrics (of the PRM before the step) and its pre-step log-probs (N, T), so
        update=after scoring needs no extra forward."""
        ref = self.ref_logp(batch) if logp_ref is None else logp_ref
        acc = acc.float()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()
        backward = self._backward_separable if getattr(self.loss_fn, "separable", False) else self._backward_pairwise
        phi, loss = faults.halving_retries(lambda: backward(batch, acc, ref), self, self.optimizer, self.dist)
        scores = sequence_logit(phi - ref, batch.loss_mask, self.beta)
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = (torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm) if self.max_grad_norm > 0 else
                     torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
        stepped = faults.finite(self.dist, self.dist.sum(loss), grad_norm)
        if stepped:
            self.optimizer.step()
        else:  # a non-finite loss or gradient: no step (reasonrl/faults.py)
            self.optimizer.zero_grad(set_to_none=True)
        scores, acc = (torch.cat(x) for x in zip(*self.dist.gather((scores, acc))))  # the whole batch's
        metrics = {"prm/loss": self.dist.sum(loss), "prm/accuracy": ((scores > 0) == acc.bool()).float().mean().item(),
                   "prm/auroc": auroc(scores, acc), "prm/grad_norm": to_float(grad_norm),
                   "prm/nonfinite_updates": int(not stepped),
                   "prm/oom_retries": self.oom_retries}
        self.oom_retries = 0
        return metrics, phi

    def warmstart(self, batches: Iterable[tuple[TrainBatch, torch.Tensor]]) -> list[float]:
        """Fit value targets before RL (ReST-MCTS* collection): one CE step per (batch, targets in [0, 1]).
        Returns each step's loss."""
        if not getattr(self.loss_fn, "separable", False):
            raise ValueError("warm-starting fits soft value targets with the cross-entropy: it needs prm.loss=ce")
        return [self.update(batch, targets)[0]["prm/loss"] for batch, targets in batches]

    def _scores(self, mb: TrainBatch, ref: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp, _ = self.forward.logprobs(self.model, mb)
        q = logp - ref[rows, : logp.shape[1]].to(self.device)
        return logp, sequence_logit(q, mb.loss_mask.to(self.device), self.beta)

    def _backward_separable(self, batch, acc, ref) -> tuple[torch.Tensor, float]:
        """A mean of per-row terms: each micro-batch back-propagates its share in the same forward."""
        phi = torch.zeros_like(batch.loss_mask)
        d = self.dist
        n, total = d.sum(batch.num_rows), 0.0  # every rank's rows
        splits = self.forward.split(batch)
        for _ in range(int(d.max(len(splits))) - len(splits)):  # sharded: as many micro-batches as every rank
            self.forward.padding_pass(self.model, batch.select(splits[0]))
        for rows in splits:
            mb = batch.select(rows)
            logp, s = self._scores(mb, ref, rows)
            loss = self.loss_fn(s, acc[rows].to(s.device), mb.group_ids) * (len(rows) / n)
            (loss * d.grad_scale if d.enabled else loss).backward()
            total += loss.item()
            phi[rows, : logp.shape[1]] = logp.detach().cpu().to(phi.dtype)
        return phi, total

    def _backward_pairwise(self, batch, acc, ref) -> tuple[torch.Tensor, float]:
        """Losses that couple rows: a no-grad pass gives every score, autograd gives dL/ds, then each
        micro-batch back-propagates s * dL/ds (the exact gradient without a whole-batch graph)."""
        d = self.dist
        phi = self.logp(batch)
        leaf = sequence_logit(phi - ref, batch.loss_mask, self.beta).requires_grad_(True)
        if d.enabled:  # a mean over every rank's pairs (groups never span ranks): this rank's sum / all pairs
            pairs = self.loss_fn.pairs(leaf, acc, batch.group_ids)
            loss = pairs.sum() / max(d.sum(len(pairs)), 1)
        else:
            loss = self.loss_fn(leaf, acc, batch.group_ids)
        (grad,) = torch.autograd.grad(loss, leaf)
        self.model.train()
        splits = self.forward.split(batch)
        for _ in range(int(d.max(len(splits))) - len(splits)):  # sharded: as many micro-batches as every rank
            self.forward.padding_pass(self.model, batch.select(splits[0]))
        for rows in splits:
            _, s = self._scores(batch.select(rows), ref, rows)
            term = (s * grad[rows].to(s.device)).sum()
            (term * d.grad_scale if d.enabled else term).backward()
        return phi, loss.item()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """The trained PRM's weights and its optimiser state (the frozen reference is not state)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def save_pretrained(self, directory: Path) -> None:
        """The PRM in Hugging Face format (search/evaluate.py loads it from there), and its optimiser state."""
        save_model(self.model, directory, merged=True)
        torch.save(self.optimizer.state_dict(), Path(directory) / "optimizer.pt")

    def load_pretrained(self, directory: Path, optimizer_state: dict | None = None) -> None:
        """Restore what save_pretrained wrote. optimizer_state: where checkpoints written before the PRM kept its
        own optimizer.pt held it (trainer_state.pt's "prm_optimizer"), used only when optimizer.pt is absent."""
        load_model_state(self.model, directory)
        path = Path(directory) / "optimizer.pt"
        if path.is_file():
            optimizer_state = safe_load(path)
        if optimizer_state is None:
            raise RuntimeError(f"{directory} holds PRM weights but no optimizer state (optimizer.pt)")
        self.optimizer.load_state_dict(optimizer_state)
