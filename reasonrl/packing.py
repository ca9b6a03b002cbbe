"""Padding-free packing: the rows of a micro-batch concatenated into one sequence whose position_ids
restart at 0 for every row, so no compute is spent on padding.

transformers reads the restarting position_ids (with no attention_mask) as packed sequences and keeps
attention inside each one: variable-length kernels under flash attention, a block-diagonal mask under
SDPA / eager. The mask is dense under SDPA, so a packed micro-batch is bounded by its own token budget.
Outputs come back in the padded (N, S-1) target layout of logprobs.token_logprobs, so the loss code is the
same for both paths (tested: same log-probs, loss and gradients).
"""
from __future__ import annotations

import torch

from reasonrl.logprobs import DEFAULT_MAX_LOGITS, Hidden, select_logprobs


def packed_micro_batches(lengths: torch.Tensor, max_tokens: int) -> list[torch.Tensor]:
    """Row indices in groups whose total length fits max_tokens (longest rows first, first fit)."""
    order = torch.argsort(lengths, descending=True, stable=True).tolist()
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = int(lengths[i])
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(i)
                room[b] -= n
                break
        else:  # a row longer than the budget gets a micro-batch of its own
            bins.append([i])
            room.append(max_tokens - n)
    return [torch.tensor(sorted(b)) for b in bins]


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (N, S) -> packed ids (1, L), position_ids (1, L), and the packed index (N, S-1) of the
    logit that predicts each target (-1 where the target is padding)."""
    valid = attention_mask.bool()
    lengths = valid.sum(1)
    ids = input_ids[valid][None]
    starts = torch.cumsum(lengths, 0) - lengths
    positions = torch.arange(int(lengths.sum()), device=input_ids.device) - torch.repeat_interleave(starts, lengths)
    t = torch.arange(input_ids.shape[1] - 1, device=input_ids.device)[None]
    index = torch.where(t < (lengths - 1)[:, None], starts[:, None] + t, torch.full_like(t, -1))
    return ids, positions[None], index


def packed_token_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          *, with_entropy: bool = False, max_logits: int = DEFAULT_MAX_LOGITS
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logprobs.token_logprobs computed on one packed row: logp (N, S-1) [, entropy], zero on padding."""
    ids, positions, index = pack(input_ids, attention_mask)
    out = Hidden(model, input_ids=ids, position_ids=positions, use_cache=False)
    logp_flat, ent_flat = select_logprobs([(out, lambda x: x[:, :-1])], ids[:, 1:], with_entropy=with_entropy,
                                          max_logits=max_logits)
    logp_flat, ent_flat = logp_flat[0], None if ent_flat is None else ent_flat[0]
    ok, safe = index >= 0, index.clamp(min=0)
    unpack = lambda flat: torch.where(ok, flat[safe], torch.zeros((), dtype=flat.dtype, device=flat.device))  # noqa: E731
    return unpack(logp_flat), None if ent_flat is None else unpack(ent_flat)
