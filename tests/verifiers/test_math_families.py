"""The math verifier's answer families (issue 15): lenient extraction, relations, intervals, matrices, several
boxes, decorated numbers; the hand-written pairs of benchmarks/math_pairs.py; hostile inputs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from verifiers import get_verifier
from verifiers.extract import EXTRACTION_MODES, extract_answer, math_spans
from verifiers.math import MathVerifier, normalize

PAIRS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "math_pairs.py"
_spec = importlib.util.spec_from_file_location("math_pairs", PAIRS_FILE)  # benchmarks/ is not a package
math_pairs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(math_pairs)
PAIRS = math_pairs.PAIRS

# Equal pairs the lenient verifier misses, and why. Everything else in PAIRS must agree.
KNOWN_MISSES: dict[str, str] = {}  # none at the time of writing (184 of 184)
LENIENT_AGREEMENT = 1.0


@pytest.fixture(scope="module")
def lenient():
    return get_verifier("math")


@pytest.fixture(scope="module")
def strict():
    return get_verifier("math", extraction="strict")


def test_pairs_cover_every_family_both_ways():
    assert len(PAIRS) >= 150
    for family in {p.family for p in PAIRS}:
        verdicts = {p.equal for p in PAIRS if p.family == family}
        assert verdicts == {True, False}, family
    assert 0.35 <= sum(not p.equal for p in PAIRS) / len(PAIRS) <= 0.65


def false_positives(v) -> list[tuple[str, str]]:
    return [(p.response, p.reference) for p in PAIRS if not p.equal and v.verify(p.response, p.reference).correct]


def test_lenient_calls_no_unequal_pair_equal(lenient):
    assert false_positives(lenient) == []


def test_strict_calls_only_the_cases_lenient_exists_for_equal(strict):
    """Strict reads think blocks and takes the last of several boxes; these three pairs are wrong for that."""
    assert set(false_positives(strict)) <= {
        ("<think>\nIf x = 3 then 2x = 6, so \\boxed{3}", "3"),  # an unclosed think block is not an answer
        ("<think>The total is \\boxed{12}.</think>", "12"),  # nor is a box inside one
        ("$\\boxed{-\\frac12}$ or $\\boxed{\\frac12}$", "\\frac{1}{2}"),  # two answers where one is asked
    }


_review_spec = importlib.util.spec_from_file_location("math_pairs_review", PAIRS_FILE.with_name("math_pairs_review.py"))
math_pairs_review = importlib.util.module_from_spec(_review_spec)
_review_spec.loader.exec_module(math_pairs_review)
REVIEW_FALSE_POSITIVES = {  # unequal review cases the default still calls equal, and why they stay
    "\\boxed{5 \\text{ km}}": "units are not told apart (5 km = 5 m = 5): stripping them is what 1,000.99m² = 1000.99 needs",
    "\\boxed{5}\n\nWait, that's wrong. Let me redo it: the sum is actually $6$.":
        "a correction after the box, with no new box: every judge compared takes the box",
}


def test_the_reviewers_cases_agree_but_for_two_stated_false_positives(lenient):
    """benchmarks/math_pairs_review.py: 316 unambiguous cases written blind by a reviewer (87.0 % then, 17 false
    positives); 95.3 % after the fixes they prompted (module docstring)."""
    pairs = math_pairs_review.PAIRS
    misses = [(r, g, e) for r, g, e, _ in pairs if lenient.verify(r, g).correct != e]
    false_positives = {r for r, _, e in misses if not e}
    assert false_positives <= set(REVIEW_FALSE_POSITIVES), false_positives
    assert 1 - len(misses) / len(pairs) >= 0.95, misses


def test_lenient_agrees_on_the_pairs_but_for_the_known_misses(lenient):
    misses = [p for p in PAIRS if lenient.verify(p.response, p.reference).correct != p.equal]
    assert {p.response for p in misses} <= set(KNOWN_MISSES), [(p.response, p.reference) for p in misses]
    assert 1 - len(misses) / len(PAIRS) >= LENIENT_AGREEMENT


@pytest.mark.parametrize("text,want,method", [
    ("<think>\\boxed{7}</think>The answer is $8$.", "8", "answer_is"),  # the think block is ignored
    ("<think>so \\boxed{7}", None, None),  # still thinking: no answer
    ("reasoning</think>\n\\[ 9 \\]", "9", "sentence"),  # the opening tag was in the prompt
    ("Answer $9$", "9", "anchored"), ("**Answer:** \\( 9 \\)", "9", "answer_is"), ("Answer 9", "9", "anchored"),
    ("The answer $5$ is wrong, the right one is $6$.", None, None),
    ("The answer is $3$ apples.", "3", "answer_is"), ("The answer is **9**.", "9", "answer_is"),
    ("The answer is not $5$.", None, None), ("The answer is probably $5$.", None, None),
    ("The result is $3$", "3", "sentence"), ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5", "sentence"),
    ("Work.\nMore work, $a = 2$.\nSo the total is $42$.", "42", "sentence"),
    ("I tried 12 and 13 but I am not sure", None, None), ("I tried $12$ and $13$ but I am not sure.", None, None),
    ("Is it $5$?", None, None), ("Maybe it is $5$.", None, None), ("So $x = 5$ is impossible.", None, None),
    ("So $x = 2$ or $x = 3$.", "x = 2, x = 3", "sentence"),
    ("The book costs $3.50 and the pen $1.50, so 5 dollars.", "5", "sentence"),  # prices, not math: the number
    ("So $x = 3$.\nCheck: $3 + 1 = 4$.", "x = 3", "sentence"),  # a closing check is passed over
    ("So there are $12$ apples. (Compare the $9$ we started with.)", "12", "sentence"),  # and a parenthesis
    ("So the total is 12.", "12", "sentence"), ("The answer is at least $5$.", None, None),
    ("So there are $12$ apples, $3$ more than Tom's $9$.", None, None),  # a bound in the final sentence
    ("\\boxed{1}, \\boxed{2}, and \\boxed{3}", "1, 2, 3", "boxes"),
    ("\\boxed{(2, 2)} \\text{ and } \\boxed{(6, 2)}", "(2, 2), (6, 2)", "boxes"),
    ("$\\boxed{-\\frac12}$ or $\\boxed{\\frac12}$", "-\\frac12, \\frac12", "boxes"),
    ("so $a = \\boxed{3}$.\nThe final answer is \\boxed{10}.", "10", "boxed"),  # the earlier box was working
    ("$x=\\boxed{2}$ and $y=\\boxed{3}$", "3", "boxed"),  # words between: the last box alone
    ("\\boxed{2}\n\\boxed{3}", "3", "boxed"),  # a line break between: the last box alone
    ("work\n#### 1,234", "1,234", "hashes"),
])
def test_lenient_extraction(text, want, method):
    got = extract_answer(text, None, "lenient")
    assert (got.answer, got.method) == (want, method) if want else got is None


def test_strict_extraction_is_unchanged_by_the_lenient_rules():
    assert extract_answer("\\boxed{1}, \\boxed{2}").answer == "2"
    assert extract_answer("Answer $9$") is None and extract_answer("\\[ 9 \\]") is None
    assert extract_answer("<think>\\boxed{7}</think>The answer is 8.").answer == "7"


def test_math_spans_skip_prices_and_empty_spans():
    assert [s.content for s in math_spans("costs \\$5, $x$ and $$ $$ and \\(y\\) and $3.50 or $4 each")] == ["x", "y"]
    assert [s.content for s in math_spans("$a\n$b$ c")] == ["b"]  # inline math stays on one line


def test_unknown_extraction_mode_names_the_key_value_and_choices():
    with pytest.raises(ValueError, match=r"extraction='loose'.*\['lenient', 'strict'\]"):
        MathVerifier(extraction="loose")
    with pytest.raises(ValueError, match=r"'loose'.*lenient"):
        extract_answer("x", mode="loose")


@pytest.mark.parametrize("raw,want", [
    ("11,\\! 111,\\! 100", "11, 111, 100"), ("1{,}000", "1,000"), ("11~111", "11 111"),
    ("x≥5", "x\\geq 5"), ("x>=5", "x\\geq 5"), ("x \\ge 5", "x \\geq 5"), ("x \\lt 5", "x < 5"), ("a != 0", "a \\neq 0"),
    ("x \\in [5, \\infty)", "[5, \\infty)"), ("\\{x \\mid x > 5\\}", "x > 5"), ("x<1 \\lor x>2", "x<1 or x>2"),
    ("28 percent", "28\\%"), ("28 pct", "28\\%"), ("€1,000.99", "1,000.99"), ("1,000.99€", "1,000.99"),
    ("1,000.99m²", "1,000.99"), ("\\frac{1}{3} \\textbf{meters}", "\\frac{1}{3}"), ("17\\text{ any text}", "17"),
    ("6 \\mathrm{cm}^2", "6"), ("45 minutes", "45"), ("x = 5 \\text{ cm}", "x = 5"), ("\\text{odd}", "odd"),
    ("3m", "3m"), ("3abc", "3abc"), ("3x^2", "3x^2"), ("3 \\text{ or more}", "3 or more"), ("5 squared", "5 squared"),
    ("2 \\text{ and } 3", "2 and 3"), ("12.50\\$", "12.50"),
    ("\\begin{smallmatrix}1&2\\end{smallmatrix}", "\\begin{pmatrix}1&2\\end{pmatrix}"),
])
def test_normalize(raw, want):
    assert normalize(raw) == want


@pytest.mark.parametrize("response,reference", [
    ("\\boxed{1,000.99€}", "1000.99"), ("\\boxed{28 percent}", "28\\%"), ("\\boxed{11,\\! 111,\\! 100}", "11111100"),
    ("\\boxed{17\\text{ any text}}", "17"), ("The total is $\\$18.75$.", "18.75"), ("\\boxed{1,000.99m²}", "1000.99"),
])
def test_decorated_numbers_take_the_fast_path(monkeypatch, response, reference):
    v = MathVerifier()
    monkeypatch.setattr(v, "_symbolic", lambda *a, **k: pytest.fail("plain numbers must not reach sympy"))
    r = v.verify(response, reference)
    assert (r.correct, r.detail) == (True, "numeric")


def test_an_equation_in_unknowns_from_prose_is_not_a_value(lenient):
    r = lenient.verify("Setting up, we get $2x + 3 = 7$.", "7")
    assert not r.correct and "unknowns" in r.detail
    assert lenient.verify("Setting up, we get $2x + 3 = 7$.", "2x + 3 = 7").correct  # unless an equation is asked
    assert lenient.verify("Adding, $3 + 4 = 7$.", "7").correct and lenient.verify("So $f(2) = 7$.", "7").correct


def test_limits_apply_to_what_lenient_extracts():
    r = get_verifier("math").verify("\\boxed{1}, " * 200 + "\\boxed{2}", "1")  # joined boxes: too long
    assert (r.correct, r.status) == (False, "parse_error")
    r = get_verifier("math", timeout_s=1).verify("So the value is $9^{9^{9^9}}$.", "1")
    assert (r.correct, r.status) == (False, "timeout")


N = 100_000
HOSTILE = {  # each must simply finish (a backtracking regex or a quadratic scan would not, at this size)
    "unclosed boxes": "\\boxed{" * (N // 7), "unclosed displays": "\\[" * (N // 2), "dollars": "$" * N,
    "dollars inside": "a" + "$" * N + "b", "escaped dollars": "$" + "\\$" * (N // 2), "inline per line": "$a\n" * (N // 3),
    "spaces after an anchor": "Answer 9" + " " * N + "x", "anchors": "answer " * (N // 7),
    "hashes and spaces": "#### " + " " * N + "x", "sentences": "So $x$. " * (N // 8),
    "long separator": "\\boxed{1}" + ", " * N + "\\boxed{2}", "doubts": "not " * (N // 4) + "$5$",
    "think tags": "<think>" * (N // 7), "unit words": "\\boxed{5 " + "ab " * (N // 3) + "}", "spaces": " " * N,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_inputs_finish(lenient, text):
    extract_answer(text, None, "lenient")
    normalize(text)
    assert not lenient.verify(text, "12345").correct


# ------------------------------------------------------------------ which mode each entry point uses

@pytest.mark.parametrize("overrides,entry,want", [
    ([], "train", "strict"), ([], "evaluate", "lenient"),
    (["verifier.extraction=lenient"], "train", "lenient"), (["verifier.extraction=strict"], "evaluate", "strict"),
    (["verifier.options={math: {extraction: lenient}}"], "train", "lenient"),  # an explicit option wins
])
def test_train_reads_answers_strictly_and_evaluate_leniently(overrides, entry, want):
    from reasonrl.config import verifier_options
    from reasonrl.validate import load_config
    from verifiers import VerifierPool

    options = verifier_options(load_config(overrides), entry)
    assert options["math"]["extraction"] == want
    with VerifierPool(options, workers=0) as pool:  # the same response, judged by that entry point's pool
        verdict = pool.verify_batch(["The area is $9$."], ["9"], ["math"])[0]
    assert verdict.correct == (want == "lenient")


def test_an_unknown_extraction_mode_is_a_config_error():
    from reasonrl.config import ConfigError
    from reasonrl.validate import load_config

    with pytest.raises(ConfigError, match=r"verifier.extraction='loose': use auto or strict or lenient"):
        load_config(["verifier.extraction=loose"])
