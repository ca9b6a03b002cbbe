"""Step-level beam search scored by a value function (the implicit PRM).

Each round expands every unfinished beam with k candidate next steps (one engine call for all beams
of all problems), scores the candidates, and keeps the `width` best of finished beams and candidates.
It stops when every kept beam is finished or the budget cannot pay for another round; the answer is
the best finished beam, else the best beam finished greedily within what is left.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from reasonrl.types import Record
from search.expand import Budget, complete, expand
from search.mcts import SearchResult
from search.tree import Node, tree_stats


@dataclass
class BeamSettings:
    width: int = 2
    branch: int = 3
    step_tokens: int = 32
    step_split: str = "newline"  # a steps.py splitter
    max_depth: int = 8
    temperature: float = 0.7


def beam_search(engine, value_fn, records: list[Record], budget: int, s: BeamSettings,
                generator: torch.Generator) -> list[SearchResult]:
    roots = [Node() for _ in records]
    budgets = [Budget(budget) for _ in records]
    beams: list[list[Node]] = [[r] for r in roots]
    rounds = [0] * len(records)
    while True:
        jobs = [(i, b) for i in range(len(records)) for b in beams[i]
                if not b.terminal and budgets[i].remaining >= s.branch]
        if not jobs:
            break
        children = expand(engine, [(records[i], b, budgets[i]) for i, b in jobs], k=s.branch,
                          step_tokens=s.step_tokens, temperature=s.temperature, max_depth=s.max_depth,
                          generator=generator, split=s.step_split)
        flat = [(i, ch) for (i, _), kids in zip(jobs, children) for ch in kids]
        if not flat:  # what is left of every budget cannot pay for a step
            break
        for (i, ch), v in zip(flat, value_fn([records[i] for i, _ in flat], [ch for _, ch in flat])):
            budgets[i].used += ch.value_tokens
            ch.score = ch.value_sum = v
            ch.visits = 1
        expanded = {i for i, _ in jobs}
        for i in expanded:
            rounds[i] += 1
            pool = [b for b in beams[i] if b.terminal] + [ch for (j, _), kids in zip(jobs, children) if j == i
                                                          for ch in kids]
            if pool:
                beams[i] = sorted(pool, key=lambda n: -n.score)[: s.width]
    results = []
    for rec, root, b, kept, n in zip(records, roots, budgets, beams, rounds):
        finished = [x for x in kept if x.terminal]
        best = max(finished or kept, key=lambda x: x.score if x.score is not None else -1.0)
        text = complete(engine, rec, best, b, generator)
        results.append(SearchResult(text=text, tokens_used=b.used, simulations=n, tree=tree_stats(root),
                                    path=[x.text for x in best.path()], value=best.score))
    return results
