"""MCTS over reasoning steps (ReST-MCTS*-style), batched across problems.

One simulation per active problem per round:
1. select: from the root, follow the child maximising PUCT (prior from the policy's step probability)
   or UCT, until a leaf;
2. a terminal leaf (a finished solution) is revisited: its value is backed up again;
3. otherwise expand it: k candidate next steps from one engine call shared by every problem's leaf,
   each child scored by the value function (one batched call), each child's value backed up to the root.
A problem stops when its token budget cannot pay for another expansion, after `max_simulations`, or
when an answer's value reaches `end_gate`.

Dead ends (value functions marked `exact`, whose 0 is certain: the step verifier): a node valued 0 is dead,
selection never enters it, and a node whose children are all dead is expanded again for other steps
(up to `dead_retries` times, each `retry_heat` hotter than the last), then is dead itself. Without this the search spends its budget under a
wrong first step: every descendant of a prefix with a wrong step is worth 0, and PUCT keeps descending. The answer is the most-visited path (or the best-valued
finished node), finished greedily within whatever budget is left if it stops short of an answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from reasonrl.registry import Registry
from reasonrl.types import Record
from search.expand import Budget, complete, expand
from search.tree import Node, backup, puct, tree_stats, uct

SELECTIONS: Registry = Registry("mcts selection rule")  # search.selection
SELECTIONS.register("puct")(puct)
SELECTIONS.register("uct")(uct)
ANSWERS = ("visits", "value")  # search.answer: the most-visited path, or the best-valued finished node


@dataclass
class SearchResult:
    text: str  # the chosen full response
    tokens_used: int
    simulations: int
    tree: dict = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    value: float | None = None


@dataclass
class MCTSSettings:
    branch: int = 3
    c: float = 1.0
    selection: str = "puct"
    step_tokens: int = 32
    step_split: str = "newline"  # a steps.py splitter
    max_depth: int = 8
    temperature: float = 0.7
    max_simulations: int = 64
    end_gate: float = 1.01  # stop early when a finished answer's value reaches this (> 1: never)
    answer: str = "visits"  # visits (most-visited path) | value (best-valued finished node)
    widen: int = 1  # most expansions of one node: 1 is ReST-MCTS* (once); more re-expands a node on the path
    # to a finished leaf instead of revisiting it, adding any new distinct steps (progressive widening)
    dead_retries: int = 16  # exact values only: re-expansions of a node whose every child is a dead end
    retry_heat: float = 0.0  # each re-expansion of a node samples this much hotter (up to MAX_TEMPERATURE)


MAX_TEMPERATURE = 2.0


def expansion_temperature(node: Node, s: MCTSSettings) -> float:
    """A node's first expansion samples at s.temperature; each later one retry_heat hotter: what the model
    proposes first, and again at the same temperature, is what already failed there."""
    return min(s.temperature + s.retry_heat * node.expansions, MAX_TEMPERATURE)


def select(root: Node, score: Callable[[Node, int, float], float], c: float) -> Node:
    """Down the live children by `score` to a leaf, or to a node whose every child is dead."""
    node = root
    while node.children:
        live = [ch for ch in node.children if not ch.dead]
        if not live:
            return node
        node = max(live, key=lambda ch: score(ch, node.visits, c))
    return node


def dead_end(node: Node, retries: int) -> bool:
    """A node whose children are all dead and that may not be expanded again is dead, and so, in turn, may be its
    ancestors; True when `node` died."""
    if not node.children or any(not ch.dead for ch in node.children) or node.expansions <= retries:
        return False
    while node is not None and node.children and all(ch.dead for ch in node.children) \
            and node.expansions > retries:
        node.dead = True
        node = node.parent
    return True


def widenable(leaf: Node, widen: int) -> Node | None:
    """The deepest unfinished node on the path to `leaf` that may be expanded again, if any."""
    node = leaf.parent
    while node is not None:
        if not node.terminal and node.expansions < widen:
            return node
        node = node.parent
    return None


def choose(root: Node, how: str) -> Node:
    """The answer node (live ones first: a dead end is known wrong)."""
    finished = [n for n in root.nodes() if n.terminal]
    if how == "value" and finished:
        return max(finished, key=lambda n: (not n.dead, n.q, n.visits))
    node = root
    while node.children:
        node = max(node.children, key=lambda ch: (not ch.dead, ch.visits, ch.q))
    if (not node.terminal or node.dead) and finished:  # stops short, or at a dead end: the best finished answer
        return max(finished, key=lambda n: (not n.dead, n.visits, n.q))
    return node


def mcts(engine, value_fn, records: list[Record], budget: int, s: MCTSSettings,
         generator: torch.Generator) -> list[SearchResult]:
    score = SELECTIONS.get(s.selection)
    exact = getattr(value_fn, "exact", False)  # a 0 is certain: dead ends are pruned
    roots = [Node() for _ in records]
    budgets = [Budget(budget) for _ in records]
    sims = [0] * len(records)
    active = set(range(len(records)))
    for root, v in zip(roots, value_fn(records, roots)):  # each root's own value: the prompt alone
        backup(root, v)
    while active:
        jobs, revisit = [], []
        for i in sorted(active):
            leaf = select(roots[i], score, s.c)
            sims[i] += 1
            if leaf.children:  # every child a dead end: other steps, unless its retries are spent
                if not dead_end(leaf, s.dead_retries):
                    jobs.append((i, leaf))
            elif leaf.terminal:
                again = widenable(leaf, s.widen)
                (jobs.append((i, again)) if again is not None else revisit.append((i, leaf)))
            else:
                jobs.append((i, leaf))
        for i, leaf in revisit:
            backup(leaf, leaf.score)
        children = expand(engine, [(records[i], leaf, budgets[i]) for i, leaf in jobs], k=s.branch,
                          step_tokens=s.step_tokens, temperature=[expansion_temperature(leaf, s) for _, leaf in jobs],
                          max_depth=s.max_depth,
                          generator=generator, split=s.step_split)
        flat = [(i, ch) for (i, _), kids in zip(jobs, children) for ch in kids]
        values = value_fn([records[i] for i, _ in flat], [ch for _, ch in flat])
        for (i, ch), v in zip(flat, values):
            budgets[i].used += ch.value_tokens
            ch.score = v
            ch.dead = exact and v == 0
            backup(ch, v)
        for i in list(active):
            gate = any(n.terminal and n.score is not None and n.score >= s.end_gate for n in roots[i].nodes())
            stuck = roots[i].dead or all(n.terminal or n.dead or (n.children and n.expansions >= s.widen
                                                                   and not all(ch.dead for ch in n.children))
                                         for n in roots[i].nodes())
            if budgets[i].remaining < s.branch or sims[i] >= s.max_simulations or gate or stuck:
                active.discard(i)
    results = []
    for rec, root, b, n in zip(records, roots, budgets, sims):
        node = choose(root, s.answer)
        text = complete(engine, rec, node, b, generator)
        results.append(SearchResult(text=text, tokens_used=b.used, simulations=n, tree=tree_stats(root),
                                    path=[x.text for x in node.path()], value=node.score))
    return results
