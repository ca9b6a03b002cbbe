"""The plain data that crosses module boundaries.

Shape letters: B prompts, G responses per prompt (the group), N = B*G rows,
S = padded prompt+response length, T = S-1 next-token positions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: data and verifier worker processes never need to load torch
    import torch


@dataclass
class Record:
    """One problem: the prompt text, the reference the verifier checks against, the verifier's name."""

    prompt: str
    reference: Any
    verifier: str = "math"
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SamplingParams:
    """How an engine samples. temperature 0 means greedy; top_k 0 and top_p 1.0 mean off.
    ignore_eos: keep generating past EOS (fixed-length generation, for benchmarks)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


@dataclass
class Rollout:
    """One sampled response. logprobs[t] is the engine's log-prob (temperature 1, no processors)
    of response_ids[t]. finish_reason: "eos", "stop" (a stop string) or "length" (truncated)."""

    response_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class RolloutGroup:
    """The G responses to one prompt."""

    record: Record
    prompt_ids: list[int]
    rollouts: list[Rollout]


@dataclass
class TrainBatch:
    """The rows the learner trains on, right-padded.

    input_ids      (N, S)  prompt ++ response ++ pad
    attention_mask (N, S)  1 on prompt and response tokens
    loss_mask      (N, T)  1 where target input_ids[:, t+1] is a response token (T = S-1)
    advantages     (N, T)  per-token advantage (0 off the mask)
    logp_old       (N, T)  log-prob of the target under the policy that sampled it (learner recomputed)
    logp_ref       (N, T) | None   the same under the frozen reference, when a KL term needs it
    logp_engine    (N, T) | None   the rollout engine's own log-prob of each sampled response token
    group_ids      (N,)    index of the prompt (uid) each row belongs to
    prompt_lens    (N,)    prompt tokens at the start of each row
    layouts        the Forward (reasonrl/batching.py) the learner computed logp_old / logp_ref under, by name: the
                   PRM reuses one only under its own Forward (a micro-batch budget halved after an out-of-memory
                   changes the layout, and with it the floats). Not carried by select(): a row subset is a new layout
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    logp_old: torch.Tensor | None = None
    logp_ref: torch.Tensor | None = None
    group_ids: torch.Tensor | None = None
    logp_engine: torch.Tensor | None = None
    prompt_lens: torch.Tensor | None = None
    layouts: dict[str, Any] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: torch.Tensor) -> "TrainBatch":
        """Rows `rows`, trimmed to the longest of them."""
        length = int(self.attention_mask[rows].sum(1).max())
        cut = lambda x: None if x is None else x[rows, : max(length - 1, 1)]  # noqa: E731
        return TrainBatch(
            input_ids=self.input_ids[rows, :length],
            attention_mask=self.attention_mask[rows, :length],
            loss_mask=cut(self.loss_mask),
            advantages=cut(self.advantages),
            logp_old=cut(self.logp_old),
            logp_ref=cut(self.logp_ref),
            group_ids=None if self.group_ids is None else self.group_ids[rows],
            logp_engine=cut(self.logp_engine),
            prompt_lens=None if self.prompt_lens is None else self.prompt_lens[rows],
        )
