"""The RolloutEngine protocol: what the loop needs from a generator."""
from __future__ import annotations

from typing import Protocol

import torch

from reasonrl.types import Rollout, SamplingParams


class RolloutEngine(Protocol):
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
