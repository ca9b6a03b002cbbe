"""The search tree: one node per reasoning step, with visit statistics and backup.

A node holds the text and token ids of one step (the root: none), its parent and children, the
visit count N and value sum W (so Q = W / N), the prior P from the policy's probability of the
step among its siblings, its value-function score, and whether it ends a solution (terminal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(eq=False)
class Node:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    prior: float = 1.0
    logprob: float = 0.0  # the policy's log-probability of this step's tokens
    score: float | None = None  # the value function's estimate for the prefix ending here
    terminal: bool = False
    expansions: int = 0  # times this node was expanded (> 1 with progressive widening)
    value_tokens: int = 0  # tokens the value function generated to score this node (a rollout), charged to the budget
    dead: bool = False  # no completion of this prefix can be right (an exact value of 0, or every child dead)

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else 1 + self.parent.depth

    def path(self) -> list["Node"]:
        """Root's children down to this node (the root itself excluded)."""
        out, node = [], self
        while node.parent is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def prefix_text(self) -> str:
        return "".join(n.text for n in self.path())

    def prefix_ids(self) -> list[int]:
        return [t for n in self.path() for t in n.token_ids]

    def add_child(self, child: "Node") -> "Node":
        child.parent = self
        self.children.append(child)
        return child

    def nodes(self):
        """This node and every descendant, depth first."""
        yield self
        for c in self.children:
            yield from c.nodes()


def backup(node: Node, value: float, visits: int = 1) -> None:
    """Add `visits` visits worth `value` in total to the node and every ancestor."""
    while node is not None:
        node.visits += visits
        node.value_sum += value
        node = node.parent


def uct(child: Node, parent_visits: int, c: float) -> float:
    """Q + c * sqrt(ln N_parent / N_child); an unvisited child is tried first."""
    if child.visits == 0:
        return math.inf
    return child.q + c * math.sqrt(math.log(max(parent_visits, 1)) / child.visits)


def puct(child: Node, parent_visits: int, c: float) -> float:
    """Q + c * P * sqrt(N_parent) / (1 + N_child) (AlphaZero), P the step's prior among its siblings."""
    return child.q + c * child.prior * math.sqrt(max(parent_visits, 1)) / (1 + child.visits)


def set_priors(children: list[Node]) -> None:
    """P = softmax over siblings of the policy's step log-probabilities."""
    if not children:
        return
    top = max(c.logprob for c in children)
    weights = [math.exp(c.logprob - top) for c in children]
    total = sum(weights)
    for c, w in zip(children, weights):
        c.prior = w / total


def tree_stats(root: Node) -> dict:
    nodes = list(root.nodes())
    return {"nodes": len(nodes) - 1, "depth": max(n.depth for n in nodes),
            "terminal_leaves": sum(n.terminal for n in nodes), "root_visits": root.visits}
