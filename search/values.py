"""Value functions for search: (problems, nodes) -> one value in [0, 1] per node's prefix.

* `PRMValue` — the implicit PRM's Q-value of the prefix: sigmoid(beta * sum_t [log pi_phi - log pi_ref])
  over the prefix's tokens (ALGORITHMS.md 6.2: an implicit PRM's prefix sums are Q-values up to a
  prompt constant; sigmoid maps them to PRIME's prefix probability). The empty prefix scores 0.5.
* `VerifierValue` — when the reference answer is known (self-training data): a finished prefix scores
  the verifier's verdict; an unfinished one is finished greedily and that answer's verdict is its value
  (those tokens are charged to the problem's budget, which one rollout may therefore overshoot).
"""
from __future__ import annotations

import torch

from reasonrl.models import token_logprobs
from reasonrl.types import Record, SamplingParams
from search.tree import Node


class PRMValue:
    def __init__(self, prm: torch.nn.Module, ref: torch.nn.Module, tokenizer, beta: float, max_rows: int = 64):
        self.prm, self.ref, self.tokenizer, self.beta, self.max_rows = prm.eval(), ref.eval(), tokenizer, beta, max_rows
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @torch.no_grad()
    def q_values(self, prompts: list[list[int]], responses: list[list[int]]) -> torch.Tensor:
        """(N,) beta * sum over response tokens of log pi_phi - log pi_ref."""
        out = torch.zeros(len(prompts))
        dev = next(self.prm.parameters()).device
        for start in range(0, len(prompts), self.max_rows):
            rows = list(range(start, min(start + self.max_rows, len(prompts))))
            seqs = [prompts[i] + responses[i] for i in rows]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            resp = torch.zeros((len(rows), width - 1))
            for j, (i, s) in enumerate(zip(rows, seqs)):
                ids[j, : len(s)], mask[j, : len(s)] = torch.tensor(s), 1
                resp[j, len(prompts[i]) - 1: len(s) - 1] = 1
            q = token_logprobs(self.prm, ids.to(dev), mask.to(dev))[0] - token_logprobs(self.ref, ids.to(dev), mask.to(dev))[0]
            out[rows] = self.beta * (q.cpu() * resp).sum(1)
        return out

    def __call__(self, records: list[Record], nodes: list[Node]) -> list[float]:
        if not nodes:
            return []
        prompts = [self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in records]
        return torch.sigmoid(self.q_values(prompts, [n.prefix_ids() for n in nodes])).tolist()


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
