"""Math verifier: extraction rules and the equivalence table of verifiers/math.py's docstring."""
from __future__ import annotations

import pytest

from verifiers import get_verifier
from verifiers.extract import extract_answer, gsm8k_reference, last_boxed


@pytest.mark.parametrize("text,want", [
    ("so \\boxed{16}", "16"), ("\\boxed{1} then \\boxed{2}", "2"), ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed {7}", "7"), ("\\boxed 7.", "7"), ("\\fbox{x+1}", "x+1"), ("no answer", None),
    ("\\boxed{12", None), ("\\boxed{3} and a cut-off \\boxed{4", "3"), ("\\boxed{\\{1,\\{2\\}\\}}", "\\{1,\\{2\\}\\}"),
])
def test_last_boxed(text, want):
    assert last_boxed(text) == want


@pytest.mark.parametrize("text,fallback,want,method", [
    ("work\n#### 1,234", None, "1,234", "hashes"),
    ("So the final answer is 42.", None, "42", "answer_is"),
    ("Final Answer: $x=2$", None, "x=2", "answer_is"),
    ("\\boxed{5} but the answer is 6", None, "5", "boxed"),
    ("I got 12 apples and 13 pears", None, None, None),
    ("I got 12 apples and 13 pears", "last_number", "13", "last_number"),
])
def test_extract_answer_order(text, fallback, want, method):
    got = extract_answer(text, fallback)
    assert (got.answer, got.method) == (want, method) if want else got is None


def test_gsm8k_reference():
    assert gsm8k_reference("a\nb\n#### 5,600") == "5600"
    assert gsm8k_reference("no marker") is None


EQUIVALENT = [  # (response, reference)
    ("\\boxed{1,000}", "1000"), ("\\boxed{1000}", "1,000"), ("\\boxed{1.5e3}", "1500"), ("\\boxed{.5}", "0.5"),
    ("\\boxed{0.5}", "\\frac{1}{2}"), ("\\boxed{\\frac12}", "0.5"), ("\\boxed{0.333333}", "\\frac{1}{3}"),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}"), ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{1}{2}\\sqrt{3}"),
    ("\\boxed{\\pi/2}", "\\frac{\\pi}{2}"), ("\\boxed{50\\%}", "50"), ("\\boxed{\\$3.50}", "3.5"),
    ("\\boxed{10\\text{ cm}}", "10"), ("\\boxed{30^\\circ}", "30"), ("\\boxed{x = 3}", "3"),
    ("\\boxed{\\{1,2\\}}", "\\{2,1\\}"), ("\\boxed{1, 2}", "2, 1"), ("\\boxed{(1,2)}", "(1,2)"),
    ("\\boxed{[0,1)}", "[0,1)"), ("\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"),
    ("\\boxed{(B)}", "B"), ("The answer is (b).", "B"), ("\\boxed{\\text{Monday}}", "Monday"),
    ("\\boxed{monday}", "\\text{Monday}"), ("#### 42", "42"), ("\\fbox{12}", "12"), ("\\boxed{-29}", "-29"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    # the families of issue 15 (more in test_math_families.py)
    ("Answer $9$", "9"), ("<think>maybe 7</think>\n\\[ 8 \\]", "8"), ("\\boxed{x \\geq 5}", "[5, \\infty)"),
    ("\\boxed{x \\ge 5}", "x>=5"), ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "\\{1,2,3\\}"), ("\\boxed{28 percent}", "28\\%"),
    ("\\boxed{\\begin{vmatrix}2&1\\\\1&2\\end{vmatrix} = 3}", "3"), ("\\boxed{1,000.99€}", "1000.99"),
    ("\\boxed{\\begin{bmatrix} \\frac12 & x \\\\ 0 & 1 \\end{bmatrix}}", "\\begin{pmatrix}0.5&x\\\\0&1\\end{pmatrix}"),
    ("\\boxed{12.0}", "12"), ("\\boxed{1e3}", "1,000"), ("\\boxed{\\textbf{(D) } 12}", "D"), ("So the total is 12.", "12"),
    ("The answer is 3, since 3 > 2.", "3"),
]
DIFFERENT = [
    ("\\boxed{0.33}", "\\frac{1}{3}"), ("\\boxed{0.5}", "50\\%"), ("\\boxed{(1,2)}", "(2,1)"),
    ("\\boxed{(0,1]}", "[0,1)"), ("\\boxed{\\{1,2\\}}", "(1,2)"), ("\\boxed{C}", "B"), ("\\boxed{1,2}", "12"),
    ("\\boxed{8}", "7"), ("\\boxed{\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"),
    ("\\boxed{Tuesday}", "Monday"), ("\\boxed{x+1}", "x+2"),
    ("I tried $12$ and $13$ but I am not sure.", "13"), ("<think>\\boxed{7}</think>", "7"), ("\\boxed{x > 5}", "[5, \\infty)"),
    ("\\boxed{x \\geq 5}", "x > 5"), ("\\boxed{1}, \\boxed{2}", "\\{1,2,3\\}"), ("\\boxed{28 percent}", "0.28"),
    ("\\boxed{1,000.99€}", "1000.98"), ("\\boxed{(2,2)}, \\boxed{(2,6)}", "(2,2),(6,2)"),
    # integers exactly, no absolute floor; bounds are not values; a matrix that does not parse is no answer
    ("\\boxed{2598961}", "2598960"), ("\\boxed{1,048,577}", "1048576"), ("\\boxed{2e-7}", "1e-7"),
    ("\\boxed{3 \\text{ or more}}", "3"), ("\\boxed{\\geq 3}", "3"), ("The answer is at least $5$.", "5"),
    ("\\boxed{\\begin{pmatrix} a & 2b \\\\ c & d \\end{pmatrix}}", "\\begin{pmatrix} a & 2c \\\\ b & d \\end{pmatrix}"),
    ("So $x = 3$.\nCheck: $3 + 1 = 4$.", "4"), ("The answer is (B) or (C).", "B"),
]


