"""Procedural task generators. Each registers a factory taking its options and returning a Task."""
from reasonrl.registry import Registry

TASKS: Registry = Registry("task")

from reasonrl.tasks.arithmetic import ArithmeticTask  # noqa: E402  (registers "arithmetic")
from reasonrl.tasks.function_spec import FunctionSpecTask  # noqa: E402  (registers "function_spec")

__all__ = ["TASKS", "ArithmeticTask", "FunctionSpecTask"]
