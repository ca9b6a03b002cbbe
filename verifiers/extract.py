"""Answer extraction: pure functions over response text, in two modes (EXTRACTION_MODES).

**strict** (`extract_answer(text)`, what search/ and verifiers/reasoning_gym.py use): the first
rule that finds something wins.
  1. the last \\boxed{...} or \\fbox{...} (nested braces balanced; `\\boxed 7` too)
  2. the last GSM8K-style `#### answer` line
  3. the last "the (final) answer is X" / "final answer: X" (to the end of the sentence)
  4. optionally (`fallback="last_number"`), the last number in the text

**lenient** (the math verifier's default): the same rules read more widely, then two more. Each
rule names one place where a model states its answer; none takes "some number in the text".
  0. Scope: only the text after the last `</think>` is read, so the reasoning inside the block is
     ignored. A `<think>` that never closes means the model has not answered: no answer.
  1. Boxes: the last box, joined with the boxes just before it when only list separators stand
     between them on the same line (spaces, commas, semicolons, `&`, "and", "or", `\\text{ and }`,
     `\\quad`, math delimiters): `\\boxed{1}, \\boxed{2}, \\boxed{3}` -> `1, 2, 3`;
     `\\boxed{(2, 2)} \\text{ and } \\boxed{(6, 2)}` -> `(2, 2), (6, 2)`. Any other text between two
     boxes (a word, an `x =`, a line break) makes the earlier box part of the working: the last
     box alone is the answer.
  2. `####` as in strict.
  3. "the answer is X" as in strict, except that X must not hold a word of DOUBTS ("the answer is
     not $5$", "... is probably $5$", "... is at least $5$": rule 3 finds nothing), and when X holds math spans the answer
     is the last span (joined with the spans before it as in 1.) without the words around it:
     "The answer is $3$ apples." -> `3`. `**bold**` markers go, and so does a reason after the
     answer ("The answer is 3, since 3 > 2." -> `3`).
  4. Anchored: the word "answer", then nothing but "is" / "are" / "was" / "equals", `:`, `=` or
     bold markers, then a math span or a number, which must end the sentence: `Answer $9$`,
     `**Answer:** \\( 9 \\)`, `Answer 9`; not "The answer $5$ is wrong". The last such place wins.
  5. Final sentence: the last math span (`$...$`, `\\(...\\)`, `\\[...\\]`, `$$...$$`) of the final
     sentence, joined as in 1; in a final sentence without math, its last number ("So the total is
     12."). Sentences end at `.`, `!` or `?` before a space or the end, and at line breaks, never
     inside math. Closing asides (ASIDE: a sentence that starts "Check", "Verify", "Note", "Compare",
     or a parenthesis) are passed over for the sentence before them. A final sentence that asks a
     question, or holds a word of DOUBTS (maybe, not, tried, guess, wrong, impossible, and bounds:
     at least, more than, or more, ...) gives no answer: "I tried $12$ and $13$ but I am not sure"
     has none.
  6. `fallback="last_number"` as in strict (within the scope of 0.).

What counts as a math span: `$$...$$`, `\\[...\\]` and `\\(...\\)` always; `$...$` only on one line,
when the closing `$` is not followed by a digit and the inside holds no English word of PROSE_WORDS
outside `\\text{}` ("The book costs $3.50 and the pen $1.50" has no math). Empty spans do not count.

Every scan here is linear in the text: braces are matched in one pass, math spans are found with
`str.find`, and the regexes have no nested quantifiers over the same characters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

_BOX = re.compile(r"\\(?:boxed|fbox)")
_BRACE = re.compile(r"[{}]")
_TOKEN = re.compile(r"\s*(\S+)")
_HASHES = re.compile(r"####\s*(\S[^\n]*|[^\S\n])")  # the line's text (right-stripped where used); a blank one too
_ANSWER_IS = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*(.+?)(?:\.\s|\.?$|\n)",
                        re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d+)?|-?\.\d+")

_MATH_OPEN = re.compile(r"(?<!\\)\$\$|(?<!\\)\$|(?<!\\)\\\[|(?<!\\)\\\(")
_MATH_CLOSE = {"$$": "$$", "$": "$", "\\[": "\\]", "\\(": "\\)"}
_BARE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]+")
_TEXT_GROUP = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\{[^{}]*\}")
PROSE_WORDS = frozenset("and or the is are was were of to for on in at we so it be by with from that this then if but "
                        "as you he she they his her has have had get got pay paid costs cost each".split())
_SEPARATOR = re.compile(r"(?:[ \t,;&~${}]|\band\b|\bor\b|\\text\{|\\mathrm\{|\\[()\[\]]|\\q?quad\b|\\[,;: ])*",
                        re.IGNORECASE)
_SEPARATOR_MAX = 40  # a longer gap between two boxes or spans is prose, not a list separator
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
DOUBTS = ("maybe", "perhaps", "might", "guess", "possibly", "probably", "unsure", "uncertain", "unclear", "either",
          "try", "tried", "trying", "could be", "not", "never", "cannot", "can't", "don't", "isn't", "aren't",
          "wasn't", "doesn't", "impossible", "invalid", "incorrect", "wrong", "extraneous", "contradiction",
          "reject", "rejected", "discard",
          "at least", "at most", "more than", "less than", "fewer than", "greater than", "or more", "or less",
          "or fewer", "no more than", "no less than")  # words that keep a sentence from stating an answer (a
# bound is not a value: "the answer is at least $5$")
_DOUBT = re.compile(r"\b(?:" + "|".join(re.escape(d).replace("\\ ", r"\s+").replace("'", "['’]") for d in DOUBTS)
                    + r")\b", re.IGNORECASE)
ASIDE = re.compile(r"\s*(?:\(|(?:check|checking|verify|verifying|verification|note|compare|sanity|double-check)\b)",
                   re.IGNORECASE)  # a closing remark that checks or comments on the answer instead of stating it
_REASON = re.compile(r",?\s+(?:since|because|as|given that)\s", re.IGNORECASE)  # a reason after the answer
_ANCHOR = re.compile(r"\banswer\b", re.IGNORECASE)
_ANCHOR_GAP = re.compile(r"[ \t*:=]*(?:(?:is|are|was|equals)\b[ \t*:=]*)?", re.IGNORECASE)
_ANCHOR_REACH = 30  # characters between "answer" and its value
_ENDS_SENTENCE = re.compile(r"[ \t]*(?:[.!](?:[ \t]*(?:\n|$)|\s)|\n|$)")


@dataclass(frozen=True)
class Extraction:
    answer: str
    method: str  # boxed | boxes | hashes | answer_is | anchored | sentence | last_number


@dataclass(frozen=True)
class Unit:
    """One place that holds an answer: a box or a math span. text[start:end] is the whole of it."""
    start: int
    end: int
    content: str


# ---------------------------------------------------------------- boxes


def _brace_partners(text: str) -> dict[int, int]:
    """Position of each '{' -> position of the '}' that closes it (one pass; unclosed ones absent)."""
    partners, open_at = {}, []
    for m in _BRACE.finditer(text):
        if m.group() == "{":
            open_at.append(m.start())
        elif open_at:
            partners[open_at.pop()] = m.start()
    return partners


def boxes(text: str) -> list[Unit]:
    """Every \\boxed{...} / \\fbox{...} (and `\\boxed 7`) in order; a box whose brace never closes is skipped."""
    found: list[Unit] = []
    partners: dict[int, int] | None = None
    for m in _BOX.finditer(text):
        i = j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            partners = _brace_partners(text) if partners is None else partners
            if j in partners:
                found.append(Unit(m.start(), partners[j] + 1, text[j + 1:partners[j]].strip()))
        elif j > i and j < len(text):  # "\boxed 7": one token
            tok = _TOKEN.match(text, j)
            if tok:
                found.append(Unit(m.start(), tok.end(), tok.group(1).rstrip(".$")))
    return found


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...}, or None."""
    found = boxes(text)
    return found[-1].content if found else None


