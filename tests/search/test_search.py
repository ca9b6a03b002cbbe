"""Search on a toy world with a known best path, budget accounting, and the sampling baselines."""
from __future__ import annotations

import math

import pytest
import torch

from search.beam import BeamSettings, beam_search
from search.expand import Budget, expand
from search.mcts import MCTSSettings, mcts
from search.sampling import majority, majority_vote, pass_at_k, weighted, weighted_vote
from search.tree import Node, backup, puct, set_priors, uct
from tests.search.toy import BEST, ToyEngine, toy_record, toy_value


def test_backup_and_selection_scores_by_hand():
    root = Node()
    a, b = root.add_child(Node(text="a", logprob=-1.0)), root.add_child(Node(text="b", logprob=-2.0))
    set_priors(root.children)
    assert a.prior == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-9)  # softmax of (-1, -2)
    backup(a, 0.8)
    backup(b, 0.2)
    backup(a, 0.4)
    assert (root.visits, round(root.value_sum, 6), a.visits, round(a.q, 6)) == (3, 1.4, 2, 0.6)
    # UCT: 0.6 + 1.0 * sqrt(ln 3 / 2); PUCT: 0.6 + 1.0 * P_a * sqrt(3) / 3
    assert uct(a, 3, 1.0) == pytest.approx(0.6 + math.sqrt(math.log(3) / 2), rel=1e-9)
    assert puct(a, 3, 1.0) == pytest.approx(0.6 + a.prior * 3 ** 0.5 / 3, rel=1e-9)
    assert uct(Node(), 3, 1.0) == float("inf")


@pytest.mark.parametrize("selection", ["puct", "uct"])
def test_mcts_finds_the_best_path_that_greedy_lookahead_misses(selection):
    engine = ToyEngine()
    s = MCTSSettings(branch=3, c=0.5, selection=selection, max_simulations=8, step_tokens=16, max_depth=4)
    [res] = mcts(engine, toy_value, [toy_record()], budget=10_000, s=s, generator=torch.Generator())
    assert res.text == BEST and res.path == ["b\n", "b2\n", "\\boxed{42}"]
    assert res.simulations <= 8
    narrow = beam_search(engine, toy_value, [toy_record()], 10_000, BeamSettings(width=1, branch=3, step_tokens=16),
                         torch.Generator())[0]
    wide = beam_search(engine, toy_value, [toy_record()], 10_000, BeamSettings(width=2, branch=3, step_tokens=16),
                       torch.Generator())[0]
    assert narrow.text == "a\n\\boxed{1}" and wide.text == BEST  # width 1 is greedy on the value


def test_progressive_widening_reexpands_nodes_whose_samples_ran_out():
    # one sample per expansion: expanded once (ReST-MCTS*), the root only ever sees its first option
    once = mcts(ToyEngine(), toy_value, [toy_record()], 10_000, MCTSSettings(branch=1, widen=1, max_simulations=30),
                torch.Generator())[0]
    wide = mcts(ToyEngine(), toy_value, [toy_record()], 10_000, MCTSSettings(branch=1, widen=3, max_simulations=30),
                torch.Generator())[0]
    assert once.text == "a\n\\boxed{1}" and once.tree["nodes"] == 2
    assert wide.text == BEST and wide.tree["nodes"] > 2


def test_every_generated_token_is_counted_and_the_budget_is_never_exceeded():
    engine = ToyEngine()
    root, budget = Node(), Budget(100)
    kids = expand(engine, [(toy_record(), root, budget)], k=4, step_tokens=16, temperature=1.0, max_depth=4,
                  generator=torch.Generator())[0]
    assert [k.text for k in kids] == ["a\n", "b\n", "c\n"]  # the 4th sample repeats "a\n": merged
    assert budget.used == 4 * 2  # all four samples were paid for
    for limit in (1, 5, 9, 13, 40):
        for run in (lambda b: mcts(engine, toy_value, [toy_record()], b, MCTSSettings(branch=3), torch.Generator()),
                    lambda b: beam_search(engine, toy_value, [toy_record()], b, BeamSettings(), torch.Generator())):
            [res] = run(limit)
            assert res.tokens_used <= limit, (limit, res)


def test_a_budget_that_runs_out_mid_expansion_stops_cleanly():
    engine = ToyEngine()
    # 3 samples x 2 tokens for the first level leaves 5 of 11; the second level's steps are capped at
    # 5 // 3 = 1 token ("b1\n" -> "b"): truncated, not finished, and the search returns what it has
    [res] = mcts(engine, toy_value, [toy_record()], 11, MCTSSettings(branch=3, max_simulations=50), torch.Generator())
    assert res.tokens_used <= 11 and res.simulations >= 2
    assert "\\boxed{42}" not in res.text  # no budget to get there


