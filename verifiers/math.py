"""Math answer checking.

The answer is extracted from the response (verifiers/extract.py; `extraction="lenient"` by default:
the text after `</think>`, the last \\boxed{} joined with the boxes listed with it, `####`, "the
answer is", "Answer $9$", the last math span of the final sentence; `extraction="strict"`: the last
box, `####`, "the answer is"; then optionally the last number) and compared with the reference
string. The rules, in the order they are tried:

0. **Both sides are normalised first** (NORMALIZERS, in order): math delimiters go; `\\left`,
   `\\right`, `\\displaystyle` and the thin spaces `\\!`, `\\,`, `\\;` go, `{,}` is a comma and `~` a
   space (so `11,\\! 111,\\! 100` is `11,111,100`); relations get one spelling (`≥`, `>=`, `\\ge`,
   `\\geqslant` -> `\\geq`; likewise `\\leq`, `\\neq`; `\\lt`, `\\gt` -> `<`, `>`); `x \\in S` is S and
   `\\{x \\mid P\\}` is P, `\\lor` / `\\vee` are "or"; `smallmatrix` / `Bmatrix` are `pmatrix`; `28 percent`,
   `28 pct` are `28\\%`; a currency sign before or after a number goes (`€1,000.99`, `1,000.99€`,
   `\\$5`); a unit after a number goes (`1,000.99m²`, `17\\text{ any text}`, `\\frac{1}{3} \\textbf{meters}`,
   `6 \\mathrm{cm}^2`, `45 minutes`; see `_units` for what counts as a unit: `3m`, `3abc`, `3x^2`,
   `3 or more`, `5 squared` are not numbers with units); `\\text{odd}` is `odd`. Different units
   are not told apart: `5 km` = `5 m` = `5`.
1. **Plain numbers** (integers, with or without thousands separators, decimals, scientific
   notation, a trailing `%` or `\\%`, a leading `$`) compare numerically, within a relative
   tolerance `rel_tol` (default 1e-6) of the reference, with no absolute floor; two integers only
   exactly (`2598961` is not `2598960`, `2e-7` is not `1e-7`). `1,000` = `1000` = `1e3`; `0.5` = `.5`;
   `50\\%` = `50`, and so `28 percent` = `28` but never `0.28` (`0.5` is not `50\\%`).
   No sympy is involved, so this path is fast (the embedded task's answers all take it).
2. **Multiple choice**: a reference that is a single letter A-E (optionally in parentheses)
   matches the same letter, case-insensitive: `(B)`, `B`, `b)`, `\\text{(B)}`.
3. **Plain text**: answers equal after lower-casing and removing `\\text{}`, spaces and final
   punctuation match (tried before math-verify, as a fast path; `Monday` = `\\text{monday}`,
   `x \\ge 5` = `x≥5`, `k = 45, n = 2` = `k=45, n=2`).
4. A **set** (`\\{1, 2\\}`) never equals a **sequence** (`(1, 2)`, `[0, 1)`: brackets around the whole
   answer; `(2, 2), (6, 2)` is a list of two, not a sequence).
5. An answer read from running text (extraction methods `anchored` and `sentence`) that is an
   **equation in unknowns** (`2x + 3 = 7`, `x^2 = 4`: the left side holds variables and is not a name)
   is wrong against a reference that is not itself a relation: it states the problem, not the value.
   (`x = 3`, `f(2) = 7`, `3 + 4 = 7` are values; a boxed equation keeps math-verify's reading below.)
6. **Relations against intervals**: when one side is an interval, a union or a complement, and
   the other a relation in one variable, a chain (`-5 \\leq x \\leq 1`) or an "or" list of them, the
   relation becomes its solution set: `x \\geq 5` = `[5, \\infty)` != `(5, \\infty)`;
   `-5 \\le x \\le 1 \\text{ or } 3 \\le x \\le 9` = `[-5,1] \\cup [3,9]`; `x \\neq 3` =
   `(-\\infty, 3) \\cup (3, \\infty)`; `-3 < x < 3` = `(-3, 3)` (against a relation, `(a, b)` is the
   interval, not a point).
7. **Everything else goes through math-verify** (LaTeX -> sympy via latex2sympy2_extended):
   fractions vs decimals (equal after rounding to `float_rounding` = 6 decimals), radicals, pi,
   `\\text{}` and units stripped, degrees (`30^\\circ` = `30`), equations against values
   (`x = 3` = `3`: an assignment is compared by its right-hand side), intervals (open / closed
   ends must match), matrices (element-wise; `pmatrix`, `bmatrix`, `array`, `matrix` alike, fractions
   and symbolic entries simplified; `vmatrix` is a determinant: `\\begin{vmatrix}...\\end{vmatrix} = 3`
   = `3`, and it never equals the matrix), sets and tuples: a **set** (`\\{1, 2\\}`) or a bare
   comma list (`1, 2`) is compared **ignoring order**, a **tuple** `(1, 2)` or an interval **in
   order**; a set never equals a tuple. Boxes joined by extraction (`\\boxed{1}, \\boxed{2}`) are a
   bare comma list.

Statuses: `no_answer` when nothing can be extracted; `parse_error` when the extracted answer
cannot be parsed at all (score 0); `ok` otherwise. Hard limits keep sympy from hanging: answers
longer than `max_chars` (after normalisation) are parse errors, math-verify's own timeouts are on
(`timeout_s`, also around the solution sets of rule 6), and the verifier pool (verifiers/pool.py)
kills a worker that still overruns. Every regex here is linear-time on hostile input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from verifiers.base import VerificationResult
from verifiers.extract import EXTRACTION_MODES, extract_answer
from verifiers.registry import register_verifier
from verifiers.steps import check_step

_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")
_CHOICE_WITH_VALUE = re.compile(r"^\(([A-Ea-e])\)\s*(?!(?:or|and)\b)[^()\s]")  # `(D) 12`: the letter, then its
# value; not `(B) or (C)`, `(B) (C)`
_BOUND = re.compile(r"\b(?:or more|or less|or fewer|at least|at most|more than|less than|fewer than|greater than)\b"
                    r"|^\s*(?:\\geq|\\leq|\\neq|<|>)", re.IGNORECASE)  # a bound, not a value
_MATRIX = re.compile(r"\\begin\{[pbvBV]?matrix\}|\\begin\{array\}")
PROSE_METHODS = frozenset({"anchored", "sentence"})  # answers read from running text, not a box or a marker

_SPACING = re.compile(r"\\(left|right|!|,|;|:|displaystyle)")
_CONTROL_SPACE = re.compile(r"(?<!\\)\\ ")  # `\ `, not the row break `\\` before a space
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mbox)\{([^{}]*)\}")

RELATIONS = {  # every way of writing a relation -> one spelling (commands followed by a space)
    "≥": "\\geq ", ">=": "\\geq ", "\\geq": "\\geq ", "\\ge": "\\geq ", "\\geqslant": "\\geq ",
    "≤": "\\leq ", "<=": "\\leq ", "\\leq": "\\leq ", "\\le": "\\leq ", "\\leqslant": "\\leq ",
    "≠": "\\neq ", "!=": "\\neq ", "\\neq": "\\neq ", "\\ne": "\\neq ", "\\lt": "<", "\\gt": ">",
}
_RELATION = re.compile("|".join(re.escape(k) + ("(?![A-Za-z])" if k.startswith("\\") else "")
                                for k in sorted(RELATIONS, key=len, reverse=True)))
_MEMBERSHIP = re.compile(r"^[A-Za-z]\s*\\in(?![A-Za-z])\s*")
_SET_BUILDER = re.compile(r"\\\{\s*[A-Za-z]\s*(?:\\mid|\||:)([^{}]*)\\\}")
_LOGICAL_OR = re.compile(r"\\(?:lor|vee)(?![A-Za-z])")
MATRIX_ENVIRONMENTS = {"smallmatrix": "pmatrix", "Bmatrix": "pmatrix"}  # ones latex2sympy does not read
_MATRIX_ENV = re.compile(r"\\(begin|end)\{(" + "|".join(MATRIX_ENVIRONMENTS) + r")\}")
_PERCENT_WORD = re.compile(r"(?<=[\d}])\s*(?:percent(?:age)?|per\s+cent|pct)\b\.?", re.IGNORECASE)
CURRENCIES = ("\\$", "$", "€", "£", "¥", "₹", "\\euro", "\\pounds", "\\yen")
_CURRENCY = "|".join(re.escape(c) + ("(?![A-Za-z])" if c[-1].isalpha() else "") for c in CURRENCIES)
_CURRENCY_BEFORE = re.compile(rf"^(-?)\s*(?:{_CURRENCY})\s*(?=[-\d.])")
_CURRENCY_AFTER = re.compile(rf"(?<=[\d.])\s*(?:{_CURRENCY})$")

# A unit tail: words or \text{...} groups (each with an optional power), after a number. The tokens
# are separated by spaces or '/', so each string splits one way only (no backtracking blow-up).
_POWER = r"(?:\^\{?\d\}?|[²³])?"
_WRAPPED_UNIT = r"\\(?:text|textbf|textit|textrm|mathrm|mbox)\{[^{}\d]*\}" + _POWER
_UNIT_TAIL = re.compile(rf"(?:{_WRAPPED_UNIT}|[A-Za-zµ°Ω]+{_POWER})"
                        rf"(?:\s*{_WRAPPED_UNIT}|(?:\s+|\s*/\s*)[A-Za-zµ°Ω]+{_POWER})*")
_UNIT_START = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mbox)\{|\\[A-Za-z]+|([A-Za-zµ°Ω])")
SHORT_UNITS = frozenset("cm mm km kg mg ml hr min ft yd mi lb lbs oz mph kph kmh kw hz db px cc ° °c °f".split())
NOT_UNITS = frozenset("and or more less fewer than not least most at plus minus over under by to squared cubed "
                      "thousand thousands million millions billion billions trillion hundred hundreds dozen "
                      "half halves third thirds quarter quarters sin cos tan log ln exp".split())


def strip_latex_noise(s: str) -> str:
    """Remove math delimiters, \\left/\\right, \\! spacing, \\text{...} wrappers and trailing punctuation."""
    return _unwrap_text(_spacing(_delimiters(s)))


def _delimiters(s: str) -> str:
    """Math delimiters around the answer go ($, \\( \\), \\[ \\]); an escaped dollar at its end (`12.50\\$`) stays."""
    s = s.strip()
    for opener, closer in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(opener) and s.endswith(closer) and opener not in s[2:-2]:
            s = s[2:-2]
    t = s.lstrip("$").rstrip("$")
    return (t + "$" if t.endswith("\\") and s.endswith("$") else t).strip()


def _spacing(s: str) -> str:
    """\\left, \\right, \\displaystyle and the spacing commands \\! \\, \\; \\: go (so `11,\\! 111` is `11,111`);
    `{,}` is a comma, `\\ ` and `~` are spaces."""
    return _CONTROL_SPACE.sub(" ", _SPACING.sub("", s).replace("{,}", ",").replace("~", " "))


def _relations(s: str) -> str:
    """≥ >= \\ge \\geqslant -> \\geq; ≤ <= \\le \\leqslant -> \\leq; ≠ != \\ne -> \\neq; \\lt \\gt -> < >."""
    return _RELATION.sub(lambda m: RELATIONS[m.group()], s)


def _sets_of_x(s: str) -> str:
    """`x \\in S` and `\\{x \\mid P\\}` (also `|`, `:`) are S and P: `x \\in [5, \\infty)` is `[5, \\infty)`,
    `\\{x \\mid x \\geq 5\\}` is `x \\geq 5`; `\\lor` / `\\vee` between relations are "or"."""
    builder = _SET_BUILDER.fullmatch(s)
    s = builder.group(1) if builder else _MEMBERSHIP.sub("", s)
    return _LOGICAL_OR.sub(r" \\text{ or } ", s)


def _matrix_environments(s: str) -> str:
    """The matrix environments latex2sympy does not read become `pmatrix` (MATRIX_ENVIRONMENTS)."""
    return _MATRIX_ENV.sub(lambda m: f"\\{m.group(1)}{{{MATRIX_ENVIRONMENTS[m.group(2)]}}}", s)


def _percent_words(s: str) -> str:
    """`28 percent`, `28 pct`, `28 per cent` -> `28\\%` (and so 28, never 0.28: see rule 1)."""
    return _PERCENT_WORD.sub(r"\\%", s)


def _currency(s: str) -> str:
    """A currency sign before or after a number goes: `€1,000.99`, `1,000.99€`, `-\\$5` -> `-5`."""
    return _CURRENCY_AFTER.sub("", _CURRENCY_BEFORE.sub(r"\1", s))


def _units(s: str) -> str:
    """A unit after a number goes: `1,000.99m²`, `10 \\text{ cm}`, `17\\text{ any text}`, `\\frac{1}{3} \\textbf{meters}`,
    `5 \\mathrm{cm}^2`, `12 apples`, also on the right of `x = ...`. Inside \\text{} any words are a unit; a bare
    word is one when a space parts it from the number and it has three letters or more, or when it is in
    SHORT_UNITS, or one letter with ² / ³ (so `3m`, `3abc` and `3x^2` stay as they are). Words of NOT_UNITS
    (`3 or more`, `5 squared`, `2 thousand`) keep the whole answer as it is."""
    lhs, eq, rhs = s.rpartition("=")
    cut = next((m.start() for m in _UNIT_START.finditer(rhs) if m.group(1) or m.group().endswith("{")), None)
    if cut is None:
        return s
    head, tail = rhs[:cut].rstrip(), rhs[cut:].strip()
    if not head or head[-1] not in "0123456789}%" or not re.search(r"\d", head):
        return s
    if not _is_unit(tail, spaced=len(head) < cut):
        return s
    return lhs + eq + head


def _is_unit(tail: str, spaced: bool) -> bool:
    """Whether `tail` (what follows a number; `spaced`: after a space) is a unit by the rules of _units."""
    if not _UNIT_TAIL.fullmatch(tail):
        return False
    for wrapped, word in re.findall(r"\\[a-z]+\{([^{}]*)\}|([A-Za-zµ°Ω]+[²³]?)", tail):
        words = wrapped.lower().split() if wrapped else [word.lower()]
        if any(w in NOT_UNITS for w in words):
            return False
        if word and not (word.lower() in SHORT_UNITS or word[-1] in "²³" or (spaced and len(word) >= 3)):
            return False
    return True


def _unwrap_text(s: str) -> str:
    """`\\text{odd}` -> `odd` (also \\textbf, \\mathrm, ...); a final full stop goes."""
    return _TEXT_WRAPPER.sub(r"\1", s).strip().rstrip(".").strip()


NORMALIZERS = (  # applied in this order to both the answer and the reference
    ("delimiters", _delimiters),
    ("spacing", _spacing),
    ("relations", _relations),
    ("sets of x", _sets_of_x),
    ("matrix environments", _matrix_environments),
    ("percent words", _percent_words),
    ("currency", _currency),
    ("units", _units),
    ("text", _unwrap_text),
    ("whitespace", lambda s: " ".join(s.split())),
)


def normalize(s: str) -> str:
    """The answer as compared: each of NORMALIZERS in turn (module docstring, rule 0)."""
    for _, rewrite in NORMALIZERS:
        s = rewrite(s)
    return s


def plain_number(s: str) -> Decimal | None:
    """'1,000' '50\\%' '$3.50' '1e3' -> its exact decimal value; None when s is not a plain number."""
    t = s.replace(" ", "").replace("\\%", "").rstrip("%").lstrip("\\$").lstrip("$")
    if _THOUSANDS.match(t):
        t = t.replace(",", "")
    if not _PLAIN_NUMBER.match(t) or len(t) > 100:
        return None
    try:
        return Decimal(t)
    except ArithmeticError:
        return None


def same_number(a: Decimal, b: Decimal, rel_tol: float) -> bool:
    """Two integers are equal only exactly (2598961 is not 2598960, however large); otherwise within rel_tol of
    the reference's magnitude, with no absolute floor (2e-7 is not 1e-7)."""
    if a == a.to_integral_value() and b == b.to_integral_value():
        return a == b
    return abs(a - b) <= Decimal(str(rel_tol)) * abs(b)


