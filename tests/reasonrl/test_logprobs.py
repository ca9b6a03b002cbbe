"""Log-probs through the output head in chunks: the same log-probs, entropies and gradients as the whole
logits, for the padded, packed and shared-prompt forwards, with no head call larger than a chunk."""
from __future__ import annotations

import copy

import pytest
import torch

from reasonrl.logprobs import Hidden, select_logprobs, split_lm, token_logprobs
from reasonrl.models import load_model
from reasonrl.packing import packed_token_logprobs
from reasonrl.prefix import shared_prefix_logprobs
from tests.conftest import close, ragged_batch


def run(model, path: str, batch, max_logits: int):
    ids, mask = batch.input_ids, batch.attention_mask
    if path == "shared_prompt":
        return shared_prefix_logprobs(model, ids, mask, batch.prompt_lens, with_entropy=True, max_logits=max_logits)
    fn = packed_token_logprobs if path == "packed" else token_logprobs
    return fn(model, ids, mask, with_entropy=True, max_logits=max_logits)


@pytest.mark.parametrize("path", ["padded", "packed", "shared_prompt"])
def test_chunked_head_matches_the_whole_logits(tiny_chat_model_dir, path):
    base = load_model(str(tiny_chat_model_dir))
    assert base.config.tie_word_embeddings and split_lm(base) is not None
    batch = ragged_batch()
    valid = batch.loss_mask.bool()
    results, rows_per_call = {}, {}
    for name, max_logits in (("whole", 10**9), ("chunks", 7 * base.config.vocab_size)):
        model = copy.deepcopy(base)
        calls = []
        model.get_output_embeddings().register_forward_hook(lambda m, i, o: calls.append(i[0].reshape(-1, i[0].shape[-1]).shape[0]))
        logp, ent = run(model, path, batch, max_logits)
        ((logp * batch.loss_mask).sum() + 0.1 * (ent * batch.loss_mask).sum()).backward()
        results[name] = (logp[valid], ent[valid], torch.cat([p.grad.flatten() for p in model.parameters()]))
        rows_per_call[name] = calls
    for a, b in zip(results["chunks"], results["whole"]):
        close(a, b, rtol=1e-5)
    assert max(rows_per_call["chunks"]) <= 7 < max(rows_per_call["whole"])


def test_below_the_bound_the_numbers_are_the_plain_forwards_bit_for_bit(embedded_model_dir):
    model = load_model(str(embedded_model_dir))
    batch = ragged_batch()
    logp, _ = token_logprobs(model, batch.input_ids, batch.attention_mask)
    plain = torch.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float(), -1)
    assert torch.equal(logp, plain.gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1))


def test_models_that_transform_their_logits_use_the_plain_forward(tiny_chat_model_dir):
    model = load_model(str(tiny_chat_model_dir))
    model.config.final_logit_softcapping = 30.0  # as Gemma 2: logits are not the head's output
    assert split_lm(model) is None
    out = Hidden(model, input_ids=torch.tensor([[1, 2, 3]]), use_cache=False)
    assert out.states.shape[-1] == model.config.vocab_size  # the "hidden states" are the logits
    logp, _ = select_logprobs([(out, lambda x: x[:, :-1])], torch.tensor([[2, 3]]), max_logits=1)
    assert logp.shape == (1, 2)
