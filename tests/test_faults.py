"""Faults a run survives (reasonrl/faults.py, reasonrl/checkpoint.py): non-finite updates skipped and counted,
then a clear stop; out-of-memory micro-batches retried at half the budget; crafted or damaged checkpoints
refused or skipped; and the kill test: a training run SIGKILLed 20+ times, at named points (inside a
checkpoint write, half-way through a metrics line, in generation, in the update) and at random moments, resumed
each time with checkpoint.resume=auto, ends bit-identical to the run that was never killed."""
from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from reasonrl import checkpoint
from reasonrl.algorithms.losses import POLICY_LOSSES, ppo_clip
from reasonrl.batching import Forward
from reasonrl.learner import Learner, LossSettings
from reasonrl.loop import run
from reasonrl.models import ModelLoadError, load_model
from tests.conftest import REPO, ragged_batch, small_device
from tests.test_train import SMALL, cfg_for, rows

NAN_FROM = {"call": 2}  # the policy loss below is NaN from this call on (one call per step on-policy)
_calls = {"n": 0}


def nan_from(logp, logp_old, adv, mask, clip):
    _calls["n"] += 1
    pg, m = ppo_clip(logp, logp_old, adv, mask, clip)
    return (pg * float("nan") if _calls["n"] >= NAN_FROM["call"] else pg), m


@pytest.fixture
def nan_loss(monkeypatch):
    """algorithm.policy_loss=test_nan_from for this test only (other tests walk every registered loss)."""
    monkeypatch.setitem(POLICY_LOSSES._items, "test_nan_from", nan_from)
    _calls["n"] = 0


def timeless(metrics: list[dict]) -> list[dict]:
    """Metric rows without their timings (the only keys two identical runs may differ in)."""
    return [{k: v for k, v in m.items() if not k.startswith(("time/", "tokens_per_s"))} for m in metrics]


def weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ------------------------------------------------------------------ non-finite updates

@pytest.mark.parametrize("fault", ["nan_loss", "inf_gradient"])
def test_a_non_finite_update_skips_the_optimiser_step(embedded_model_dir, nan_loss, fault):
    model = load_model(str(embedded_model_dir))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    policy_loss = "ppo_clip"
    if fault == "nan_loss":
        policy_loss, NAN_FROM["call"] = "test_nan_from", 1
    else:  # a finite loss whose gradient is infinite in one tensor
        next(model.parameters()).register_hook(lambda g: g * float("inf"))
    learner = Learner(model, opt, sched, loss=LossSettings(policy_loss=policy_loss), max_tokens_per_microbatch=400)
    before = weights(model)
    stats = learner.update(ragged_batch(), torch.Generator().manual_seed(0))
    assert stats["fault/nonfinite_updates"] == 1
    assert torch.equal(weights(model), before) and not opt.state  # no step, no Adam moments from a NaN
    assert sched.last_epoch == 1  # the schedule advanced: steps keep their place in it


def test_good_updates_are_not_counted(embedded_model_dir):
    model = load_model(str(embedded_model_dir))
    learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.1), None, loss=LossSettings())
    before = weights(model)
    assert learner.update(ragged_batch(), torch.Generator())["fault/nonfinite_updates"] == 0
    assert not torch.equal(weights(model), before)


