"""Dense process rewards for one training batch: the implicit PRM scores the step's rollouts and learns
from their verifier outcomes, in the order the config asks (docs/algorithms.md 4-6).

    reference log-probs -> score and update (update=after: score, then one PRM step on the same
    forward; update=before: one PRM step, then score) -> step ends -> process values -> gate

The reference is the frozen initial model (PRIME, prm.reference=frozen) or the policy that sampled the
rollouts (OPRL / iStar, prm.reference=policy). q = log pi_phi - log pi_ref must compare two forwards of the
same precision and layout (PRIME computes both alike): the learner's logp_ref / logp_old are reused only when
the Forward the learner computed them under (batch.layouts) equals the PRM's; otherwise (e.g. the learner under
bf16 autocast, the PRM in fp32, or either micro-batch budget halved after an out-of-memory) the reference is
scored again under the PRM's Forward. The values feed the advantage
estimator through AdvantageInputs. `ProcessStep` is what the loop calls every step: without a PRM it
returns no values and does nothing.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import torch

from reasonrl.algorithms import LOO_FORMS, PROCESS_NORMS, PROCESS_SHAPINGS
from reasonrl.algorithms.process_advantages import (close_last_step, gate_rows, process_values, shape_steps,
                                                     zero_flat_groups)
from reasonrl.algorithms.process_rewards import STEP_NORMS, auroc, implicit_q
from reasonrl.batching import Forward, collate
from reasonrl.distributed import Dist, shard
from reasonrl.logprobs import DEFAULT_MAX_LOGITS
from reasonrl.lora import reference_of
from reasonrl.models import Reference, load_model
from reasonrl.prm import PRM_LOSSES, ImplicitPRM
from reasonrl.registry import Problems, Registry
from reasonrl.steps import check_step_split, split_steps, step_end_tokens
from reasonrl.types import Record, Rollout, RolloutGroup, TrainBatch
from verifiers.steps import has_step_verifier

REFERENCES: Registry = Registry("PRM reference")  # prm.reference: (prm, batch, Reuse) -> (N, T) log-probs
# prm.update: (prm, batch, correct, reference) -> (q, metrics); reference() gives the reference log-probs under
# the PRM's Forward as it is at the call (scored again only when an out-of-memory halving changed it)
UPDATE_ORDERS: Registry = Registry("PRM update order")
GRANULARITIES: Registry = Registry("process granularity")  # prm.granularity: step ends (N, T)
# prm.source: the implicit PRM, the verifier's step checks (verify_steps), or the task's own solution's steps
SOURCES = ("implicit", "verifier", "solution")


@dataclass
class ProcessRewards:
    values: Optional[torch.Tensor] = None  # (N, T) process values on step ends; None when no process source ran
    ends: Optional[torch.Tensor] = None  # (N, T) 1 on the last token of each step
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reuse:
    """Which of the learner's log-probs the PRM may take as its reference's. kl_ref: the batch's logp_ref is the
    frozen reference's (the PRM starts from the policy); learner_tensors: the learner's forward equals the PRM's,
    so its tensors are what the PRM would compute (a tensor stamped in batch.layouts is judged by its stamp);
    policy: the sampling policy, scored under the PRM's forward when the learner's tensors are not reusable
    (None: they must be)."""

    kl_ref: bool = False
    learner_tensors: bool = True
    policy: Optional[torch.nn.Module] = None


def reusable(prm: ImplicitPRM, batch: TrainBatch, name: str, reuse: Reuse) -> bool:
    """Whether the batch's learner tensor `name` is what the PRM's own forward would compute: by the Forward it
    was computed under when the learner stamped it, else by the caller's word (reuse.learner_tensors)."""
    if getattr(batch, name) is None:
        return False
    layout = batch.layouts.get(name)
    return reuse.learner_tensors if layout is None else layout == prm.forward


# --------------------------------------------------------------------------- the choices

@REFERENCES.register("frozen")
def frozen_reference(prm: ImplicitPRM, batch: TrainBatch, reuse: Reuse) -> torch.Tensor:
    """PRIME: the frozen initial model. When it is also the KL reference, the learner's logp_ref is reused
    (when computed under the PRM's forward)."""
    if reuse.kl_ref and reusable(prm, batch, "logp_ref", reuse):
        return batch.logp_ref
    return prm.ref_logp(batch)


