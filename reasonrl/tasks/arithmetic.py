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

import hashlib
import random
from dataclasses import dataclass

from reasonrl.types import Record

EVAL_SEED = 20261122  # the held-out set is the same for every run, whatever trainer.seed is


@dataclass(frozen=True)
class ArithmeticTask:
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

    def is_held_out(self, expression: str) -> bool:
        digest = hashlib.sha1(expression.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.eval_fraction

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

    def _sample(self, stream: str, index: int, held_out: bool) -> Record:
        for attempt in range(10_000):
            rng = random.Random(f"{stream}:{index}:{attempt}")
            rec = self._record(*self._draw(rng))
            if self.is_held_out(rec.meta["expression"]) == held_out:
                return rec
        raise RuntimeError("could not draw a problem from the requested split; check eval_fraction")

    # --- the interface the data layer uses ------------------------------------------------
    def train_record(self, seed: int, index: int) -> Record:
        """The index-th training problem of stream `seed` (never in the held-out split)."""
        return self._sample(f"train:{seed}", index, held_out=False)

    def eval_records(self, size: int) -> list[Record]:
        """The first `size` held-out problems (fixed: independent of the training seed), without repeats."""
        out, seen, i = [], set(), 0
        while len(out) < size and i < 50 * size + 1000:
            rec = self._sample(f"eval:{EVAL_SEED}", i, held_out=True)
            i += 1
            if rec.meta["expression"] not in seen:
                seen.add(rec.meta["expression"])
                out.append(rec)
        return out

    @staticmethod
    def solution(record: Record) -> str:
        """The reference response: one step per line, then the boxed answer."""
        return "\n".join(record.meta["steps"] + [f"\\boxed{{{record.reference}}}"])


from reasonrl.tasks import TASKS  # noqa: E402

TASKS.register("arithmetic")(ArithmeticTask)
