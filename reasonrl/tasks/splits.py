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
