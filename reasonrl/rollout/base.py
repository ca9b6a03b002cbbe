"""The RolloutEngine protocol (what the loop needs from a generator) and ENGINES, the registry of engine
factories that rollout.engine selects: factory(policy, tokenizer, rollout_section, *, dtype, seed, dist), with
dist the rank's reasonrl.distributed.Dist (under torchrun every rank builds its own engine at the same point)."""
from __future__ import annotations

from typing import Protocol

import torch

from reasonrl.registry import Registry
from reasonrl.types import Rollout, SamplingParams

ENGINES: Registry = Registry("rollout engine")


class RolloutEngine(Protocol):
    pad_id: int  # the token that pads the learner's batches (the tokenizer's pad, else its EOS)

    def generate(self, prompts: list[str], params: SamplingParams, generator: torch.Generator) -> list[list[Rollout]]:
        """params.n responses for each prompt, in prompt order. Deterministic given `generator`'s state."""
        ...

    def prompt_ids(self, prompt: str) -> list[int]:
        """The token ids the engine conditions on for `prompt`."""
        ...

    def sync_weights(self, policy: torch.nn.Module) -> None:
        """Make the engine serve the policy's current weights."""
        ...

    def close(self) -> None:
        """Free what the engine holds (its own weights, caches, files)."""
        ...
