r"""Hand-written (response, reference, equal) pairs for the math verifier, grouped by family.

Written for this project (not copied from any grader's test suite). Responses are written the way a
model writes them: some boxed, some as sentences, some after a <think> block. About half the pairs
are unequal, and those are near misses (a wrong sign, an off-by-one, a wrong interval end, a swapped
tuple, one matrix entry, a different amount, a number that appears in the sentence but is not the
answer), so a verifier that is too lenient shows up as false positives.

Used by benchmarks/verifiers.py (`--only pairs`) and tests/verifiers/test_math_families.py.
"""
from __future__ import annotations

from typing import NamedTuple


class Pair(NamedTuple):
    response: str
    reference: str
    equal: bool  # the verdict a careful human grader gives
    family: str


def _family(name: str, rows: list[tuple[str, str, bool]]) -> list[Pair]:
    return [Pair(response, reference, equal, name) for response, reference, equal in rows]


THINK = _family("think", [
    ("<think>\nSix sevens: 6*7 = 42.\n</think>\nThe answer is $42$.", "42", True),
    ("<think>\nFirst guess: \\boxed{42}.\n</think>\nChecking again, the answer is $\\boxed{24}$.", "42", False),
    ("<think>\nIf x = 3 then 2x = 6, so \\boxed{3}", "3", False),  # still thinking: no answer yet
    ("<think>Is it 1/2 or 1/3? Dividing gives 1/3.</think>\n\n\\[ \\frac{1}{3} \\]", "\\frac13", True),
    ("<think>Try x=2: 4+2=6, too small. Try x=3: 9+3=12.</think>\nTherefore $x = 3$.", "3", True),
    ("<think>Try x=2: 4+2=6, too small. Try x=3: 9+3=12.</think>\nTherefore $x = 2$.", "3", False),
    ("so the ratio is 5:2</think>The final answer is \\boxed{\\dfrac{5}{2}}", "2.5", True),
    ("<think>The total is \\boxed{12}.</think>", "12", False),
    ("<think>first pass</think>\n<think>second pass</think>\nAnswer: $-4$", "-4", True),
    ("<think>The answer is 9, I think.</think>\nAnswer: $8$", "9", False),
])

PROSE = _family("prose", [
    ("Answer $9$", "9", True),
    ("Answer: \\( 9 \\)", "9", True),
    ("\\[ 9 \\]", "9", True),
    ("The result is $3$", "3", True),
    ("The result is $3$", "-3", False),
    ("Therefore $x \\geq 5$ is the solution.", "x \\ge 5", True),
    ("Therefore $x > 5$ is the solution.", "x \\ge 5", False),
    ("Each of the 10 people shakes hands with 9 others, and each handshake is counted twice.\n"
     "So the total number of handshakes is $45$.", "45", True),
    ("Each of the 10 people shakes hands with 9 others, and each handshake is counted twice.\n"
     "So the total number of handshakes is $90$.", "45", False),
    ("I tried 12 and 13 but I am not sure", "13", False),
    ("I tried $12$ and $13$ but I am not sure.", "13", False),
    ("Adding the two parts gives $3 + 4 = 7$.", "7", True),
    ("Setting up the equation gives $2x + 3 = 7$.", "7", False),  # x was asked; 7 is not it
    ("Setting up the equation gives $2x + 3 = 7$, so $x = 2$.", "2", True),
    ("First note that $f(2) = 10$. Hence $f(3) = 15$.", "10", False),
    ("**Answer:** $\\frac{7}{2}$", "3.5", True),
    ("**Answer:** $\\frac{7}{3}$", "3.5", False),
    ("The area of the triangle is \\(24\\) square units.", "24", True),
    ("Thus, the probability is $\\frac{1}{4}$.", "0.25", True),
    ("Thus, the probability is $\\frac{1}{4}$.", "0.2", False),
    ("$$\\sqrt{2}$$", "\\sqrt 2", True),
    ("Completing the square, the minimum value is $-\\frac{9}{4}$", "-2.25", True),
    ("Completing the square, the minimum value is $\\frac{9}{4}$", "-2.25", False),
    ("Hence $n = 12$.", "12", True),
    ("Hence $n = 13$.", "12", False),
    ("Final answer: 1,024", "1024", True),
    ("Answer 9", "9", True),
    ("Answer 8", "9", False),
    ("The answer is $3$ apples.", "3", True),
    ("So $x = 2$ or $x = 3$.", "2, 3", True),
    ("So $x = 2$ or $x = 3$.", "3", False),  # two answers where one is asked
    ("The roots are $-1$ and $4$.", "-1, 4", True),
    ("The roots are $1$ and $4$.", "-1, 4", False),
    ("We have $a = 3$ and $b = 4$, so $c = 5$.", "5", True),
    ("We have $a = 5$ and $b = 4$, so $c = 3$.", "5", False),
    ("Is the answer $6$?", "6", False),  # a question is not an answer
    ("Maybe it is $6$.", "6", False),  # nor is a guess
    ("The book costs $3.50 and the pen costs $1.50, so she paid 4 dollars in all.", "3.5", False),
    ("Combining like terms:\n$$3x + 2x = 5x$$\nso the coefficient is $5$.", "5", True),
    ("Combining like terms:\n$$3x + 2x = 5x$$\nso the coefficient is $6$.", "5", False),
    ("She had 12 apples and bought 5 more, so she has 17 apples.", "17", True),  # plain prose: no answer found
])

