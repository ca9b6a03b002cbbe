"""Self-training data from search (ReST-MCTS*): MCTS with the verifier as value function on training
problems, then

* verified traces: every finished node whose full response the verifier accepts -> sft.jsonl
  ({"prompt", "response"}), for a supervised stage (trainer.sft_path);
* per-step value targets inferred from which branches reach a correct answer -> values.jsonl
  ({"prompt", "prefix", "target"}), for warm-starting the PRM (prm.warmstart).

Value targets (docs/algorithms.md 7.3): m is a node's reasoning distance (further steps to a correct
answer; 0 at one); a node off every correct route inherits the m of its nearest ancestor on one and
has r = 1 (r = 0 on a route); from v = 0 at the root, v_k = max(v_{k-1} + (1 - v_{k-1}) / (m_k + 1) *
(1 - 2 r_k), 0). A tree with no correct answer yields no targets.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from reasonrl.types import Record
from search.mcts import MCTSSettings, mcts
from search.tree import Node
from search.values import VerifierValue


def reasoning_distance(root: Node, correct: Callable[[Node], bool]) -> dict[Node, int]:
    """m for every node on a route to a correct answer (a node absent from the map has none)."""
    m: dict[Node, int] = {}

    def visit(node: Node) -> int | None:
        best = 0 if (node.terminal and correct(node)) else None
        for child in node.children:
            d = visit(child)
            if d is not None and (best is None or d + 1 < best):
                best = d + 1
        if best is not None:
            m[node] = best
        return best

    visit(root)
    return m


def value_targets(root: Node, correct: Callable[[Node], bool]) -> dict[Node, float]:
    """ReST-MCTS* quality values v_k for every node below the root (empty when nothing is correct)."""
    m = reasoning_distance(root, correct)
    if root not in m:
        return {}
    out: dict[Node, float] = {}

    def walk(node: Node, v: float, inherited: int) -> None:
        for child in node.children:
            on_route = child in m
            mk, r = (m[child], 0) if on_route else (inherited, 1)
            vk = max(v + (1 - v) / (mk + 1) * (1 - 2 * r), 0.0)
            out[child] = vk
            walk(child, vk, m[child] if on_route else inherited)

    walk(root, 0.0, m[root])
    return out


def collect_rows(engine, verifier, records: list[Record], budget: int, settings: MCTSSettings, max_new_tokens: int,
                 generator: torch.Generator) -> dict:
    """Search every problem with the verifier as value function: its sft and values rows, problems solved and
    tokens spent (a part of the collection: several ranks each search a slice of the problems)."""
    trees: list[Node] = []

    class Keep:  # mcts builds its roots inside; keep a handle on each as its first value call sees it
        def __call__(self, recs, nodes):
            for n in nodes:
                if n.parent is None:
                    trees.append(n)
            return value(recs, nodes)

    value = VerifierValue(verifier, engine, max_new_tokens, generator)
    results = mcts(engine, Keep(), records, budget, settings, generator)
    sft, values = [], []
    for rec, root in zip(records, trees):
        correct = lambda n: n.score == 1.0  # noqa: E731  a finished node's verifier value is its verdict
        for text in dict.fromkeys(n.prefix_text() for n in root.nodes() if n.terminal and correct(n)):
            sft.append({"prompt": rec.prompt, "response": text})
        for node, v in value_targets(root, correct).items():
            values.append({"prompt": rec.prompt, "prefix": node.prefix_text(), "target": round(v, 6)})
    solved = sum(any(n.terminal and n.score == 1.0 for n in root.nodes()) for root in trees)
    return {"sft": sft, "values": values, "solved": solved, "tokens": sum(r.tokens_used for r in results)}


def write_collection(out_dir: str, parts: list[dict], problems: int, *, write: bool = True) -> dict:
    """The parts' rows, in part order, as out_dir/sft.jsonl and out_dir/values.jsonl (write: false, the summary
    only); returns the summary."""
    sft = [r for part in parts for r in part["sft"]]
    values = [r for part in parts for r in part["values"]]
    out = Path(out_dir)
    if write:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
        (out / "values.jsonl").write_text("".join(json.dumps(r) + "\n" for r in values))
    summary = {"problems": problems, "solved": sum(part["solved"] for part in parts), "sft_rows": len(sft),
               "value_rows": len(values), "tokens_per_problem": sum(part["tokens"] for part in parts) / max(problems, 1),
               "dir": str(out)}
    if len(parts) > 1:  # several ranks: what each contributed
        summary["ranks"] = [{"solved": part["solved"], "sft_rows": len(part["sft"]), "value_rows": len(part["values"])}
                            for part in parts]
    return summary


def collect(engine, verifier, records: list[Record], budget: int, settings: MCTSSettings, out_dir: str,
            max_new_tokens: int, generator: torch.Generator) -> dict:
    """Search every problem with the verifier as value function; write sft.jsonl and values.jsonl."""
    part = collect_rows(engine, verifier, records, budget, settings, max_new_tokens, generator)
    return write_collection(out_dir, [part], len(records))
