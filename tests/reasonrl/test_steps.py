"""The step splitter shared by the PRM and search."""
from __future__ import annotations

import pytest

from reasonrl.registry import UnknownNameError
from reasonrl.steps import split_steps, step_end_tokens


@pytest.mark.parametrize("text,mode,want", [
    ("12+7=19\n19-3=16\n\\boxed{16}", "newline", ["12+7=19\n", "19-3=16\n", "\\boxed{16}"]),
    ("x\n\ny\n", "newline", ["x\n\n", "y\n"]),
    ("\n\nx\ny", "newline", ["\n\nx\n", "y"]),
    ("a\n\nb\n\n\nc", "double_newline", ["a\n\n", "b\n\n\n", "c"]),
    ("Step 1: a. Step 2: b.", r"regex:\.\s*", ["Step 1: a. ", "Step 2: b."]),
    ("", "newline", []), ("  \n ", "newline", []),
])
def test_split_steps(text, mode, want):
    assert split_steps(text, mode) == want
    assert "".join(want) == text or not want


def test_step_end_tokens_map_steps_to_their_last_token():
    tokens = ["12", "+7", "=19\n", "19", "-3=16", "\n", "\\boxed{16}"]
    assert step_end_tokens(tokens) == [2, 5, 6]
    assert step_end_tokens(list("ab\ncd")) == [2, 4]


def test_unknown_mode_is_named():
    with pytest.raises(UnknownNameError, match="did you mean|Known: double_newline, newline"):
        split_steps("x", "newlines")
