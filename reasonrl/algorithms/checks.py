"""The algorithm section's own check (AlgorithmConfig), next to the registries it names. It reads a config
section and returns messages; the math modules beside it never see a config object."""
from __future__ import annotations

from reasonrl.algorithms.advantages import ADVANTAGES
from reasonrl.algorithms.losses import KL_ESTIMATORS, POLICY_LOSSES
from reasonrl.algorithms.masked import LOSS_AGGREGATIONS
from reasonrl.registry import Problems


def check_algorithm(a) -> Problems:
    """Advantage estimator, group filters and reward shaping, policy loss, clip range, aggregation, KL, TIS."""
    p = Problems()
    p.known(ADVANTAGES, "algorithm.advantage", a.advantage)
    p.need(a.std_ddof in (0, 1), "algorithm.std_ddof", a.std_ddof, "use 0 or 1")
    p.need(a.adv_eps >= 0, "algorithm.adv_eps", a.adv_eps, "must be >= 0")
    p.need(0 <= a.accuracy_low <= a.accuracy_high <= 1, "algorithm.accuracy_low", a.accuracy_low,
           f"need 0 <= accuracy_low <= accuracy_high ({a.accuracy_high}) <= 1")
    p.need(a.max_gen_batches >= 1, "algorithm.max_gen_batches", a.max_gen_batches, "must be >= 1")
    p.need(a.overlong_buffer >= 0, "algorithm.overlong_buffer", a.overlong_buffer, "must be >= 0 (0 = off)")
    p.known(POLICY_LOSSES, "algorithm.policy_loss", a.policy_loss)
    p.known(LOSS_AGGREGATIONS, "algorithm.loss_agg", a.loss_agg)
    p.known(KL_ESTIMATORS, "algorithm.kl_estimator", a.kl_estimator)
    p.need(0 <= a.clip_low < 1, "algorithm.clip_low", a.clip_low, "must be in [0, 1)")
    p.need(a.clip_high >= 0, "algorithm.clip_high", a.clip_high, "must be >= 0")
    if a.dual_clip is not None:
        p.need(a.dual_clip > 1, "algorithm.dual_clip", a.dual_clip, "must be > 1, or null to turn it off")
        p.need(a.policy_loss == "ppo_clip", "algorithm.dual_clip", a.dual_clip,
               f"applies to policy_loss=ppo_clip only (this run uses {a.policy_loss}); set it to null")
    p.need(a.kl_coef >= 0, "algorithm.kl_coef", a.kl_coef, "must be >= 0")
    p.need(a.tis_cap is None or a.tis_cap >= 1, "algorithm.tis_cap", a.tis_cap, "must be >= 1, or null to turn it off")
    p.need(a.loss_scale_factor is None or a.loss_scale_factor > 0, "algorithm.loss_scale_factor", a.loss_scale_factor,
           "must be > 0 or null")
    return p
