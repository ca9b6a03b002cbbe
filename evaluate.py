"""Evaluate a policy on the held-out split with greedy decoding.

    python evaluate.py model.path=runs/<run>/checkpoints/latest [eval.size=1000] [--config FILE.yaml]

Takes the same config keys as train.py (the data and eval sections choose the problems).
Search-based methods (best-of-N, majority vote, beam, MCTS) come with the search work.
"""
from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    from reasonrl.config import ConfigError, help_text, load

    if "-h" in argv or "--help" in argv:
        print(__doc__)
        print(help_text())
        return 0
    try:
        cfg = load(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    from reasonrl.data import DataError, build_data
    from reasonrl.evaluation import evaluate_greedy
    from reasonrl.models import ModelLoadError, load_model, load_tokenizer, resolve_device
    from reasonrl.rollout import ENGINES

    try:
        if cfg.trainer.threads:
            torch.set_num_threads(cfg.trainer.threads)
        tok = load_tokenizer(cfg.model.path)
        model = load_model(cfg.model.path, dtype=cfg.model.dtype, attn_implementation=cfg.model.attn_implementation,
                           device=resolve_device(cfg.trainer.device))
        _, held_out = build_data(cfg.data, cfg.eval.size, cfg.trainer.seed)
    except (ModelLoadError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from verifiers import VerifierPool

    engine = ENGINES.get(cfg.rollout.engine)(model, tok, cfg)
    t0 = time.perf_counter()
    with VerifierPool(cfg.verifier.options, workers=cfg.verifier.workers, timeout_s=cfg.verifier.timeout_s,
                      plugins=cfg.verifier.plugins) as verifier:
        res = evaluate_greedy(engine, verifier, held_out, cfg.eval.max_new_tokens)
    print(json.dumps({"method": "greedy", "problems": len(held_out), "accuracy": res["accuracy"],
                      "tokens_per_problem": res["response_length"], "seconds": round(time.perf_counter() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
