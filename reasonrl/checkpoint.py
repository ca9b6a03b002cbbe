"""Save and resume everything a run needs to continue exactly where it stopped.

    checkpoints/step_N/    config.json, model.safetensors, tokenizer files  (the policy, HF format:
                           usable directly as model.path; under LoRA the merged model, and the adapter
                           in adapter/), trainer_state.pt (optimizer, scheduler,
                           RNG states, data cursor), trainer_state.json (step, evaluations, totals)
    checkpoints/step_N/prm/  the implicit PRM, when one is trained: its weights (HF format) and
                           optimizer.pt, both written and read by the PRM itself
    checkpoints/latest ->  step_N (symlink)

A checkpoint is written to a temporary directory and renamed into place, so an interrupted save
never leaves a half-written checkpoint behind `latest`.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from reasonrl.lora import load_model_state, save_model
from reasonrl.registry import Problems


@dataclass
class TrainState:
    step: int = 0
    evals: list = field(default_factory=list)  # [{"step", "accuracy", "response_length"}]
    tokens_generated: int = 0
    seconds: float = 0.0


def save(ckpt_root: Path, state: TrainState, *, policy, tokenizer, optimizer, scheduler, sampler,
         generators: dict[str, torch.Generator], keep: int, prm=None, merged: bool = True) -> Path:
    """merged: under LoRA, also write the merged model (the adapter is written either way)."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{state.step}"
    tmp = ckpt_root / f".tmp_step_{state.step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(policy, tmp, merged=merged)
    tokenizer.save_pretrained(tmp)
    if prm is not None:
        prm.save_pretrained(tmp / "prm")
    torch.save({
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(),
        "generators": {k: g.get_state() for k, g in generators.items()},
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),
    }, tmp / "trainer_state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(asdict(state), indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    latest = ckpt_root / "latest"
    tmp_link = ckpt_root / ".latest_tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(final.name)
    tmp_link.replace(latest)
    for old in sorted(ckpt_root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(ckpt: Path, *, policy, optimizer, scheduler, sampler, generators: dict[str, torch.Generator],
         prm=None) -> TrainState:
    """Restore a checkpoint into already-built objects; returns the saved TrainState."""
    ckpt = ckpt.resolve()
    load_model_state(policy, ckpt)
    blob = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    if prm is not None:
        if not (ckpt / "prm" / "config.json").is_file():
            raise RuntimeError(f"checkpoint {ckpt} has no PRM state but this run trains a PRM (prm.enabled=true); "
                               f"resume with the run's own config, or start a new run")
        prm.load_pretrained(ckpt / "prm", optimizer_state=blob.get("prm_optimizer"))
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    sampler.load_state_dict(blob["sampler"])
    for k, g in generators.items():
        g.set_state(blob["generators"][k])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(blob["python_rng"])
    np.random.set_state(blob["numpy_rng"])
    return TrainState(**json.loads((ckpt / "trainer_state.json").read_text()))


def latest(run_dir: Path) -> Path | None:
    link = run_dir / "checkpoints" / "latest"
    return link.resolve() if link.exists() else None


def check_checkpoint(c) -> Problems:
    """The checkpoint section (CheckpointConfig); resume paths are checked when the run starts."""
    p = Problems()
    p.need(c.every >= 0, "checkpoint.every", c.every, "must be >= 0")
    p.need(c.keep >= 1, "checkpoint.keep", c.keep, "must be >= 1")
    return p
