"""Load policy / reference models and tokenizers (log-probs under a model: reasonrl/logprobs.py)."""
from __future__ import annotations

import copy
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from reasonrl.registry import SWITCH, Problems

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# transformers' built-in backends, plus torch_varlen (reasonrl/attention.py registers it)
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "torch_varlen")
DEVICES = ("auto", "cpu", "cuda")


def check_model(m) -> Problems:
    """The model section (ModelConfig): dtype and attention backend (model.lora: reasonrl.lora.check_lora)."""
    p = Problems()
    p.one_of(tuple(DTYPES), "model.dtype", m.dtype)
    p.one_of(ATTN_IMPLEMENTATIONS, "model.attn_implementation", m.attn_implementation)
    p.one_of(SWITCH, "model.gradient_checkpointing", str(m.gradient_checkpointing).lower())
    return p


class ModelLoadError(RuntimeError):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu or auto")
    return torch.device(name)


_FIX = ("Point model.path at a directory saved with save_pretrained, e.g. the embedded default "
        "assets/tiny-math (rebuild it with `python scripts/build_tiny_model.py`).")


def _check_path(path: str) -> None:
    """Fail early, with the fix, for a local path that is not a model directory. A string shaped
    like a hub id ("org/name") that is not a local path is left for transformers to fetch."""
    p = Path(path)
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"model.path={path!r} has no config.json (not a Hugging Face model directory). {_FIX}")
        return
    if not re.fullmatch(r"[A-Za-z0-9_][\w.-]*(/[\w.-]+)?", path):
        raise ModelLoadError(f"model.path={path!r} does not exist. {_FIX}")


def _check_safetensors(path: str) -> None:
    """Weights load only from safetensors: a pickled pytorch_model.bin can run code when unpickled."""
    p = Path(path)
    if p.is_dir() and not any(p.glob("*.safetensors")) and any(p.glob("*.bin")):
        raise ModelLoadError(f"model.path={path!r} holds its weights only as pickles (*.bin); reasonrl loads "
                             f"safetensors only, since unpickling can run code. Convert it once where you trust it: "
                             f"AutoModelForCausalLM.from_pretrained(path).save_pretrained(path, safe_serialization=True)")


def _load_failed(path: str, what: str, exc: Exception) -> ModelLoadError:
    where = "" if Path(path).exists() else " (not a local directory, and fetching it from the hub failed: offline?)"
    return ModelLoadError(f"model.path={path!r}: could not load the {what}{where}: {type(exc).__name__}: {exc}")


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    _check_path(path)
    try:
        tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    except Exception as exc:
        raise _load_failed(path, "tokenizer", exc) from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, *, dtype: str = "float32", attn_implementation: str = "sdpa",
               device: torch.device | str = "cpu"):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    _check_path(path)
    if attn_implementation == "torch_varlen":
        from reasonrl.attention import register

        register()
    hf_logging.disable_progress_bar()  # our own bar is the one that matters
    _check_safetensors(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], attn_implementation=attn_implementation,
                                                     use_safetensors=True)
    except Exception as exc:
        raise _load_failed(path, "model", exc) from None
    return model.to(device)


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


class Reference:
    """A frozen reference policy to score under: a frozen copy of the initial weights or -- for a LoRA model --
    the model itself with its adapters switched off (the base weights never train: no second copy)."""

    def __init__(self, model: torch.nn.Module, *, adapters_off: bool = False):
        self.model, self.adapters_off = model, adapters_off

    @contextmanager
    def scoring(self) -> Iterator[torch.nn.Module]:
        """The module to run the reference's forwards with, for the duration of the block."""
        if not self.adapters_off:
            yield self.model
            return
        with self.model.disable_adapter():
            yield self.model


def load_weights(model: torch.nn.Module, directory: Path) -> None:
    """Load model.safetensors from a directory written by save_pretrained into `model` (a tied output head
    is saved once: its absence is expected)."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(directory) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {directory} does not match the model: missing {missing}, unexpected {unexpected}")


def tiny_config(vocab_size: int, *, hidden: int = 128, layers: int = 4, heads: int = 4, kv_heads: int = 2,
                intermediate: int = 384, max_positions: int = 512):
    """A Qwen3-architecture config for small models (the embedded default, tests, benchmarks).
    Untied embeddings: vLLM's weight reload on its CPU build leaves a tied output head stale."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, head_dim=hidden // heads, intermediate_size=intermediate,
        max_position_embeddings=max_positions, tie_word_embeddings=False, rope_theta=10000.0,
    )
