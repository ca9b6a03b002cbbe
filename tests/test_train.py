"""End-to-end: train.py on the embedded default with small settings.

Smoke (every trainable parameter changes in two steps), resume equivalence (an interrupted and
resumed run produces the same samples, metrics and weights as an uninterrupted one), and bad input
(clear messages, exit code 2, no traceback).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from reasonrl.config import load
from reasonrl.validate import load_config
from reasonrl.loop import run
from reasonrl.models import load_model
from tests.conftest import need_module, require_vllm

SMALL = ["rollout.prompts_per_step=8", "rollout.group_size=4", "rollout.max_new_tokens=48", "eval.size=16",
         "eval.every=0", "logging.progress=false", "logging.samples_per_step=32", "trainer.lr=1e-3",
         "trainer.warmup_steps=0", "logging.plots=false"]


def cfg_for(tmp_path: Path, *extra: str):
    return load_config(SMALL + [f"logging.run_dir={tmp_path}", *extra])


def rows(run_dir: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (run_dir / name).read_text().splitlines()]


def test_two_steps_change_every_trainable_parameter(tmp_path, embedded_model_dir):
    before = load_model(str(embedded_model_dir)).state_dict()
    summary = run(cfg_for(tmp_path, "trainer.steps=2", "logging.name=smoke", "logging.plots=true"))
    run_dir = Path(summary["run_dir"])
    after = load_file(str(run_dir / "checkpoints" / "latest" / "model.safetensors"))
    unchanged = [k for k, v in before.items() if torch.equal(v, after[k])]
    assert not unchanged, f"parameters that did not change: {unchanged}"
    metrics = rows(run_dir, "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    for key in ("reward/mean", "accuracy/train", "response_length/mean", "loss", "grad_norm", "tokens_per_s",
                "eval/accuracy", "groups/kept", "time/generate"):
        assert key in metrics[-1], key
    samples = rows(run_dir, "samples.jsonl")
    assert len(samples) == 64 and {"prompt", "response", "correct", "status", "score"} <= set(samples[0])
    assert all(s["correct"] == (s["score"] == 1.0) for s in samples)
    assert (run_dir / "config.yaml").is_file() and load(["--config", str(run_dir / "config.yaml")]).trainer.steps == 2
    assert (run_dir / "plots" / "reward.png").stat().st_size > 1000
    assert summary["eval_accuracy_before"] is not None and len(summary["evals"]) == 2


class Interrupt(Exception):
    pass


DENSE = ["prm.enabled=true", "algorithm.advantage=prime", "prm.lr=1e-3", "prm.granularity=step",
         "prm.shaping=clip_delta", "algorithm.accuracy_filter=true", "algorithm.accuracy_low=0.25"]


VLLM = ["rollout.engine=vllm", "rollout.vllm_memory=0.2"]


LORA = ["model.lora.rank=4", "model.lora.alpha=8"]


@pytest.mark.parametrize("variant", ["outcome", "prime_prm", "vllm", "lora"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, monkeypatch, variant):
    """With the PRM, its weights and optimiser state must resume too, or steps 3-4 would differ.
    With vLLM, the restarted engine must be synced to the restored weights, or steps 3-4 would differ.
    With LoRA, the adapter (and its optimiser state) is what resumes; the merged checkpoint must agree too."""
    if variant == "vllm":
        require_vllm()
    dense = variant == "prime_prm"
    common = ["trainer.steps=4", "checkpoint.every=2", "algorithm.kl_coef=0.01", "trainer.mini_batches=2",
              "trainer.lr_schedule=cosine", *(DENSE if dense else []), *(VLLM if variant == "vllm" else []),
              *(LORA if variant == "lora" else [])]
    whole = Path(run(cfg_for(tmp_path, *common, "logging.name=whole"))["run_dir"])

    import reasonrl.loop as loop

    real = loop.RunLogger.log_samples

    def crash_after_step_3(self, step, samples):
        real(self, step, samples)
        if step == 3:
            raise Interrupt()

    monkeypatch.setattr(loop.RunLogger, "log_samples", crash_after_step_3)
    with pytest.raises(Interrupt):
        run(cfg_for(tmp_path, *common, "logging.name=cut"))
    monkeypatch.setattr(loop.RunLogger, "log_samples", real)
    cut = Path(run(cfg_for(tmp_path, *common, "logging.name=cut", "checkpoint.resume=auto"))["run_dir"])

    assert rows(cut, "samples.jsonl") == rows(whole, "samples.jsonl")  # step 3 written once, not twice
    strip = lambda ms: [{k: v for k, v in m.items() if not k.startswith(("time/", "tokens_per_s"))} for m in ms]  # noqa
    assert strip(rows(cut, "metrics.jsonl")) == strip(rows(whole, "metrics.jsonl"))
    a = load_file(str(whole / "checkpoints" / "latest" / "model.safetensors"))
    b = load_file(str(cut / "checkpoints" / "latest" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    if dense:
        metrics = rows(whole, "metrics.jsonl")
        assert all(m["prm/grad_norm"] > 0 for m in metrics) and "eval/prm_auroc" in metrics[-1]
        a = load_file(str(whole / "checkpoints" / "latest" / "prm" / "model.safetensors"))
        b = load_file(str(cut / "checkpoints" / "latest" / "prm" / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    if variant == "lora":
        a = load_file(str(whole / "checkpoints" / "latest" / "adapter" / "adapter_model.safetensors"))
        b = load_file(str(cut / "checkpoints" / "latest" / "adapter" / "adapter_model.safetensors"))
        assert a and all(torch.equal(a[k], b[k]) for k in a)
    if variant == "vllm":  # the engine served the learner's weights after every sync
        assert all(m["rollout/logprob_gap_mean"] < 1e-5 for m in rows(whole, "metrics.jsonl"))


def test_bad_input_gets_clear_messages(tmp_path, capsys):
    assert train.main(["model.path=does/not/exist", f"logging.run_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "model.path='does/not/exist' does not exist" in err and "Traceback" not in err

    assert train.main(["trainer.setps=3"]) == 2
    assert "did you mean trainer.steps?" in capsys.readouterr().err

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "Compute: 1+2\n", "reference": "3"}) + "\n{broken\n"
                    + json.dumps({"prompt": "Compute: 2+2\n", "reference": "4"}) + "\n")
    code = train.main(SMALL + [f"logging.run_dir={tmp_path}", "data.source=file", f"data.path={data}",
                               "trainer.steps=1", "rollout.prompts_per_step=2"])
    out = capsys.readouterr()
    assert code == 0 and "2 rows kept, 1 malformed rows skipped" in out.out + out.err

    assert train.main(SMALL + [f"logging.run_dir={tmp_path}", "checkpoint.resume=/no/such/ckpt"]) == 2
    assert "no checkpoint there" in capsys.readouterr().err


def test_help_prints_every_key(capsys):
    assert train.main(["--help"]) == 0
    assert "algorithm.clip_high = 0.28" in capsys.readouterr().out


def test_tensorboard_and_wandb_sinks(tmp_path):
    need_module("tensorboard", "the `tracking` extra")
    need_module("wandb", "the `tracking` extra")
    summary = run(cfg_for(tmp_path, "trainer.steps=1", "logging.name=sinks", "logging.tensorboard=true",
                          "logging.wandb=true", "logging.wandb_mode=offline"))
    run_dir = Path(summary["run_dir"])
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline and list(offline[0].glob("*.wandb"))


def test_the_sft_stage_runs_before_the_references_are_copied(tmp_path, embedded_model_dir):
    """Audit finding 2: with trainer.sft_path, the KL reference, the PRM and the PRM's reference must all start
    from the SFT model (as in PRIME), not from the weights before SFT."""
    from reasonrl.loop import build

    sft = tmp_path / "sft.jsonl"
    sft.write_text("".join(json.dumps({"prompt": f"Q: {a}+{b}\n", "response": f"x={a + b}"}) + "\n"
                           for a in range(4) for b in range(3)))
    parts = build(cfg_for(tmp_path, f"trainer.sft_path={sft}", "trainer.sft_lr=1e-3", "algorithm.kl_coef=0.01",
                          *DENSE))
    try:
        assert parts.stage_metrics["sft/rows"] == 12
        initial, tuned = load_model(str(embedded_model_dir)).state_dict(), parts.policy.state_dict()
        assert any(not torch.equal(initial[k], v) for k, v in tuned.items())  # SFT changed the policy
        prm = parts.process.prm
        for name, model in (("KL reference", parts.learner.ref.model), ("PRM", prm.model),
                            ("PRM reference", prm.ref.model)):
            state = model.state_dict()
            assert all(torch.equal(state[k], v) for k, v in tuned.items()), f"the {name} is not the SFT model"
    finally:
        parts.verifier.close()
        parts.engine.close()


@pytest.mark.parametrize("reference", ["frozen", "policy"])
def test_at_the_first_step_q_is_exactly_zero_under_a_bf16_learner(tmp_path, reference):
    """Audit finding 1 through the loop: the learner under bf16 autocast with KL on, the PRM in fp32. The PRM
    equals its reference at step 1 (update=after scores before learning), so every process value is 0."""
    summary = run(cfg_for(tmp_path, "trainer.steps=1", "trainer.autocast=bf16", "algorithm.kl_coef=0.001",
                          "prm.enabled=true", "algorithm.advantage=prime", f"prm.reference={reference}", "prm.beta=1"))
    m = rows(Path(summary["run_dir"]), "metrics.jsonl")[0]
    assert m["process/return_correct"] == 0.0 and m["process/return_wrong"] == 0.0


@pytest.mark.parametrize("source", ["verifier", "solution"])
def test_the_step_verifier_source_trains_without_a_prm(tmp_path, source):
    """prm.source=verifier on the embedded task: the math verifier's step checks feed PRIME's estimator (Clip);
    no PRM is built or checkpointed. A verifier without verify_steps is refused before training starts.
    prm.source=solution (the task's own solution's lines) runs the same way."""
    summary = run(cfg_for(tmp_path, "trainer.steps=2", "prm.enabled=true", f"prm.source={source}",
                          "algorithm.advantage=prime", "prm.granularity=step", "prm.shaping=clip"))
    run_dir = Path(summary["run_dir"])
    m = rows(run_dir, "metrics.jsonl")
    assert len(m) == 2 and all("process/return" in x and "prm/loss" not in x for x in m)
    assert any(x["process/return"] < 0 for x in m)  # some steps were wrong: Clip gave them -eta
    assert not (run_dir / "checkpoints" / "latest" / "prm").exists()
    assert train.main([f"logging.run_dir={tmp_path}", "prm.enabled=true", "prm.source=verifier", "trainer.steps=1",
                       "algorithm.advantage=prime", "prm.shaping=clip", "data.verifier=code"]) == 2
