"""Math answer checking: the last \\boxed{} of the response against the reference string.

Rules: both sides are normalised (surrounding `$`, spaces, thousands separators removed);
equal strings match; two numbers match when equal within 1e-9 relative; otherwise both are
parsed by sympy (plain expressions, at most 200 characters, no `**`/`^` towers) and match when
their difference simplifies to 0. Anything unparsable is a parse_error with score 0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from verifiers.base import VerificationResult
from verifiers.extract import last_boxed

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_MAX_LEN = 200


def normalise(s: str) -> str:
    s = s.strip().strip("$").replace(" ", "")
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    return s


def _sympy_equal(a: str, b: str) -> bool:
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    if len(a) > _MAX_LEN or len(b) > _MAX_LEN or "**" in a + b or "^" in a + b:
        raise ValueError("expression too long or has powers")
    ea, eb = parse_expr(a, evaluate=True), parse_expr(b, evaluate=True)
    return bool(sympy.simplify(ea - eb) == 0)


@dataclass
class MathVerifier:
    correct_score: float = 1.0
    wrong_score: float = 0.0

    def verify(self, response: str, reference: Any) -> VerificationResult:
        answer = last_boxed(response)
        if answer is None:
            return VerificationResult(self.wrong_score, False, "no_answer", None, "no \\boxed{} answer")
        got, want = normalise(answer), normalise(str(reference))
        if got == want:
            return self._verdict(True, answer)
        if _NUMBER.match(got) and _NUMBER.match(want):
            a, b = float(got), float(want)
            return self._verdict(abs(a - b) <= 1e-9 * max(1.0, abs(b)), answer)
        try:
            return self._verdict(_sympy_equal(got, want), answer)
        except Exception as exc:
            return VerificationResult(self.wrong_score, False, "parse_error", answer, f"{type(exc).__name__}: {exc}")

    def _verdict(self, ok: bool, answer: str) -> VerificationResult:
        return VerificationResult(self.correct_score if ok else self.wrong_score, ok, "ok", answer)
