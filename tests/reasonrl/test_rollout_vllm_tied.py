"""vLLM with a tied model and LoRA adapters (its own module: vLLM's CPU build sizes its KV cache from the memory
left, so this engine must not start beside test_rollout_vllm.py's)."""
from __future__ import annotations

import pytest
import torch

from reasonrl.models import load_model, load_tokenizer
from reasonrl.rollout.hf import HFEngine
from reasonrl.rollout.vllm import StaleWeightsError, VLLMEngine
from reasonrl.types import SamplingParams
from tests.conftest import require_vllm


def ids(out):
    return [r.response_ids for g in out for r in g]


def test_a_tied_model_with_lora_adapters_syncs_and_is_verified(tiny_chat_model_dir):
    """Tied embeddings (a chat model's) and LoRA: the engine serves an untied copy of the merged weights, so a
    change to the shared embedding or to an adapter reaches its output head; the probe proves each sync."""
    require_vllm()
    from reasonrl.config import LoraOptions
    from reasonrl.lora import apply_lora

    tok = load_tokenizer(str(tiny_chat_model_dir))
    policy = apply_lora(load_model(str(tiny_chat_model_dir)), LoraOptions(rank=4, alpha=8.0))
    assert policy.config.tie_word_embeddings
    eng = VLLMEngine(policy, tok, dtype="float32", memory=0.2, max_model_len=256)
    hf = HFEngine(policy, tok)
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Compute: {a}+{a}"}], tokenize=False,
                                       add_generation_prompt=True) for a in (3, 7)]
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=20)
    try:
        assert eng.last_sync_gap < 1e-5
        assert ids(eng.generate(prompts, greedy, torch.Generator())) == ids(hf.generate(prompts, greedy, torch.Generator()))
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            policy.get_input_embeddings().weight.add_(0.5 * torch.randn(policy.get_input_embeddings().weight.shape, generator=g))
            for name, param in policy.named_parameters():
                if "lora_B" in name:
                    param.add_(0.3 * torch.randn(param.shape, generator=g))
        with pytest.raises(StaleWeightsError):
            eng.verify(policy)  # the old weights are still served
        eng.sync_weights(policy)
        assert eng.last_sync_gap < 1e-5 and len(eng.sync_seconds) == 1
        assert ids(eng.generate(prompts, greedy, torch.Generator())) == ids(hf.generate(prompts, greedy, torch.Generator()))
    finally:
        eng.close()
