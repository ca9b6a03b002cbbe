"""The char tokenizer and tiny models round-trip through save_pretrained / Auto* offline."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reasonrl.logprobs import token_logprobs
from reasonrl.models import ModelLoadError, load_model, load_tokenizer
from tests.conftest import close

TEXT = "Compute: 12+7-3\n12+7=19\n19-3=16\n\\boxed{16} with spaces  and\ttabs?"


def test_tokenizer_round_trip(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(TEXT.replace("\t", "?"))  # one token per character; tab is not in the vocab
    assert tok.decode(ids) == TEXT.replace("\t", "<unk>")
    assert tok.decode(tok("a b\nc", add_special_tokens=False)["input_ids"]) == "a b\nc"
    assert tok.eos_token == "<eos>" and tok.pad_token == "<pad>"
    assert load_tokenizer(str(tiny_model_dir)).padding_side == "left"


def test_embedded_default_round_trips(embedded_model_dir, tmp_path):
    tok = load_tokenizer(str(embedded_model_dir))
    model = load_model(str(embedded_model_dir))
    assert model.config.model_type == "qwen3" and not model.config.tie_word_embeddings
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 5e6
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([tok(TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)
    assert AutoTokenizer.from_pretrained(tmp_path).decode(ids[0]) == TEXT.replace("\t", "<unk>")


def test_token_logprobs_match_manual_gather(tiny_model_dir):
    model = load_model(str(tiny_model_dir))
    ids = torch.tensor([[5, 6, 7, 8, 0], [9, 10, 11, 12, 13]])
    attn = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    logp, ent = token_logprobs(model, ids, attn, with_entropy=True)
    with torch.no_grad():
        logits = model(ids[1:2]).logits[0, :-1]
    manual = torch.log_softmax(logits, -1)[torch.arange(4), ids[1, 1:]]
    close(logp[1], manual, rtol=1e-5)
    assert logp.shape == ent.shape == (2, 4) and (ent > 0).all()


@pytest.mark.parametrize("path", ["does/not/exist", "./missing-model"])
def test_missing_model_path_is_a_clear_error(path):
    with pytest.raises(ModelLoadError, match="does not exist.*model.path"):
        load_model(path)


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_tokenizer(str(tmp_path))
