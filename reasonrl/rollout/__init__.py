"""Rollout engines, selected by `rollout.engine`. Each factory takes (policy, tokenizer, cfg)."""
from reasonrl.registry import Registry

ENGINES: Registry = Registry("rollout engine")

from reasonrl.rollout.hf import HFEngine  # noqa: E402  (registers "hf")
from reasonrl.rollout import vllm as _vllm  # noqa: E402,F401  (registers "vllm"; imports vLLM only when built)
from reasonrl.rollout.base import RolloutEngine  # noqa: E402

__all__ = ["ENGINES", "HFEngine", "RolloutEngine"]