def test_non_finite_steps_in_a_row_stop_the_run_naming_the_last_good_checkpoint(tmp_path, capsys, nan_loss):
    NAN_FROM["call"] = 2
    code = train.main(SMALL + [f"logging.run_dir={tmp_path}", "logging.name=nan", "trainer.steps=6",
                               "checkpoint.every=1", "checkpoint.keep=5", "algorithm.policy_loss=test_nan_from",
                               "trainer.max_nonfinite_steps=2"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    run_dir = tmp_path / "nan"
    assert "2 steps in a row (to step 3)" in err and f"{run_dir / 'checkpoints' / 'step_1'} (step 1)" in err  # before
    metrics = rows(run_dir, "metrics.jsonl")
    assert [m["fault/nonfinite_updates"] for m in metrics] == [0, 1, 1]
    assert [m["fault/nonfinite_steps"] for m in metrics] == [0, 1, 2]
    ck = run_dir / "checkpoints"
    assert sorted(p.name for p in ck.glob("step_*")) == ["step_1", "step_2"]  # stopped before step 3's
    a, b = load_file(str(ck / "step_1" / "model.safetensors")), load_file(str(ck / "step_2" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # step 2 was skipped: its weights are step 1's


# ------------------------------------------------------------------ out of memory

def test_an_oom_halves_the_micro_batch_budget_and_retries(embedded_model_dir, monkeypatch):
    """A fake device that holds 150 tokens a micro-batch: the 1000-token budget halves to 125, and the update
    is exactly the one a learner at 125 tokens makes."""
    small_device(monkeypatch, 150)
    base = load_model(str(embedded_model_dir))
    out = {}
    for budget in (1000, 125):
        model = copy.deepcopy(base)
        learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.1), None, loss=LossSettings(),
                          max_tokens_per_microbatch=budget)
        batch = ragged_batch()
        learner.prepare(batch, old_needed_early=True)  # a forward-only pass retries too
        assert batch.layouts["logp_old"].max_tokens == 125  # the layout it was computed under, for the PRM's reuse
        out[budget] = learner.update(batch, torch.Generator()), weights(model)
    (stats, w), (ref_stats, ref_w) = out[1000], out[125]
    assert stats["fault/oom_retries"] == 3 and stats["trainer/microbatch_tokens"] == 125
    assert ref_stats["fault/oom_retries"] == 0
    assert torch.equal(w, ref_w) and stats["loss"] == ref_stats["loss"]


def test_an_oom_that_halving_cannot_fix_is_raised(embedded_model_dir, monkeypatch):
    def no_memory(self, model, mb, **kw):
        raise torch.OutOfMemoryError("simulated")

    monkeypatch.setattr(Forward, "logprobs", no_memory)
    model = load_model(str(embedded_model_dir))
    learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.1), None, loss=LossSettings(),
                      max_tokens_per_microbatch=512)
    with pytest.raises(torch.OutOfMemoryError):
        learner.update(ragged_batch(), torch.Generator())
    assert learner.forward.max_tokens == 64  # halved down to the floor first


def test_an_oom_during_training_is_retried_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    small_device(monkeypatch, 600)
    summary = run(cfg_for(tmp_path, "trainer.steps=2", "logging.name=oom", "trainer.max_tokens_per_microbatch=4096"))
    metrics = rows(Path(summary["run_dir"]), "metrics.jsonl")
    assert metrics[0]["fault/oom_retries"] > 0 and metrics[-1]["trainer/microbatch_tokens"] <= 600
    assert summary["steps"] == 2 and "out of memory in a micro-batch" in capsys.readouterr().out


def test_a_resume_keeps_the_budget_an_oom_halved_it_to(tmp_path, monkeypatch, capsys):
    """The halving is in the checkpoint: a resumed run starts at the halved budget (it does not run out of
    memory again at the size that failed), unless the budget configured at resume is a different one."""
    common = ["trainer.max_tokens_per_microbatch=4096", "checkpoint.every=2", "logging.name=oom"]
    with monkeypatch.context() as mp:
        small_device(mp, 600)
        run(cfg_for(tmp_path, "trainer.steps=2", *common))
    halved = rows(tmp_path / "oom", "metrics.jsonl")[-1]["trainer/microbatch_tokens"]
    assert halved <= 600 and capsys.readouterr()
    with monkeypatch.context() as mp:  # the same small device: the restored budget fits it, nothing is retried
        small_device(mp, 600)
        run(cfg_for(tmp_path, "trainer.steps=3", *common, "checkpoint.resume=auto"))
    step3 = rows(tmp_path / "oom", "metrics.jsonl")[-1]
    assert step3["step"] == 3 and step3["trainer/microbatch_tokens"] == halved and step3["fault/oom_retries"] == 0
    assert f"policy: micro-batch budget {halved} tokens, halved from 4096" in capsys.readouterr().out
    changed = [c if "max_tokens" not in c else "trainer.max_tokens_per_microbatch=2048" for c in common]
    run(cfg_for(tmp_path, "trainer.steps=4", *changed, "checkpoint.every=1", "checkpoint.resume=auto"))
    assert rows(tmp_path / "oom", "metrics.jsonl")[-1]["trainer/microbatch_tokens"] == 2048  # the new setting


# ------------------------------------------------------------------ safe loading and damaged checkpoints

