"""Faults a run survives, in one place: non-finite updates, out-of-memory micro-batches, and the kill points the
kill test (tests/test_faults.py) stops a run at.

* **Non-finite updates.** `finite(dist, loss, grad_norm)` is True when the loss and the gradient norm of an
  optimiser step are finite on every rank. The learner and the PRM skip the optimiser step otherwise (the
  gradients are dropped, the learning-rate schedule still advances) and count it (`fault/nonfinite_updates`);
  the loop counts the steps that had one (`fault/nonfinite_steps`) and stops the run after
  `trainer.max_nonfinite_steps` of them in a row with `RunStopped`, naming the last good checkpoint.
* **Out of memory.** `halving_retries(attempt, owner, optimizer, dist)` runs `attempt()`; when it runs out of
  memory (CUDA's OutOfMemoryError, or the CPU allocator's "can't allocate memory"), the gradients are dropped,
  `owner.forward`'s micro-batch token budgets are halved and the attempt runs again, down to
  `MIN_MICROBATCH_TOKENS`. Under torchrun an OOM is not retried: the ranks' collectives would no longer pair up.
  A checkpoint keeps the halved budgets (`budget_record`, in TrainState.microbatch_budgets) and a resume runs at
  them (`resume_budgets`) unless the budget configured at resume differs from the one the run started with:
  then the new setting is taken as it is.
* **Kill points.** `kill_point(name)` does nothing unless the environment variable REASONRL_KILL_AT is
  `name:n`; then the process SIGKILLs itself the n-th time it reaches `name` (the kill test's way of landing a
  kill inside a checkpoint write or half-way through a metrics line). The points: generate, update,
  checkpoint.files, checkpoint.publish, metrics.write.
"""
from __future__ import annotations

import gc
import math
import os
import re
import signal
import warnings
from dataclasses import replace
from typing import Callable, TypeVar

import torch

from reasonrl.distributed import to_float

MIN_MICROBATCH_TOKENS = 64  # halving stops here: a micro-batch this small that still does not fit is a real error
KILL_ENV = "REASONRL_KILL_AT"
T = TypeVar("T")


class RunStopped(RuntimeError):
    """The run cannot go on (e.g. non-finite updates K steps in a row); the message says why and how to resume."""


# ------------------------------------------------------------------ non-finite updates

def finite(dist, loss: float, grad_norm) -> bool:
    """Whether an optimiser step may be taken: its loss and gradient norm are finite on every rank."""
    return dist.all(math.isfinite(loss) and math.isfinite(to_float(grad_norm)))


def advance(scheduler, stepped: bool) -> None:
    """scheduler.step() whether or not the optimiser stepped (the schedule follows the step count); torch's
    warning about a schedule stepping before its optimiser, meant for misordered code, is silenced for a skip."""
    with warnings.catch_warnings():
        if not stepped:
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        scheduler.step()


# ------------------------------------------------------------------ out of memory

def is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator failing to allocate."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def halved(forward):
    """A Forward (reasonrl/batching.py) with half the micro-batch and packing token budgets."""
    return replace(forward, max_tokens=max(MIN_MICROBATCH_TOKENS, forward.max_tokens // 2),
                   pack_tokens=max(MIN_MICROBATCH_TOKENS, forward.pack_tokens // 2))


def halving_retries(attempt: Callable[[], T], owner, optimizer: torch.optim.Optimizer, dist) -> T:
    """attempt() until it fits in memory; before each retry the gradients are dropped and owner.forward's
    budgets halved (owner.oom_retries counts the retries). Re-raises an OOM that halving cannot help: under
    torchrun, or at MIN_MICROBATCH_TOKENS already."""
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not is_oom(exc):
                raise
            f = owner.forward
            if dist.enabled:
                raise RuntimeError(f"out of memory on rank {dist.rank} under torchrun (micro-batch budget "
                                   f"{f.max_tokens} tokens); ranks cannot retry alone: lower "
                                   f"trainer.max_tokens_per_microbatch and resume") from exc
            if f.max_tokens <= MIN_MICROBATCH_TOKENS and (not f.packing or f.pack_tokens <= MIN_MICROBATCH_TOKENS):
                raise
            optimizer.zero_grad(set_to_none=True)
            free_memory()
            owner.forward = halved(f)
            owner.oom_retries += 1


def budget_record(owners: dict, record: dict) -> dict:
    """TrainState.microbatch_budgets: per owner (name -> an object with a .forward), the [max_tokens,
    pack_tokens] it was configured with (kept from `record`, the run's first) and runs at now."""
    return {name: {"configured": record.get(name, {}).get("configured", now), "now": now}
            for name, o in owners.items() for now in [[o.forward.max_tokens, o.forward.pack_tokens]]}


def resume_budgets(owners: dict, saved: dict) -> tuple[dict, list[str]]:
    """Put each owner back at the budget a checkpoint recorded (a halving after an out-of-memory is not undone
    by a resume), when its configured budget is the one the checkpointed run had. Returns the new record and a
    line for each budget restored."""
    lines, record = [], {}
    for name, o in owners.items():
        configured = [o.forward.max_tokens, o.forward.pack_tokens]
        s = saved.get(name)
        if s and s["configured"] == configured and s["now"] != configured:
            o.forward = replace(o.forward, max_tokens=s["now"][0], pack_tokens=s["now"][1])
            lines.append(f"{name}: micro-batch budget {s['now'][0]} tokens, halved from {configured[0]} after an "
                         f"out of memory before this checkpoint (a different configured budget is taken as set)")
        record[name] = {"configured": configured, "now": [o.forward.max_tokens, o.forward.pack_tokens]}
    return record, lines


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ kill points (the kill test)

class KillPoints:
    """REASONRL_KILL_AT=name:n, read once: SIGKILL at the n-th arrival at kill_point(name)."""

    def __init__(self, spec: str | None):
        name, _, n = (spec or "").partition(":")
        self.name, self.left = name, int(n or 1)

    def reach(self, name: str) -> None:
        if name != self.name:
            return
        self.left -= 1
        if self.left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)

    def armed(self, name: str) -> bool:
        return name == self.name


_POINTS = KillPoints(os.environ.get(KILL_ENV))  # the only module state: what the environment asked for at start


def kill_point(name: str) -> None:
    _POINTS.reach(name)


def write_line(f, line: str, point: str) -> None:
    """f.write(line); with the kill point `point` armed, half the line is flushed to disk first, so a kill
    there leaves a torn last line, as a power cut would."""
    if _POINTS.armed(point):
        f.write(line[: len(line) // 2])
        f.flush()
        os.fsync(f.fileno())
        kill_point(point)
    f.write(line[len(line) // 2:] if _POINTS.armed(point) else line)
