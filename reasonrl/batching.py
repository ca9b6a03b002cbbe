"""Turn rollouts into padded tensors, split rows into token-budget micro-batches, and run a batch
through a model micro-batch by micro-batch (Forward)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from reasonrl.distributed import unsharded
from reasonrl.logprobs import DEFAULT_MAX_LOGITS, token_logprobs
from reasonrl.packing import packed_micro_batches, packed_token_logprobs
from reasonrl.prefix import group_micro_batches, shared_prefix_logprobs
from reasonrl.types import RolloutGroup, TrainBatch


def collate(groups: list[RolloutGroup], pad_id: int, *, mask_truncated: bool = False) -> TrainBatch:
    """Rows are prompt ++ response, right-padded, group by group (rows of one group contiguous).

    loss_mask marks the targets that are response tokens (EOS included); truncated responses
    are masked out entirely when mask_truncated is set. Advantages are left zero.
    """
    seqs, starts, ends, gids, engine_lp = [], [], [], [], []
    for g, group in enumerate(groups):
        for r in group.rollouts:
            engine_lp.append(r.logprobs)
            seqs.append(group.prompt_ids + r.response_ids)
            starts.append(len(group.prompt_ids))
            ends.append(0 if (mask_truncated and r.truncated) else len(group.prompt_ids) + len(r.response_ids))
            gids.append(g)
    n, width = len(seqs), max(len(s) for s in seqs)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s)
        attention_mask[i, : len(s)] = 1
    target_pos = torch.arange(1, width)[None, :]  # position of the target token predicted at t
    logp_engine = torch.zeros((n, width - 1), dtype=torch.float32)
    for i, (s, lp) in enumerate(zip(starts, engine_lp)):
        logp_engine[i, s - 1: s - 1 + len(lp)] = torch.tensor(lp, dtype=torch.float32)
    loss_mask = ((target_pos >= torch.tensor(starts)[:, None]) & (target_pos < torch.tensor(ends)[:, None])).float()
    return TrainBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        loss_mask=loss_mask,
        advantages=torch.zeros_like(loss_mask),
        group_ids=torch.tensor(gids),
        logp_engine=logp_engine,
        prompt_lens=torch.tensor(starts),
    )


def micro_batches(lengths: torch.Tensor, max_tokens: int) -> list[torch.Tensor]:
    """Split row indices into micro-batches whose padded size (rows x longest row) fits max_tokens.

    Rows are sorted by length first, so each micro-batch holds rows of similar length and little
    padding. A row longer than the budget gets a micro-batch of its own.
    """
    order = torch.argsort(lengths, descending=True, stable=True).tolist()
    out, current, longest = [], [], 0
    for i in order:
        length = int(lengths[i])
        if current and max(longest, length) * (len(current) + 1) > max_tokens:
            out.append(torch.tensor(current))
            current, longest = [], 0
        current.append(i)
        longest = max(longest, length)
    if current:
        out.append(torch.tensor(current))
    return out


@dataclass(frozen=True)
class Forward:
    """How a batch goes through a model, shared by the learner and the PRM: token-budget micro-batches,
    padded (length-sorted), packed without padding (reasonrl/packing.py), or padded with each group's
    prompt computed once (share_prompts, reasonrl/prefix.py; not with packing). Outputs are (N, T)
    targets; with share_prompts only the response targets are filled. The output head is applied in chunks
    when a micro-batch's logits would exceed max_logits elements (reasonrl/logprobs.py)."""

    max_tokens: int = 16384
    packing: bool = False
    pack_tokens: int = 4096
    share_prompts: bool = False
    autocast: bool = False  # bf16 autocast around the model call (weights and gradients keep their dtype)
    max_logits: int = DEFAULT_MAX_LOGITS  # logits (elements) computed at once

    def _shared(self, batch: TrainBatch) -> bool:
        return self.share_prompts and not self.packing and batch.prompt_lens is not None and batch.group_ids is not None

    def split(self, batch: TrainBatch) -> list[torch.Tensor]:
        lengths = batch.attention_mask.sum(1)
        if self.packing:
            return packed_micro_batches(lengths, self.pack_tokens)
        if self._shared(batch):
            return group_micro_batches(lengths, batch.group_ids, self.max_tokens)
        return micro_batches(lengths, self.max_tokens)

    def logprobs(self, model: torch.nn.Module, mb: TrainBatch, *, with_entropy: bool = False):
        """One micro-batch: (logp, entropy | None), on the model's device, with gradient if enabled."""
        dev = next(model.parameters()).device
        ids, mask = mb.input_ids.to(dev), mb.attention_mask.to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.autocast):
            if self._shared(mb):
                return shared_prefix_logprobs(model, ids, mask, mb.prompt_lens, with_entropy=with_entropy,
                                              max_logits=self.max_logits)
            fn = packed_token_logprobs if self.packing else token_logprobs
            return fn(model, ids, mask, with_entropy=with_entropy, max_logits=self.max_logits)

    def padding_pass(self, model: torch.nn.Module, mb: TrainBatch) -> None:
        """Forward and backward of a zero loss on mb: a sharded model's per-layer gathers and gradient reductions,
        for a rank with fewer micro-batches than its peers (no gradient of its own)."""
        if mb.num_rows == 0:
            raise RuntimeError("a rank holds no rows to learn from while others do: the loop must skip the update on every rank")
        logp, _ = self.logprobs(model, mb)
        (logp.sum() * 0.0).backward()

    @torch.no_grad()
    def all_logprobs(self, model: torch.nn.Module, batch: TrainBatch) -> torch.Tensor:
        """(N, T) log-probs of every target under `model` in eval mode, no gradient, on the CPU."""
        was_training = model.training
        model.eval()
        out = torch.zeros_like(batch.loss_mask)
        with unsharded(model):  # sharded: gathered once, so ranks may run different numbers of micro-batches
            for rows in self.split(batch):
                logp, _ = self.logprobs(model, batch.select(rows))
                out[rows, : logp.shape[1]] = logp.cpu().to(out.dtype)
        model.train(was_training)
        return out
