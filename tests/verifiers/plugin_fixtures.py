"""Verifiers used by the pool and plug-in tests (imported by the pool's workers as a plug-in module)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from verifiers import VerificationResult, register_verifier


@register_verifier("test_sleepy")
@dataclass
class Sleepy:
    """Sleeps `reference` seconds, then says correct; `detail` holds its start and end (time.time())."""

    def verify(self, response, reference):
        start = time.time()
        time.sleep(float(reference))
        return VerificationResult(1.0, True, "ok", response, f"{start} {time.time()}")


@register_verifier("test_crasher")
class Crasher:
    """Kills its own process: the pool must report a crash and carry on."""

    def verify(self, response, reference):
        os._exit(3)


@register_verifier("test_segfaulter")
class Segfaulter:
    """Reads address 0: a real segmentation fault, as a C extension gone wrong would give."""

    def verify(self, response, reference):
        import ctypes

        ctypes.string_at(0)


@register_verifier("test_raiser")
class Raiser:
    def verify(self, response, reference):
        raise ZeroDivisionError("oops")


@dataclass
class Exact:
    """Not registered: reachable only by its dotted path. Options come from the config."""

    case_sensitive: bool = True

    def verify(self, response, reference):
        a, b = (response, reference) if self.case_sensitive else (response.lower(), str(reference).lower())
        return VerificationResult(float(a == b), a == b, "ok", response)
