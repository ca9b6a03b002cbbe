"""Multi-step integer arithmetic, the embedded default's task.

    prompt:    "Compute: 12+7-3\n"
    response:  "12+7=19\n19-3=16\n\\boxed{16}"     (one step per line, then the boxed answer)

Evaluation is left to right; a `*` after a `+`/`-` is written with parentheses, "(12+7)*3",
so the printed expression and its value agree. Problems are a pure function of (seed, index),
so a data cursor reproduces the stream. The held-out split is the slice of the problem space
whose expression hashes below `eval_fraction`: train problems are drawn outside it, held-out
problems inside it, so the splits are disjoint by construction whatever the seeds.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from reasonrl.tasks.splits import SplitTask
from reasonrl.tasks.registry import TASKS
from reasonrl.types import Record



@dataclass(frozen=True)
class ArithmeticTask(SplitTask):
    OPERATORS = "+-*"  # what `ops` may draw from
    EVAL_SEED = 20261122

    min_operands: int = 3
    max_operands: int = 4
    max_value: int = 30
    ops: str = "+-"
    eval_fraction: float = 0.1

    # --- problem space -------------------------------------------------------------------
    def _draw(self, rng: random.Random) -> tuple[list[int], list[str]]:
        n = rng.randint(self.min_operands, self.max_operands)
        nums = [rng.randint(0, self.max_value) for _ in range(n)]
        ops = [rng.choice(self.ops) for _ in range(n - 1)]
        return nums, ops

    def _record(self, nums: list[int], ops: list[str]) -> Record:
        expr, lines, value = str(nums[0]), [], nums[0]
        for op, b in zip(ops, nums[1:]):
            new = value + b if op == "+" else value - b if op == "-" else value * b
            lines.append(f"{value}{op}{b}={new}")
            needs_parens = op == "*" and any(c in expr[1:] for c in "+-")
            expr = f"({expr}){op}{b}" if needs_parens else f"{expr}{op}{b}"
            value = new
        return Record(
            prompt=f"Compute: {expr}\n",
            reference=str(value),
            verifier="math",
            meta={"expression": expr, "steps": lines, "num_operands": len(nums)},
        )

    def make(self, rng: random.Random) -> Record:
        return self._record(*self._draw(rng))

    @staticmethod
    def key(record: Record) -> str:
        return record.meta["expression"]

    @staticmethod
    def solution(record: Record) -> str:
        """The reference response: one step per line, then the boxed answer."""
        return "\n".join(record.meta["steps"] + [f"\\boxed{{{record.reference}}}"])


TASKS.register("arithmetic")(ArithmeticTask)
