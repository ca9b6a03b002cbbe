"""Split a response into reasoning steps: one splitter shared by the PRM's step granularity and by search.

A step ends at a delimiter: "newline" (each line is a step; the embedded tasks' format), "double_newline"
(paragraphs), or a regular expression given as "regex:<pattern>" whose matches end steps. Text after
the last delimiter is a final step. `step_end_tokens` maps the steps onto token positions: a step's
reward sits on the token that holds its last character. Search generates one step at a time by stopping
the engine at the splitter's stop strings (`step_stops`), so it takes the named splitters only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from reasonrl.registry import Problems, Registry


@dataclass(frozen=True)
class Splitter:
    pattern: re.Pattern  # what ends a step
    stops: tuple[str, ...]  # stop strings that end generation right after one step


SPLITTERS: Registry = Registry("step splitter")
SPLITTERS.register("newline")(Splitter(re.compile(r"\n"), ("\n",)))
SPLITTERS.register("double_newline")(Splitter(re.compile(r"\n\s*\n"), ("\n\n",)))


def check_step_split(key: str, mode: str) -> Problems:
    """A splitter name, or regex:<pattern> with a pattern that compiles."""
    p = Problems()
    if mode.startswith("regex:"):
        try:
            re.compile(mode[len("regex:"):])
        except re.error as exc:
            p.append(f"{key}={mode!r}: not a valid regular expression ({exc})")
    else:
        p.need(mode in SPLITTERS, key, mode, f"use {', '.join(SPLITTERS.names())} or regex:<pattern>")
    return p


def step_stops(mode: str) -> tuple[str, ...]:
    """The stop strings that end generation after one step of a named splitter."""
    return SPLITTERS.get(mode).stops


def _pattern(mode: str) -> re.Pattern:
    if mode.startswith("regex:"):
        return re.compile(mode[len("regex:"):])
    return SPLITTERS.get(mode).pattern


def step_spans(text: str, mode: str = "newline") -> list[tuple[int, int]]:
    """[(start, end)) character spans of the steps; a delimiter belongs to the step it ends, and a
    blank piece (a delimiter right after another) is attached to the step before it."""
    cuts = [m.end() for m in _pattern(mode).finditer(text) if m.end() > 0]
    bounds = sorted({0, len(text), *cuts})
    spans: list[tuple[int, int]] = []
    for a, b in zip(bounds, bounds[1:]):
        if spans and (not text[a:b].strip() or not text[slice(*spans[-1])].strip()):
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    return [sp for sp in spans if text[slice(*sp)].strip()]


def split_steps(text: str, mode: str = "newline") -> list[str]:
    return [text[a:b] for a, b in step_spans(text, mode)]


def step_end_tokens(token_texts: list[str], mode: str = "newline") -> list[int]:
    """Index of the token holding the last character of each step, from the tokens' texts in order
    (e.g. [tokenizer.decode([i]) for i in response_ids])."""
    char_to_token = [t for t, piece in enumerate(token_texts) for _ in piece]
    return [char_to_token[end - 1] for _, end in step_spans("".join(token_texts), mode)]
