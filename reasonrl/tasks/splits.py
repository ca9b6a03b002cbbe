"""Disjoint train / held-out splits for procedural tasks, shared by every generator.

A problem belongs to the held-out split when the hash of its key (the expression, the spec) falls
below `fraction`, so the splits are disjoint by construction whatever the seeds. Problem k of a
stream is drawn from random.Random(f"{stream}:{k}:{attempt}") until it lands in the wanted split,
so a data cursor reproduces the stream exactly.
"""
from __future__ import annotations

import hashlib
import random
from typing import Callable

from reasonrl.types import Record

Make = Callable[[random.Random], Record]
Key = Callable[[Record], str]


def in_held_out(key: str, fraction: float) -> bool:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64 < fraction


def draw(make: Make, key: Key, stream: str, index: int, held_out: bool, fraction: float) -> Record:
    """Problem `index` of `stream`, from the requested split."""
    for attempt in range(10_000):
        rec = make(random.Random(f"{stream}:{index}:{attempt}"))
        if in_held_out(key(rec), fraction) == held_out:
            return rec
    raise RuntimeError("could not draw a problem from the requested split; check eval_fraction")


def held_out_set(make: Make, key: Key, seed: int, size: int, fraction: float) -> list[Record]:
    """The first `size` distinct held-out problems of the fixed evaluation stream."""
    out, seen, i = [], set(), 0
    while len(out) < size and i < 50 * size + 1000:
        rec = draw(make, key, f"eval:{seed}", i, True, fraction)
        i += 1
        if key(rec) not in seen:
            seen.add(key(rec))
            out.append(rec)
    return out


class SplitTask:
    """The interface the data layer uses, for a task that defines `make(rng) -> Record`, `key(record) -> str`
    (what makes two problems the same), `eval_fraction` and `EVAL_SEED` (the held-out stream, the same for
    every run whatever trainer.seed is)."""

    EVAL_SEED: int

    def train_record(self, seed: int, index: int) -> Record:
        """The index-th training problem of stream `seed` (never in the held-out split)."""
        return draw(self.make, self.key, f"train:{seed}", index, False, self.eval_fraction)

    def eval_records(self, size: int) -> list[Record]:
        """The first `size` held-out problems (fixed: independent of the training seed), without repeats."""
        return held_out_set(self.make, self.key, self.EVAL_SEED, size, self.eval_fraction)
