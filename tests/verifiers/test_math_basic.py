"""The first math verifier: \\boxed{} extraction and sympy comparison; it never raises."""
from __future__ import annotations

import pytest

from reasonrl.registry import UnknownNameError
from verifiers import get_verifier, verify_batch
from verifiers.extract import last_boxed


@pytest.mark.parametrize("text,want", [
    ("so \\boxed{16}", "16"), ("\\boxed{1} then \\boxed{2}", "2"), ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed {7}", "7"), ("no answer", None), ("\\boxed{12", None),
])
def test_last_boxed(text, want):
    assert last_boxed(text) == want


@pytest.mark.parametrize("response,reference,correct,status", [
    ("3+4=7\n\\boxed{7}", "7", True, "ok"),
    ("\\boxed{-29}", "-29", True, "ok"),
    ("\\boxed{8}", "7", False, "ok"),
    ("\\boxed{1,000}", "1000", True, "ok"),
    ("\\boxed{0.5}", "1/2", True, "ok"),
    ("\\boxed{2*x+x}", "3*x", True, "ok"),
    ("7", "7", False, "no_answer"),
    ("\\boxed{)(}", "1", False, "parse_error"),
    ("\\boxed{9^{9^{9^9}}}", "1", False, "parse_error"),
])
def test_math_verdicts(response, reference, correct, status):
    r = get_verifier("math").verify(response, reference)
    assert (r.correct, r.status) == (correct, status)
    assert r.score == (1.0 if correct else 0.0)


def test_unknown_verifier_lists_known_names_and_batch_never_raises():
    with pytest.raises(UnknownNameError, match="Did you mean 'math'"):
        get_verifier("mat")
    out = verify_batch(["\\boxed{1}", "\\boxed{1}"], ["1", "1"], ["math", "nonexistent"])
    assert out[0].correct and out[1].status == "crash" and "unknown verifier" in out[1].detail