@REFERENCES.register("policy")
def policy_reference(prm: ImplicitPRM, batch: TrainBatch, reuse: Reuse) -> torch.Tensor:
    """OPRL: the policy that sampled the batch: its logp_old (filled by the learner before the update) when the
    learner's forward is the PRM's, else the policy scored under the PRM's forward. Also scored when logp_old is
    missing although the forwards now match (an out-of-memory halving in this step can make them equal after
    the learner decided it need not fill logp_old early), and when it was computed under a budget since halved."""
    if not reusable(prm, batch, "logp_old", reuse) and reuse.policy is not None:
        return prm.forward.all_logprobs(reuse.policy, batch)
    if batch.logp_old is None:
        raise ValueError("prm.reference=policy needs the batch's logp_old before the PRM step")
    return batch.logp_old


policy_reference.needs_logp_old = True  # when the learner's tensors are reused


@UPDATE_ORDERS.register("after")
def score_then_learn(prm: ImplicitPRM, batch: TrainBatch, correct: torch.Tensor, reference: Callable):
    """Scored by the PRM as it was before this step (its update's own forward: one PRM forward)."""
    metrics, phi = prm.update(batch, correct, reference())
    return implicit_q(phi, reference(), batch.loss_mask), metrics


@UPDATE_ORDERS.register("before")
def learn_then_score(prm: ImplicitPRM, batch: TrainBatch, correct: torch.Tensor, reference: Callable):
    """One PRM step, then scored by the updated PRM (a second forward)."""
    metrics, _ = prm.update(batch, correct, reference())
    return prm.token_rewards(batch, reference()), metrics


@GRANULARITIES.register("token")
def token_ends(groups: list[RolloutGroup], batch: TrainBatch, tokenizer, split: str) -> torch.Tensor:
    """Every response token closes a step of its own."""
    return batch.loss_mask.clone()


def response_pieces(groups: list[RolloutGroup], tokenizer):
    """(row, start, group, rollout, token texts) for every response in batch row order; start is the target index
    of the response's first token. Each token id is decoded once per call."""
    pieces: dict[int, str] = {}
    row = 0
    for group in groups:
        start = len(group.prompt_ids) - 1
        for r in group.rollouts:
            texts = [pieces.setdefault(t, tokenizer.decode([t], skip_special_tokens=True)) for t in r.response_ids]
            yield row, start, group, r, texts
            row += 1


@GRANULARITIES.register("step")
def step_ends(groups: list[RolloutGroup], batch: TrainBatch, tokenizer, split: str) -> torch.Tensor:
    """(N, T) 1 on the token that closes each step of each response (steps.py's splitter)."""
    ends = torch.zeros_like(batch.loss_mask)
    for row, start, _, _, texts in response_pieces(groups, tokenizer):
        for e in step_end_tokens(texts, split):
            ends[row, start + e] = 1
    return close_last_step(ends, batch.loss_mask)


# --------------------------------------------------------------------------- the step verifier as source

UNCHECKED = {"carry": None, "wrong": 0.0}  # prm.unchecked: the score of a step the verifier cannot check


def verified_prefix_scores(groups: list[RolloutGroup], batch: TrainBatch, tokenizer, split: str,
                           verify_steps: Callable[[Record, list[str]], list], correct: torch.Tensor,
                           unchecked: str = "carry") -> tuple[torch.Tensor, torch.Tensor]:
    """(p, ends), (N, T): the oracle's prefix score on each step end, p_k = 1 while every step the verifier can
    check (verify_steps(record, steps): a score or None per step) is right up to step k, the
    min of those scores otherwise; the last step's also takes the outcome (correct (N,)). A step before the last
    that the verifier cannot check leaves p as it was (unchecked="carry") or scores 0 ("wrong": no credit for
    lines that claim nothing checkable, which a policy can otherwise write to keep p at 1). Steps and their end
    tokens come from the splitter the implicit PRM's step granularity uses."""
    ends, p = torch.zeros_like(batch.loss_mask), torch.zeros_like(batch.loss_mask)
    for row, start, group, r, texts in response_pieces(groups, tokenizer):
        cols = [start + e for e in step_end_tokens(texts, split)]
        scores = verify_steps(group.record, split_steps("".join(texts), split))
        running = 1.0
        for k, (col, score) in enumerate(zip(cols, scores)):
            if score is None and k < len(cols) - 1:
                score = UNCHECKED[unchecked]
            running = min(running, float(score)) if score is not None else running
            if k == len(cols) - 1:  # the last step carries to the last valid token (EOS), as close_last_step does
                col, running = start + len(r.response_ids) - 1, min(running, float(correct[row]))
            ends[row, col], p[row, col] = 1, running  # two steps ending on one token: the later (lower) p
    ends = ends * batch.loss_mask
    return p * ends, ends


