"""LoRA through PEFT on the tiny chat model (tied embeddings): only the adapters train, the reference is the
base with adapters off (no copy), engines and checkpoints get the merged weights, and the merged checkpoint
loads as a plain model that scores like the LoRA policy."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasonrl.config import LoraOptions
from reasonrl.logprobs import token_logprobs
from reasonrl.lora import apply_lora, is_lora, merged_state_dict, reference_of
from reasonrl.loop import run
from reasonrl.models import load_model
from reasonrl.validate import load_config
from tests.conftest import close, need_module, ragged_batch


@pytest.fixture()
def lora_model(tiny_chat_model_dir):
    need_module("peft", "pip install -e '.[lora]'")
    base = load_model(str(tiny_chat_model_dir))
    model = apply_lora(copy.deepcopy(base), LoraOptions(rank=4, alpha=8.0))
    with torch.no_grad():  # adapters start as a no-op (B = 0): move them so the update is not zero
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return base, model


def logp(model, batch):
    with torch.no_grad():
        return token_logprobs(model, batch.input_ids, batch.attention_mask)[0][batch.loss_mask.bool()]


def test_merged_weights_are_peft_merge_and_the_module_is_untouched(lora_model):
    base, model = lora_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged = merged_state_dict(model)
    want = copy.deepcopy(model).merge_and_unload().state_dict()
    assert merged.keys() == want.keys()
    for k in want:
        close(merged[k], want[k], rtol=1e-6)
    assert any(not torch.equal(merged[k], base.state_dict()[k]) for k in merged)  # the adapters are in it
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # nothing merged in place
    batch = ragged_batch()
    plain = copy.deepcopy(base)
    plain.load_state_dict(merged)
    close(logp(plain, batch), logp(model, batch), rtol=1e-5)  # a plain model with the merged weights scores alike


def test_the_reference_is_the_base_with_adapters_off(lora_model):
    base, model = lora_model
    ref = reference_of(model)
    assert ref.model is model and ref.adapters_off  # no copy of the weights
    batch = ragged_batch()
    with ref.scoring() as m:
        off = logp(m, batch)
    assert torch.equal(off, logp(base, batch))
    assert not torch.allclose(logp(model, batch), off)  # and the adapters are back on after the block


def test_a_lora_run_trains_only_adapters_and_checkpoints_adapter_and_merged_model(tiny_chat_model_dir, tmp_path):
    need_module("peft", "pip install -e '.[lora]'")
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Compute: {a}+{a}", "reference": str(2 * a)}) + "\n" for a in range(8)))
    summary = run(load_config([f"model.path={tiny_chat_model_dir}", "model.lora.rank=4", "data.source=file",
                               f"data.path={data}", "trainer.steps=2", "trainer.lr=1e-2", "trainer.warmup_steps=0",
                               "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=6",
                               "algorithm.kl_coef=0.1", "algorithm.entropy_coef=0.1", "eval.size=0", "verifier.workers=0", "logging.progress=false",
                               "logging.plots=false", f"logging.run_dir={tmp_path}", "logging.name=lora"]))
    ckpt = Path(summary["run_dir"]) / "checkpoints" / "latest"
    adapter = load_file(str(ckpt / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B started at 0: it trained (entropy bonus: a gradient whatever the rewards)
    merged, base = load_model(str(ckpt)), load_model(str(tiny_chat_model_dir))
    assert not is_lora(merged) and merged.config.tie_word_embeddings
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed and all(k.endswith("proj.weight") for k in changed)  # only the adapted linear layers moved
    rows = [json.loads(x) for x in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-9) and rows[1]["kl"] > 0  # the reference is the base
