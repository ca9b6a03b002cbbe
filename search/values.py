"""Value functions for search: (problems, nodes) -> one value in [0, 1] per node's prefix.

* `PRMValue` — the implicit PRM's Q-value of the prefix: sigmoid(beta * sum_t [log pi_phi - log pi_ref])
  over the prefix's tokens (docs/algorithms.md 7.2: an implicit PRM's prefix sums are Q-values up to a
  prompt constant; sigmoid maps them to PRIME's prefix probability). The empty prefix scores 0.5.
  A causal model's log-probs of a prefix do not depend on what follows, so a node whose parent was scored
  by the same PRMValue adds only its own step's log-ratios to the parent's sum: siblings are scored as one
  group, the prompt and the parent's prefix going through both models once (share_prompts), their steps on
  top -- a search's value calls then cost about its new tokens, not its whole prefixes again.
* `VerifierValue` — when the reference answer is known (self-training data): a finished prefix scores
  the verifier's verdict; an unfinished one is finished greedily and that answer's verdict is its value
  (those tokens are charged to the problem's budget, which one rollout may therefore overshoot).
"""
from __future__ import annotations

import weakref

import torch

from reasonrl.algorithms import masked_sum
from reasonrl.batching import collate
from reasonrl.prm import ImplicitPRM
from reasonrl.types import Record, Rollout, RolloutGroup, SamplingParams
from search.tree import Node


VALUE_SOURCES = ("prm", "verifier")  # search.value


class PRMValue:
    def __init__(self, prm: torch.nn.Module, ref: torch.nn.Module, tokenizer, beta: float, max_tokens: int = 16384):
        self.implicit = ImplicitPRM(prm.eval(), ref.eval(), beta=beta, max_tokens_per_microbatch=max_tokens,
                                    share_prompts=True)
        self.tokenizer, self.beta = tokenizer, beta
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.sums: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # node -> sum of q over its prefix

    def __call__(self, records: list[Record], nodes: list[Node]) -> list[float]:
        """sigmoid(beta * sum over the prefix's tokens of log pi_phi - log pi_ref), one per node."""
        if not nodes:
            return []
        groups: dict[tuple, list[int]] = {}  # (problem, the context the step continues) -> indices of nodes
        for j, (r, n) in enumerate(zip(records, nodes)):
            known = n.parent is not None and n.parent in self.sums
            groups.setdefault((id(r), id(n.parent) if known else ("whole", j)), []).append(j)
        rollouts, base, order = [], [0.0] * len(nodes), []
        for (_, context), idx in groups.items():
            r, first = records[idx[0]], nodes[idx[0]]
            prompt = self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
            if isinstance(context, tuple):  # no scored parent: the whole prefix is the response
                rollouts.append(RolloutGroup(r, prompt, [Rollout(first.prefix_ids(), [], "", "stop")]))
            else:  # siblings: prompt + the parent's prefix shared, each step on top
                for j in idx:
                    base[j] = self.sums[first.parent]
                rollouts.append(RolloutGroup(r, prompt + first.parent.prefix_ids(),
                                             [Rollout(nodes[j].token_ids, [], "", "stop") for j in idx]))
            order += idx
        batch = collate(rollouts, self.pad_id)
        added = masked_sum(self.implicit.token_rewards(batch), batch.loss_mask, dim=-1).tolist()
        out = [0.0] * len(nodes)
        for j, a in zip(order, added):
            self.sums[nodes[j]] = base[j] + a
            out[j] = torch.sigmoid(torch.tensor(self.beta * self.sums[nodes[j]])).item()
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
