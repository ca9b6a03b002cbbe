"""The math verifier's step checks (verifiers/steps.py): every `a op b = c` line of a step, exactly."""
from __future__ import annotations

import pytest

from verifiers import get_verifier


@pytest.mark.parametrize("step, want", [
    ("4-7=-3\n", 1.0),
    ("4-7=-4\n", 0.0),
    ("12 * 3 = 36.", 1.0),
    ("So we add.\n", None),  # prose: not checkable
    ("First 4-7=-3\nthen -3+1=-2\n", None),  # an equation inside a sentence is not a line that states one
    ("4-7=-3\n-3+1=-1\n", 0.0),  # a paragraph (double_newline) or a whole response: its lowest line
    ("We start.\n4-7=-3\n-3+1=-2\n", 1.0),
    ("\\boxed{-2}", None),  # the answer is the outcome's to judge
])
def test_each_line_of_a_step_is_checked(step, want):
    assert get_verifier("math").verify_steps([step], "-2") == [want]
