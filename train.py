"""Train a policy with GRPO-family RL on verifiable rewards.

    python train.py                                     # the embedded default: tiny model, arithmetic, CPU
    python train.py --config configs/debug_cpu.yaml     # a YAML of overrides
    python train.py trainer.steps=50 rollout.group_size=4
    python train.py --help                              # every key, its default and meaning
    python train.py --dry-run [--config ...] [key=value ...]   # the resolved config and the first prompt as fed
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


def dry_run(cfg) -> int:
    """Print the resolved config, the first training prompt exactly as the model will see it (chat template
    applied) and its token count, then exit: no model weights are loaded, nothing is written."""
    from reasonrl.advice import advise, facts_from_path
    from reasonrl.config import to_yaml
    from reasonrl.data import build_data, chat_renderer
    from reasonrl.models import load_tokenizer

    tokenizer = load_tokenizer(cfg.model.path)
    render = chat_renderer(tokenizer, cfg.data.chat_template, cfg.data.system_prompt)
    sampler, held_out = build_data(cfg.data, cfg.eval.size, cfg.trainer.seed, render=render)
    first = sampler.next(1)[0]
    ids = tokenizer(first.prompt, add_special_tokens=False)["input_ids"]
    print(to_yaml(cfg))
    print(f"--- first training prompt as fed ({len(ids)} tokens; chat template "
          f"{'applied' if render else 'not applied'}; reference {first.reference!r}):")
    print(first.prompt)
    print(f"--- {len(held_out)} held-out problems; verifier {first.verifier!r}")
    for line in advise(cfg, facts_from_path(cfg.model.path)):
        print(f"advice: {line}")
    return 0


def main(argv: list[str]) -> int:
    from reasonrl.cli import run_command

    body = dry_run if "--dry-run" in argv else train_and_report
    return run_command([a for a in argv if a != "--dry-run"], __doc__, body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