def test_majority_vote_ties_go_to_the_answer_seen_first_and_pass_at_k_by_hand():
    assert majority(["\\boxed{1}", "\\boxed{2}", "x", "\\boxed{2}", "\\boxed{1}"]) == 0
    assert majority(["no", "\\boxed{5}", "\\boxed{3}", "\\boxed{3}"]) == 2
    assert majority(["none", "here"]) is None
    assert pass_at_k(4, 1, 2) == 0.5 and pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 3, 2) == 1.0
    # a round draws min(3, remaining // 4) samples of 2 tokens: remaining 30, 24, 18, 12 -> 3 each; 6, 4 -> 1 each;
    # 2 cannot pay for a 4-token sample: 14 samples, 28 tokens
    [res] = majority_vote(ToyEngine(), [toy_record()], 30, chunk=3, max_new_tokens=4, temperature=1.0,
                          generator=torch.Generator())
    assert (res.tokens_used, res.simulations) == (28, 14)


def test_weighted_vote_sums_each_answers_values_and_shows_its_best_sample():
    texts = ["\\boxed{1}", "\\boxed{2}", "\\boxed{2}", "x", "\\boxed{1}", "\\boxed{1}"]
    # majority picks 1 (three votes); by value 2 wins: 0.9 + 0.8 = 1.7 against 0.1 + 0.2 + 0.3 = 0.6
    assert majority(texts) == 0
    assert weighted(texts, [0.1, 0.8, 0.9, 1.0, 0.2, 0.3]) == 2  # answer 2's best-valued sample, not the first
    # equal values: the vote is majority's; the unparsable text's value counts for nothing
    assert weighted(texts, [0.5] * 6) == 0
    # equal totals go to the answer seen first; no answer at all: None
    assert weighted(["\\boxed{7}", "\\boxed{8}"], [0.4, 0.4]) == 0 and weighted(["a", "b"], [1.0, 1.0]) is None


def test_weighted_vote_end_to_end_differs_from_best_of_n_and_majority():
    """The toy engine's root options in order; a value that likes answer 3's one sample most but answer 5's
    two samples more in sum: best-of-N picks 3, majority and the weighted vote 5 -- unless 3's value beats
    their sum."""
    from search.sampling import best_of_n
    engine = {"": ["\\boxed{5}", "\\boxed{3}", "\\boxed{5}"]}

    def value_of(scores):
        return lambda records, nodes: [scores[n.text] for n in nodes]
    kw = dict(chunk=3, max_new_tokens=10, temperature=1.0, generator=torch.Generator())  # 9 characters + EOS
    run = lambda method, scores: method(ToyEngine(engine), [toy_record()], 30, **kw) if scores is None \
        else method(ToyEngine(engine), value_of(scores), [toy_record()], 30, **kw)  # noqa: E731
    close = {"\\boxed{5}": 0.4, "\\boxed{3}": 0.6}
    assert run(best_of_n, close)[0].text == "\\boxed{3}"
    assert run(majority_vote, None)[0].text == "\\boxed{5}"
    [res] = run(weighted_vote, close)
    assert (res.text, res.value, res.simulations) == ("\\boxed{5}", 0.4, 3)
    assert run(weighted_vote, {"\\boxed{5}": 0.1, "\\boxed{3}": 0.9})[0].text == "\\boxed{3}"


def test_rest_mcts_value_targets_match_the_reference_vector(vectors):
    v = vectors["rest_mcts_star"]
    tree, names = v["inputs"]["tree"], {}
    root = Node(text="root")

    def build(node, name):
        for child in tree.get(name, []):
            names[child] = build(node.add_child(Node(text=child)), child)
        node.terminal = name in v["inputs"]["end_leaves"]
        return node

    build(root, "root")
    correct = set(v["inputs"]["correct_leaves"])
    from search.collect import value_targets

    got = {n.text: t for n, t in value_targets(root, lambda n: n.text in correct).items()}
    want = v["outputs"]["tree_value_targets"]
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12) for k in want)
    assert value_targets(root, lambda n: False) == {}  # no correct answer anywhere: no targets