def container_kind(s: str) -> str | None:
    """'set' for \\{...\\}, 'sequence' for (...), [...], (...], [...) whose first bracket closes at the end
    (so `(2, 2), (6, 2)` is a list of two, not one sequence), None for anything else."""
    s = s.replace(" ", "")
    if s.startswith("\\{") and s.endswith("\\}"):
        return "set"
    if s[:1] in "([" and s[-1:] in ")]" and len(s) > 2 and _closes_at_end(s):
        return "sequence"
    return None


def _closes_at_end(s: str) -> bool:
    depth = 0
    for k, ch in enumerate(s):
        depth += (ch in "([") - (ch in ")]")
        if depth == 0:
            return k == len(s) - 1
    return False


def _text_key(s: str) -> str:
    """Case and spacing do not matter for text answers; inner punctuation does ("1,2" is not "12")."""
    return re.sub(r"\s+", "", strip_latex_noise(s)).lower().rstrip(".!")


def solution_set(expr: Any) -> Any:
    """The solution set of a relation in one variable (`x \\geq 5`, `-5 \\leq x \\leq 1`, `x \\neq 5`) or of a
    list of them meaning 'or' (`x \\leq -5 \\text{ or } x \\geq 3`); None for anything else."""
    from math_verify.grader import is_relation
    from sympy import FiniteSet, Union

    parts = expr.args if isinstance(expr, FiniteSet) else (expr,)
    if not parts or not all(is_relation(p) for p in parts):
        return None
    if len(set().union(*(p.free_symbols for p in parts))) != 1:
        return None
    try:
        return Union(*(p.as_set() for p in parts))
    except Exception:  # sympy cannot solve it (a TimeoutException is not an Exception): compare as written
        return None