RELATIONS = _family("relations", [
    ("\\boxed{x \\geq 5}", "x>=5", True),
    ("\\boxed{x \\ge 5}", "x ≥ 5", True),
    ("\\boxed{y \\lt 2}", "y < 2", True),
    ("\\boxed{a \\neq 0}", "a != 0", True),
    ("\\boxed{t \\leq -1}", "t<=-1", True),
    ("\\boxed{x \\le 4}", "4 \\geq x", True),
    ("\\boxed{k \\geqslant 3}", "k \\ge 3", True),
    ("\\boxed{p ≤ 7}", "p \\le 7", True),
    ("\\boxed{x \\geq 5}", "x > 5", False),
    ("\\boxed{y \\le 2}", "y < 2", False),
    ("\\boxed{a \\neq 0}", "a = 0", False),
    ("\\boxed{t \\geq -1}", "t \\leq -1", False),
    ("\\boxed{x \\geq 6}", "x \\geq 5", False),
    ("\\boxed{p \\ne 7}", "p \\le 7", False),
])

INTERVALS = _family("intervals", [
    ("\\boxed{-5 \\le x \\le 1 \\text{ or } 3 \\le x \\le 9}", "[-5,1] \\cup [3,9]", True),
    ("\\boxed{-5 \\le x < 1 \\text{ or } 3 \\le x \\le 9}", "[-5,1] \\cup [3,9]", False),
    ("\\boxed{x \\geq 5}", "[5, \\infty)", True),
    ("\\boxed{x > 5}", "[5, \\infty)", False),
    ("\\boxed{[5, \\infty)}", "x \\ge 5", True),
    ("\\boxed{(5,\\infty)}", "[5,\\infty)", False),
    ("\\boxed{x < -2 \\text{ or } x > 2}", "(-\\infty,-2) \\cup (2, \\infty)", True),
    ("\\boxed{x \\le -2 \\text{ or } x > 2}", "(-\\infty,-2) \\cup (2, \\infty)", False),
    ("\\boxed{x \\neq 3}", "(-\\infty, 3) \\cup (3, \\infty)", True),
    ("\\boxed{x \\neq -3}", "(-\\infty, 3) \\cup (3, \\infty)", False),
    ("The solution set is $(-3, 4]$.", "(-3,4]", True),
    ("The solution set is $[-3, 4]$.", "(-3,4]", False),
    ("\\boxed{(-\\infty, 0]}", "x \\leq 0", True),
    ("\\boxed{(-\\infty, 0)}", "x \\leq 0", False),
    ("\\boxed{-1 < x \\leq 2}", "(-1, 2]", True),
    ("\\boxed{-1 \\le x \\leq 2}", "(-1, 2]", False),
    ("\\boxed{[0,1)}", "[0, 1)", True),
    ("\\boxed{[0,2)}", "[0, 1)", False),
    ("So $-3 < x < 3$.", "(-3, 3)", True),
    ("So $-3 < x \\le 3$.", "(-3, 3)", False),
])