class Payload:
    """Unpickling this runs a shell command: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_pickle_in_a_checkpoint_is_refused_not_run(tmp_path, capsys):
    run(cfg_for(tmp_path, "trainer.steps=1", "logging.name=evil"))
    ckpt = tmp_path / "evil" / "checkpoints" / "latest"
    marker = tmp_path / "pwned"
    state = ckpt / "trainer_state.pt"
    blob = torch.load(state, weights_only=True)
    torch.save({**blob, "optimizer": Payload(marker)}, state)
    checkpoint.write_manifest(ckpt.resolve())  # the attacker rewrites the manifest too
    code = train.main(SMALL + [f"logging.run_dir={tmp_path}", "logging.name=evil", "trainer.steps=2",
                               "checkpoint.resume=auto"])
    err = capsys.readouterr().err
    assert code == 2 and "refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_pickled_model_weights_are_refused(tmp_path, embedded_model_dir):
    model = load_model(str(embedded_model_dir))
    shutil.copy(embedded_model_dir / "config.json", tmp_path / "config.json")
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("damage", ["flipped_bytes", "missing_file", "no_manifest_in_tmp"])
def test_a_damaged_checkpoint_is_skipped_for_the_previous_one(tmp_path, capsys, damage):
    common = ["checkpoint.every=1", "checkpoint.keep=3"]
    whole = Path(run(cfg_for(tmp_path, *common, "trainer.steps=4", "logging.name=whole"))["run_dir"])
    cut = Path(run(cfg_for(tmp_path, *common, "trainer.steps=3", "logging.name=cut"))["run_dir"])
    top = cut / "checkpoints" / "step_3"
    if damage == "flipped_bytes":
        path = top / "model.safetensors"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "missing_file":
        (top / "trainer_state.pt").unlink()
    else:  # a save killed before its manifest, renamed into place by hand
        (top / "manifest.json").unlink()
        (top / "trainer_state.json").unlink()
    capsys.readouterr()
    resumed = Path(run(cfg_for(tmp_path, *common, "trainer.steps=4", "logging.name=cut", "checkpoint.resume=auto"))["run_dir"])
    out = capsys.readouterr().out
    assert f"checkpoint {top} is damaged" in out and "resumed" in out and "from step_2" in out
    assert timeless(rows(resumed, "metrics.jsonl")) == timeless(rows(whole, "metrics.jsonl"))
    a = load_file(str(whole / "checkpoints" / "latest" / "model.safetensors"))
    b = load_file(str(resumed / "checkpoints" / "latest" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_checkpoint_given_by_path_is_an_error(tmp_path, capsys):
    run(cfg_for(tmp_path, "trainer.steps=1", "logging.name=d"))
    ckpt = (tmp_path / "d" / "checkpoints" / "latest").resolve()
    (ckpt / "model.safetensors").write_bytes(b"not a model")
    assert train.main(SMALL + [f"logging.run_dir={tmp_path}", f"checkpoint.resume={ckpt}", "trainer.steps=2"]) == 2
    err = capsys.readouterr().err
    assert "is damaged (model.safetensors has" in err and "Traceback" not in err


# ------------------------------------------------------------------ the kill test

KILL_ARGS = SMALL + ["trainer.steps=40", "checkpoint.every=1", "checkpoint.keep=2", "eval.every=10",
                     "checkpoint.resume=auto", "trainer.threads=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# where the kills land: (kill point, n-th arrival in that process) -- see reasonrl/faults.py
NAMED_KILLS = [("checkpoint.files", 2), ("checkpoint.publish", 1), ("metrics.write", 2), ("update", 3),
               ("generate", 2), ("checkpoint.publish", 2), ("metrics.write", 1), ("checkpoint.files", 1),
               ("update", 1), ("generate", 4), ("checkpoint.files", 3), ("metrics.write", 3),
               ("checkpoint.publish", 3), ("update", 2), ("generate", 1), ("checkpoint.files", 1),
               ("metrics.write", 2), ("checkpoint.publish", 1)]
RANDOM_KILLS = 4  # SIGKILL from outside after a random delay: wherever the run happens to be


def train_proc(root: Path, name: str, kill_at: str | None = None) -> subprocess.Popen:
    env = dict(ENV)
    env.pop("REASONRL_KILL_AT", None)
    if kill_at:
        env["REASONRL_KILL_AT"] = kill_at
    return subprocess.Popen([sys.executable, "train.py", *KILL_ARGS, f"logging.run_dir={root}", f"logging.name={name}"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def test_kill_anywhere_lose_nothing(tmp_path):
    code, out = finished(train_proc(tmp_path, "whole"))
    assert code == 0, out[-3000:]
    rng = random.Random(0)
    plan = [("point", k) for k in NAMED_KILLS] + [("random", None)] * RANDOM_KILLS
    rng.shuffle(plan)
    kills, log = 0, []
    for kind, where in plan:
        if kind == "point":
            proc = train_proc(tmp_path, "killed", f"{where[0]}:{where[1]}")
            code, out = finished(proc)
            landed = f"{where[0]} #{where[1]}"
        else:
            proc = train_proc(tmp_path, "killed")
            delay = rng.uniform(1.0, 9.0)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
            code, out = finished(proc)
            landed = f"random, {delay:.1f} s after start"
        assert code in (0, -signal.SIGKILL), f"{landed}: exit {code}\n{out[-3000:]}"
        kills += code == -signal.SIGKILL
        last = checkpoint.latest(tmp_path / "killed")
        log.append(f"{landed} (exit {code}; latest checkpoint then {last.name if last else None})")
        if code == 0:  # the run finished before this kill's point: start it again later from the end
            break
    code, out = finished(train_proc(tmp_path, "killed"))
    assert code == 0, out[-3000:]
    print(f"{kills} kills: {log}")
    assert kills >= 20, log

    whole, cut = tmp_path / "whole", tmp_path / "killed"
    assert timeless(rows(cut, "metrics.jsonl")) == timeless(rows(whole, "metrics.jsonl"))
    assert rows(cut, "samples.jsonl") == rows(whole, "samples.jsonl")
    a = load_file(str(whole / "checkpoints" / "latest" / "model.safetensors"))
    b = load_file(str(cut / "checkpoints" / "latest" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    evals = lambda d: [{k: v for k, v in e.items() if k != "seconds"} for e in json.loads((d / "summary.json").read_text())["evals"]]  # noqa
    assert evals(cut) == evals(whole) and len(evals(whole)) == 5
    assert not list((cut / "checkpoints").glob(".tmp_step_*"))


def test_a_line_torn_by_a_kill_is_dropped_when_the_logs_are_cut(tmp_path):
    from reasonrl.rundir import truncate_logs

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a"')
    truncate_logs(tmp_path, 2)
    assert rows(tmp_path, "metrics.jsonl") == [{"step": 1, "a": 1}, {"step": 2, "a": 2}]


def test_a_crafted_pickle_in_sharded_checkpoint_metadata_is_refused_not_run(tmp_path, capsys):
    """DCP's reader unpickles dcp/.metadata: a checkpoint with dcp/ (any number of ranks resumes it) must only
    let DCP's own classes through."""
    import pickle

    run(cfg_for(tmp_path, "trainer.steps=1", "logging.name=evil_dcp"))
    ckpt = (tmp_path / "evil_dcp" / "checkpoints" / "latest").resolve()
    marker = tmp_path / "pwned_dcp"
    (ckpt / "dcp").mkdir()
    (ckpt / "dcp" / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    checkpoint.write_manifest(ckpt)
    code = train.main(SMALL + [f"logging.run_dir={tmp_path}", "logging.name=evil_dcp", "trainer.steps=2",
                               "checkpoint.resume=auto"])
    err = capsys.readouterr().err
    assert code == 2 and "was refused" in err and "posix.system" in err and "Traceback" not in err
    assert not marker.exists()


def test_damaged_checkpoints_and_none_intact_is_an_error_not_a_fresh_start(tmp_path, capsys):
    """Restarting from step 0 would cut the logs and, at the first save, delete the damaged checkpoints."""
    run(cfg_for(tmp_path, "trainer.steps=2", "checkpoint.every=1", "checkpoint.keep=1", "logging.name=bad"))
    ckpt = (tmp_path / "bad" / "checkpoints" / "latest").resolve()
    (ckpt / "trainer_state.pt").unlink()
    before = (tmp_path / "bad" / "metrics.jsonl").read_text()
    code = train.main(SMALL + [f"logging.run_dir={tmp_path}", "logging.name=bad", "trainer.steps=3",
                               "checkpoint.resume=auto"])
    err = capsys.readouterr()
    assert code == 2 and "none is intact" in err.err and "is damaged (trainer_state.pt is missing)" in err.out
    assert (tmp_path / "bad" / "metrics.jsonl").read_text() == before and ckpt.is_dir()  # nothing was changed


def test_an_explicit_resume_points_latest_at_the_checkpoint_it_starts_from(tmp_path):
    """Else a kill before its first save sends the next resume=auto to the abandoned later checkpoint, with the
    logs already cut to the earlier one."""
    from reasonrl.rundir import prepare_run_dir

    run(cfg_for(tmp_path, "trainer.steps=2", "checkpoint.every=1", "logging.name=r"))
    step_1 = (tmp_path / "r" / "checkpoints" / "step_1").resolve()
    run_dir, ckpt = prepare_run_dir(cfg_for(tmp_path, f"checkpoint.resume={step_1}"))
    assert ckpt == step_1 and checkpoint.latest(run_dir) == step_1


def test_a_directory_without_manifest_passes_as_an_old_checkpoint_only_with_its_weights(tmp_path):
    for name in ("trainer_state.pt", "trainer_state.json", "config.json"):
        (tmp_path / name).write_text("{}")
    assert checkpoint.check_manifest(tmp_path) == "no manifest.json: the save did not finish"  # weights deleted
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert checkpoint.check_manifest(tmp_path) is None  # written before manifests existed