def first_error(p: torch.Tensor, ends: torch.Tensor) -> float:
    """Mean over the responses with a wrong step of the (1-based) step where p first drops below 1; 0 if none."""
    bad = ends.bool() & (p < 1)
    rows = bad.any(-1)
    if not rows.any():
        return 0.0
    k = torch.cumsum(ends.long(), -1)
    first = torch.where(bad, k, torch.full_like(k, 10**9)).min(-1).values
    return first[rows].float().mean().item()


def solution_steps(record: Record, steps: list[str]) -> list[float | None]:
    """prm.source=solution: step k (before the last) scores 1 when it is line k of the task's own solution
    (record.meta["steps"], whitespace aside), else 0; the last step is None (the outcome judges the answer).
    Unlike the math verifier's check (is the line true?), this checks the line is the problem's next step."""
    want = record.meta.get("steps")
    if want is None:
        raise ValueError(f"prm.source=solution needs each record's solution steps (meta['steps']; the arithmetic "
                         f"task has them), and this one has none: {record.prompt[:60]!r}")
    return [float(k < len(want) and step.strip() == want[k].strip()) for k, step in enumerate(steps[:-1])] + [None]


class StepScores:
    """verify_steps by verifier name, one instance per name, from the pool's verifier options; called with
    (record, steps) it checks the steps with the record's own verifier and reference."""

    def __init__(self, options: dict):
        from verifiers.registry import get_verifier

        self._get = lambda name: get_verifier(name, **options.get(name, {}))
        self._cache: dict = {}

    def require(self, names) -> "StepScores":
        """Fail now, not at the first step, when a verifier the run uses cannot score steps."""
        for name in names:
            self(name, [], None)
        return self

    def __call__(self, name: str, steps: list[str], reference) -> list:
        if name not in self._cache:
            v = self._get(name)
            if not has_step_verifier(v):
                raise ValueError(f"prm.source=verifier: the {name!r} verifier has no verify_steps (a score per step); "
                                 f"use prm.source=implicit, or give the verifier one (verifiers/steps.py)")
            self._cache[name] = v
        scores = list(self._cache[name].verify_steps(steps, reference))
        return scores + [None] * (len(steps) - len(scores))

    def of_record(self, record: Record, steps: list[str]) -> list:
        """The steps checked by the record's verifier against its reference (the process step's signature)."""
        return self(record.verifier, steps, record.reference)


# --------------------------------------------------------------------------- building and checking

def build_prm(policy: torch.nn.Module, cfg, *, dtype: str, attn_implementation: str,
              max_tokens_per_microbatch: int, max_logits: int = DEFAULT_MAX_LOGITS,
              initial_ref: Reference | None = None, share_prompts: bool = False, dist: Dist = Dist()) -> ImplicitPRM:
    """The PRM (prm section cfg) and its reference, both starting from prm.path or from a copy of the policy's
    weights. initial_ref: a frozen copy of the policy's initial weights that already exists (the KL reference);
    it is the PRM's reference too when the PRM starts from the policy, instead of a second copy. dist: several
    ranks shard the PRM and its reference with FSDP2 (before its optimiser is built on the shards)."""
    if cfg.path:
        model = load_model(cfg.path, dtype=dtype, attn_implementation=attn_implementation,
                           device=next(policy.parameters()).device)
        if model.config.vocab_size != policy.config.vocab_size:
            raise ValueError(f"prm.path={cfg.path!r} has a vocabulary of {model.config.vocab_size} tokens but the "
                             f"policy has {policy.config.vocab_size}: the PRM must share the policy's tokenizer")
        if getattr(policy, "is_gradient_checkpointing", False):  # the copy below inherits it; so must this one
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model = copy.deepcopy(policy)
    model.requires_grad_(True)
    ref = None
    if cfg.reference == "frozen":
        ref = initial_ref if (initial_ref is not None and not cfg.path) else reference_of(model)
        shard(ref.model, dist)
    shard(model, dist)
    return ImplicitPRM(model, ref, beta=cfg.beta, lr=cfg.lr, loss=cfg.loss, max_grad_norm=cfg.max_grad_norm,
                       max_tokens_per_microbatch=max_tokens_per_microbatch, max_logits=max_logits,
                       share_prompts=share_prompts, dist=dist)