# ---------------------------------------------------------------- math spans and sentences


def math_spans(text: str) -> list[Unit]:
    """The math spans of `text` in order: $$...$$, \\[...\\], \\(...\\) and $...$ (see inline_math for the last)."""
    spans: list[Unit] = []
    dead: set[str] = set()  # delimiters with no closer left in the text: nothing later can close either
    i = 0
    while (m := _MATH_OPEN.search(text, i)) is not None:
        opener, i = m.group(), m.end()
        if opener in dead:
            continue
        close = _closing(text, opener, m.end())
        if close is None:
            dead.add(opener)
        elif opener != "$" or inline_math(text, m.end(), close):
            i = close + len(_MATH_CLOSE[opener])
            if text[m.end():close].strip():  # `$$ $$` holds nothing
                spans.append(Unit(m.start(), i, text[m.end():close].strip()))
    return spans


def inline_math(text: str, start: int, close: int) -> bool:
    """Whether text[start:close], between two single dollars, is math rather than prose between two prices:
    it stays on one line, the closing `$` is not followed by a digit ("$3.50 and the tax is $0.50"), and
    outside \\text{} it holds no English word of PROSE_WORDS ("$5 and you get $")."""
    if "\n" in text[start:close] or text[close + 1:close + 2].isdigit():
        return False
    words = _BARE_WORD.findall(_TEXT_GROUP.sub(" ", text[start:close]))
    return not any(w.lower() in PROSE_WORDS for w in words)


