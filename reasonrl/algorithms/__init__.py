"""Pure tensor math: advantages, losses, reductions, reward transforms. No I/O; the math never sees a config
object (checks.py, beside it, validates the algorithm config section against these registries). The equations,
with the variant chosen where sources disagree, are in docs/algorithms.md."""
from reasonrl.algorithms.advantages import ADVANTAGES, AdvantageInputs, AdvantageOptions, broadcast_to_tokens
from reasonrl.algorithms.losses import (KL_ESTIMATORS, POLICY_LOSSES, ClipRange, kl_penalty, logprob_gap,
                                        truncated_is_weights)
from reasonrl.algorithms.masked import (LOSS_AGGREGATIONS, aggregate, masked_mean, masked_sum, masked_whiten,
                                        reverse_cumsum)
from reasonrl.algorithms import process_advantages as _process  # noqa: F401  (registers prime, oprl)
from reasonrl.algorithms.process_advantages import PROCESS_NORMS, PROCESS_SHAPINGS, prime_defaults
from reasonrl.algorithms.process_rewards import LOO_FORMS
from reasonrl.algorithms.rewards import groups_with_signal, kl_in_reward, overlong_penalty
from reasonrl.algorithms.shaping import SHAPINGS

__all__ = [
    "ADVANTAGES", "AdvantageInputs", "AdvantageOptions", "ClipRange", "KL_ESTIMATORS", "LOO_FORMS",
    "LOSS_AGGREGATIONS", "POLICY_LOSSES", "PROCESS_NORMS", "PROCESS_SHAPINGS", "SHAPINGS", "aggregate",
    "broadcast_to_tokens", "groups_with_signal", "kl_in_reward", "kl_penalty", "logprob_gap", "masked_mean",
    "masked_sum", "masked_whiten", "overlong_penalty", "prime_defaults", "reverse_cumsum", "truncated_is_weights",
]