MATRICES = _family("matrices", [
    ("\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", True),
    ("\\boxed{\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right]}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),
    ("\\boxed{\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),
    ("\\boxed{\\begin{pmatrix} \\frac{1}{2} & -\\frac{3}{4} \\\\ 0 & 1 \\end{pmatrix}}",
     "\\begin{bmatrix} 0.5 & -0.75 \\\\ 0 & 1 \\end{bmatrix}", True),
    ("\\boxed{\\begin{pmatrix} \\frac{1}{2} & -\\frac{3}{4} \\\\ 0 & 1 \\end{pmatrix}}",
     "\\begin{bmatrix} 0.5 & -0.7 \\\\ 0 & 1 \\end{bmatrix}", False),
    ("\\boxed{\\begin{pmatrix} a+b & 2a \\\\ b & a-b \\end{pmatrix}}",
     "\\begin{bmatrix} b+a & 2a \\\\ b & -b+a \\end{bmatrix}", True),
    ("\\boxed{\\begin{pmatrix} a+b & 2b \\\\ a & a-b \\end{pmatrix}}",
     "\\begin{bmatrix} b+a & 2a \\\\ b & -b+a \\end{bmatrix}", False),
    ("\\boxed{\\begin{vmatrix} 2 & 1 \\\\ 1 & 2 \\end{vmatrix} = 3}", "3", True),
    ("\\boxed{\\begin{vmatrix} 2 & 1 \\\\ 1 & 2 \\end{vmatrix} = 3}", "4", False),
    ("\\boxed{\\begin{vmatrix} 2 & 1 \\\\ 1 & 2 \\end{vmatrix}}", "\\begin{vmatrix}2&1\\\\1&2\\end{vmatrix}", True),
    ("\\boxed{\\left(\\begin{smallmatrix} 5 & 0 \\\\ 0 & 5 \\end{smallmatrix}\\right)}",
     "\\begin{pmatrix}5&0\\\\0&5\\end{pmatrix}", True),
    ("\\boxed{\\begin{pmatrix} 3 \\\\ -1 \\end{pmatrix}}", "\\begin{bmatrix}3\\\\-1\\end{bmatrix}", True),
    ("\\boxed{\\begin{pmatrix} 3 & -1 \\end{pmatrix}}", "\\begin{pmatrix}3\\\\-1\\end{pmatrix}", False),
    ("The inverse is $\\begin{pmatrix} 2 & -1 \\\\ -1 & 1 \\end{pmatrix}$.",
     "\\begin{pmatrix}2&-1\\\\-1&1\\end{pmatrix}", True),
    ("The inverse is $\\begin{pmatrix} 2 & 1 \\\\ -1 & 1 \\end{pmatrix}$.",
     "\\begin{pmatrix}2&-1\\\\-1&1\\end{pmatrix}", False),
    ("\\boxed{\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}}", "\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}", False),
    ("\\boxed{\\begin{bmatrix} \\sqrt{2}/2 & -\\sqrt{2}/2 \\\\ \\sqrt{2}/2 & \\sqrt{2}/2 \\end{bmatrix}}",
     "\\begin{pmatrix}\\frac{\\sqrt2}{2}&-\\frac{\\sqrt2}{2}\\\\\\frac{\\sqrt2}{2}&\\frac{\\sqrt2}{2}\\end{pmatrix}", True),
    ("\\boxed{\\begin{pmatrix}1&2&3\\\\0&1&4\\\\5&6&0\\end{pmatrix}}",
     "\\begin{pmatrix}1&2&3\\\\0&1&-4\\\\5&6&0\\end{pmatrix}", False),
])

BOXES = _family("boxes", [
    ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "\\{1,2,3\\}", True),
    ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "{1,2,3}", True),
    ("\\boxed{1}, \\boxed{2}", "\\{1,2,3\\}", False),
    ("\\boxed{(2, 2)} \\text{ and } \\boxed{(6, 2)}", "(2, 2), (6, 2)", True),
    ("\\boxed{(2, 2)} \\text{ and } \\boxed{(2, 6)}", "(2, 2), (6, 2)", False),
    ("\\boxed{k = 45} \\text{ and } \\boxed{n = 2}", "k=45, n=2", True),
    ("\\boxed{k = 45} \\text{ and } \\boxed{n = 3}", "k=45, n=2", False),
    ("The solutions are $\\boxed{-2}$ and $\\boxed{5}$.", "-2, 5", True),
    ("The solutions are $\\boxed{2}$ and $\\boxed{5}$.", "-2, 5", False),
    ("In part one we find $a = \\boxed{3}$.\nAdding the remaining terms, the final answer is \\boxed{10}.", "10", True),
    ("We first get \\boxed{10} as a subtotal.\nAfter the discount the answer is \\boxed{8}.", "10", False),
    ("$\\boxed{-\\frac12}$ or $\\boxed{\\frac12}$", "-\\frac{1}{2}, \\frac{1}{2}", True),
    ("$\\boxed{-\\frac12}$ or $\\boxed{\\frac12}$", "\\frac{1}{2}", False),
    ("\\boxed{x = 1} \\quad \\boxed{x = -1}", "1, -1", True),
])

