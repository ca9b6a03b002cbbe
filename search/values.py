"""Value functions for search: (problems, nodes) -> one value in [0, 1] per node's prefix.

* `PRMValue` — the implicit PRM's Q-value of the prefix: sigmoid(beta * sum_t [log pi_phi - log pi_ref])
  over the prefix's tokens (docs/algorithms.md 7.2: an implicit PRM's prefix sums are Q-values up to a
  prompt constant; sigmoid maps them to PRIME's prefix probability). The empty prefix scores 0.5.
* `VerifierValue` — when the reference answer is known (self-training data): a finished prefix scores
  the verifier's verdict; an unfinished one is finished greedily and that answer's verdict is its value
  (those tokens are charged to the problem's budget, which one rollout may therefore overshoot).
"""
from __future__ import annotations

import torch

from reasonrl.batching import collate
from reasonrl.prm import ImplicitPRM
from reasonrl.types import Record, Rollout, RolloutGroup, SamplingParams
from search.tree import Node


VALUE_SOURCES = ("prm", "verifier")  # search.value


class PRMValue:
    def __init__(self, prm: torch.nn.Module, ref: torch.nn.Module, tokenizer, beta: float, max_tokens: int = 16384):
        self.implicit = ImplicitPRM(prm.eval(), ref.eval(), beta=beta, max_tokens_per_microbatch=max_tokens)
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def __call__(self, records: list[Record], nodes: list[Node]) -> list[float]:
        """sigmoid(beta * sum over the prefix's tokens of log pi_phi - log pi_ref), one per node."""
        if not nodes:
            return []
        groups = [RolloutGroup(r, self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"],
                               [Rollout(n.prefix_ids(), [], n.prefix_text(), "stop")]) for r, n in zip(records, nodes)]
        return torch.sigmoid(self.implicit.sequence_scores(collate(groups, self.pad_id))).tolist()


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
