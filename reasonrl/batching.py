"""Turn rollouts into padded tensors, and split rows into token-budget micro-batches."""
from __future__ import annotations

import torch

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
