"""Verifiers turn (response, reference) into a VerificationResult and never raise.

    from verifiers import get_verifier
    get_verifier("math").verify("... \\boxed{1/2}", "0.5")
    get_verifier("code", mode="all").verify(program, {"tests": ["assert f(1) == 2"]})

Built-ins: math (verifiers/math.py), code (verifiers/code.py). Plug-ins: verifiers/registry.py.
Batches run in killable worker processes: verifiers/pool.py.
"""
from verifiers.base import STATUSES, VerificationResult, Verifier, safe_verify
from verifiers.registry import VERIFIERS, VerifierSetupError, check_verifier, get_verifier, register_verifier, resolve
from verifiers import code as _code, math as _math, reasoning_gym as _rg  # noqa: E402,F401  (built-ins)
from verifiers.pool import VerifierPool  # noqa: E402

__all__ = ["STATUSES", "VERIFIERS", "VerificationResult", "Verifier", "VerifierPool", "VerifierSetupError",
           "check_verifier", "get_verifier", "register_verifier", "resolve", "safe_verify"]