def interval_like(expr: Any) -> bool:
    """A set of a range of values: an interval, a union, a complement; not a finite set. (An open `(a, b)`
    may also be a point; read against a relation, as here, it is the interval: no relation states a point.)"""
    from sympy import FiniteSet, Set

    return isinstance(expr, Set) and not isinstance(expr, FiniteSet)


def relations_as_sets(gold: list, pred: list) -> tuple[list, list]:
    """Rule 6: when one side is interval-like and the other a relation in one variable, the relation
    becomes its solution set (`x \\geq 5` vs `[5, \\infty)`); otherwise both are returned as they are."""
    if gold and pred and interval_like(gold[0]) and (as_set := solution_set(pred[0])) is not None:
        return gold, [as_set]
    if gold and pred and interval_like(pred[0]) and (as_set := solution_set(gold[0])) is not None:
        return [as_set], pred
    return gold, pred


def is_matrix(expr: Any) -> bool:
    """A sympy matrix, or a relation with one on a side (`\\begin{vmatrix}...\\end{vmatrix} = 3` is its value's)."""
    from sympy import MatrixBase
    from sympy.core.relational import Relational

    if isinstance(expr, Relational):
        return True  # a determinant written equal to its value: the value is what is compared
    return isinstance(expr, MatrixBase) or getattr(expr, "is_Matrix", False) or type(expr).__name__ == "Determinant" \
        or any(isinstance(a, MatrixBase) for a in getattr(expr, "args", ()))


