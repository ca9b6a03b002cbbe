"""Value functions for search: (problems, nodes) -> one value in [0, 1] per node's prefix.

* `PRMValue` — the implicit PRM's Q-value of the prefix: sigmoid(beta * sum_t [log pi_phi - log pi_ref])
  over the prefix's tokens (docs/algorithms.md 7.2: an implicit PRM's prefix sums are Q-values up to a
  prompt constant; sigmoid maps them to PRIME's prefix probability). The empty prefix scores 0.5.
  A causal model's log-probs of a prefix do not depend on what follows, so a node whose parent was scored
  by the same PRMValue adds only its own step's log-ratios to the parent's sum: siblings are scored as one
  group, the prompt and the parent's prefix going through both models once (share_prompts), their steps on
  top -- a search's value calls then cost about its new tokens, not its whole prefixes again.
  `reduce` (search.value_reduce) chooses how the prefix's log-ratios become its value (VALUE_REDUCTIONS):
  prefix  sigmoid(beta * sum q)                       the implicit Q-value (PRIME), the default
  mean_q  sigmoid(mean q per token)                   free of the length prior sum q carries
  min_step sigmoid(beta * min over steps of sum q)    the weakest step (EurusPRM's best-of-N rule)
* `StepVerifierValue` — the verifier's own step checks (verify_steps, verifiers/steps.py): a prefix scores 0
  once a step it can check is wrong, a finished one also needs the right answer, else 1. Exact, free of model
  calls and extra tokens: the value that validates the search code itself (an oracle PRM).
* `VerifierValue` — when the reference answer is known (self-training data): a finished prefix scores
  the verifier's verdict; an unfinished one is finished greedily and that answer's verdict is its value
  (those tokens are charged to the problem's budget, which one rollout may therefore overshoot).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch

from reasonrl.batching import collate
from reasonrl.prm import ImplicitPRM
from reasonrl.registry import Registry
from reasonrl.types import Record, Rollout, RolloutGroup, SamplingParams
from search.tree import Node


VALUE_SOURCES = ("prm", "verifier", "step_verifier")  # search.value


@dataclass(frozen=True)
class PrefixStats:
    """What a prefix's value is reduced from: sum of q, its number of tokens, the lowest step sum of q."""

    total: float = 0.0
    tokens: int = 0
    min_step: float = math.inf

    def then(self, step_sum: float, step_tokens: int) -> "PrefixStats":
        return PrefixStats(self.total + step_sum, self.tokens + step_tokens, min(self.min_step, step_sum))


