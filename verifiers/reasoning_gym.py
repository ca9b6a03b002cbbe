"""Adapter for reasoning-gym's procedural tasks (optional: `pip install reasoning-gym`).

    from verifiers.reasoning_gym import records
    train = records("leg_counting", size=1000, seed=0)      # reasonrl Records, verifier "reasoning_gym"

    python -m verifiers.reasoning_gym leg_counting 1000 0 > train.jsonl   # the same, as JSON lines
    python train.py data.source=file data.path=train.jsonl model.path=...

The record's reference is reasoning-gym's own entry (question, answer, metadata); the verifier
extracts the response's answer (\\boxed{}, <answer>...</answer>, "the answer is", else the last
line) and scores it with the task's own `score_answer`, so partial credit is the task's to give.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from verifiers.base import VerificationResult
from verifiers.extract import extract_answer
from verifiers.registry import register_verifier

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
INSTALL = "reasoning-gym is not installed: pip install reasoning-gym"


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def records(name: str, size: int, seed: int = 0, template: str = "{prompt}") -> list:
    from reasonrl.types import Record  # imported here: verifier workers never load torch

    try:
        import reasoning_gym
    except ImportError:
        raise ImportError(INSTALL) from None
    data = reasoning_gym.create_dataset(name, size=size, seed=seed)
    return [Record(template.replace("{prompt}", e["question"]), _jsonable(e), "reasoning_gym", {"task": name})
            for e in data]


def extract(response: str) -> str | None:
    found = extract_answer(response)
    if found is not None:
        return found.answer
    tags = _ANSWER_TAG.findall(response)
    if tags:
        return tags[-1].strip()
    lines = [ln.strip() for ln in response.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else None


@register_verifier("reasoning_gym")
@dataclass
class ReasoningGymVerifier:
    threshold: float = 1.0  # a score at or above this counts as correct

    def verify(self, response: str, reference: Any) -> VerificationResult:
        try:
            import reasoning_gym
        except ImportError:
            return VerificationResult(0.0, False, "crash", None, INSTALL)
        if not isinstance(reference, dict) or "metadata" not in reference:
            return VerificationResult(0.0, False, "crash", None, "reference must be a reasoning-gym entry")
        answer = extract(response)
        if answer is None:
            return VerificationResult(0.0, False, "no_answer", None, "no answer found")
        score_fn = reasoning_gym.get_score_answer_fn(reference["metadata"]["source_dataset"])
        score = float(score_fn(answer=answer, entry=reference) or 0.0)
        return VerificationResult(score, score >= self.threshold, "ok", answer)


if __name__ == "__main__":
    task, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0
    for rec in records(task, size, seed):
        print(json.dumps({"prompt": rec.prompt, "reference": rec.reference, "verifier": rec.verifier}))
