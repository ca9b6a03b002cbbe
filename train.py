"""Train a policy with GRPO-family RL on verifiable rewards.

    python train.py                                     # the embedded default: tiny model, arithmetic, CPU
    python train.py --config configs/debug_cpu.yaml     # a YAML of overrides
    python train.py trainer.steps=50 rollout.group_size=4
    python train.py --help                              # every key, its default and meaning
"""
from __future__ import annotations

import json
import sys


def train_and_report(cfg) -> int:
    from reasonrl.loop import run

    summary = run(cfg)
    before, after = summary["eval_accuracy_before"], summary["eval_accuracy_after"]
    print(f"\ndone: {summary['steps']} steps in {summary['seconds']:.0f} s, "
          f"{summary['tokens_generated']} tokens generated, run directory {summary['run_dir']}")
    if before is not None:
        print(f"held-out greedy accuracy: {before:.3f} -> {after:.3f} ({100 * (after - before):+.1f} points)")
    print(json.dumps({k: v for k, v in summary.items() if k != "evals"}))
    return 0


def main(argv: list[str]) -> int:
    from reasonrl.cli import run_command

    return run_command(argv, __doc__, train_and_report)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
