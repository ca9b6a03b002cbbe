"""A real pretrained model through the whole loop: peak memory and step time of GRPO, PRIME, LoRA and the vLLM
engine on SmolLM2-135M-Instruct (make smollm2), 16 responses of up to 256 tokens a step, GSM8K prompts in the
chat template. Each arm is a separate `train.py` process; its peak RSS is the child's ru_maxrss.

    python benchmarks/real_model.py [--arms grpo prime lora vllm] [--steps 3] [--data ../shared/data/gsm8k_train.jsonl]
                                    [--model models/smollm2-135m-instruct] [key=value ...]   (extra overrides for every arm)

Prints one JSON object per arm (peak RSS in GB, median seconds per step and per phase, the share of empty and of
truncated responses, sample counts) and writes them to benchmarks/results/real_model.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

COMMON = ["data.source=file", "data.format=gsm8k", "rollout.prompts_per_step=4", "rollout.group_size=4",
          "rollout.max_new_tokens=256", "rollout.ignore_eos=true", "trainer.lr=1e-6", "trainer.warmup_steps=0",
          "eval.size=0", "checkpoint.every=0", "logging.progress=false", "logging.plots=false",
          "data.prompt_template={prompt} Output the final answer within \\boxed{}."]
# runs the command and prints the peak RSS of the process it ran (ru_maxrss of this wrapper's only child, in KB)
MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print('peak_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
ARMS = {
    "grpo": [],
    "prime": ["prm.enabled=true", "algorithm.advantage=prime", "prm.lr=1e-6"],
    "lora": ["model.lora.rank=16", "model.lora.alpha=32", "trainer.lr=1e-5"],
    "vllm": ["rollout.engine=vllm", "rollout.vllm_memory=0.3", "rollout.vllm_max_model_len=1024",
             "rollout.vllm_sync_tol=1e-3"],
}


def run_arm(name: str, args, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "train.py", f"model.path={args.model}", f"data.path={args.data}",
               f"trainer.steps={args.steps}", f"logging.run_dir={runs}", "logging.name=arm", *COMMON, *ARMS[name], *extra]
        proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"arm": name, "error": proc.stderr[-2000:]}
        peak_kb = int(proc.stdout.strip().splitlines()[-1].split()[-1])
        rows = [json.loads(x) for x in (Path(runs) / "arm" / "metrics.jsonl").read_text().splitlines()]
    steady = rows[1:] or rows  # the first step pays for start-up work (engine warm-up)
    med = lambda key: round(statistics.median(r.get(key, 0.0) for r in steady), 2)  # noqa: E731
    return {"arm": name, "peak_rss_gb": round(peak_kb / 2**20, 2),
            "steps": len(rows), "step_s": med("time/step"), "generate_s": med("time/generate"),
            "logprobs_s": med("time/logprobs"), "prm_s": med("time/prm"), "update_s": med("time/update"), "sync_s": med("time/sync"),
            "rows_per_step": rows[-1]["groups/kept"] * 4, "mean_response_tokens": med("response_length/mean"),
            "empty_share": med("response_length/empty"), "truncated_share": med("response_length/truncated"),
            "logprob_gap_mean": steady[-1].get("rollout/logprob_gap_mean", 0.0),
            "sync_probe_gap": steady[-1].get("rollout/sync_probe_gap")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--model", default=str(REPO / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "gsm8k_train.jsonl"))
    args, extra = ap.parse_known_args()
    if not (Path(args.model) / "config.json").is_file():
        sys.exit(f"{args.model} is missing: run `make smollm2` first")
    results = []
    for name in args.arms:  # one at a time, each in its own measuring process
        results.append(run_arm(name, args, extra))
        print(json.dumps(results[-1]), flush=True)
    out = REPO / "benchmarks" / "results" / "real_model.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
