"""Per-token log-probabilities (and entropies) of target tokens under a causal LM, without holding the
(tokens x vocabulary) fp32 logits of a whole micro-batch.

A model is run as its decoder (hidden states) and its output head. When the logits of the positions asked
for would exceed `max_logits` elements (a 50k-150k vocabulary makes that a few hundred tokens' worth), the
head is applied `chunk` positions at a time and, under autograd, each chunk is recomputed in the backward
pass (activation checkpointing), so no chunk's logits outlive it; below the bound the logits are computed
in one piece exactly as model(...).logits would (the same operations in the same order: the numbers are
bit-for-bit those of a plain forward).

Models whose logits are not head(hidden) (soft-capped or scaled logits) run through model(...).logits.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint

from reasonrl.distributed import is_sharded

DEFAULT_MAX_LOGITS = 64 * 2**20  # elements (256 MB in fp32) of logits computed at once
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def logprobs_from_logits(logits: torch.Tensor, targets: torch.Tensor, *, with_entropy: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logits (..., V) and target ids (...) -> log-prob of each target (...) [, entropy of the distribution
    (...)], in float32 whatever the logits' dtype."""
    logp_all = torch.log_softmax(logits.float(), -1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
    return logp, entropy


def split_lm(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder returning hidden states, output head) when the model's logits are head(last hidden state);
    None for a model that transforms its logits further."""
    if is_sharded(model):  # FSDP gathers the root's weights (embeddings, head) only in the model's own forward
        return None
    cfg = getattr(model, "config", None)
    if any(getattr(cfg, name, None) not in (None, 1.0) for name in _LOGIT_TRANSFORMS):
        return None
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError, ValueError):
        return None
    return (decoder, head) if decoder is not None and head is not None and decoder is not model else None


class Hidden:
    """One forward of `model` that keeps its last hidden states and knows how to turn them into logits."""

    def __init__(self, model: torch.nn.Module, **inputs):
        parts = split_lm(model)
        if parts is None:  # logits straight from the model: the "head" is the identity
            self.output = model(**inputs)
            self.states, self.head = self.output.logits, (lambda x: x)
            self.vocab = self.states.shape[-1]
        else:
            decoder, head = parts
            self.output = decoder(**inputs)
            self.states, self.head, self.vocab = self.output.last_hidden_state, head, head.out_features

    @property
    def past_key_values(self):
        return self.output.past_key_values


def select_logprobs(pieces: list[tuple[Hidden, Callable[[torch.Tensor], torch.Tensor]]], targets: torch.Tensor, *,
                    with_entropy: bool = False, max_logits: int = DEFAULT_MAX_LOGITS
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of `targets` (N, T) at positions picked from one or more forwards: each piece is a Hidden and
    a function that selects (and reshapes) positions of its (B, S, .) states; the selections, concatenated
    along dim 1, line up with targets. Chunked through the head past max_logits elements."""
    vocab = pieces[0][0].vocab
    if targets.numel() * vocab <= max_logits:  # in one piece: logits of the full forward, then selected
        logits = torch.cat([pick(h.head(h.states)) for h, pick in pieces], dim=1)
        return logprobs_from_logits(logits, targets, with_entropy=with_entropy)
    head = pieces[0][0].head
    hidden = torch.cat([pick(h.states) for h, pick in pieces], dim=1)
    return chunked_logprobs(head, hidden, targets, with_entropy=with_entropy,
                            chunk=max(1, max_logits // vocab))


def chunked_logprobs(head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor, *,
                     with_entropy: bool = False, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor | None]:
    """hidden (..., H), targets (...) -> log-probs (...) [, entropies], the head applied to `chunk` positions at a
    time; with autograd on, each chunk's logits are recomputed in backward instead of kept."""
    shape, h, t = targets.shape, hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)

    def piece(h_part: torch.Tensor, t_part: torch.Tensor):
        logp, ent = logprobs_from_logits(head(h_part), t_part, with_entropy=with_entropy)
        return (logp, ent) if with_entropy else (logp,)

    grad = torch.is_grad_enabled() and (h.requires_grad or any(p.requires_grad for p in _params(head)))
    outs = [checkpoint(piece, h[i:i + chunk], t[i:i + chunk], use_reentrant=False) if grad else
            piece(h[i:i + chunk], t[i:i + chunk]) for i in range(0, h.shape[0], chunk)]
    logp = torch.cat([o[0] for o in outs]).view(shape)
    return logp, torch.cat([o[1] for o in outs]).view(shape) if with_entropy else None


def _params(module) -> list[torch.nn.Parameter]:
    return list(module.parameters()) if isinstance(module, torch.nn.Module) else []


def token_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   *, with_entropy: bool = False, max_logits: int = DEFAULT_MAX_LOGITS
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(input_ids[:, t+1] | input_ids[:, :t+1]) for t < S-1.

    input_ids, attention_mask (N, S), right-padded -> logp (N, S-1) [, entropy (N, S-1)].
    """
    out = Hidden(model, input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return select_logprobs([(out, lambda x: x[:, :-1])], input_ids[:, 1:], with_entropy=with_entropy,
                           max_logits=max_logits)
