"""Validate a whole config: each part checks its own section, this module adds the few rules that span
sections, and every problem found is raised at once as one ConfigError (key, value and fix on each line),
before any model loads.

    section     checked by
    model       reasonrl.models.check_model (model.lora: reasonrl.lora.check_lora)
    data        reasonrl.data.check_data (the task's options: reasonrl.tasks.check_task)
    verifier    verifiers.check_verifier (plug-ins are imported by the verifier pool, not here)
    rollout     reasonrl.rollout.check_rollout (and the chosen engine's own check)
    algorithm   reasonrl.algorithms.checks.check_algorithm
    prm         reasonrl.process.check_prm
    trainer     reasonrl.learner.check_trainer
    eval        reasonrl.evaluation.check_eval
    logging     reasonrl.metrics.check_logging
    checkpoint  reasonrl.checkpoint.check_checkpoint
    search      search.methods.check_search (evaluate.py only)
"""
from __future__ import annotations

from reasonrl.algorithms import ADVANTAGES
from reasonrl.algorithms.checks import check_algorithm
from reasonrl.checkpoint import check_checkpoint
from reasonrl.config import Config, ConfigError, parse, verifier_names
from reasonrl.data import check_data
from reasonrl.evaluation import check_eval
from reasonrl.learner import check_trainer
from reasonrl.lora import check_lora
from reasonrl.metrics import check_logging
from reasonrl.models import check_model
from reasonrl.process import check_prm
from reasonrl.registry import Problems
from reasonrl.rollout import check_rollout
from verifiers import check_verifier


def check(cfg: Config, *, search: bool = False) -> list[str]:
    """Every problem with cfg's values, as 'key=value: fix' lines."""
    p = Problems()
    for problems in (check_model(cfg.model), check_lora(cfg.model.lora), check_data(cfg.data), check_verifier(cfg.verifier, verifier_names(cfg)),
                     check_rollout(cfg.rollout), check_algorithm(cfg.algorithm), check_prm(cfg.prm),
                     check_trainer(cfg.trainer), check_eval(cfg.eval), check_logging(cfg.logging),
                     check_checkpoint(cfg.checkpoint)):
        p += problems
    if search:  # evaluate.py's section: imported only there, so training never loads search/
        from search.methods import check_search

        p += check_search(cfg.search)

    # rules that span sections
    a, r, t, q = cfg.algorithm, cfg.rollout, cfg.trainer, cfg.prm
    if a.advantage in ADVANTAGES and getattr(ADVANTAGES.get(a.advantage), "needs_process", False):
        p.need(q.enabled, "algorithm.advantage", a.advantage, "dense advantages need the PRM: set prm.enabled=true")
    p.need(a.overlong_buffer < r.max_new_tokens, "algorithm.overlong_buffer", a.overlong_buffer,
           f"must be < rollout.max_new_tokens ({r.max_new_tokens})")
    rows = r.prompts_per_step * r.group_size
    p.need(t.mini_batches <= rows, "trainer.mini_batches", t.mini_batches, f"cannot exceed the rows per step ({rows})")
    if q.warmstart:
        p.need(q.enabled and q.loss == "ce" and q.reference == "frozen", "prm.warmstart", q.warmstart,
               "warm-starting needs prm.enabled=true, prm.loss=ce and prm.reference=frozen")
    return list(p)


def check_world(cfg: Config, world: int) -> list[str]:
    """What a run over `world` ranks (torchrun) cannot do yet, as 'key=value: fix' lines; nothing on one process."""
    p = Problems()
    if world <= 1:
        return list(p)
    p.need(cfg.model.lora.rank == 0, "model.lora.rank", cfg.model.lora.rank,
           f"LoRA runs on one process only for now (this job has {world} ranks): use model.lora.rank=0 or plain python")
    p.need(cfg.rollout.seeding != "batch", "rollout.seeding", cfg.rollout.seeding,
           "several ranks need per-prompt seeds (a group's samples must not depend on its rank): use auto or prompt")
    if cfg.prm.enabled:
        p.need(cfg.prm.loss in ("ce", "dpo"), "prm.loss", cfg.prm.loss,
               f"only the built-in losses span ranks (this job has {world}): use prm.loss=ce or dpo")
    r = cfg.rollout
    p.need(r.prompts_per_step >= world, "rollout.prompts_per_step", r.prompts_per_step,
           f"every rank needs at least one prompt a step: use {world} or more (it is the global number)")
    return list(p)


def validate(cfg: Config, *, search: bool = False, world: int = 1) -> None:
    """Raise one ConfigError listing every problem check (and check_world, for `world` ranks) finds."""
    problems = check(cfg, search=search) + check_world(cfg, world)
    if problems:
        raise ConfigError(problems)


def load_config(argv: list[str], *, search: bool = False) -> Config:
    """parse + check: the Config, or one ConfigError with every problem (unknown keys and wrong types too)."""
    cfg, problems = parse(argv)
    problems += check(cfg, search=search)
    if problems:
        raise ConfigError(problems)
    return cfg
