"""Save and resume everything a run needs to continue exactly where it stopped.

    checkpoints/step_N/    config.json, model.safetensors, tokenizer files  (the policy, HF format:
                           usable directly as model.path; under LoRA the merged model, and the adapter
                           in adapter/), trainer_state.pt (optimizer, scheduler,
                           RNG states, data cursor), trainer_state.json (step, evaluations, totals)
    checkpoints/step_N/prm/  the implicit PRM, when one is trained: its weights (HF format) and
                           optimizer.pt, both written and read by the PRM itself
    checkpoints/latest ->  step_N (symlink)

Under torchrun (several ranks) the optimiser, the policy and the PRM are also written sharded, each rank its
own part, with torch.distributed.checkpoint into step_N/dcp/; rank 0 writes everything else (the HF-format
policy and PRM are gathered to it, so step_N stays a model.path). A checkpoint with dcp/ resumes at any
number of ranks, one included: DCP reshards on load.

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

from reasonrl import distributed
from reasonrl.lora import load_model_state, save_model
from reasonrl.registry import Problems


@dataclass
class TrainState:
    step: int = 0
    evals: list = field(default_factory=list)  # [{"step", "accuracy", "response_length"}]
    tokens_generated: int = 0
    seconds: float = 0.0


def save(ckpt_root: Path, state: TrainState, *, policy, tokenizer, optimizer, scheduler, sampler,
         generators: dict[str, torch.Generator], keep: int, prm=None, merged: bool = True,
         dist: distributed.Dist = distributed.Dist()) -> Path:
    """merged: under LoRA, also write the merged model (the adapter is written either way). dist: every rank
    calls this; each writes its shards, rank 0 the rest."""
    if dist.enabled:
        return save_sharded(ckpt_root, state, policy=policy, tokenizer=tokenizer, optimizer=optimizer,
                            scheduler=scheduler, sampler=sampler, generators=generators, keep=keep, prm=prm, dist=dist)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{state.step}"
    tmp = ckpt_root / f".tmp_step_{state.step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(policy, tmp, merged=merged)
    tokenizer.save_pretrained(tmp)
    if prm is not None:
        prm.save_pretrained(tmp / "prm")
    torch.save({"optimizer": optimizer.state_dict(), **run_state(scheduler, sampler, generators)},
               tmp / "trainer_state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(asdict(state), indent=1))
    return publish(ckpt_root, tmp, final, keep)


def run_state(scheduler, sampler, generators: dict[str, torch.Generator]) -> dict:
    """What a resume needs besides weights and optimiser: schedule, data cursor, generators, global RNGs."""
    return {
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(),
        "generators": {k: g.get_state() for k, g in generators.items()},
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),
    }


def publish(ckpt_root: Path, tmp: Path, final: Path, keep: int) -> Path:
    """Rename the finished temporary directory into place, point `latest` at it, drop all but `keep`."""
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


def save_sharded(ckpt_root: Path, state: TrainState, *, policy, tokenizer, optimizer, scheduler, sampler,
                 generators: dict[str, torch.Generator], keep: int, prm, dist: distributed.Dist) -> Path:
    """The checkpoint of a run over several ranks: dcp/ from every rank, the rest from rank 0 (the global RNGs
    are rank 0's: every rank's draws of prompts and seeds are the same; each rank's generators are kept too,
    for a resume at the same number of ranks)."""
    final, tmp = ckpt_root / f"step_{state.step}", ckpt_root / f".tmp_step_{state.step}"
    if dist.is_main:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    dist.barrier()
    parts = {"policy": (policy, optimizer), **({"prm": (prm.model, prm.optimizer)} if prm is not None else {})}
    distributed.save_sharded(tmp / "dcp", parts)
    exports = {name: distributed.full_model_state(model) for name, (model, _) in parts.items()}  # on rank 0
    rank_generators = dist.gather({k: g.get_state() for k, g in generators.items()})  # mini-batch shuffles differ
    if dist.is_main:
        export_hf(policy, exports["policy"], tmp)
        tokenizer.save_pretrained(tmp)
        if prm is not None:
            export_hf(prm.model, exports["prm"], tmp / "prm")
        torch.save({"sharded": True, "rank_generators": rank_generators, **run_state(scheduler, sampler, generators)},
                   tmp / "trainer_state.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(asdict(state), indent=1))
        publish(ckpt_root, tmp, final, keep)
    dist.barrier()
    return final


def export_hf(model: torch.nn.Module, weights: dict, directory: Path) -> None:
    """save_pretrained of a sharded model from its gathered weights, under the model's own architecture name
    (FSDP renames the class FSDP<name>; vLLM reads `architectures`)."""
    model.save_pretrained(directory, state_dict=weights, safe_serialization=True)
    path = Path(directory) / "config.json"
    config = json.loads(path.read_text())
    config["architectures"] = [a.removeprefix("FSDP") for a in config.get("architectures") or []]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load(ckpt: Path, *, policy, optimizer, scheduler, sampler, generators: dict[str, torch.Generator],
         prm=None, dist: distributed.Dist = distributed.Dist()) -> TrainState:
    """Restore a checkpoint into already-built objects (sharded or not); returns the saved TrainState."""
    ckpt = ckpt.resolve()
    blob = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    if (ckpt / "dcp").is_dir():  # written by several ranks: DCP reshards to this run's
        if prm is not None and not (ckpt / "prm").is_dir():
            raise RuntimeError(f"checkpoint {ckpt} has no PRM state but this run trains a PRM (prm.enabled=true); "
                               f"resume with the run's own config, or start a new run")
        parts = {"policy": (policy, optimizer), **({"prm": (prm.model, prm.optimizer)} if prm is not None else {})}
        distributed.load_sharded(ckpt / "dcp", parts)
        restore_run_state(blob, scheduler, sampler, generators)
        ranks = blob.get("rank_generators") or []
        if len(ranks) == dist.world:  # the same number of ranks: each continues its own streams exactly
            for k, g in generators.items():
                g.set_state(ranks[dist.rank][k])
        return TrainState(**json.loads((ckpt / "trainer_state.json").read_text()))
    if distributed.is_sharded(policy):
        raise RuntimeError(f"checkpoint {ckpt} was written by one process: resume it with one process (python "
                           f"train.py), or start this {type(policy).__name__} run afresh with model.path={ckpt}")
    load_model_state(policy, ckpt)
    if prm is not None:
        if not (ckpt / "prm" / "config.json").is_file():
            raise RuntimeError(f"checkpoint {ckpt} has no PRM state but this run trains a PRM (prm.enabled=true); "
                               f"resume with the run's own config, or start a new run")
        prm.load_pretrained(ckpt / "prm", optimizer_state=blob.get("prm_optimizer"))
    optimizer.load_state_dict(blob["optimizer"])
    restore_run_state(blob, scheduler, sampler, generators)
    return TrainState(**json.loads((ckpt / "trainer_state.json").read_text()))


def restore_run_state(blob: dict, scheduler, sampler, generators: dict[str, torch.Generator]) -> None:
    scheduler.load_state_dict(blob["scheduler"])
    sampler.load_state_dict(blob["sampler"])
    for k, g in generators.items():
        g.set_state(blob["generators"][k])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(blob["python_rng"])
    np.random.set_state(blob["numpy_rng"])


def latest(run_dir: Path) -> Path | None:
    link = run_dir / "checkpoints" / "latest"
    return link.resolve() if link.exists() else None


def check_checkpoint(c) -> Problems:
    """The checkpoint section (CheckpointConfig); resume paths are checked when the run starts."""
    p = Problems()
    p.need(c.every >= 0, "checkpoint.every", c.every, "must be >= 0")
    p.need(c.keep >= 1, "checkpoint.keep", c.keep, "must be >= 1")
    return p
