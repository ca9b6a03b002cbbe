"""reasonrl: reinforcement learning for reasoning, readable top to bottom."""
__version__ = "0.1.0"
