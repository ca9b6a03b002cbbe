"""Greedy held-out evaluation."""
from __future__ import annotations

import torch

from reasonrl.registry import Problems
from reasonrl.types import Record, SamplingParams


def evaluate_greedy(engine, verifier, records: list[Record], max_new_tokens: int) -> dict:
    """Greedy answers to `records`; returns accuracy, mean response length, the per-problem results and
    the raw rollouts (one per record, for scoring them with a PRM)."""
    if not records:
        return {"accuracy": float("nan"), "response_length": 0.0, "results": [], "rollouts": []}
    outs = engine.generate([r.prompt for r in records], SamplingParams(n=1, temperature=0.0,
                           max_new_tokens=max_new_tokens), torch.Generator().manual_seed(0))
    texts = [o[0].text for o in outs]
    verdicts = verifier.verify_batch(texts, [r.reference for r in records], [r.verifier for r in records])
    results = [{"prompt": r.prompt, "reference": r.reference, "response": t, "extracted": v.extracted,
                "correct": v.correct, "status": v.status} for r, t, v in zip(records, texts, verdicts)]
    return {
        "accuracy": sum(v.correct for v in verdicts) / len(records),
        "response_length": sum(len(o[0].response_ids) for o in outs) / len(records),
        "results": results,
        "rollouts": [o[0] for o in outs],
    }


def check_eval(e) -> Problems:
    """The eval section (EvalConfig)."""
    p = Problems()
    p.need(e.every >= 0, "eval.every", e.every, "must be >= 0")
    p.need(e.size >= 0, "eval.size", e.size, "must be >= 0")
    p.need(e.max_new_tokens >= 1, "eval.max_new_tokens", e.max_new_tokens, "must be >= 1")
    return p
