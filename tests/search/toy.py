"""A deterministic toy world for search tests: a fixed tree of reasoning steps and a known value
for every prefix. The engine proposes a state's options in order (cycling when asked for more), one
token per character, so token budgets are exact."""
from __future__ import annotations

from reasonrl.types import Record, Rollout

PROMPT = "Q:\n"
OPTIONS = {
    "": ["a\n", "b\n", "c\n"],
    "a\n": ["\\boxed{1}"],
    "b\n": ["b1\n", "b2\n"],
    "c\n": ["\\boxed{3}"],
    "b\nb1\n": ["\\boxed{7}"],
    "b\nb2\n": ["\\boxed{42}"],
}
# "a" looks best one step ahead but leads to a poor answer; the best answer is b -> b2 -> 42
VALUES = {"": 0.5, "a\n": 0.6, "b\n": 0.5, "c\n": 0.3, "a\n\\boxed{1}": 0.1, "c\n\\boxed{3}": 0.1,
          "b\nb1\n": 0.4, "b\nb2\n": 0.55, "b\nb1\n\\boxed{7}": 0.2, "b\nb2\n\\boxed{42}": 1.0}
BEST = "b\nb2\n\\boxed{42}"


class ToyEngine:
    """Options come in order, continuing where the last request for the same state stopped."""

    pad_id = 0

    def __init__(self, options: dict[str, list[str]] | None = None):
        self.options = OPTIONS if options is None else options
        self.calls = 0
        self.offset: dict[str, int] = {}

    def prompt_ids(self, prompt: str) -> list[int]:
        return [ord(c) for c in prompt]

    def generate(self, prompts, params, generator):
        self.calls += 1
        out = []
        for p in prompts:
            state = p[len(PROMPT):]
            opts = self.options.get(state, ["\\boxed{0}"])
            group, start = [], self.offset.get(state, 0)
            self.offset[state] = start + params.n
            for j in range(start, start + params.n):
                text = opts[j % len(opts)]
                finish = "stop" if text.endswith("\n") else "eos"
                ids = [ord(c) for c in text] + ([2] if finish == "eos" else [])  # EOS is a token too
                if len(ids) > params.max_new_tokens:
                    ids, text, finish = ids[: params.max_new_tokens], text[: params.max_new_tokens], "length"
                group.append(Rollout(response_ids=ids, logprobs=[-0.1] * len(ids), text=text, finish_reason=finish))
            out.append(group)
        return out


def toy_value(records, nodes):
    return [VALUES.get(n.prefix_text(), 0.0) for n in nodes]


def toy_record() -> Record:
    return Record(PROMPT, "42")
