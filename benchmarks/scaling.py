"""One process against torchrun ranks on this machine: step time and per-process peak memory. Prints JSON.

    python benchmarks/scaling.py [--steps 12] [--warmup 2] [--sizes small,large]

Arms, on the same global work (the embedded default's task, 32 prompts x 8 samples of at most 56 tokens a
step, rollout.seeding=prompt in both so the samples are the same):
    one   python train.py with trainer.threads=2                    (one process, two threads)
    two   torchrun --nproc_per_node=2 train.py, OMP_NUM_THREADS=1   (two ranks, FSDP2 over gloo, one thread each)
Sizes: "small" is the embedded default checkpoint (assets/tiny-math, 0.8 M parameters); "large" its
architecture at hidden 256 (about 4 M parameters, random init; the task's accuracy stays near 0, the work per
step is what is measured). Step time is the median of the logged `time/step` after `--warmup` steps; peak
memory is the largest resident set of any one process of the arm (getrusage of the waited-for children).
`sharded_state_mb` is what FSDP2 leaves each rank of the weights, gradients and AdamW moments (4 x fp32 per
parameter / world): the part of the memory that sharding divides.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = ["rollout.prompts_per_step=32", "rollout.group_size=8", "rollout.seeding=prompt", "eval.size=0",
        "logging.progress=false", "logging.plots=false", "checkpoint.every=0"]


def build_large(root: Path) -> str:
    """The embedded architecture at hidden 256 (vs_trl.py's "large"), written under root."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from vs_trl import build_models

    return build_models(root)["large"]


def measured(cmd: list[str], env: dict) -> int:
    """Run cmd in a fresh interpreter that reports the peak RSS (KB) of its largest descendant."""
    probe = ("import resource, subprocess, sys, json; r = subprocess.run(json.loads(sys.argv[1])); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", probe, json.dumps(cmd)], cwd=REPO, env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-4000:]}")
    return int(out.stdout.strip().splitlines()[-1])


def arm(name: str, model: str, steps: int, root: Path) -> dict:
    run_args = ["train.py", *WORK, f"model.path={model}", f"trainer.steps={steps}", f"logging.run_dir={root}",
                f"logging.name={name}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if name == "one":
        cmd = [sys.executable, *run_args, "trainer.threads=2"]
    else:
        env["OMP_NUM_THREADS"] = "1"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29577", *run_args,
               "trainer.threads=1"]
    peak_kb = measured(cmd, env)
    rows = [json.loads(x) for x in (root / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return {"rows": rows, "peak_rss_mb": round(peak_kb / 1024, 1)}


def params_of(path: str) -> int:
    from safetensors import safe_open

    with safe_open(str(Path(path) / "model.safetensors"), "pt") as f:
        total = 0
        for k in f.keys():
            n = 1
            for d in f.get_slice(k).get_shape():
                n *= d
            total += n
        return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sizes", default="small,large")
    args = ap.parse_args()
    out = {"machine": {"cpus": os.cpu_count()}, "steps": args.steps, "warmup": args.warmup, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = {"small": str(REPO / "assets" / "tiny-math")}
        if "large" in args.sizes.split(","):
            models["large"] = build_large(root)
        for size in args.sizes.split(","):
            n = params_of(models[size])
            result = {"parameters": n}
            for name, world in (("one", 1), ("two", 2)):
                r = arm(name, models[size], args.steps, root / size)
                times = [row["time/step"] for row in r["rows"][args.warmup:]]
                result[name] = {"ranks": world, "threads_per_rank": 2 // world,
                                "median_step_s": round(statistics.median(times), 3),
                                "peak_rss_mb_per_process": r["peak_rss_mb"],
                                "sharded_state_mb": round(4 * 4 * n / world / 2**20, 1),
                                "tokens_generated": sum(row["tokens/generated"] for row in r["rows"])}
            result["two_over_one"] = round(result["two"]["median_step_s"] / result["one"]["median_step_s"], 3)
            out["sizes"][size] = result
            print(json.dumps({size: result}), file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
