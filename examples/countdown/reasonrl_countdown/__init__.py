"""Countdown: combine the given numbers with + - * / and parentheses to reach the target.

A worked example of a reasonrl verifier plug-in for a new domain. Installing this package
(`pip install -e examples/countdown`) makes `get_verifier("countdown")` work through the
`reasonrl.verifiers` entry point, with no change to reasonrl. The reference of a problem is
{"numbers": [25, 5, 4], "target": 80}; the response's answer is its last \\boxed{...} (or, failing
that, its last line), an arithmetic expression such as (25-5)*4.

Rules: only the given numbers, each used at most as often as it is given (all of them exactly
once with use_all=True, the default); integer literals only; exact rational arithmetic (no
float rounding); division by zero is a wrong answer.
"""
from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from verifiers import VerificationResult
from verifiers.extract import last_boxed

_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b}


def evaluate(expr: str) -> tuple[Fraction, list[int]]:
    """Exact value of an expression of integers, + - * / and parentheses, and the integers it used."""
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        raise ValueError(f"not allowed in an answer: {ast.dump(node)[:60]}")

    if len(expr) > 200:
        raise ValueError("expression too long")
    return walk(ast.parse(expr.replace("×", "*").replace("÷", "/"), mode="eval").body), used


@dataclass
class CountdownVerifier:
    use_all: bool = True

    def verify(self, response: str, reference) -> VerificationResult:
        answer = last_boxed(response)
        if answer is None:
            lines = [ln for ln in response.strip().splitlines() if ln.strip()]
            answer = lines[-1].split("=")[0].strip() if lines else None
        if not answer:
            return VerificationResult(0.0, False, "no_answer", None, "no expression found")
        try:
            value, used = evaluate(answer)
        except ZeroDivisionError:
            return VerificationResult(0.0, False, "ok", answer, "division by zero")
        except (ValueError, SyntaxError) as exc:
            return VerificationResult(0.0, False, "parse_error", answer, str(exc))
        given, took = Counter(reference["numbers"]), Counter(used)
        if took - given:
            return VerificationResult(0.0, False, "ok", answer, f"uses numbers not given: {dict(took - given)}")
        if self.use_all and took != given:
            return VerificationResult(0.0, False, "ok", answer, f"leaves numbers unused: {dict(given - took)}")
        ok = value == reference["target"]
        return VerificationResult(float(ok), ok, "ok", answer, f"= {value}")


def make_problems(n: int, seed: int = 0, count: int = 3, high: int = 30) -> list[dict]:
    """Solvable problems as reasonrl records: a random expression over `count` numbers gives the target."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        nums = [rng.randint(1, high) for _ in range(count)]
        expr = str(nums[0])
        for x in nums[1:]:
            expr = f"({expr}{rng.choice('+-*')}{x})"
        target = evaluate(expr)[0]
        if target.denominator == 1 and target > 0:
            shown = sorted(nums)
            out.append({"prompt": f"Using {shown} once each with + - * /, make {int(target)}.\n",
                        "reference": {"numbers": shown, "target": int(target)}, "verifier": "countdown"})
    return out
