"""Whole-response sampling baselines: best-of-N by value (the PRM), majority vote, value-weighted vote, pass@k.

Samples are drawn in rounds of up to `chunk` per problem, as many as the budget left can pay for at
max_new_tokens each, until it cannot pay for one more.
"""
from __future__ import annotations

from collections import Counter
from math import comb

import torch

from reasonrl.types import Record, SamplingParams
from search.expand import Budget
from search.mcts import SearchResult
from search.tree import Node
from verifiers.extract import extract_answer


def draw(engine, records: list[Record], budget: int, *, chunk: int, max_new_tokens: int, temperature: float,
         generator: torch.Generator) -> tuple[list[list], list[Budget]]:
    """Samples per problem (Rollouts) within the token budget: rounds of up to `chunk` samples, as many
    as the budget left can pay for at max_new_tokens each, so no sample is cut short by the budget."""
    budgets = [Budget(budget) for _ in records]
    samples: list[list] = [[] for _ in records]
    while True:
        counts = [min(chunk, b.remaining // max_new_tokens) for b in budgets]
        live = [i for i, c in enumerate(counts) if c > 0]
        if not live:
            return samples, budgets
        for n in sorted({counts[i] for i in live}):
            idx = [i for i in live if counts[i] == n]
            params = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens)
            for i, group in zip(idx, engine.generate([records[i].prompt for i in idx], params, generator)):
                budgets[i].used += sum(len(r.response_ids) for r in group)
                samples[i].extend(group)


def answer_of(text: str) -> str | None:
    found = extract_answer(text)
    return None if found is None else found.answer.strip()


def majority(texts: list[str]) -> int | None:
    """Index of a response carrying the most common extracted answer; a tie goes to the answer seen
    first. None when no response has an answer."""
    answers = [answer_of(t) for t in texts]
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    for i, a in enumerate(answers):  # first-seen order breaks ties
        if a is not None and counts[a] == top:
            return i
    return None


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k from n samples of which `correct` are right (Chen et al. 2021)."""
    if n - correct < k:
        return 1.0
    return 1.0 - comb(n - correct, k) / comb(n, k)


def scored_samples(engine, value_fn, records: list[Record], budget: int, *, chunk: int, max_new_tokens: int,
                   temperature: float, generator: torch.Generator):
    """draw()'s samples, each scored by value_fn as a one-step path (the prefix is the whole response):
    (samples, budgets, values) with values[i][j] the value of problem i's sample j."""
    samples, budgets = draw(engine, records, budget, chunk=chunk, max_new_tokens=max_new_tokens,
                            temperature=temperature, generator=generator)
    flat = [(i, Node().add_child(Node(text=r.text, token_ids=list(r.response_ids), terminal=True)))
            for i, group in enumerate(samples) for r in group]
    flat_values = iter(value_fn([records[i] for i, _ in flat], [n for _, n in flat]))
    return samples, budgets, [[next(flat_values) for _ in group] for group in samples]


def best_of_n(engine, value_fn, records: list[Record], budget: int, *, chunk: int, max_new_tokens: int,
              temperature: float, generator: torch.Generator) -> list[SearchResult]:
    samples, budgets, values = scored_samples(engine, value_fn, records, budget, chunk=chunk,
                                              max_new_tokens=max_new_tokens, temperature=temperature,
                                              generator=generator)
    out = []
    for group, b, vs in zip(samples, budgets, values):
        j = max(range(len(group)), key=lambda k: vs[k], default=None)  # the first of equal values
        out.append(SearchResult(text="" if j is None else group[j].text, tokens_used=b.used, simulations=len(group),
                                value=None if j is None else vs[j]))
    return out


def weighted(texts: list[str], values: list[float]) -> int | None:
    """Index of the best-valued response carrying the answer whose responses' values sum highest (a tie goes to
    the answer seen first). None when no response has an answer."""
    answers = [answer_of(t) for t in texts]
    totals: dict[str, float] = {}
    for a, v in zip(answers, values):
        if a is not None:
            totals[a] = totals.get(a, 0.0) + v
    if not totals:
        return None
    top = max(totals, key=totals.get)  # dicts keep first-seen order: max returns the first of equal totals
    return max((i for i, a in enumerate(answers) if a == top), key=lambda i: values[i])


def weighted_vote(engine, value_fn, records: list[Record], budget: int, *, chunk: int, max_new_tokens: int,
                  temperature: float, generator: torch.Generator) -> list[SearchResult]:
    """Majority vote with each sample's vote weighted by its value (weighted self-consistency, as in
    Math-Shepherd): best-of-N's samples and values, majority vote's aggregation."""
    samples, budgets, values = scored_samples(engine, value_fn, records, budget, chunk=chunk,
                                              max_new_tokens=max_new_tokens, temperature=temperature,
                                              generator=generator)
    out = []
    for group, b, vs in zip(samples, budgets, values):
        j = weighted([r.text for r in group], vs)
        out.append(SearchResult(text="" if j is None else group[j].text, tokens_used=b.used, simulations=len(group),
                                value=None if j is None else vs[j]))
    return out


def majority_vote(engine, records: list[Record], budget: int, *, chunk: int, max_new_tokens: int,
                  temperature: float, generator: torch.Generator) -> list[SearchResult]:
    samples, budgets = draw(engine, records, budget, chunk=chunk, max_new_tokens=max_new_tokens,
                            temperature=temperature, generator=generator)
    out = []
    for group, b in zip(samples, budgets):
        texts = [r.text for r in group]
        pick = majority(texts)
        out.append(SearchResult(text="" if pick is None else texts[pick], tokens_used=b.used, simulations=len(group)))
    return out
