"""Procedural task generators. Each registers a factory taking its options and returning a Task."""
from reasonrl.registry import Problems
from reasonrl.tasks.arithmetic import ArithmeticTask  # registers "arithmetic"
from reasonrl.tasks.function_spec import FunctionSpecTask  # registers "function_spec"
from reasonrl.tasks.registry import TASKS

__all__ = ["TASKS", "ArithmeticTask", "FunctionSpecTask"]


def check_task(t) -> Problems:
    """The data.task section (TaskConfig)."""
    p = Problems()
    p.known(TASKS, "data.task.name", t.name)
    p.need(1 <= t.min_operands <= t.max_operands, "data.task.min_operands", t.min_operands,
           f"must be >= 1 and <= data.task.max_operands ({t.max_operands})")
    p.need(t.max_value >= 1, "data.task.max_value", t.max_value, "must be >= 1")
    p.need(bool(t.ops) and set(t.ops) <= set(ArithmeticTask.OPERATORS), "data.task.ops", t.ops,
           f"use a string of {' '.join(ArithmeticTask.OPERATORS)}")
    p.need(0 < t.eval_fraction < 1, "data.task.eval_fraction", t.eval_fraction, "must be in (0, 1)")
    return p
