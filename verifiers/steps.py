"""Step verification: a verifier may score each reasoning step of a response, not only its final answer.

A verifier that can do so has a `verify_steps(steps, reference) -> list[float | None]` method: one score in
[0, 1] per step, or None for a step it cannot check (prose, a restated problem). The trainer's
`prm.source=verifier` turns those scores into process rewards (reasonrl/process.py): an oracle PRM for domains
whose steps can be checked, and the control that tells a wrong dense-reward pipeline from a weak learned PRM.

`check_equation` is the arithmetic check the math verifier uses: a line that states one integer operation
`a op b = c` (op one of + - *, spaces allowed, a trailing period ignored) scores 1.0 when c is exactly its
value and 0.0 otherwise; any other line is not an equation (None). `check_step` scores a step of any number of
lines: the lowest score of its equations (one wrong line makes the step wrong), None when it has none. A step
is a line under `step_split=newline`, a paragraph under `double_newline`, and a whole response where search
scores one (best-of-N): each line is checked in every case.
"""
from __future__ import annotations

import re

_EQUATION = re.compile(r"^\s*\(?\s*(-?\d{1,18})\s*\)?\s*([+\-*])\s*\(?\s*(-?\d{1,18})\s*\)?\s*=\s*(-?\d{1,36})\s*\.?\s*$")


def check_equation(line: str) -> float | None:
    """1.0 / 0.0 for a line `a op b = c` whose result is right / wrong; None for any other line."""
    m = _EQUATION.match(line)
    if m is None:
        return None
    a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    return 1.0 if value == c else 0.0


def check_step(step: str) -> float | None:
    """The lowest check_equation score over the step's lines; None when no line is an equation."""
    scores = [x for x in map(check_equation, step.splitlines()) if x is not None]
    return min(scores) if scores else None


def has_step_verifier(verifier) -> bool:
    return callable(getattr(verifier, "verify_steps", None))
