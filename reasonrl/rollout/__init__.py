"""Rollout engines, selected by `rollout.engine`. Each factory takes (policy, tokenizer, rollout section,
*, dtype, seed) and may carry a `check(rollout section) -> Problems` for its own settings."""
from reasonrl.registry import Problems

SEEDINGS = ("auto", "batch", "prompt")  # rollout.seeding
from reasonrl.rollout import vllm as _vllm  # noqa: F401  (registers "vllm"; imports vLLM only when built)
from reasonrl.rollout.base import ENGINES, RolloutEngine
from reasonrl.rollout.hf import HFEngine  # registers "hf"


def check_rollout(r) -> Problems:
    """The rollout section (RolloutConfig), and the chosen engine's own rules."""
    p = Problems()
    p.known(ENGINES, "rollout.engine", r.engine)
    p.need(r.prompts_per_step >= 1, "rollout.prompts_per_step", r.prompts_per_step, "must be >= 1")
    p.need(r.group_size >= 2, "rollout.group_size", r.group_size,
           "group advantages need at least 2 responses per prompt; use 2 or more (8 is typical)")
    p.need(r.temperature > 0, "rollout.temperature", r.temperature, "training needs sampling: use a temperature > 0")
    p.need(0 < r.top_p <= 1, "rollout.top_p", r.top_p, "must be in (0, 1]")
    p.need(r.top_k >= 0, "rollout.top_k", r.top_k, "must be >= 0 (0 = off)")
    p.need(r.max_new_tokens >= 1, "rollout.max_new_tokens", r.max_new_tokens, "must be >= 1")
    p.need(r.batch_rows >= 1, "rollout.batch_rows", r.batch_rows, "must be >= 1")
    p.one_of(SEEDINGS, "rollout.seeding", r.seeding)
    p.need(r.logprob_warn > 0, "rollout.logprob_warn", r.logprob_warn, "must be > 0")
    p.need(0 < r.vllm_memory < 1, "rollout.vllm_memory", r.vllm_memory, "must be in (0, 1)")
    p.need(r.vllm_max_model_len >= 0, "rollout.vllm_max_model_len", r.vllm_max_model_len, "must be >= 0 (0 = the model's)")
    p.need(r.vllm_sync_tol > 0, "rollout.vllm_sync_tol", r.vllm_sync_tol, "must be > 0")
    if r.engine in ENGINES and hasattr(ENGINES.get(r.engine), "check"):
        p += ENGINES.get(r.engine).check(r)
    return p


__all__ = ["SEEDINGS", "ENGINES", "HFEngine", "RolloutEngine", "check_rollout"]
