"""The torch_varlen attention function. PyTorch's varlen kernel runs only on CUDA, so here it is
replaced by a reference (causal SDPA per segment): what is tested is everything around the kernel —
segments from restarting position_ids, unpadding padded rows, the KV-cache fallback — against the
plain SDPA model."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import reasonrl.attention as attention
from reasonrl.logprobs import token_logprobs
from reasonrl.models import load_model, load_tokenizer
from reasonrl.packing import packed_token_logprobs
from reasonrl.prefix import shared_prefix_logprobs
from reasonrl.rollout.hf import HFEngine
from reasonrl.types import SamplingParams
from tests.conftest import close, ragged_batch


CALLS = []


def reference_kernel(q, k, v, cu_seq, max_len, *, scale, gqa):
    CALLS.append(len(cu_seq) - 1)
    out = []
    for s, e in zip(cu_seq[:-1].tolist(), cu_seq[1:].tolist()):
        qs, ks, vs = (x[s:e].transpose(0, 1)[None] for x in (q, k, v))
        out.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale, enable_gqa=gqa)[0].transpose(0, 1))
    return torch.cat(out)


@pytest.fixture()
def models(embedded_model_dir, monkeypatch):
    monkeypatch.setattr(attention, "varlen_kernel", reference_kernel)
    return (load_model(str(embedded_model_dir)),
            load_model(str(embedded_model_dir), attn_implementation="torch_varlen"))


def test_segments_from_restarting_positions():
    cu, longest = attention.segments_from_positions(torch.tensor([0, 1, 2, 0, 1, 0, 1, 2, 3]))
    assert cu.tolist() == [0, 3, 5, 9] and longest == 4 and cu.dtype == torch.int32


def test_padded_packed_and_shared_prompt_forwards_match_sdpa(models):
    sdpa, varlen = models
    b = ragged_batch()
    valid = b.loss_mask.bool()
    want, want_ent = token_logprobs(sdpa, b.input_ids, b.attention_mask, with_entropy=True)
    for fn in (token_logprobs, packed_token_logprobs):
        CALLS.clear()
        got, ent = fn(varlen, b.input_ids, b.attention_mask, with_entropy=True)
        assert CALLS == [b.num_rows] * varlen.config.num_hidden_layers  # every layer, one segment per row
        close(got[valid], want[valid], rtol=1e-5)
        close(ent[valid], want_ent[valid], rtol=1e-5)
    got, _ = shared_prefix_logprobs(varlen, b.input_ids, b.attention_mask, b.prompt_lens)
    close(got[valid], want[valid], rtol=1e-5)


def test_generation_with_a_kv_cache_falls_back_and_matches_sdpa(models, embedded_model_dir):
    sdpa, varlen = models
    tok = load_tokenizer(str(embedded_model_dir))
    prompts = ["Compute: 12+34-5\n", "Compute: 7-9\n", "Compute: 3+4+5+6\n"]  # unequal lengths: left padding
    p = SamplingParams(n=2, temperature=0.0, max_new_tokens=30)
    a = HFEngine(sdpa, tok).generate(prompts, p, torch.Generator())
    b = HFEngine(varlen, tok).generate(prompts, p, torch.Generator())
    assert [r.response_ids for g in a for r in g] == [r.response_ids for g in b for r in g]
    close([x for g in a for r in g for x in r.logprobs], [x for g in b for r in g for x in r.logprobs], rtol=1e-5)
