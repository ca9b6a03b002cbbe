"""Shared-prompt forward: each distinct prompt of a micro-batch goes through the model once.

The G rows of a group repeat one prompt, and a plain forward recomputes it G times (with its
gradient). Here the micro-batch's distinct prompts run first (left-padded, U rows) with a KV cache,
the cache is indexed out to the N rows (a differentiable gather, so the prompt's gradient sums over
its rows), and the responses run once on top of it. Attention, and therefore every log-prob and
gradient, is the same as the padded forward's (tested); the compute on prompts drops by G times.

Micro-batches are built from whole groups (group_micro_batches) so that a group's rows meet their
prompt in one place. Outputs use the (N, S-1) target layout of logprobs.token_logprobs, with the
prompt's own targets left at 0: only response targets are ever used (loss_mask).

Neither forward mutates a cache in a way a second run would change: the prompt forward records each layer's
keys and values (a rerun overwrites them with equal ones), and the response forward reads the gathered prompt
states and returns them joined with its own (storing nothing). So the path also runs under gradient
checkpointing, whose backward reruns each layer: transformers drops the cache inside checkpointed layers unless
a layer declares that rerunning it is safe, which these caches make true (`_can_checkpoint_with_cache`, set
on the model's own layers for the duration of the call).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers.cache_utils import Cache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

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


class _Recorded(DynamicLayer):
    """Keeps the last keys / values it was given and returns them as they are (the prompt forward)."""

    def update(self, key_states, value_states, *args, **kwargs):
        self.keys, self.values, self.is_initialized = key_states, value_states, True
        return key_states, value_states


class _Prefixed(DynamicLayer):
    """Holds fixed prompt keys / values and returns them joined with the new ones, storing nothing (the
    response forward)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values, self.is_initialized = keys, values, True

    def update(self, key_states, value_states, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


@contextmanager
def _cache_safe_under_checkpointing(model: torch.nn.Module):
    """Tell the model's checkpointed layers that the caches used here survive a rerun (see the module doc)."""
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for m in layers:
        m._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for m in layers:
            del m._can_checkpoint_with_cache  # back to the class attribute


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
    if int(rlen.max()) == 0:  # no response token to score (an empty search prefix)
        zeros = torch.zeros(n, width - 1, device=dev)
        return zeros, (zeros.clone() if with_entropy else None)
    prompts = [tuple(input_ids[i, : int(plen[i])].tolist()) for i in range(n)]
    distinct = list(dict.fromkeys(prompts))
    row_to_u = torch.tensor([distinct.index(p) for p in prompts], device=dev)

    # 1. the U distinct prompts, left-padded, their keys and values recorded
    p_width = max(len(p) for p in distinct)
    p_ids = torch.tensor([[0] * (p_width - len(p)) + list(p) for p in distinct], device=dev)
    p_mask = torch.tensor([[0] * (p_width - len(p)) + [1] * len(p) for p in distinct], device=dev)
    p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
    n_layers = getattr(model.config, "get_text_config", lambda: model.config)().num_hidden_layers
    recorded = Cache(layers=[_Recorded() for _ in range(n_layers)])

    # 2. the responses on top of them, right-padded
    r_width = int(rlen.max())
    cols = torch.arange(r_width, device=dev)
    r_valid = cols[None, :] < rlen[:, None]
    src = (plen[:, None] + cols[None, :]).clamp(max=width - 1)
    r_ids = torch.where(r_valid, input_ids.gather(1, src), torch.zeros_like(src))
    mask = torch.cat([p_mask[row_to_u], r_valid.long()], dim=1)
    r_pos = plen[:, None] + cols[None, :]
    with _cache_safe_under_checkpointing(model):
        first = Hidden(model, input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, past_key_values=recorded,
                       use_cache=True)
        # (U, ...) -> (N, ...), differentiable: the prompt's gradient sums over its rows
        cache = Cache(layers=[_Prefixed(x.keys[row_to_u], x.values[row_to_u]) for x in recorded.layers])
        second = Hidden(model, input_ids=r_ids, attention_mask=mask, position_ids=r_pos, past_key_values=cache,
                        use_cache=True)

    # 3. response token j is predicted by the prompt's last position (j = 0) or response position j-1
    logp, ent = select_logprobs([(first, lambda x: x[row_to_u, -1:]), (second, lambda x: x[:, :-1])], r_ids,
                                with_entropy=with_entropy, max_logits=max_logits)
    target = plen[:, None] - 1 + cols[None, :]  # target index of response token j in the (N, S-1) layout
    pad = torch.zeros(n, width - 1 + r_width, dtype=logp.dtype, device=dev)
    place = lambda x: pad.scatter(1, target, x * r_valid)[:, : width - 1]  # noqa: E731
    return place(logp), None if ent is None else place(ent)
