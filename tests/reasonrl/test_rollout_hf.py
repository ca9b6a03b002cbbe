"""The transformers rollout engine: sampling controls, log-probs, finish reasons, determinism."""
from __future__ import annotations

import torch

from reasonrl.batching import collate
from reasonrl.logprobs import token_logprobs
from reasonrl.models import load_model, load_tokenizer
from reasonrl.rollout.hf import HFEngine, sample_next
from reasonrl.types import Record, RolloutGroup, SamplingParams
from tests.conftest import close

PROMPTS = ["Compute: 1+2\n", "Compute: 12+7-30\n", "x"]


def engine_for(path) -> HFEngine:
    return HFEngine(load_model(str(path)), load_tokenizer(str(path)), batch_rows=64)


def test_groups_shapes_and_engine_logprobs_match_the_learner(tiny_model_dir):
    eng = engine_for(tiny_model_dir)
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12)
    out = eng.generate(PROMPTS, params, torch.Generator().manual_seed(0))
    assert [len(g) for g in out] == [3, 3, 3]
    for g in out:
        for r in g:
            assert len(r.response_ids) == len(r.logprobs) <= 12
            assert r.finish_reason in ("eos", "length")
            assert (r.finish_reason == "length") == (len(r.response_ids) == 12 and r.response_ids[-1] != eng.eos_id)
    # the engine's log-probs (KV cache, rows dropped as they finish) equal a fresh padded forward's
    groups = [RolloutGroup(Record(p, "0"), eng.prompt_ids(p), g) for p, g in zip(PROMPTS, out)]
    batch = collate(groups, eng.pad_id)
    logp, _ = token_logprobs(eng.model, batch.input_ids, batch.attention_mask)
    engine_lp = torch.zeros_like(logp)
    row = 0
    for grp in groups:
        for r in grp.rollouts:
            start = len(grp.prompt_ids) - 1
            engine_lp[row, start:start + len(r.logprobs)] = torch.tensor(r.logprobs)
            row += 1
    m = batch.loss_mask.bool()
    close(logp[m], engine_lp[m], rtol=1e-5)


def test_same_generator_state_same_samples_and_greedy_is_deterministic(tiny_model_dir):
    eng = engine_for(tiny_model_dir)
    p = SamplingParams(n=4, temperature=1.0, max_new_tokens=10)
    a = eng.generate(PROMPTS, p, torch.Generator().manual_seed(3))
    b = eng.generate(PROMPTS, p, torch.Generator().manual_seed(3))
    c = eng.generate(PROMPTS, p, torch.Generator().manual_seed(4))
    ids = lambda out: [r.response_ids for g in out for r in g]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    g = SamplingParams(n=2, temperature=0.0, max_new_tokens=10)
    x = eng.generate(PROMPTS, g, torch.Generator().manual_seed(0))
    assert all(grp[0].response_ids == grp[1].response_ids for grp in x)


def test_batch_chunking_does_not_change_results(tiny_model_dir):
    eng = engine_for(tiny_model_dir)
    p = SamplingParams(n=1, temperature=0.0, max_new_tokens=8)
    whole = eng.generate(PROMPTS, p, torch.Generator())
    eng.batch_rows = 1
    chunked = eng.generate(PROMPTS, p, torch.Generator())
    assert [g[0].response_ids for g in whole] == [g[0].response_ids for g in chunked]


def test_stop_strings_end_responses(embedded_model_dir):
    eng = engine_for(embedded_model_dir)
    p = SamplingParams(n=2, temperature=0.0, max_new_tokens=40, stop=("\n",))
    out = eng.generate(["Compute: 3+4+5\n"], p, torch.Generator())
    for r in out[0]:
        assert r.finish_reason == "stop" and r.text.endswith("\n") and r.text.count("\n") == 1


def test_the_embedded_model_writes_steps_and_a_boxed_answer(embedded_model_dir):
    eng = engine_for(embedded_model_dir)
    out = eng.generate(["Compute: 3+4\n"], SamplingParams(n=1, temperature=0.0, max_new_tokens=40), torch.Generator())
    r = out[0][0]
    assert r.finish_reason == "eos" and r.text == "3+4=7\n\\boxed{7}"


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    gen = torch.Generator().manual_seed(0)
    k2 = sample_next(logits, SamplingParams(temperature=1.0, top_k=2), gen)
    assert set(k2.tolist()) == {0, 1}
    probs = torch.softmax(logits[0], -1)  # [0.636, 0.234, 0.086, ...]: top_p 0.8 keeps tokens 0 and 1
    p8 = sample_next(logits, SamplingParams(temperature=1.0, top_p=0.8), gen)
    assert set(p8.tolist()) == {0, 1} and probs[:2].sum() > 0.8
    greedy = sample_next(logits[:3], SamplingParams(temperature=0.0), gen)
    assert greedy.tolist() == [0, 0, 0]
