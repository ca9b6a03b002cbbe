"""Verifiers: registered by name, `get_verifier(name, **options)` returns a ready instance."""
from __future__ import annotations

from typing import Any

from reasonrl.registry import Registry
from verifiers.base import STATUSES, VerificationResult, Verifier, safe_verify
from verifiers.math import MathVerifier

VERIFIERS: Registry = Registry("verifier")
VERIFIERS.register("math")(MathVerifier)


def register_verifier(name: str):
    """Decorator: make a verifier class available by name."""
    return VERIFIERS.register(name)


def get_verifier(name: str, **options: Any) -> Verifier:
    return VERIFIERS.get(name)(**options)


def verify_batch(responses: list[str], references: list[Any], names: list[str],
                 cache: dict[str, Verifier] | None = None) -> list[VerificationResult]:
    """Verify each response with the verifier its record names. Never raises."""
    cache = {} if cache is None else cache
    out = []
    for response, reference, name in zip(responses, references, names):
        if name not in cache:
            try:
                cache[name] = get_verifier(name)
            except Exception as exc:
                out.append(VerificationResult(0.0, False, "crash", None, str(exc)))
                continue
        out.append(safe_verify(cache[name], response, reference))
    return out


__all__ = ["STATUSES", "VERIFIERS", "VerificationResult", "Verifier", "get_verifier", "register_verifier",
           "safe_verify", "verify_batch"]
