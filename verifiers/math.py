"""Math answer checking.

The answer is extracted from the response (verifiers/extract.py: last \\boxed{} / \\fbox{}, then
`####`, then "the answer is", then optionally the last number) and compared with the reference
string. The rules, in the order they are tried:

1. **Plain numbers** (integers, with or without thousands separators, decimals, scientific
   notation, a trailing `%` or `\\%`, a leading `$`) compare numerically, within a relative
   tolerance `rel_tol` (default 1e-6). `1,000` = `1000` = `1e3`; `0.5` = `.5`; `50\\%` = `50`.
   No sympy is involved, so this path is fast (the embedded task's answers all take it).
2. **Multiple choice**: a reference that is a single letter A-E (optionally in parentheses)
   matches the same letter, case-insensitive: `(B)`, `B`, `b)`, `\\text{(B)}`.
3. **Plain text**: answers equal after lower-casing and removing `\\text{}`, spaces and final
   punctuation match (tried before math-verify, as a fast path; `Monday` = `\\text{monday}`).
4. **Everything else goes through math-verify** (LaTeX -> sympy via latex2sympy2_extended):
   fractions vs decimals (equal after rounding to `float_rounding` = 6 decimals), radicals, pi,
   `\\text{}` and units stripped, degrees (`30^\\circ` = `30`), equations against values
   (`x = 3` = `3`: an assignment is compared by its right-hand side), intervals (open / closed
   ends must match), matrices (element-wise), sets and tuples: a **set** (`\\{1, 2\\}`) or a bare
   comma list (`1, 2`) is compared **ignoring order**, a **tuple** `(1, 2)` or an interval **in
   order**; a set never equals a tuple.

Statuses: `no_answer` when nothing can be extracted; `parse_error` when the extracted answer
cannot be parsed at all (score 0); `ok` otherwise. Hard limits keep sympy from hanging: answers
longer than `max_chars` are parse errors, math-verify's own timeouts are on (`timeout_s`), and the
verifier pool (verifiers/pool.py) kills a worker that still overruns.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from verifiers.base import VerificationResult
from verifiers.extract import extract_answer
from verifiers.registry import register_verifier
from verifiers.steps import check_equation

_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")


def strip_latex_noise(s: str) -> str:
    """Remove math delimiters, \\left/\\right, \\! spacing, \\text{...} wrappers and trailing punctuation."""
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\(left|right|!|,|;|:|displaystyle)", "", s)
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
    return s.strip().rstrip(".").strip()


def plain_number(s: str) -> float | None:
    """'1,000' '50\\%' '$3.50' '1e3' -> float; None when s is not a plain number."""
    t = s.replace(" ", "").replace("\\%", "").rstrip("%").lstrip("\\$").lstrip("$")
    if _THOUSANDS.match(t):
        t = t.replace(",", "")
    if not _PLAIN_NUMBER.match(t):
        return None
    try:
        return float(t)
    except (OverflowError, ValueError):
        return None


def container_kind(s: str) -> str | None:
    """'set' for \\{...\\}, 'sequence' for (...), [...], (...], [...), None for anything else."""
    s = s.replace(" ", "")
    if s.startswith("\\{") and s.endswith("\\}"):
        return "set"
    if s[:1] in "([" and s[-1:] in ")]" and len(s) > 2:
        return "sequence"
    return None


def _text_key(s: str) -> str:
    """Case and spacing do not matter for text answers; inner punctuation does ("1,2" is not "12")."""
    return re.sub(r"\s+", "", strip_latex_noise(s)).lower().rstrip(".!")


@register_verifier("math")
@dataclass
class MathVerifier:
    correct_score: float = 1.0
    wrong_score: float = 0.0
    fallback: str | None = None  # "last_number": use the response's last number when nothing else is found
    rel_tol: float = 1e-6
    float_rounding: int = 6
    timeout_s: int = 3  # math-verify's own (signal-based) timeouts; the pool adds a hard one
    max_chars: int = 400

    def verify(self, response: str, reference: Any) -> VerificationResult:
        found = extract_answer(response, self.fallback)
        if found is None:
            return VerificationResult(self.wrong_score, False, "no_answer", None, "no answer found")
        answer, gold = strip_latex_noise(found.answer), strip_latex_noise(str(reference))
        if len(answer) > self.max_chars:
            return VerificationResult(self.wrong_score, False, "parse_error", found.answer[:100] + "...",
                                      f"answer longer than {self.max_chars} characters")
        a, b = plain_number(answer), plain_number(gold)
        if a is not None and b is not None:
            return self._verdict(abs(a - b) <= self.rel_tol * max(1.0, abs(b)), found.answer, "numeric")
        choice = _CHOICE.match(gold)
        if choice:
            got = _CHOICE.match(answer)
            return self._verdict(bool(got) and got.group(1).upper() == choice.group(1).upper(), found.answer, "choice")
        if _text_key(answer) == _text_key(gold):
            return self._verdict(True, found.answer, "text")
        kinds = container_kind(answer), container_kind(gold)
        if None not in kinds and kinds[0] != kinds[1]:
            return self._verdict(False, found.answer, f"a {kinds[0]} never equals a {kinds[1]}")
        return self._symbolic(answer, gold, found.answer)

    def _symbolic(self, answer: str, gold: str, raw: str) -> VerificationResult:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
        from math_verify.errors import TimeoutException

        configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
        try:
            gold_p = parse(f"${gold}$", extraction_config=configs, parsing_timeout=self.timeout_s)
            pred_p = parse(f"${answer}$", extraction_config=configs, parsing_timeout=self.timeout_s,
                           fallback_mode="no_fallback")
        except TimeoutException:
            return VerificationResult(self.wrong_score, False, "timeout", raw, f"parsing exceeded {self.timeout_s} s")
        except Exception as exc:  # math-verify reports most failures as empty lists; be safe anyway
            return VerificationResult(self.wrong_score, False, "parse_error", raw, f"{type(exc).__name__}: {exc}")
        if not pred_p:
            return VerificationResult(self.wrong_score, False, "parse_error", raw, "answer did not parse")
        if not gold_p:
            return self._verdict(False, raw, "reference did not parse; text differs")
        try:
            ok = verify(gold_p, pred_p, float_rounding=self.float_rounding, timeout_seconds=self.timeout_s,
                        raise_on_error=True)
        except TimeoutException:
            return VerificationResult(self.wrong_score, False, "timeout", raw, f"comparison exceeded {self.timeout_s} s")
        except Exception as exc:
            return VerificationResult(self.wrong_score, False, "parse_error", raw, f"{type(exc).__name__}: {exc}")
        return self._verdict(bool(ok), raw, "symbolic")

    def verify_steps(self, steps: list[str], reference: Any) -> list[float | None]:
        """A score per step: each line `a op b = c` checked exactly (verifiers/steps.py), None for other lines
        (the final answer is the outcome's to judge)."""
        return [check_equation(step) for step in steps]

    def _verdict(self, ok: bool, answer: str, how: str) -> VerificationResult:
        return VerificationResult(self.correct_score if ok else self.wrong_score, ok, "ok", answer, how)