@pytest.fixture(scope="module")
def math_verifier():
    return get_verifier("math")


@pytest.mark.parametrize("response,reference", EQUIVALENT)
def test_equivalent(math_verifier, response, reference):
    r = math_verifier.verify(response, reference)
    assert (r.correct, r.status, r.score) == (True, "ok", 1.0), r


@pytest.mark.parametrize("response,reference", DIFFERENT)
def test_different(math_verifier, response, reference):
    r = math_verifier.verify(response, reference)
    assert (r.correct, r.score) == (False, 0.0), r


@pytest.mark.parametrize("response,status", [
    ("<think>7", "no_answer"), ("\\boxed{)(}", "parse_error"), ("\\boxed{" + "1" * 100_000 + "}", "parse_error"),
    ("\\boxed{9^{9^{9^9}}}", "timeout"),
    ("\\boxed{" + "(" * 300 + "1" + ")" * 300 + "}", "parse_error"),
])
def test_statuses(math_verifier, response, status):
    r = math_verifier.verify(response, "1")
    assert (r.correct, r.status) == (False, status), r


def test_options_change_behaviour():
    assert not get_verifier("math", extraction="strict").verify("it is 12", "12").correct
    assert get_verifier("math", extraction="strict", fallback="last_number").verify("it is 12", "12").correct
    assert get_verifier("math").verify("it is 12", "12").correct  # lenient: the final sentence's number
    assert get_verifier("math", fallback="last_number").verify("it is 12", "12").correct
    assert get_verifier("math").verify("Answer $9$", "9").correct  # lenient extraction by default
    assert get_verifier("math", extraction="strict").verify("Answer $9$", "9").status == "no_answer"
    v = get_verifier("math", correct_score=2.0, wrong_score=-1.0)
    assert v.verify("\\boxed{1}", "1").score == 2.0 and v.verify("\\boxed{2}", "1").score == -1.0
