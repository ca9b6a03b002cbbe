"""Answer extraction: pure functions over response text.

Order of preference (the first that finds something wins):
  1. the last \\boxed{...} or \\fbox{...} (nested braces balanced; `\\boxed 7` too)
  2. the last GSM8K-style `#### answer` line
  3. the last "the (final) answer is X" / "final answer: X" (to the end of the sentence)
  4. optionally (`fallback="last_number"`), the last number in the text
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)")
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*(.+?)(?:\.\s|\.?$|\n)",
                        re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d+)?|-?\.\d+")


@dataclass(frozen=True)
class Extraction:
    answer: str
    method: str  # boxed | hashes | answer_is | last_number


def _braced(text: str, i: int) -> str | None:
    """The content of the brace group opening at text[i] == '{', or None if it never closes."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...}, or None."""
    for m in reversed(list(_BOX.finditer(text))):
        i = j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            inner = _braced(text, j)
            if inner is not None:
                return inner.strip()
            continue  # unbalanced: cut off; try an earlier one
        if j > i and j < len(text):  # "\boxed 7": one token
            return text[j:].split()[0].rstrip(".$")
    return None


def extract_answer(text: str, fallback: str | None = None) -> Extraction | None:
    boxed = last_boxed(text)
    if boxed is not None:
        return Extraction(boxed, "boxed")
    hashes = _HASHES.findall(text)
    if hashes:
        return Extraction(hashes[-1].strip(), "hashes")
    said = _ANSWER_IS.findall(text)
    if said and said[-1].strip():
        return Extraction(said[-1].strip().strip("$ ").rstrip("."), "answer_is")
    if fallback == "last_number":
        nums = _NUMBER.findall(text)
        if nums:
            return Extraction(nums[-1], "last_number")
    return None


def gsm8k_reference(solution: str) -> str | None:
    """The gold answer of a GSM8K solution: the text after '####', thousands separators removed."""
    m = _HASHES.findall(solution)
    return m[-1].replace(",", "").strip() if m else None
