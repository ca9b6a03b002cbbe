"""The foundation acceptance figure: `python train.py` (the embedded default) for several seeds,
one after another, and the held-out greedy accuracy before -> after each. Prints JSON.

    python benchmarks/train_default.py [--seeds 0 1 2] [key=value ...]   (extra overrides go to train.py)
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--run-dir", default="runs/bench_default")
    args, overrides = ap.parse_known_args()
    results = []
    for seed in args.seeds:
        name = f"seed{seed}-{int(time.time())}"
        t0 = time.perf_counter()
        cmd = [sys.executable, "train.py", f"trainer.seed={seed}", f"logging.run_dir={args.run_dir}",
               f"logging.name={name}", "logging.progress=false", *overrides]
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads((REPO / args.run_dir / name / "summary.json").read_text())
        evals = summary["evals"]
        results.append({
            "seed": seed, "wall_s": round(time.perf_counter() - t0, 1), "train_s": summary["seconds"],
            "before": evals[0]["accuracy"], "after": evals[-1]["accuracy"],
            "gain_points": round(100 * (evals[-1]["accuracy"] - evals[0]["accuracy"]), 1),
            "mean_last3": round(statistics.mean(e["accuracy"] for e in evals[-3:]), 4),
            "curve": [(e["step"], e["accuracy"]) for e in evals],
        })
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    gains = [r["gain_points"] for r in results]
    print(json.dumps({"runs": results, "gain_points_mean": round(statistics.mean(gains), 1),
                      "gain_points_min": min(gains), "overrides": overrides}, indent=1))


if __name__ == "__main__":
    main()