DECORATED = _family("decorated numbers", [
    ("\\boxed{11,\\! 111,\\! 100}", "11111100", True),
    ("\\boxed{11,\\! 111,\\! 000}", "11111100", False),
    ("\\boxed{1,000.99€}", "1000.99", True),
    ("\\boxed{1,000.99€}", "1000.98", False),
    ("\\boxed{1,000.99m²}", "1000.99", True),
    ("\\boxed{1,000.99m²}", "100.99", False),
    ("\\boxed{28 percent}", "28\\%", True),
    ("\\boxed{28 pct}", "28\\%", True),
    ("The share is $28$ percent.", "28\\%", True),
    ("\\boxed{28 percent}", "0.28", False),  # 28 percent is 28 here, as 50\% is 50 (see verifiers/math.py)
    ("\\boxed{27 percent}", "28\\%", False),
    ("\\boxed{\\frac{1}{3} \\textbf{meters}}", "\\frac13", True),
    ("\\boxed{\\frac{1}{3} \\textbf{meters}}", "\\frac14", False),
    ("\\boxed{17\\text{ any text}}", "17", True),
    ("\\boxed{71\\text{ any text}}", "17", False),
    ("\\boxed{\\text{odd}}", "odd", True),
    ("\\boxed{\\text{even}}", "odd", False),
    ("\\boxed{\\$1,250}", "1250", True),
    ("\\boxed{£12.50}", "12.5", True),
    ("\\boxed{£12.05}", "12.5", False),
    ("\\boxed{45 \\text{ minutes}}", "45", True),
    ("\\boxed{54 \\text{ minutes}}", "45", False),
    ("\\boxed{12\\,345}", "12345", True),
    ("\\boxed{6 \\mathrm{cm}^2}", "6", True),
    ("\\boxed{60 \\mathrm{cm}^2}", "6", False),
    ("The total comes to $\\$18.75$.", "18.75", True),
    ("\\boxed{1{,}500 \\text{ km}}", "1500", True),
])

ORDINARY = _family("ordinary", [
    ("\\boxed{\\frac{3}{4}}", "0.75", True),
    ("\\boxed{\\frac{4}{3}}", "0.75", False),
    ("\\boxed{\\dfrac{-2}{6}}", "-\\frac13", True),
    ("\\boxed{\\frac{2}{6}}", "-\\frac13", False),
    ("\\boxed{3\\sqrt{2}}", "\\sqrt{18}", True),
    ("\\boxed{2\\sqrt{3}}", "\\sqrt{18}", False),
    ("\\boxed{\\frac{\\sqrt{6}}{3}}", "\\sqrt{\\frac{2}{3}}", True),
    ("\\boxed{\\{-1, 4\\}}", "\\{4, -1\\}", True),
    ("\\boxed{\\{-1, 4\\}}", "\\{1, 4\\}", False),
    ("\\boxed{(3, -2)}", "(3,-2)", True),
    ("\\boxed{(-2, 3)}", "(3,-2)", False),
    ("\\boxed{(0, 1]}", "(0,1]", True),
    ("\\boxed{(0, 1)}", "(0,1]", False),
    ("\\boxed{\\text{Thursday}}", "Thursday", True),
    ("\\boxed{\\text{Tuesday}}", "Thursday", False),
    ("The answer is (C).", "C", True),
    ("The answer is (D).", "C", False),
    ("\\boxed{B}", "(B)", True),
    ("Natalia sold 48 clips in April and half as many in May.\n48 / 2 = 24\n48 + 24 = 72\n#### 72", "72", True),
    ("Natalia sold 48 clips in April and half as many in May.\n48 / 2 = 24\n48 + 23 = 71\n#### 71", "72", False),
    ("He pays 4 * 300 = 1200 dollars.\n#### 1,200", "1200", True),
    ("He pays 4 * 255 = 1020 dollars.\n#### 1,020", "1200", False),
    ("\\boxed{\\frac{\\pi}{3}}", "\\frac{1}{3}\\pi", True),
    ("\\boxed{\\frac{\\pi}{6}}", "\\frac{\\pi}{3}", False),
    ("\\boxed{x^2 - 1}", "(x-1)(x+1)", True),
    ("\\boxed{x^2 + 1}", "(x-1)(x+1)", False),
    ("\\boxed{y = 2x + 3}", "y=3+2x", True),
    ("\\boxed{y = 2x - 3}", "y=3+2x", False),
    ("\\boxed{0.125}", "\\frac18", True),
    ("\\boxed{0.0125}", "\\frac18", False),
    ("\\boxed{60^\\circ}", "60", True),
    ("\\boxed{120^\\circ}", "60", False),
    ("\\boxed{10}", "10.0", True),
    ("\\boxed{-10}", "10", False),
    ("\\boxed{100}", "1000", False),
    ("\\boxed{\\frac{1}{2}}", "1/2", True),
    ("\\boxed{3 + 4i}", "4i+3", True),
    ("\\boxed{3 - 4i}", "3+4i", False),
    ("The answer is $\\boxed{2, 3}$", "3, 2", True),
    ("\\boxed{\\text{(A)}}", "A", True),
])

PAIRS: list[Pair] = THINK + PROSE + RELATIONS + INTERVALS + MATRICES + BOXES + DECORATED + ORDINARY