def check_prm(q) -> Problems:
    """The prm section (PrmConfig); nothing to check while it is off."""
    p = Problems()
    if not q.enabled:
        return p
    for key, registry in (("reference", REFERENCES), ("update", UPDATE_ORDERS), ("granularity", GRANULARITIES),
                          ("loss", PRM_LOSSES), ("loo_form", LOO_FORMS), ("norm", PROCESS_NORMS),
                          ("step_norm", STEP_NORMS)):
        if not (key in ("loo_form", "norm") and getattr(q, key) == "auto"):
            p.known(registry, f"prm.{key}", getattr(q, key))
    p.one_of(PROCESS_SHAPINGS, "prm.shaping", q.shaping)
    p.one_of(SOURCES, "prm.source", q.source)
    p.one_of(("keep", "zero"), "prm.flat_groups", q.flat_groups)
    p.one_of(tuple(UNCHECKED), "prm.unchecked", q.unchecked)
    if q.source in ("verifier", "solution"):
        p.need(q.shaping != "none", "prm.shaping", q.shaping,
               f"prm.source={q.source} scores prefixes (p_k in [0, 1]): use clip, delta, clip_delta, delta_keep_last or raw")
    p += check_step_split("prm.step_split", q.step_split)
    for key in ("beta", "lr"):
        p.need(getattr(q, key) > 0, f"prm.{key}", getattr(q, key), "must be > 0")
    p.need(q.max_grad_norm >= 0, "prm.max_grad_norm", q.max_grad_norm, "must be >= 0 (0 = off)")
    p.need(q.process_coef >= 0, "prm.process_coef", q.process_coef,
           "must be >= 0 (a negative weight rewards the steps the PRM scores low; 0 = the outcome alone)")
    p.need(q.warmstart_epochs >= 1, "prm.warmstart_epochs", q.warmstart_epochs, "must be >= 1")
    if q.path is not None:
        from pathlib import Path

        p.need(Path(q.path).exists(), "prm.path", q.path,
               "does not exist; give a local model directory, or null for the policy's weights")
    return p


# --------------------------------------------------------------------------- the step

