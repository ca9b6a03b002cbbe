"""Pure tensor math: advantages, losses, reductions, reward transforms. No I/O, no config objects."""
from reasonrl.algorithms.advantages import ADVANTAGES, broadcast_to_tokens, compute_advantages
from reasonrl.algorithms.losses import (KL_ESTIMATORS, clipped_surrogate, entropy_from_logits, kl_penalty,
                                       logprob_gap, truncated_is_weights)
from reasonrl.algorithms.masked import LOSS_AGGREGATIONS, aggregate, masked_mean, masked_sum, masked_whiten
from reasonrl.algorithms.process_advantages import PROCESS_ADVANTAGES, ProcessOptions
from reasonrl.algorithms.rewards import groups_with_signal, kl_in_reward, overlong_penalty
from reasonrl.algorithms.shaping import SHAPINGS

__all__ = [
    "ADVANTAGES", "KL_ESTIMATORS", "LOSS_AGGREGATIONS", "aggregate", "broadcast_to_tokens", "clipped_surrogate",
    "compute_advantages", "entropy_from_logits", "groups_with_signal", "kl_in_reward", "kl_penalty", "logprob_gap", "masked_mean",
    "masked_sum", "masked_whiten", "overlong_penalty", "truncated_is_weights", "PROCESS_ADVANTAGES", "ProcessOptions", "SHAPINGS",
]