def test_collection_writes_verified_traces_and_value_targets(tmp_path):
    from search.collect import collect
    from verifiers import VerifierPool

    with VerifierPool({"math": {}}, workers=0) as pool:
        summary = collect(ToyEngine(), pool, [toy_record()], 10_000, MCTSSettings(branch=3, c=0.5, max_simulations=12),
                          str(tmp_path), max_new_tokens=16, generator=torch.Generator())
    import json

    sft = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    values = {r["prefix"]: r["target"] for r in map(json.loads, (tmp_path / "values.jsonl").read_text().splitlines())}
    assert sft == [{"prompt": "Q:\n", "response": BEST}] and summary["solved"] == 1
    # the route b -> b2 -> 42 (m = 2, 1, 0) rises 1/3, 2/3, 1; branches off it fall back
    assert values["b\n"] == pytest.approx(1 / 3, rel=1e-6) and values["b\nb2\n"] == pytest.approx(2 / 3, rel=1e-6)
    assert values[BEST] == 1.0
    assert values["a\n"] == 0.0 and values["b\nb1\n"] < 1 / 3


@pytest.mark.parametrize("reduce", ["prefix", "mean_q", "min_step"])
def test_prm_value_is_the_sigmoid_of_beta_times_the_prefix_log_ratio(embedded_model_dir, reduce):
    """search.value_reduce: prefix sigmoid(beta * sum q), mean_q sigmoid(mean q), min_step sigmoid(beta * the lowest
    step's sum q), whether a node is scored whole or on top of its scored parent."""
    import copy

    from reasonrl.logprobs import token_logprobs
    from reasonrl.models import load_model, load_tokenizer
    from reasonrl.types import Record
    from search.values import PRMValue

    ref, tok = load_model(str(embedded_model_dir)), load_tokenizer(str(embedded_model_dir))
    prm = copy.deepcopy(ref)
    with torch.no_grad():
        prm.lm_head.weight.add_(0.3 * torch.randn(prm.lm_head.weight.shape, generator=torch.Generator().manual_seed(0)))
    records = [Record("Compute: 12+3\n", "15"), Record("Compute: 4-7+1\n", "-2"), Record("Compute: 1+1\n", "2")]
    nodes = []
    for text in ("12+3=15\n", "4-7=-3\n-3+1=-2\n", ""):  # the last is a root: empty prefix, value 0.5
        node = Node()
        for line in filter(None, text.split("\n")):
            node = node.add_child(Node(text=line + "\n", token_ids=tok(line + "\n", add_special_tokens=False)["input_ids"]))
        nodes.append(node)
    value = PRMValue(prm, ref, tok, beta=0.5, max_tokens=40, reduce=reduce)  # a small budget: several micro-batches
    got = value(records, nodes)
    # then children of scored nodes: siblings share their parent's prefix, and add their step to its sum
    kids = [nodes[1].add_child(Node(text=t, token_ids=tok(t, add_special_tokens=False)["input_ids"]))
            for t in ("-2\n", "\\boxed{-2}", "-3+1=-1\n")] + [nodes[2].add_child(Node(text="1+1=2\n", token_ids=tok(
                "1+1=2\n", add_special_tokens=False)["input_ids"]))]
    kid_records = [records[1]] * 3 + [records[2]]
    got_kids = value(kid_records, kids)

    def want(r, n):
        p = tok(r.prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + n.prefix_ids()])
        with torch.no_grad():
            q = token_logprobs(prm, ids, torch.ones_like(ids))[0] - token_logprobs(ref, ids, torch.ones_like(ids))[0]
        q = q[0, len(p) - 1:]
        if not len(q):
            return 0.5
        steps, at = [], 0
        for x in n.path():
            steps, at = steps + [q[at:at + len(x.token_ids)].sum()], at + len(x.token_ids)
        return torch.sigmoid({"prefix": 0.5 * q.sum(), "mean_q": q.mean(), "min_step": 0.5 * min(steps)}[reduce]).item()

    for r, n, g in zip(records + kid_records, nodes + kids, got + got_kids):
        assert g == pytest.approx(want(r, n), rel=1e-5), (r.prompt, n.prefix_text(), g)
    assert got[2] == 0.5 and got[0] != 0.5
    assert len(set(got_kids)) == (4 if reduce != "min_step" else 3)  # min_step: two kids keep their parent's weakest step


