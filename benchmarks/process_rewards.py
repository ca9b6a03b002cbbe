"""Dense process rewards vs outcome-only GRPO on the embedded task: the implicit-PRM issue's ablation.

    python benchmarks/process_rewards.py [--arms outcome verifier_clip_delta prime_published ...]
                                         [--seeds 0 1 2] [--steps 60] [--eval-every 10] [key=value ...]

Every arm trains the embedded default for the same steps with the same prompts and samples per step
(extra key=value overrides go to every run). Runs go seed by seed (all arms of seed 0 first) and a run
whose summary.json exists is not run again, so an interrupted benchmark continues where it stopped.
Prints one JSON object: per arm, held-out greedy accuracy at each evaluation (mean over seeds), steps to
reach the outcome-only arm's final accuracy (mean of its last three evaluations, averaged over seeds),
the median wall time per step, the PRM's share of it, and the PRM's held-out AUROC at the start and end.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STEPS = ["prm.granularity=step"]
VERIFIER = ["algorithm.advantage=prime", "prm.enabled=true", "prm.source=verifier", *STEPS]  # the oracle PRM
SAME_SAMPLES = ["algorithm.accuracy_filter=false"]  # the filter draws extra prompts: off, so samples stay equal
ARMS = {
    "outcome": [*SAME_SAMPLES],  # the default: GRPO on the verifier's outcome only
    "verifier_clip_delta": [*VERIFIER, "prm.shaping=clip_delta", *SAME_SAMPLES],  # step-verifier process rewards
    "verifier_clip": [*VERIFIER, "prm.shaping=clip", *SAME_SAMPLES],
    # the same estimator with the process source weighted 0: outcome-only through PRIME's LOO + whitening
    "verifier_coef0": [*VERIFIER, "prm.shaping=clip_delta", "prm.process_coef=0", *SAME_SAMPLES],
    # Clip+Delta returns c_k - c_K: on exact 0/1 steps a wrong answer's right prefix gets eta, the steps from the
    # first error 0; at weight 2 (eta 0.5) that prefix is worth what a right answer's steps are (exact credit)
    "verifier_clip_delta_x2": [*VERIFIER, "prm.shaping=clip_delta", "prm.process_coef=2", *SAME_SAMPLES],
    # Delta keeping the last step: returns p_k (right steps 1, from the first error on 0), a bounded return too
    "verifier_delta_keep_last": [*VERIFIER, "prm.shaping=delta_keep_last", *SAME_SAMPLES],
    "verifier_delta_keep_last_x2": [*VERIFIER, "prm.shaping=delta_keep_last", "prm.process_coef=2", *SAME_SAMPLES],
    # lines the verifier cannot check score 0 (not carried): no credit for bare numbers when answers are rarely right
    "verifier_delta_keep_last_strict": [*VERIFIER, "prm.shaping=delta_keep_last", "prm.unchecked=wrong", *SAME_SAMPLES],
    # the task's own solution as the step check: a line is right when it is the problem's next step (not merely true)
    "solution_delta_keep_last": ["algorithm.advantage=prime", "prm.enabled=true", "prm.source=solution", *STEPS,
                                 "prm.shaping=delta_keep_last", *SAME_SAMPLES],
    # PRIME as published: ungated, its accuracy filter on (it costs samples: compare per sample), weight decay 0
    "prime_published": ["--config", "configs/math_prime.yaml", "prm.gate_threshold=null", "algorithm.accuracy_filter=true"],
    "prime_ungated": ["--config", "configs/math_prime.yaml", "prm.gate_threshold=null", *SAME_SAMPLES],
    "prime": ["--config", "configs/math_prime.yaml", *SAME_SAMPLES],  # + the G-RA gate (the shipped config)
    "prime_clip_delta": ["--config", "configs/math_prime.yaml", *STEPS, "prm.shaping=clip_delta", *SAME_SAMPLES],
    "prime_clip_delta_ungated": ["--config", "configs/math_prime.yaml", *STEPS, "prm.shaping=clip_delta",
                                 "prm.gate_threshold=null", *SAME_SAMPLES],
    # iStar z-scores the step rewards (unit scale whatever the PRM knows); centred (the shipped config) they keep
    # their own scale
    "oprl": ["--config", "configs/math_oprl.yaml", "prm.step_norm=z", *SAME_SAMPLES],
    "oprl_center": ["--config", "configs/math_oprl.yaml", "prm.step_norm=center", *SAME_SAMPLES],
    "oprl_alpha0": ["--config", "configs/math_oprl.yaml", "prm.alpha=0", *SAME_SAMPLES],  # the outcome term alone
    # the audit's probes of why ungated PRIME collapses. (a) no process reward where the outcome has no signal:
    "prime_ungated_flat_zero": ["--config", "configs/math_prime.yaml", "prm.gate_threshold=null", "prm.flat_groups=zero",
                                *SAME_SAMPLES],
    # (b) the PRM learning on the frozen policy's batches (Adam's steps are ~lr): its fresh-batch AUROC per step
    # (prm/auroc, scored before each update) against prime_ungated's, where the policy moves
    "prime_ungated_frozen": ["--config", "configs/math_prime.yaml", "prm.gate_threshold=null", "trainer.lr=1e-12",
                             *SAME_SAMPLES],
}


def run_one(arm: str, seed: int, args, overrides: list[str]) -> Path:
    run_dir = REPO / args.run_dir / f"{arm}-s{seed}"
    if (run_dir / "summary.json").is_file():
        return run_dir
    cmd = [sys.executable, "train.py", *ARMS[arm], f"trainer.seed={seed}",
           f"trainer.steps={args.steps}", f"eval.every={args.eval_every}", f"logging.run_dir={args.run_dir}",
           f"logging.name={arm}-s{seed}", "logging.progress=false", "checkpoint.every=0", "checkpoint.resume=auto",
           *overrides]
    print(f"[{arm} seed {seed}] {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return run_dir


def describe(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = summary["evals"]
    out = {
        "curve": {e["step"]: e["accuracy"] for e in evals},
        "final_mean_last3": statistics.mean(e["accuracy"] for e in evals[-3:]),
        "step_s_median": statistics.median(m["time/step"] for m in metrics),
        "tokens_generated": summary["tokens_generated"],
        "responses_generated": sum(m.get("responses/generated", 0) for m in metrics),
        "seconds": sum(m["time/step"] for m in metrics),
        "min_accuracy": min(e["accuracy"] for e in evals), "start_accuracy": evals[0]["accuracy"],
    }
    if "prm/loss" in metrics[0]:  # a PRM ran
        out["prm_s_median"] = statistics.median(m["time/prm"] for m in metrics)
        out["prm_auroc_held_out"] = [evals[0].get("prm_auroc"), evals[-1].get("prm_auroc")]
        out["prm_auroc_train_first_last10"] = [mean_defined(m["prm/auroc"] for m in metrics[:10]),
                                               mean_defined(m["prm/auroc"] for m in metrics[-10:])]
    return out


def mean_defined(values) -> float | None:
    """Mean of the values that are defined (AUROC is undefined, logged as null, when a batch has one class)."""
    ok = [v for v in values if v is not None and v == v]
    return statistics.mean(ok) if ok else None


def first_reaching(curve: dict[int, float], target: float) -> int | None:
    return next((step for step, acc in sorted(curve.items()) if step > 0 and acc >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--run-dir", default="runs/bench_process")
    args, overrides = ap.parse_known_args()
    runs = {arm: {} for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:
            runs[arm][seed] = describe(run_one(arm, seed, args, overrides))
            print(json.dumps({"arm": arm, "seed": seed, **runs[arm][seed]}), file=sys.stderr, flush=True)

    target = None
    if "outcome" in runs:
        target = statistics.mean(r["final_mean_last3"] for r in runs["outcome"].values())
    table = {}
    for arm, by_seed in runs.items():
        steps = sorted(set.intersection(*(set(r["curve"]) for r in by_seed.values())))
        reach = {s: first_reaching(r["curve"], target) for s, r in by_seed.items()} if target is not None else {}
        row = {
            "accuracy_mean": {st: round(statistics.mean(r["curve"][st] for r in by_seed.values()), 4) for st in steps},
            "accuracy_by_seed": {s: r["curve"] for s, r in by_seed.items()},
            "steps_to_target_by_seed": reach,
            "step_s_median": round(statistics.mean(r["step_s_median"] for r in by_seed.values()), 3),
            "responses_generated_mean": round(statistics.mean(r["responses_generated"] for r in by_seed.values())),
            "train_seconds_mean": round(statistics.mean(r["seconds"] for r in by_seed.values()), 1),
            "fell_below_start_on": [s for s, r in by_seed.items() if r["min_accuracy"] < r["start_accuracy"]],
        }
        if all("prm_s_median" in r for r in by_seed.values()):
            row["prm_s_median"] = round(statistics.mean(r["prm_s_median"] for r in by_seed.values()), 3)
            row["prm_auroc_held_out_start_end"] = {s: r["prm_auroc_held_out"] for s, r in by_seed.items()}
            row["prm_auroc_train_first_last10"] = {s: r["prm_auroc_train_first_last10"] for s, r in by_seed.items()}
        table[arm] = row
    if "outcome" in table:
        base = table["outcome"]["step_s_median"]
        for arm, row in table.items():
            row["step_time_ratio_to_outcome"] = round(row["step_s_median"] / base, 2)
            reached = [v for v in row["steps_to_target_by_seed"].values() if v is not None]
            row["steps_to_target_mean"] = round(statistics.mean(reached), 1) if len(reached) == len(args.seeds) else None
        ref = table["outcome"].get("steps_to_target_mean")
        for row in table.values():
            mine = row["steps_to_target_mean"]
            row["speedup_in_steps"] = round(ref / mine, 2) if ref and mine else None
    print(json.dumps({"target_accuracy": target, "steps": args.steps, "seeds": args.seeds, "overrides": overrides,
                      "arms": table}, indent=1))


if __name__ == "__main__":
    main()
