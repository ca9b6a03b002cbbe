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

Kill anywhere, lose nothing: a checkpoint is written to a temporary directory, its manifest.json last (every
file's size and SHA-256), every file and directory fsynced, then renamed into place; `latest` is switched (an
atomic rename of a new symlink) only after that, and the directory fsynced again. A resume (`intact`) checks
the manifest of `latest` and falls back to the newest older checkpoint that checks out, saying which it
skipped and why. Loading is safe with untrusted files: weights only from safetensors, trainer_state.pt and the
PRM's optimizer.pt only through torch.load(weights_only=True) (tensors and plain values: the RNG states are
stored as such), so a crafted pickle is refused, never run.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from reasonrl import distributed, faults
from reasonrl.lora import load_model_state, save_model
from reasonrl.registry import Problems

MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: damaged, or holding more than tensors and plain values."""


@dataclass
class TrainState:
    step: int = 0
    evals: list = field(default_factory=list)  # [{"step", "accuracy", "response_length"}]
    tokens_generated: int = 0
    seconds: float = 0.0
    nonfinite_steps: int = 0  # steps whose update skipped an optimiser step (a NaN / inf loss or gradient)
    nonfinite_in_a_row: int = 0  # of those, the current streak (trainer.max_nonfinite_steps stops the run)
    microbatch_budgets: dict = field(default_factory=dict)  # faults.budget_record: halvings after an OOM


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
    faults.kill_point("checkpoint.files")
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
        "numpy_rng": numpy_state(),
    }


def numpy_state() -> dict:
    """NumPy's global RNG state as a tensor and plain values (what torch.load(weights_only=True) reads)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def set_numpy_state(state: dict) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                         state["gauss"]))


def publish(ckpt_root: Path, tmp: Path, final: Path, keep: int) -> Path:
    """Seal the finished temporary directory (manifest, fsync), rename it into place, point `latest` at it,
    drop all but `keep`; every step is durable before the next."""
    write_manifest(tmp)
    fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    fsync_dir(ckpt_root)
    faults.kill_point("checkpoint.publish")
    point_latest(ckpt_root, final)
    step = int(final.name[5:])
    for other in step_dirs(ckpt_root):  # a newer one is from before a resume went back past it: stale
        if int(other.name[5:]) > step:
            shutil.rmtree(other, ignore_errors=True)
    for old in step_dirs(ckpt_root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_root.glob(".tmp_step_*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    return final


def point_latest(ckpt_root: Path, target: Path) -> None:
    """checkpoints/latest -> target, atomically (a new symlink renamed over the old), and on disk."""
    tmp_link = ckpt_root / ".latest_tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(target.name)
    tmp_link.replace(ckpt_root / "latest")
    fsync_dir(ckpt_root)


def step_dirs(ckpt_root: Path) -> list[Path]:
    """checkpoints/step_N directories, newest first."""
    steps = [p for p in ckpt_root.glob("step_*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(steps, key=lambda p: int(p.name[5:]), reverse=True)


# ------------------------------------------------------------------ durability: manifest and fsync

def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(directory: Path) -> None:
    """manifest.json: each file's size and SHA-256, relative to `directory`; written last."""
    files = {str(p.relative_to(directory)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in _files(directory)}
    (directory / MANIFEST).write_text(json.dumps({"files": files}, indent=1))


def check_manifest(directory: Path) -> str | None:
    """None when every file the manifest lists is there with its size and hash; else what is wrong. A checkpoint
    without a manifest but with its trainer state (written before manifests existed) passes unchecked."""
    path = directory / MANIFEST
    if not path.is_file():
        legacy = all((directory / f).is_file() for f in ("trainer_state.pt", "trainer_state.json", "config.json")) \
            and any(directory.glob("*.safetensors"))
        return None if legacy else "no manifest.json: the save did not finish"
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"manifest.json is unreadable ({type(exc).__name__})"
    for name, want in files.items():
        f = directory / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != want["bytes"]:
            return f"{name} has {f.stat().st_size} bytes, the manifest says {want['bytes']}"
        if _sha256(f) != want["sha256"]:
            return f"{name} does not match its SHA-256"
    return None


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(directory: Path) -> None:
    """Every file under `directory`, then every directory bottom-up, on disk."""
    for p in sorted(directory.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        if p.is_file():
            with p.open("rb") as f:
                os.fsync(f.fileno())
        elif p.is_dir():
            fsync_dir(p)
    fsync_dir(directory)


def intact(run_dir: Path, say=print) -> Path | None:
    """The checkpoint to resume from: `latest` when its manifest checks out, else the newest older one that does
    (each skipped one is said, with why); None when there is none."""
    root = run_dir / "checkpoints"
    link = root / "latest"
    newest = link.resolve() if link.is_symlink() else None
    candidates = step_dirs(root) if root.is_dir() else []
    if newest is not None:
        top = int(newest.name[5:]) if newest.name[5:].isdigit() else 0
        candidates = [newest] + [c for c in candidates if int(c.name[5:]) < top]
    for c in candidates:
        problem = "missing" if not c.is_dir() else check_manifest(c)
        if problem is None:
            return c
        say(f"checkpoint {c} is damaged ({problem}): skipped")
    return None


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
    blob = safe_load(ckpt / "trainer_state.pt")
    if (ckpt / "dcp").is_dir():  # written by several ranks: DCP reshards to this run's
        if prm is not None and not (ckpt / "prm").is_dir():
            raise RuntimeError(f"checkpoint {ckpt} has no PRM state but this run trains a PRM (prm.enabled=true); "
                               f"resume with the run's own config, or start a new run")
        parts = {"policy": (policy, optimizer), **({"prm": (prm.model, prm.optimizer)} if prm is not None else {})}
        try:
            distributed.load_sharded(ckpt / "dcp", parts)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"{ckpt / 'dcp'} was refused: {exc}. Resume from a checkpoint this version of "
                                  f"reasonrl wrote") from None
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
    set_numpy_state(blob["numpy_rng"])


def safe_load(path: Path):
    """torch.load(weights_only=True): tensors and plain values only. Anything else (a pickle that would build
    arbitrary objects, i.e. run code) is refused with CheckpointError."""
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # weights_only refusals are UnpicklingError; a truncated file, RuntimeError or EOF
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        why = next((ln for ln in lines if "Unsupported global" in ln), lines[0])
        raise CheckpointError(f"{path} cannot be loaded safely and was refused: it is damaged, or holds objects "
                              f"other than tensors and plain values, which loading would run code to build "
                              f"({why[:200]}). Resume from a checkpoint this version of reasonrl wrote, or start "
                              f"afresh with model.path=<its directory>") from None


def before(run_dir: Path, step: int) -> Path | None:
    """The newest intact checkpoint written at or before `step`, or None."""
    root = run_dir / "checkpoints"
    found = [c for c in step_dirs(root) if int(c.name[5:]) <= step] if root.is_dir() else []
    return next((c for c in found if check_manifest(c) is None), None)


def latest(run_dir: Path) -> Path | None:
    """Where checkpoints/latest points (unchecked; `intact` checks)."""
    link = run_dir / "checkpoints" / "latest"
    return link.resolve() if link.exists() else None


def check_checkpoint(c) -> Problems:
    """The checkpoint section (CheckpointConfig); resume paths are checked when the run starts."""
    p = Problems()
    p.need(c.every >= 0, "checkpoint.every", c.every, "must be >= 0")
    p.need(c.keep >= 1, "checkpoint.keep", c.keep, "must be >= 1")
    return p
