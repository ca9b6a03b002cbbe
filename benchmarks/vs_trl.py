"""reasonrl vs TRL's GRPOTrainer: median wall time of one GRPO step on identical work. Prints JSON.

    make bench-trl-env                       # once: TRL in its own environment (benchmarks/.venv-trl)
    python benchmarks/vs_trl.py [--steps 12] [--warmup 2] [--reps 3] [--sizes small,large]

The same work for both, per step: the same model file and tokenizer, the same 8 prompts x G=8
samples, exactly 32 new tokens per sample (reasonrl: rollout.ignore_eos; TRL: min_new_tokens),
temperature 1, the same cheap reward (the share of digits in the response), beta = 0 (no
reference model), token-mean loss (TRL's "dapo"), one optimiser step per batch, AdamW at the same
learning rate and clipping, one thread each (torch.set_num_threads(1), OMP_NUM_THREADS=1). A step is
generation + reward + update: reasonrl's logged `time/step`, TRL's time from on_step_begin to
on_step_end. The first `--warmup` steps of every run are dropped. Runs alternate between the
trainers (and their order flips each repetition) so a change in machine load hits both.

Sizes: "small" is the embedded default checkpoint (assets/tiny-math, 0.8 M parameters, 4 layers);
"large" is the same architecture at hidden 256 (3.9 M parameters, 4 layers), randomly initialised;
"smollm2" is SmolLM2-135M-Instruct (make smollm2: Llama, 30 layers, hidden 576, tied embeddings, a 49,152-token
BPE) -- a real model's size and vocabulary; the prompts go in as plain text (the same for both trainers).
At that size a step takes about two minutes on one thread: run it alone with fewer steps, e.g.
    python benchmarks/vs_trl.py --sizes smollm2 --steps 4 --warmup 1 --reps 1
Each trainer runs with its own defaults for the model (both checkpoint activations at that size: TRL's GRPO
default, reasonrl's auto). `--variant NAME:KEY=VALUE,...` also times reasonrl with those overrides in the same
run, e.g. --variant fast:model.gradient_checkpointing=false,trainer.mmap_threshold_mb=0 (speed over memory).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRL_PYTHON = REPO / "benchmarks" / ".venv-trl" / "bin" / "python"
PROMPTS, G, NEW_TOKENS, LR, CLIP = 8, 8, 32, 1e-5, 1.0


def digit_share(text: str) -> float:
    """The reward both trainers use: cheap, and it varies within a group."""
    return sum(c.isdigit() for c in text) / max(len(text), 1)


class DigitShare:
    """digit_share as a reasonrl verifier (loaded by dotted path: benchmarks.vs_trl:DigitShare)."""

    def verify(self, response: str, reference):
        from verifiers.base import VerificationResult

        score = digit_share(response)
        return VerificationResult(score, score > 0.5, "ok")


# ---------------------------------------------------------------- workers (one run each, in a subprocess)

def reasonrl_worker(model: str, prompts: Path, steps: int, out: Path, extra: list[str] = ()) -> list[float]:
    from reasonrl.loop import run
    from reasonrl.validate import load_config

    cfg = load_config([f"model.path={model}", "data.source=file", f"data.path={prompts}", "data.verifier=benchmarks.vs_trl:DigitShare",
                "verifier.workers=0", f"rollout.prompts_per_step={PROMPTS}", f"rollout.group_size={G}",
                f"rollout.max_new_tokens={NEW_TOKENS}", "rollout.ignore_eos=true", "rollout.temperature=1.0",
                "algorithm.loss_agg=token-mean", "algorithm.kl_coef=0", "trainer.ppo_epochs=1",
                "trainer.mini_batches=1", f"trainer.lr={LR}", f"trainer.max_grad_norm={CLIP}", "trainer.warmup_steps=0",
                "trainer.lr_schedule=constant", "trainer.threads=1", f"trainer.steps={steps}", "eval.size=0",
                "checkpoint.every=0", "logging.progress=false", "logging.plots=false", "logging.samples_per_step=0",
                f"logging.run_dir={out}", "logging.name=run", *extra])
    summary = run(cfg)
    rows = [json.loads(x) for x in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    return [r["time/step"] for r in rows]


def trl_worker(model: str, prompts: Path, steps: int, out: Path) -> list[float]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(1)
    rows = [json.loads(x) for x in prompts.read_text().splitlines()]
    data = Dataset.from_list([{"prompt": r["prompt"]} for r in rows])
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    def reward(completions, **kw):
        return [digit_share(c) for c in completions]

    args = GRPOConfig(output_dir=str(out), per_device_train_batch_size=PROMPTS * G, num_generations=G,
                      max_completion_length=NEW_TOKENS, generation_kwargs={"min_new_tokens": NEW_TOKENS},
                      temperature=1.0, beta=0.0, loss_type="dapo", num_iterations=1, learning_rate=LR,
                      max_grad_norm=CLIP, lr_scheduler_type="constant", warmup_steps=0, max_steps=steps,
                      use_cpu=True, bf16=False, save_strategy="no", report_to="none", logging_steps=10_000,
                      disable_tqdm=True, dataloader_num_workers=0, seed=0)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model), reward_funcs=reward, args=args,
                          train_dataset=data, processing_class=AutoTokenizer.from_pretrained(model),
                          callbacks=[Clock()])
    trainer.train()
    return times


# ---------------------------------------------------------------- driver

def build_models(root: Path) -> dict[str, str]:
    """small: the embedded checkpoint; large: its architecture at hidden 256, random init, untied; smollm2: the
    converted real model (when make smollm2 has run)."""
    import torch
    from transformers import AutoModelForCausalLM

    from reasonrl.models import load_tokenizer, tiny_config

    small = REPO / "assets" / "tiny-math"
    tok = load_tokenizer(str(small))
    torch.manual_seed(0)
    big = AutoModelForCausalLM.from_config(tiny_config(len(tok), hidden=256, layers=4, heads=4, kv_heads=2,
                                                       intermediate=1024))
    big.save_pretrained(root / "large")
    tok.save_pretrained(root / "large")
    return {"small": str(small), "large": str(root / "large"), "smollm2": str(REPO / "models" / "smollm2-135m-instruct")}


def params_of(path: str) -> int:
    from safetensors import safe_open

    with safe_open(str(Path(path) / "model.safetensors"), "pt") as f:
        return sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def write_prompts(path: Path, steps: int) -> None:
    from reasonrl.tasks import TASKS

    task = TASKS.get("arithmetic")()
    records = [task.train_record(0, i) for i in range(PROMPTS * (steps + 2))]
    rows = [{"prompt": r.prompt, "reference": r.reference} for r in records]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def one_run(impl: str, model: str, prompts: Path, steps: int, root: Path, extra: str = "") -> list[float]:
    python = str(TRL_PYTHON) if impl == "trl" else sys.executable
    out = Path(tempfile.mkdtemp(dir=root, prefix=f"{impl}-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    cmd = [python, str(Path(__file__).resolve()), "--worker", impl, "--model", model, "--prompts", str(prompts),
           "--steps", str(steps), "--out", str(out), "--extra", extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} run failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["step_times"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["reasonrl", "trl"])
    ap.add_argument("--model")
    ap.add_argument("--prompts", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                    help="also time reasonrl with these overrides in the same run, e.g. "
                         "fast:model.gradient_checkpointing=false,trainer.mmap_threshold_mb=0")
    ap.add_argument("--extra", default="", help=argparse.SUPPRESS)  # a variant's overrides, for --worker
    args = ap.parse_args()
    if args.worker:
        # this folder's verifiers.py would shadow the verifiers package: import from the repository root only
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
        if args.worker == "trl":
            times = trl_worker(args.model, args.prompts, args.steps, args.out)
        else:
            times = reasonrl_worker(args.model, args.prompts, args.steps, args.out, [x for x in args.extra.split(",") if x])
        print(json.dumps({"step_times": times}))
        return
    if not TRL_PYTHON.exists():
        sys.exit(f"TRL's environment is missing ({TRL_PYTHON}): run `make bench-trl-env` first")

    root = Path(tempfile.mkdtemp(prefix="vs-trl-"))
    models = build_models(root)
    prompts = root / "prompts.jsonl"
    write_prompts(prompts, args.steps)
    sizes = args.sizes.split(",")
    if "smollm2" in sizes and not (Path(models["smollm2"]) / "config.json").is_file():
        sys.exit(f"{models['smollm2']} is missing: run `make smollm2` first")
    variants = dict(v.split(":", 1) for v in args.variant)  # name -> "key=value,key=value"
    impls = ["reasonrl", *(f"reasonrl-{name}" for name in variants), "trl"]
    times = {s: {impl: [] for impl in impls} for s in sizes}
    for rep in range(args.reps):
        for size in sizes:
            for impl in (impls if rep % 2 == 0 else impls[::-1]):
                worker = "trl" if impl == "trl" else "reasonrl"
                t = one_run(worker, models[size], prompts, args.steps, root, variants.get(impl[len("reasonrl-"):], ""))
                times[size][impl] += t[args.warmup:]
                print(f"rep {rep} {size} {impl}: median {statistics.median(t[args.warmup:]):.3f} s/step",
                      file=sys.stderr)
    result = {"work": {"prompts": PROMPTS, "group_size": G, "new_tokens": NEW_TOKENS, "threads": 1,
                       "steps_per_run": args.steps, "warmup_dropped": args.warmup, "reps": args.reps},
              "sizes": {}}
    for size in sizes:
        r, t = statistics.median(times[size]["reasonrl"]), statistics.median(times[size]["trl"])
        result["sizes"][size] = {"params": params_of(models[size]), "reasonrl_median_s": round(r, 4),
                                 "trl_median_s": round(t, 4), "ratio": round(r / t, 3),
                                 "steps_measured": len(times[size]["reasonrl"])}
        for name, overrides in variants.items():
            v = statistics.median(times[size][f"reasonrl-{name}"])
            result["sizes"][size][f"variant_{name}"] = {"overrides": overrides, "median_s": round(v, 4),
                                                        "ratio": round(v / t, 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