def equation_in_unknowns(expr: Any) -> bool:
    """An equation to solve rather than a value: its left side holds variables and is not a name
    (`2x + 3 = 7`, `x^2 = 4`; not `x = 3`, `f(2) = 7`, `3 + 4 = 7`)."""
    from math_verify.grader import is_assignment_relation, is_equation, take_first_relation

    return is_equation(expr) and not is_assignment_relation(expr) and bool(take_first_relation(expr).lhs.free_symbols)


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
    extraction: str = "lenient"  # an EXTRACTION_MODES name: "lenient" (default) or "strict" (verifiers/extract.py)

    def __post_init__(self) -> None:
        if self.extraction not in EXTRACTION_MODES:
            raise ValueError(f"extraction={self.extraction!r} is not an extraction mode; set extraction to one of "
                             f"{sorted(EXTRACTION_MODES)} (see verifiers/extract.py)")

    def verify(self, response: str, reference: Any) -> VerificationResult:
        found = extract_answer(response, self.fallback, self.extraction)
        if found is None:
            return VerificationResult(self.wrong_score, False, "no_answer", None, "no answer found")
        answer, gold = normalize(found.answer), normalize(str(reference))
        if len(answer) > self.max_chars:
            return VerificationResult(self.wrong_score, False, "parse_error", found.answer[:100] + "...",
                                      f"answer longer than {self.max_chars} characters")
        a, b = plain_number(answer), plain_number(gold)
        if a is not None and b is not None:
            return self._verdict(same_number(a, b, self.rel_tol), found.answer, "numeric")
        choice = _CHOICE.match(gold)
        if choice:
            got = _CHOICE.match(answer) or _CHOICE_WITH_VALUE.match(answer)
            return self._verdict(bool(got) and got.group(1).upper() == choice.group(1).upper(), found.answer, "choice")
        if _text_key(answer) == _text_key(gold):
            return self._verdict(True, found.answer, "text")
        if b is not None and _BOUND.search(answer):
            return self._verdict(False, found.answer, "a bound (at least 3, \\geq 3) is not a value")
        kinds = container_kind(answer), container_kind(gold)
        if None not in kinds and kinds[0] != kinds[1]:
            return self._verdict(False, found.answer, f"a {kinds[0]} never equals a {kinds[1]}")
        return self._symbolic(answer, gold, found.answer, prose=found.method in PROSE_METHODS)

    def _symbolic(self, answer: str, gold: str, raw: str, prose: bool = False) -> VerificationResult:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
        from math_verify.errors import TimeoutException
        from math_verify.grader import is_relation
        from math_verify.utils import timeout

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
        for side, text, parsed in (("answer", answer, pred_p), ("reference", gold, gold_p)):
            if _MATRIX.search(text) and not is_matrix(parsed[0]):  # a stray entry read in its place
                return VerificationResult(self.wrong_score, False, "parse_error", raw, f"the {side}'s matrix did not parse")
        try:
            if prose and equation_in_unknowns(pred_p[0]) and not is_relation(gold_p[0]):
                return self._verdict(False, raw, "an equation in unknowns from running text is not a value")
            gold_p, pred_p = timeout(self.timeout_s)(relations_as_sets)(gold_p, pred_p)
            ok = verify(gold_p, pred_p, float_rounding=self.float_rounding, timeout_seconds=self.timeout_s,
                        raise_on_error=True)
        except TimeoutException:
            return VerificationResult(self.wrong_score, False, "timeout", raw, f"comparison exceeded {self.timeout_s} s")
        except Exception as exc:
            return VerificationResult(self.wrong_score, False, "parse_error", raw, f"{type(exc).__name__}: {exc}")
        return self._verdict(bool(ok), raw, "symbolic")

    def verify_steps(self, steps: list[str], reference: Any) -> list[float | None]:
        """A score per step: every line `a op b = c` in it checked exactly, the step's score its lowest
        (verifiers/steps.py); None for a step without one (the final answer is the outcome's to judge)."""
        return [check_step(step) for step in steps]

    def _verdict(self, ok: bool, answer: str, how: str) -> VerificationResult:
        return VerificationResult(self.correct_score if ok else self.wrong_score, ok, "ok", answer, how)