def test_step_verifier_value_is_zero_from_the_first_wrong_step(embedded_model_dir):
    """search.value=step_verifier: each `a op b = c` line checked exactly; a finished prefix needs the right answer."""
    from reasonrl.process import StepScores
    from reasonrl.types import Record
    from search.values import StepVerifierValue
    from verifiers import VerifierPool

    record = Record("Compute: 4-7+1\n", "-2")
    paths = {"4-7=-3\n": False, "4-7=-3\n-3+1=-2\n": False, "4-7=-4\n": False, "4-7=-3\n-3+1=-2\n\\boxed{-2}": True,
             "4-7=-3\n-3+1=-2\n\\boxed{5}": True}
    nodes = []
    for text, terminal in paths.items():
        node = Node()
        for line in text.splitlines(keepends=True):
            node = node.add_child(Node(text=line))
        node.terminal = terminal
        nodes.append(node)
    pool = VerifierPool(workers=0)
    try:
        got = StepVerifierValue(pool, StepScores({}))([record] * len(nodes), nodes)
    finally:
        pool.close()
    assert got == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_a_whole_response_scored_as_one_step_has_each_line_checked():
    """Best-of-N scores a sample as a one-step path: its value must check every line, not take the right answer
    reached through a wrong step (9-10=1: two errors that cancel) for a right solution."""
    from reasonrl.process import StepScores
    from reasonrl.types import Record
    from search.values import StepVerifierValue
    from verifiers import VerifierPool

    record = Record("Compute: 9-10-9-27\n", "-37")
    texts = ["9-10=1\n1-9=-10\n-10-27=-37\n\\boxed{-37}", "9-10=-1\n-1-9=-10\n-10-27=-37\n\\boxed{-37}",
             "9-10=-1\n-1-9=-10\n-10-27=-37\n\\boxed{-36}", "Let me think.\n\\boxed{-37}"]
    nodes = [Node().add_child(Node(text=t, terminal=True)) for t in texts]
    pool = VerifierPool(workers=0)
    try:
        got = StepVerifierValue(pool, StepScores({}))([record] * len(nodes), nodes)
    finally:
        pool.close()
    assert got == [0.0, 1.0, 0.0, 1.0]  # no checkable line: the answer alone decides


# The root's first two steps are wrong (x, y), the third (b) right: with branch 2 the first expansion finds only
# wrong steps; asked again, the engine continues with b.
DEAD_OPTIONS = {"": ["x\n", "y\n", "b\n"], "x\n": ["x1\n"], "y\n": ["y1\n"], "b\n": ["\\boxed{42}"]}


class ExactValue:
    """A step-verifier-like value: 0 under a wrong step (x, y), 1 on the right path."""

    exact = True

    def __call__(self, records, nodes):
        return [0.0 if n.prefix_text().startswith(("x", "y")) else 1.0 for n in nodes]


@pytest.mark.parametrize("retries", [0, 2])
def test_dead_ends_are_pruned_and_their_parent_expanded_again(retries):
    """Every child of the root is valued 0 by an exact value: without re-expansion (0 retries) the search has
    nowhere to go and answers from a dead end; with retries the root is expanded again and b -> 42 is found."""
    out = mcts(ToyEngine(DEAD_OPTIONS), ExactValue(), [toy_record()], 10_000,
               MCTSSettings(branch=2, max_simulations=20, dead_retries=retries), torch.Generator().manual_seed(0))[0]
    if retries:
        assert out.text == "b\n\\boxed{42}" and out.value == 1.0
    else:
        assert "42" not in out.text and out.tree["nodes"] <= 6  # nothing explored under the dead steps


@pytest.mark.parametrize("heat", [0.0, 0.25])
def test_each_re_expansion_of_a_node_samples_hotter_by_retry_heat(heat):
    """search.retry_heat: the root's first expansion (wrong steps only) samples at the search temperature,
    its re-expansion `heat` hotter; a node expanded for the first time (b) at the base temperature again."""
    engine, seen = ToyEngine(DEAD_OPTIONS), []
    real = engine.generate

    def recording(prompts, params, generator):
        seen.extend((p[len(toy_record().prompt):], params.temperature) for p in prompts)
        return real(prompts, params, generator)

    engine.generate = recording
    out = mcts(engine, ExactValue(), [toy_record()], 10_000, MCTSSettings(branch=2, max_simulations=20,
               dead_retries=2, temperature=0.7, retry_heat=heat), torch.Generator().manual_seed(0))[0]
    assert out.text == "b\n\\boxed{42}"
    assert [t for state, t in seen if state == ""] == pytest.approx([0.7, 0.7 + heat])
    assert [t for state, t in seen if state == "b\n"] == pytest.approx([0.7])


def test_without_an_exact_value_nothing_is_pruned():
    value = ExactValue()
    value.exact = False
    out = mcts(ToyEngine(DEAD_OPTIONS), value, [toy_record()], 10_000, MCTSSettings(branch=2, max_simulations=20),
               torch.Generator().manual_seed(0))[0]
    assert "42" not in out.text and out.text.startswith(("x", "y"))  # it kept descending under a wrong step
