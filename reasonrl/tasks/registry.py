"""TASKS: procedural task generators by name (data.task.name); each module registers its own."""
from reasonrl.registry import Registry

TASKS: Registry = Registry("task")