VALUE_REDUCTIONS: Registry = Registry("value reduction")  # search.value_reduce: (PrefixStats, beta) -> [0, 1]
VALUE_REDUCTIONS.register("prefix")(lambda st, beta: _sigmoid(beta * st.total))
VALUE_REDUCTIONS.register("mean_q")(lambda st, beta: _sigmoid(st.total / max(st.tokens, 1)))
VALUE_REDUCTIONS.register("min_step")(lambda st, beta: _sigmoid(beta * (st.min_step if st.tokens else 0.0)))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class PRMValue:
    def __init__(self, prm: torch.nn.Module, ref: torch.nn.Module, tokenizer, beta: float, max_tokens: int = 16384,
                 reduce: str = "prefix"):
        self.implicit = ImplicitPRM(prm.eval(), ref.eval(), beta=beta, max_tokens_per_microbatch=max_tokens,
                                    share_prompts=True)
        self.tokenizer, self.beta, self.reduce = tokenizer, beta, VALUE_REDUCTIONS.get(reduce)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.sums: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # node -> PrefixStats of its prefix

    def __call__(self, records: list[Record], nodes: list[Node]) -> list[float]:
        """The reduction of each node's prefix log-ratios q = log pi_phi - log pi_ref (default: sigmoid(beta * sum q))."""
        if not nodes:
            return []
        groups: dict[tuple, list[int]] = {}  # (problem, the context the step continues) -> indices of nodes
        for j, (r, n) in enumerate(zip(records, nodes)):
            known = n.parent is not None and n.parent in self.sums
            groups.setdefault((id(r), id(n.parent) if known else ("whole", j)), []).append(j)
        rollouts, base, order, steps = [], [PrefixStats()] * len(nodes), [], {}  # steps: j -> its row's step lengths
        for (_, context), idx in groups.items():
            r, first = records[idx[0]], nodes[idx[0]]
            prompt = self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
            if isinstance(context, tuple):  # no scored parent: the whole prefix is the response, step by step
                rollouts.append(RolloutGroup(r, prompt, [Rollout(first.prefix_ids(), [], "", "stop")]))
                steps[idx[0]] = [len(n.token_ids) for n in first.path()]
            else:  # siblings: prompt + the parent's prefix shared, each step on top
                for j in idx:
                    base[j], steps[j] = self.sums[first.parent], [len(nodes[j].token_ids)]
                rollouts.append(RolloutGroup(r, prompt + first.parent.prefix_ids(),
                                             [Rollout(nodes[j].token_ids, [], "", "stop") for j in idx]))
            order += idx
        batch = collate(rollouts, self.pad_id)
        q = self.implicit.token_rewards(batch)
        out = [0.0] * len(nodes)
        for row, j in enumerate(order):
            qs = q[row][batch.loss_mask[row].bool()].tolist()  # the row's response tokens: a step, or a whole path
            stats, at = base[j], 0
            for n in steps[j]:
                stats, at = stats.then(sum(qs[at:at + n]), n), at + n
            self.sums[nodes[j]] = stats
            out[j] = self.reduce(stats, self.beta)
        return out


class VerifierValue:
    """Outcome value from the verifier: finished prefixes as they are, unfinished ones completed greedily
    first (one batched engine call). The completion's tokens are recorded on the node (value_tokens) and
    the search charges them to the problem's budget."""

    def __init__(self, verifier, engine, max_new_tokens: int, generator: torch.Generator):
        self.verifier, self.engine, self.max_new_tokens, self.generator = verifier, engine, max_new_tokens, generator

    def __call__(self, records: list[Record], nodes: list[Node]) -> list[float]:
        texts = [n.prefix_text() for n in nodes]
        todo = [j for j, n in enumerate(nodes) if not n.terminal]
        if todo:
            outs = self.engine.generate([records[j].prompt + texts[j] for j in todo], SamplingParams(
                n=1, temperature=0.0, max_new_tokens=self.max_new_tokens), self.generator)
            for j, o in zip(todo, outs):
                texts[j] += o[0].text
                nodes[j].value_tokens = len(o[0].response_ids)
        verdicts = self.verifier.verify_batch(texts, [r.reference for r in records], [r.verifier for r in records])
        return [float(v.correct) for v in verdicts]


class StepVerifierValue:
    """Value from the verifier's step checks: 0 once a checked step is wrong, a finished prefix also needs the
    right answer (the outcome verdict), 1 otherwise. step_scores: reasonrl.process.StepScores. Exact: a 0 is
    certain (no completion of a prefix with a wrong step is right), so MCTS prunes it as a dead end."""

    exact = True

    def __init__(self, verifier, step_scores):
        self.verifier, self.step_scores = verifier, step_scores

    def __call__(self, records: list[Record], nodes: list[Node]) -> list[float]:
        done = [j for j, n in enumerate(nodes) if n.terminal]
        verdicts = self.verifier.verify_batch([nodes[j].prefix_text() for j in done], [records[j].reference for j in done],
                                              [records[j].verifier for j in done]) if done else []
        right = {j: v.correct for j, v in zip(done, verdicts)}
        out = []
        for j, (r, n) in enumerate(zip(records, nodes)):
            scores = self.step_scores(r.verifier, [x.text for x in n.path()], r.reference)
            ok = all(x is None or x >= 1 for x in scores) and right.get(j, True)
            out.append(1.0 if ok else 0.0)
        return out