def _closing(text: str, opener: str, start: int) -> int | None:
    """Where the closer of `opener` (opened just before `start`) begins, skipping escaped `\\$`; None if none."""
    closer = _MATH_CLOSE[opener]
    j = text.find(closer, start)
    while j > 0 and closer.startswith("$") and text[j - 1] == "\\":
        j = text.find(closer, j + 1)
    return j if j >= 0 else None


def _masked(text: str, spans: list[Unit]) -> str:
    """`text` with every math span blanked out (same length), so that prose rules never look inside math."""
    pieces, at = [], 0
    for s in spans:
        pieces += [text[at:s.start], "M" * (s.end - s.start)]
        at = s.end
    return "".join(pieces + [text[at:]])


def is_list_separator(gap: str) -> bool:
    """True when `gap`, the text between two boxes or spans, only joins items of one answer
    (spaces, commas, semicolons, &, 'and', 'or', \\text{ and }, \\quad, math delimiters; one line, short)."""
    return len(gap) <= _SEPARATOR_MAX and "\n" not in gap and _SEPARATOR.fullmatch(gap) is not None


def joined_tail(text: str, units: list[Unit]) -> str:
    """The last unit's content, preceded by those of the units before it that list separators join to it."""
    k = len(units) - 1
    while k > 0 and is_list_separator(text[units[k - 1].end:units[k].start]):
        k -= 1
    return ", ".join(u.content for u in units[k:])


