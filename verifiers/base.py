"""The verifier interface.

A verifier turns (response text, reference) into a VerificationResult. It never raises into the
trainer: anything that goes wrong becomes a status.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

STATUSES = ("ok", "no_answer", "parse_error", "timeout", "crash")


@dataclass
class VerificationResult:
    score: float  # the outcome reward; 1.0 / 0.0 for right / wrong answers
    correct: bool
    status: str  # one of STATUSES
    extracted: str | None = None  # the answer found in the response, if any
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


class Verifier(Protocol):
    def verify(self, response: str, reference: Any) -> VerificationResult: ...


def safe_verify(verifier: Verifier, response: str, reference: Any) -> VerificationResult:
    """Call a verifier; an exception becomes a `crash` verdict with score 0."""
    try:
        return verifier.verify(response, reference)
    except Exception as exc:  # a verifier bug must not kill the run
        return VerificationResult(0.0, False, "crash", None, f"{type(exc).__name__}: {exc}")
