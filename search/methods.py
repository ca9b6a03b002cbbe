"""The evaluation methods by name: each maps (context, problems, token budget) to one SearchResult
per problem. evaluate.py runs the ones named in search.methods."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from reasonrl.registry import Problems, Registry
from reasonrl.steps import SPLITTERS
from reasonrl.types import SamplingParams
from search.beam import BeamSettings, beam_search
from search.mcts import ANSWERS, SELECTIONS, MCTSSettings, SearchResult, mcts
from search.sampling import best_of_n, majority_vote, weighted_vote
from search.values import VALUE_REDUCTIONS, VALUE_SOURCES

METHODS: Registry = Registry("search method")


@dataclass
class Context:
    engine: object
    value_fn: Callable | None
    settings: object  # the search config section
    max_new_tokens: int  # longest whole response (greedy, best-of-N, majority samples)
    generator: torch.Generator
    step_split: str = "newline"  # what ends a step (search.step_split, else prm.step_split)


@METHODS.register("greedy")
def greedy(ctx: Context, records, budget: int) -> list[SearchResult]:
    """One greedy answer (the budget does not apply: it is the baseline)."""
    outs = ctx.engine.generate([r.prompt for r in records], SamplingParams(n=1, temperature=0.0,
                               max_new_tokens=ctx.max_new_tokens), ctx.generator)
    return [SearchResult(text=o[0].text, tokens_used=len(o[0].response_ids), simulations=1) for o in outs]


@METHODS.register("best_of_n")
def best_of_n_method(ctx: Context, records, budget: int) -> list[SearchResult]:
    s = ctx.settings
    return best_of_n(ctx.engine, ctx.value_fn, records, budget, chunk=s.chunk, max_new_tokens=ctx.max_new_tokens,
                     temperature=s.temperature, generator=ctx.generator)


@METHODS.register("majority")
def majority_method(ctx: Context, records, budget: int) -> list[SearchResult]:
    s = ctx.settings
    return majority_vote(ctx.engine, records, budget, chunk=s.chunk, max_new_tokens=ctx.max_new_tokens,
                         temperature=s.temperature, generator=ctx.generator)


@METHODS.register("weighted_vote")
def weighted_vote_method(ctx: Context, records, budget: int) -> list[SearchResult]:
    """Majority vote over best-of-N's samples with each vote weighted by the sample's value."""
    s = ctx.settings
    return weighted_vote(ctx.engine, ctx.value_fn, records, budget, chunk=s.chunk, max_new_tokens=ctx.max_new_tokens,
                         temperature=s.temperature, generator=ctx.generator)


@METHODS.register("beam")
def beam_method(ctx: Context, records, budget: int) -> list[SearchResult]:
    s = ctx.settings
    return beam_search(ctx.engine, ctx.value_fn, records, budget, BeamSettings(
        width=s.beam_width, branch=s.branch, step_tokens=s.step_tokens, step_split=ctx.step_split,
        max_depth=s.max_depth, temperature=s.temperature), ctx.generator)


@METHODS.register("mcts")
def mcts_method(ctx: Context, records, budget: int) -> list[SearchResult]:
    return mcts(ctx.engine, ctx.value_fn, records, budget, mcts_settings(ctx.settings, ctx.step_split), ctx.generator)


def mcts_settings(s, split: str) -> MCTSSettings:
    """MCTSSettings from the search section (SearchConfig); split: the steps.py splitter steps end at."""
    return MCTSSettings(branch=s.branch, c=s.c, selection=s.selection, step_tokens=s.step_tokens, step_split=split,
                        max_depth=s.max_depth, temperature=s.temperature, max_simulations=s.max_simulations,
                        answer=s.answer, widen=s.widen, dead_retries=s.dead_retries, retry_heat=s.retry_heat)


NEEDS_VALUE = {"best_of_n", "weighted_vote", "beam", "mcts"}


def check_search(s) -> Problems:
    """The search section (SearchConfig), for evaluate.py."""
    p = Problems()
    for m in s.methods:
        p.known(METHODS, "search.methods", m)
    p.need(bool(s.methods), "search.methods", s.methods, "name at least one method, e.g. [greedy, mcts]")
    p.need(bool(s.budgets) and all(isinstance(b, int) and b >= 1 for b in s.budgets), "search.budgets", s.budgets,
           "give a list of positive token counts, e.g. [128, 512]")
    p.one_of(VALUE_SOURCES, "search.value", s.value)
    p.known(VALUE_REDUCTIONS, "search.value_reduce", s.value_reduce)
    p.known(SELECTIONS, "search.selection", s.selection)
    p.one_of(ANSWERS, "search.answer", s.answer)
    for key in ("branch", "max_simulations", "widen", "beam_width", "step_tokens", "max_depth", "chunk",
                "problems_per_call"):
        p.need(getattr(s, key) >= 1, f"search.{key}", getattr(s, key), "must be >= 1")
    p.need(s.dead_retries >= 0, "search.dead_retries", s.dead_retries, "must be >= 0")
    p.need(0 <= s.retry_heat <= 2, "search.retry_heat", s.retry_heat, "must be in [0, 2] (0 = one temperature)")
    p.need(s.c >= 0, "search.c", s.c, "must be >= 0")
    p.need(0 < s.temperature <= 2, "search.temperature", s.temperature, "must be in (0, 2]")
    p.need(s.collect_size >= 1, "search.collect_size", s.collect_size, "must be >= 1")
    if s.step_split is not None:
        p.known(SPLITTERS, "search.step_split", s.step_split)  # search stops the engine at the splitter's strings
    return p


def step_split(cfg) -> str:
    """search.step_split, else the PRM's splitter when it is one search can stop at, else newline."""
    split = cfg.search.step_split or cfg.prm.step_split
    return split if split in SPLITTERS else "newline"