def sentences(masked: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank sentence of a masked text (see _masked), in order, its end mark included."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(masked):
        if masked[start:m.end()].strip():
            out.append((start, m.end()))
        start = m.end()
    if masked[start:].strip():
        out.append((start, len(masked)))
    return out


def final_sentence(masked: str) -> tuple[int, int] | None:
    """(start, end) of the final sentence that states something, trailing punctuation excluded: asides at the end
    (ASIDE: "Check: ...", "Note ...", a parenthesis) are passed over. None when that sentence is a question."""
    for start, end in reversed(sentences(masked)):
        text = masked[start:end].rstrip()
        if text.endswith("?"):
            return None
        if ASIDE.match(text):
            continue
        end = start + len(text) - (text[-1:] in ".!")
        return start, end
    return None


# ---------------------------------------------------------------- the rules


def _last_box(text: str) -> Extraction | None:
    """Strict rule 1."""
    boxed = last_boxed(text)
    return Extraction(boxed, "boxed") if boxed is not None else None


def _joined_boxes(text: str) -> Extraction | None:
    """Lenient rule 1."""
    found = boxes(text)
    if not found:
        return None
    answer = joined_tail(text, found)
    return Extraction(answer, "boxes" if answer != found[-1].content else "boxed")


def _hash_line(text: str) -> Extraction | None:
    """Rule 2 (both modes)."""
    hashes = _HASHES.findall(text)
    return Extraction(hashes[-1].rstrip(), "hashes") if hashes else None


def _said(text: str) -> str | None:
    """What the last "the answer is ..." / "final answer: ..." says, or None."""
    said = _ANSWER_IS.findall(text)
    return said[-1] if said and said[-1].strip() else None


def _answer_is(text: str) -> Extraction | None:
    """Strict rule 3."""
    said = _said(text)
    return Extraction(said.strip().strip("$ ").rstrip("."), "answer_is") if said is not None else None


def _answer_is_spans(text: str) -> Extraction | None:
    """Lenient rule 3."""
    said = _said(text)
    if said is None or _DOUBT.search(said):
        return None
    spans = math_spans(said)
    if spans:
        return Extraction(joined_tail(said, spans), "answer_is")
    said = _REASON.split(said, maxsplit=1)[0]  # "3, since 3 > 2" states 3
    return Extraction(said.strip().strip("$ *").rstrip("."), "answer_is")  # also **bold** markers


def _anchored(text: str) -> Extraction | None:
    """Lenient rule 4."""
    starts = {s.start: s for s in math_spans(text)}
    for m in reversed(list(_ANCHOR.finditer(text))):
        at = _ANCHOR_GAP.match(text, m.end(), m.end() + _ANCHOR_REACH).end()
        if at in starts and _ENDS_SENTENCE.match(text, starts[at].end):
            return Extraction(starts[at].content, "anchored")
        number = _NUMBER.match(text, at)
        if number and _ENDS_SENTENCE.match(text, number.end()):
            return Extraction(number.group(), "anchored")
    return None


def _final_sentence(text: str) -> Extraction | None:
    """Lenient rule 5."""
    spans = math_spans(text)
    masked = _masked(text, spans)
    bounds = final_sentence(masked)
    if bounds is None or _DOUBT.search(masked, *bounds):
        return None
    inside = [s for s in spans if s.start >= bounds[0] and s.end <= bounds[1]]
    if inside:
        return Extraction(joined_tail(text, inside), "sentence")
    numbers = list(_NUMBER.finditer(masked, *bounds))
    return Extraction(numbers[-1].group().rstrip(","), "sentence") if numbers else None


def _last_number(text: str) -> Extraction | None:
    nums = _NUMBER.findall(text)
    return Extraction(nums[-1], "last_number") if nums else None


def whole(text: str) -> str:
    """The whole response (strict mode reads all of it)."""
    return text


def after_think(text: str) -> str | None:
    """The text after the last `</think>`; None while a `<think>` block is still open; else the text."""
    close = text.rfind("</think>")
    if close >= 0:
        return text[close + len("</think>"):]
    return None if "<think>" in text else text


@dataclass(frozen=True)
class Mode:
    scope: Callable[[str], str | None]  # the part of the response that may hold the answer; None: no answer
    rules: tuple[Callable[[str], Extraction | None], ...]  # tried in order; the first that finds something wins


EXTRACTION_MODES: dict[str, Mode] = {
    "strict": Mode(whole, (_last_box, _hash_line, _answer_is)),
    "lenient": Mode(after_think, (_joined_boxes, _hash_line, _answer_is_spans, _anchored, _final_sentence)),
}
FALLBACKS: dict[str, Callable[[str], Extraction | None]] = {"last_number": _last_number}


def extract_answer(text: str, fallback: str | None = None, mode: str = "strict") -> Extraction | None:
    """The answer `text` states under the extraction mode `mode` (see the module docstring), or None."""
    if mode not in EXTRACTION_MODES:
        raise ValueError(f"extraction mode {mode!r} is unknown; choose one of {sorted(EXTRACTION_MODES)}")
    chosen = EXTRACTION_MODES[mode]
    scope = chosen.scope(text)
    if scope is None:
        return None
    for rule in chosen.rules:
        found = rule(scope)
        if found is not None:
            return found
    return FALLBACKS[fallback](scope) if fallback in FALLBACKS else None


def gsm8k_reference(solution: str) -> str | None:
    """The gold answer of a GSM8K solution: the text after '####', thousands separators removed."""
    m = _HASHES.findall(solution)
    return m[-1].replace(",", "").strip() if m else None