class ProcessStep:
    """The loop's process-reward step. With a PRM: reference log-probs, score and learn, step ends, shaped
    and gated process values. Without one (prm None): no values, no work.

    reuse_kl_ref: the batch's logp_ref is the PRM's frozen reference's. learner_forward: how the learner computes
    the batch's logp_ref / logp_old, asked at every step (an out-of-memory retry halves a budget; None: as the
    PRM does); policy: the sampling policy, scored by the PRM's forward when the learner's differs."""

    def __init__(self, prm: ImplicitPRM | None, cfg, tokenizer, *, reuse_kl_ref: bool = False,
                 learner_forward: Optional[Callable[[], Forward]] = None, policy: Optional[torch.nn.Module] = None,
                 step_scores: Optional[Callable] = None):
        """step_scores: (record, steps) -> a score or None per step, for prm.source=verifier (StepScores.of_record)
        or solution (solution_steps); the PRM is then None."""
        self.prm, self.cfg, self.tokenizer, self.step_scores = prm, cfg, tokenizer, step_scores
        self.reuse_kl_ref, self.learner_forward, self.policy = reuse_kl_ref, learner_forward, policy

    @property
    def reuse(self) -> Reuse:
        same = self.prm is None or self.learner_forward is None or self.learner_forward() == self.prm.forward
        return Reuse(kl_ref=self.reuse_kl_ref, learner_tensors=same, policy=self.policy)

    @property
    def needs_logp_old(self) -> bool:
        """Whether the batch's logp_old must exist before this step (the OPRL reference, taken from the learner)."""
        return (self.prm is not None and self.reuse.learner_tensors
                and getattr(REFERENCES.get(self.cfg.reference), "needs_logp_old", False))

    def __call__(self, batch: TrainBatch, groups: list[RolloutGroup], outcome: torch.Tensor,
                 correct: torch.Tensor) -> ProcessRewards:
        """Score, learn, and turn q into process values for the batch. outcome, correct: (N,)."""
        cfg = self.cfg
        if self.step_scores is not None:  # the oracle: the verifier's (or the solution's) step checks as prefix scores
            p, ends = verified_prefix_scores(groups, batch, self.tokenizer, cfg.step_split, self.step_scores, correct,
                                             cfg.unchecked)
            values, metrics = shape_steps(p, ends, cfg.shaping, cfg.eta), {}
            metrics["process/first_error_step"] = first_error(p, ends)
        elif self.prm is None:
            return ProcessRewards()
        else:
            q, metrics = UPDATE_ORDERS.get(cfg.update)(self.prm, batch, correct.float(), self.reference(batch))
            ends = GRANULARITIES.get(cfg.granularity)(groups, batch, self.tokenizer, cfg.step_split)
            values = process_values(q, ends, batch.loss_mask, beta=cfg.beta, shaping=cfg.shaping, eta=cfg.eta)
        values = gate_rows(values, outcome, cfg.gate_threshold)
        if cfg.flat_groups == "zero":
            values = zero_flat_groups(values, outcome, outcome.numel() // max(len(groups), 1))
        per_row, right = values.sum(-1), correct.bool()
        metrics.update({"process/return": per_row.mean().item(), "process/steps": ends.sum(-1).float().mean().item(),
                        "process/return_correct": per_row[right].mean().item() if right.any() else 0.0,
                        "process/return_wrong": per_row[~right].mean().item() if (~right).any() else 0.0})
        return ProcessRewards(values, ends, metrics)

    def reference(self, batch: TrainBatch) -> Callable[[], torch.Tensor]:
        """The batch's reference log-probs (prm.reference) under the PRM's Forward as it is when called: kept while
        that Forward stays, scored again if the PRM's update halved its micro-batch budget (phi then comes from
        the halved layout, and q must compare like with like)."""
        kept: list = []  # [(the Forward it was computed under, log-probs)]

        def ref() -> torch.Tensor:
            if not kept or kept[0][0] != self.prm.forward:
                kept[:] = [(replace(self.prm.forward), REFERENCES.get(self.cfg.reference)(self.prm, batch, self.reuse))]
            return kept[0][1]
        return ref

    def held_out_auroc(self, records: list[Record], rollouts: list[Rollout], correct: torch.Tensor, engine,
                       policy_logp: Callable[[TrainBatch], torch.Tensor]) -> Optional[float]:
        """AUROC of beta * sum q predicting correctness on responses the PRM never trained on: one rollout per
        record, prompts tokenised as the engine does. None without a PRM (and no work done)."""
        scores = self.held_out_scores(records, rollouts, engine, policy_logp)
        return None if scores is None else auroc(scores, correct)

    def held_out_scores(self, records: list[Record], rollouts: list[Rollout], engine,
                        policy_logp: Callable[[TrainBatch], torch.Tensor]) -> Optional[torch.Tensor]:
        """(N,) beta * sum q of one rollout per record (None without a PRM)."""
        if self.prm is None:
            return None
        if not records:  # a rank with no held-out problem of its own
            return torch.zeros(0)
        groups = [RolloutGroup(rec, engine.prompt_ids(rec.prompt), [r]) for rec, r in zip(records, rollouts)]
        batch = collate(groups, engine.pad_id)
        if self.needs_logp_old:
            batch.logp_old = policy_logp(batch)
        ref = REFERENCES.get(self.cfg.reference)(self.prm, batch, replace(self.reuse, kl_ref=False))
        return self.prm.sequence_scores(batch, ref)
