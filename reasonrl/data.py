"""Prompt datasets -> Records, and the samplers the loop draws from.

A sampler is deterministic given its seed and cursor, and its state is the cursor, so a resumed
run draws exactly the prompts the uninterrupted run would have drawn.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonrl.tasks import TASKS
from reasonrl.types import Record


class DataError(ValueError):
    pass


@dataclass
class LoadReport:
    """What a loader kept and skipped; `examples` holds the first few problems found."""

    kept: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def add_problem(self, where: str, why: str) -> None:
        self.skipped += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {why}")

    def summary(self, name: str) -> str:
        text = f"{name}: {self.kept} rows kept, {self.skipped} malformed rows skipped"
        return text + "".join(f"\n    {e}" for e in self.examples)


def load_jsonl(path: str | Path, *, prompt_field: str = "prompt", reference_field: str = "reference",
               verifier: str = "math") -> tuple[list[Record], LoadReport]:
    """One JSON object per line. Rows that are not JSON objects, or lack a non-empty string prompt or a
    reference, are skipped and counted; the first few are described in the report."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    records, report = [], LoadReport()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                row: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                report.add_problem(where, f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                report.add_problem(where, f"expected a JSON object, got {type(row).__name__}")
                continue
            prompt, reference = row.get(prompt_field), row.get(reference_field)
            if not isinstance(prompt, str) or not prompt.strip():
                report.add_problem(where, f"field {prompt_field!r} missing or not a non-empty string")
                continue
            if reference is None:
                report.add_problem(where, f"field {reference_field!r} missing")
                continue
            name = row.get("verifier", verifier)
            meta = {k: v for k, v in row.items() if k not in (prompt_field, reference_field, "verifier")}
            records.append(Record(prompt=prompt, reference=reference, verifier=str(name), meta=meta))
            report.kept += 1
    if not records:
        raise DataError(f"{path}: no usable rows ({report.skipped} malformed).\n" + report.summary(path.name))
    return records, report


class TaskSampler:
    """Draws training problems from a procedural task: problem k of stream `seed`."""

    def __init__(self, task, seed: int):
        self.task, self.seed, self.cursor = task, seed, 0

    def next(self, n: int) -> list[Record]:
        out = [self.task.train_record(self.seed, self.cursor + i) for i in range(n)]
        self.cursor += n
        return out

    def state_dict(self) -> dict:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = int(state["cursor"])


class FileSampler:
    """Cycles through a list of records, reshuffled each epoch from (seed, epoch)."""

    def __init__(self, records: list[Record], seed: int, shuffle: bool = True):
        self.records, self.seed, self.shuffle, self.cursor = records, seed, shuffle, 0

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.records)))
        if self.shuffle:
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return order

    def next(self, n: int) -> list[Record]:
        out = []
        for k in range(self.cursor, self.cursor + n):
            epoch, i = divmod(k, len(self.records))
            out.append(self.records[self._order(epoch)[i]])
        self.cursor += n
        return out

    def state_dict(self) -> dict:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = int(state["cursor"])


def build_data(data_cfg, eval_size: int, seed: int, log=print):
    """-> (train sampler, held-out records) for the data config."""
    if data_cfg.source == "task":
        t = data_cfg.task
        task = TASKS.get(t.name)(min_operands=t.min_operands, max_operands=t.max_operands, max_value=t.max_value,
                                 ops=t.ops, eval_fraction=t.eval_fraction)
        return TaskSampler(task, seed), task.eval_records(eval_size)
    kw = dict(prompt_field=data_cfg.prompt_field, reference_field=data_cfg.reference_field,
              verifier=data_cfg.verifier)
    train, report = load_jsonl(data_cfg.path, **kw)
    log(report.summary(f"data.path {data_cfg.path}"))
    held_out: list[Record] = []
    if data_cfg.eval_path:
        held_out, report = load_jsonl(data_cfg.eval_path, **kw)
        log(report.summary(f"data.eval_path {data_cfg.eval_path}"))
    return FileSampler(train, seed, data_cfg.shuffle), held_out[:eval_size]
