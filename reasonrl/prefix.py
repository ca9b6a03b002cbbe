"""Shared-prompt forward: each distinct prompt of a micro-batch goes through the model once.

The G rows of a group repeat one prompt, and a plain forward recomputes it G times (with its
gradient). Here the micro-batch's distinct prompts run first (left-padded, U rows) with a KV cache,
the cache is indexed out to the N rows (a differentiable gather, so the prompt's gradient sums over
its rows), and the responses run once on top of it. Attention, and therefore every log-prob and
gradient, is the same as the padded forward's (tested); the compute on prompts drops by G times.

Micro-batches are built from whole groups (group_micro_batches) so that a group's rows meet their
prompt in one place. Outputs use the (N, S-1) target layout of logprobs.token_logprobs, with the
prompt's own targets left at 0: only response targets are ever used (loss_mask).
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from reasonrl.logprobs import DEFAULT_MAX_LOGITS, Hidden, select_logprobs


def group_micro_batches(lengths: torch.Tensor, group_ids: torch.Tensor, max_tokens: int) -> list[torch.Tensor]:
    """Row indices in micro-batches of whole groups whose padded size (rows x longest) fits max_tokens,
    longest groups first; a group that alone exceeds the budget is split into length-sorted chunks."""
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids.tolist()):
        groups.setdefault(g, []).append(i)
    order = sorted(groups.values(), key=lambda rows: -max(int(lengths[r]) for r in rows))
    out, current, longest = [], [], 0
    for rows in order:
        top = max(int(lengths[r]) for r in rows)
        if current and max(longest, top) * (len(current) + len(rows)) > max_tokens:
            out.append(torch.tensor(current))
            current, longest = [], 0
        if top * len(rows) > max_tokens:  # too big alone: chunks of this group only
            rows = sorted(rows, key=lambda r: -int(lengths[r]))
            per = max(1, max_tokens // top)
            out.extend(torch.tensor(rows[k:k + per]) for k in range(0, len(rows), per))
            continue
        current += rows
        longest = max(longest, top)
    if current:
        out.append(torch.tensor(current))
    return out


def shared_prefix_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           prompt_lens: torch.Tensor, *, with_entropy: bool = False,
                           max_logits: int = DEFAULT_MAX_LOGITS):
    """input_ids, attention_mask (N, S) right-padded rows prompt ++ response; prompt_lens (N,).
    -> logp (N, S-1) [, entropy (N, S-1)] at the response targets, 0 elsewhere.

    Rows with identical prompt tokens share one prompt forward."""
    dev = input_ids.device
    n, width = input_ids.shape
    plen, total = prompt_lens.to(dev), attention_mask.sum(1)
    rlen = total - plen
    prompts = [tuple(input_ids[i, : int(plen[i])].tolist()) for i in range(n)]
    distinct = list(dict.fromkeys(prompts))
    row_to_u = torch.tensor([distinct.index(p) for p in prompts], device=dev)

    # 1. the U distinct prompts, left-padded, with a cache
    p_width = max(len(p) for p in distinct)
    p_ids = torch.tensor([[0] * (p_width - len(p)) + list(p) for p in distinct], device=dev)
    p_mask = torch.tensor([[0] * (p_width - len(p)) + [1] * len(p) for p in distinct], device=dev)
    p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    first = Hidden(model, input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, past_key_values=cache,
                   use_cache=True)
    cache.batch_select_indices(row_to_u)  # (U, ...) -> (N, ...), differentiable

    # 2. the responses on top, right-padded
    r_width = int(rlen.max())
    cols = torch.arange(r_width, device=dev)
    r_valid = cols[None, :] < rlen[:, None]
    src = (plen[:, None] + cols[None, :]).clamp(max=width - 1)
    r_ids = torch.where(r_valid, input_ids.gather(1, src), torch.zeros_like(src))
    mask = torch.cat([p_mask[row_to_u], r_valid.long()], dim=1)
    r_pos = plen[:, None] + cols[None, :]
    second = Hidden(model, input_ids=r_ids, attention_mask=mask, position_ids=r_pos, past_key_values=cache,
                    use_cache=True)

    # 3. response token j is predicted by the prompt's last position (j = 0) or response position j-1
    logp, ent = select_logprobs([(first, lambda x: x[row_to_u, -1:]), (second, lambda x: x[:, :-1])], r_ids,
                                with_entropy=with_entropy, max_logits=max_logits)
    target = plen[:, None] - 1 + cols[None, :]  # target index of response token j in the (N, S-1) layout
    pad = torch.zeros(n, width - 1 + r_width, dtype=logp.dtype, device=dev)
    place = lambda x: pad.scatter(1, target, x * r_valid)[:, : width - 1]  # noqa: E731
    return place(logp), None if ent is None else place(ent)
