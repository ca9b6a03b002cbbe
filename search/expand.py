"""What every step-level search shares: the token budget, terminal detection, and one batched engine
call that proposes k candidate next steps for many (problem, node) pairs at once."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reasonrl.steps import step_stops
from reasonrl.types import Record, SamplingParams
from search.tree import Node, set_priors
from verifiers.extract import last_boxed


@dataclass
class Budget:
    """Generated tokens a problem may spend (every sampled token counts, kept or not)."""

    limit: int
    used: int = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def ends_solution(prefix: str, finish_reason: str) -> bool:
    """A step ends a solution when the model stopped (EOS) or the prefix holds a closed \\boxed{}."""
    return finish_reason == "eos" or last_boxed(prefix) is not None


def expand(engine, jobs: list[tuple[Record, Node, Budget]], *, k: int, step_tokens: int,
           temperature: float | Sequence[float], max_depth: int, generator: torch.Generator,
           split: str = "newline") -> list[list[Node]]:
    """k sampled next steps for each job's node, attached as its children (identical texts merged); a step
    ends at the stop strings of the steps.py splitter `split`. temperature: one for all, or one per job.

    Each step is capped at min(step_tokens, remaining budget // (k x jobs on that budget)) tokens, so a
    problem never spends past its budget; a job whose cap is 0 gets no children. Jobs with the same cap and
    temperature share one engine call. Returns the new children of each job (in job order)."""
    sharing = Counter(id(b) for _, _, b in jobs)  # beam search expands several nodes on one budget
    caps = [min(step_tokens, b.remaining // (k * sharing[id(b)])) for _, _, b in jobs]
    temps = list(temperature) if isinstance(temperature, Sequence) else [temperature] * len(jobs)
    out: list[list[Node]] = [[] for _ in jobs]
    for cap, temp in sorted({(c, t) for c, t in zip(caps, temps) if c > 0}):
        idx = [i for i, (c, t) in enumerate(zip(caps, temps)) if (c, t) == (cap, temp)]
        prompts = [jobs[i][0].prompt + jobs[i][1].prefix_text() for i in idx]
        params = SamplingParams(n=k, temperature=temp, max_new_tokens=cap, stop=step_stops(split))
        for i, group in zip(idx, engine.generate(prompts, params, generator)):
            record, node, budget = jobs[i]
            budget.used += sum(len(r.response_ids) for r in group)
            node.expansions += 1
            seen = {c.text for c in node.children}  # a re-expansion adds only steps the node does not have
            prefix = node.prefix_text()
            for r in group:
                if not r.response_ids or r.text in seen:
                    continue
                seen.add(r.text)
                child = node.add_child(Node(text=r.text, token_ids=list(r.response_ids), logprob=sum(r.logprobs)))
                child.terminal = ends_solution(prefix + r.text, r.finish_reason) or child.depth >= max_depth
                out[i].append(child)
            set_priors(node.children)
    return out


def complete(engine, record: Record, node: Node, budget: Budget, generator: torch.Generator) -> str:
    """The node's prefix, finished greedily within what is left of the budget (nothing when it is spent)."""
    prefix = node.prefix_text()
    if node.terminal or budget.remaining == 0:
        return prefix
    r = engine.generate([record.prompt + prefix], SamplingParams(n=1, temperature=0.0,
                        max_new_tokens=budget.remaining), generator)[0][0]
    budget.used += len(r.response_ids)
    return prefix + r.text
