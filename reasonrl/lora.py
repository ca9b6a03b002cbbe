"""LoRA through PEFT (`model.lora.*`): low-rank adapters on the policy's linear layers, trained instead of the
full weights.

* the frozen reference (KL, the implicit PRM's) is the same module with its adapters switched off: no second
  copy of the weights (models.Reference);
* engines that keep their own copy of the weights (vLLM) get the merged weights, W + (alpha / r) B A, computed
  without touching the module (merging in place and back would drift the base weights by rounding);
* checkpoints hold the adapter (adapter/, what a resume loads) and, with model.lora.save_merged, the merged
  model in Hugging Face format beside it, so the checkpoint stays usable as model.path.
"""
from __future__ import annotations

from pathlib import Path

import torch

from reasonrl.models import Reference, frozen_copy, load_weights
from reasonrl.registry import Problems

ADAPTER_DIR = "adapter"


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def reference_of(model: torch.nn.Module) -> Reference:
    """The frozen reference for a model about to train: its base with adapters off (LoRA), else a frozen copy."""
    return Reference(model, adapters_off=True) if is_lora(model) else Reference(frozen_copy(model))


def apply_lora(model: torch.nn.Module, opts) -> torch.nn.Module:
    """The model with adapters of the model.lora section opts (rank > 0), only the adapters trainable."""
    from peft import LoraConfig, get_peft_model

    targets = opts.target_modules[0] if list(opts.target_modules) == ["all-linear"] else list(opts.target_modules)
    return get_peft_model(model, LoraConfig(r=opts.rank, lora_alpha=opts.alpha, lora_dropout=opts.dropout,
                                            target_modules=targets, task_type="CAUSAL_LM"))


def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The base model's state dict with every adapter folded in (W + delta), under the base model's own names."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas = {f"{name}.weight": module.get_delta_weight(module.active_adapters[0]).detach()
              for name, module in base.named_modules() if isinstance(module, LoraLayer) and module.active_adapters}
    out = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        out[key] = value.detach() + deltas[key] if key in deltas else value.detach()
    return out


def export_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What an engine with its own copy of the weights should load: the merged weights under LoRA."""
    return merged_state_dict(model) if is_lora(model) else model.state_dict()


def save_model(model: torch.nn.Module, directory: Path, *, merged: bool = True) -> None:
    """save_pretrained; under LoRA the adapter goes to directory/adapter and (merged) the merged model to directory."""
    directory = Path(directory)
    if not is_lora(model):
        model.save_pretrained(directory, safe_serialization=True)
        return
    model.save_pretrained(directory / ADAPTER_DIR)
    if merged:
        model.get_base_model().save_pretrained(directory, state_dict=merged_state_dict(model), safe_serialization=True)


def load_model_state(model: torch.nn.Module, directory: Path) -> None:
    """Restore what save_model wrote: the adapter under LoRA (the base is model.path's, never trained), else the
    weights."""
    (load_adapter if is_lora(model) else load_weights)(model, directory)


def load_adapter(model: torch.nn.Module, directory: Path) -> None:
    """Restore adapter weights written by save_model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(directory) / ADAPTER_DIR / "adapter_model.safetensors"
    if not path.is_file():
        raise RuntimeError(f"{directory} holds no LoRA adapter ({ADAPTER_DIR}/adapter_model.safetensors) but this run "
                           "trains one (model.lora.rank > 0): resume with the run's own config")
    result = set_peft_model_state_dict(model, load_file(str(path)))
    if getattr(result, "unexpected_keys", None):
        raise RuntimeError(f"{path} does not match the model's adapters: unexpected {result.unexpected_keys}")


def check_lora(opts) -> Problems:
    """The model.lora section."""
    from importlib.util import find_spec

    p = Problems()
    p.need(opts.rank >= 0, "model.lora.rank", opts.rank, "must be >= 0 (0 = full fine-tuning)")
    if opts.rank > 0:
        p.need(find_spec("peft") is not None, "model.lora.rank", opts.rank,
               "LoRA needs the peft package: pip install -e '.[lora]'")
        p.need(opts.alpha > 0, "model.lora.alpha", opts.alpha, "must be > 0")
        p.need(0 <= opts.dropout < 1, "model.lora.dropout", opts.dropout, "must be in [0, 1)")
        p.need(bool(opts.target_modules), "model.lora.target_modules", opts.target_modules,
               "name the modules that get adapters, e.g. [all-linear] or [q_proj, v_proj]")
    return p
