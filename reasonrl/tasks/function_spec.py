"""Write a small Python function from a spec in words: the embedded default's code task.

    prompt:    "Write f(x): multiply by 3, add 2, subtract 5.\\n"
    response:  "def f(x):\\n    x = x * 3\\n    x = x + 2\\n    x = x - 5\\n    return x"
    reference: {"tests": ["assert f(1) == 0", "assert f(4) == 9", "assert f(-2) == -9"]}   (the code verifier)

The number of operations is drawn from [min_operands, max_operands] (the knob the arithmetic task
calls operands), constants from 1..max_value, operations from `ops`. The score is the fraction of
the three asserts the program passes, run in the sandbox. Splits are disjoint by hashing the spec,
as in the arithmetic task.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from reasonrl.tasks.splits import SplitTask
from reasonrl.tasks.registry import TASKS
from reasonrl.types import Record

WORDS = {"+": "add", "-": "subtract", "*": "multiply by"}
INPUTS = (1, 4, -2)


@dataclass(frozen=True)
class FunctionSpecTask(SplitTask):
    EVAL_SEED = 20261123
    min_operands: int = 2
    max_operands: int = 3
    max_value: int = 9
    ops: str = "+-*"
    eval_fraction: float = 0.1

    def _record(self, steps: list[tuple[str, int]]) -> Record:
        spec = ", ".join(f"{WORDS[op]} {k}" for op, k in steps)
        body = [f"    x = x {op} {k}" for op, k in steps]

        def f(x: int) -> int:
            for op, k in steps:
                x = x + k if op == "+" else x - k if op == "-" else x * k
            return x

        tests = [f"assert f({x}) == {f(x)}" for x in INPUTS]
        return Record(prompt=f"Write f(x): {spec}.\n", reference={"tests": tests}, verifier="code",
                      meta={"spec": spec, "lines": ["def f(x):", *body, "    return x"]})

    def make(self, rng: random.Random) -> Record:
        n = rng.randint(self.min_operands, self.max_operands)
        return self._record([(rng.choice(self.ops), rng.randint(1, self.max_value)) for _ in range(n)])

    @staticmethod
    def key(record: Record) -> str:
        return record.meta["spec"]

    @staticmethod
    def solution(record: Record) -> str:
        return "\n".join(record.meta["lines"])


TASKS.register("function_spec")(FunctionSpecTask)
