"""Two search methods on the same problems, paired: the accuracy difference with a bootstrap 95 % interval, and
how many problems only one of them gets right. Reads evaluate.py's per-problem rows (search.output).

    python benchmarks/search_paired.py A.jsonl:mcts B.jsonl:majority [--budgets 256 1024] [--resamples 2000]

Prints one JSON object per budget. On 500 problems a difference of 2 points is inside the noise of two
unpaired accuracies (each about +-2.2 points); pairing removes the problems both get right or wrong.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def correct_by_problem(path: str, method: str, budget: int) -> dict[int, int]:
    """{problem index: 1 if right} for one method at one budget, from `path` and, for a run under torchrun,
    the other ranks' `<stem>.rank<r><suffix>` beside it."""
    p = Path(path)
    out = {}
    for part in [p, *sorted(p.parent.glob(f"{p.stem}.rank*{p.suffix}"))]:
        with open(part) as f:
            for line in f:
                row = json.loads(line)
                if row.get("method") == method and row.get("budget") == budget:
                    out[row["index"]] = int(bool(row["correct"]))
    return out


def paired(a: dict[int, int], b: dict[int, int], resamples: int, seed: int = 0) -> dict:
    """a - b over the problems both have: mean difference (points), its percentile bootstrap 95 % interval."""
    keys = sorted(set(a) & set(b))
    if not keys:
        raise SystemExit("no problem is in both files at this budget: check the paths, methods and budgets")
    d = [a[k] - b[k] for k in keys]
    rng = random.Random(seed)
    n = len(d)
    means = sorted(sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo, hi = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
    return {"problems": n, "diff_points": round(100 * sum(d) / n, 2), "ci95_points": [round(100 * lo, 2), round(100 * hi, 2)],
            "only_a_right": sum(x > 0 for x in d), "only_b_right": sum(x < 0 for x in d)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", help="PATH:METHOD")
    ap.add_argument("b", help="PATH:METHOD")
    ap.add_argument("--budgets", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    if args.resamples < 100:
        ap.error(f"--resamples {args.resamples}: use at least 100 (2000 by default) for a 95 % interval")
    (pa, ma), (pb, mb) = (x.rsplit(":", 1) for x in (args.a, args.b))
    for budget in args.budgets:
        result = paired(correct_by_problem(pa, ma, budget), correct_by_problem(pb, mb, budget), args.resamples)
        print(json.dumps({"a": args.a, "b": args.b, "budget": budget, **result}))


if __name__ == "__main__":
    main()
