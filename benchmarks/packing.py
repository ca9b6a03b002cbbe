"""Packed vs padded learner update on a batch with a wide spread of response lengths. Prints JSON.

    python benchmarks/packing.py [--rows 128] [--min-len 8] [--max-len 256] [--repeats 3] [--threads 2]

Same model (the embedded default), same batch, same micro-batch budgets; the median wall time of one
learner update (forward + backward over every row) for each path, alternating, and the padding share
the padded path computes on (padded micro-batch tokens / real tokens - 1).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--min-len", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=int, default=4096)
    args = ap.parse_args()
    import torch

    from reasonrl.batching import collate, micro_batches
    from reasonrl.learner import Learner, LossSettings
    from reasonrl.models import load_model
    from reasonrl.types import Record, Rollout, RolloutGroup

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    groups = []
    for i in range(args.rows // 8):
        rollouts = []
        for _ in range(8):
            n = int(torch.randint(args.min_len, args.max_len + 1, (), generator=g))
            rollouts.append(Rollout(torch.randint(3, 90, (n,), generator=g).tolist(), [0.0] * n, "", "eos"))
        groups.append(RolloutGroup(Record(f"p{i}", "0"), torch.randint(3, 90, (12,), generator=g).tolist(), rollouts))
    batch = collate(groups, pad_id=0)
    base = load_model(str(REPO / "assets" / "tiny-math"))
    lengths = batch.attention_mask.sum(1)
    padded_tokens = sum(len(r) * int(lengths[r].max()) for r in micro_batches(lengths, args.budget))
    times = {"padded": [], "packed": []}
    for _ in range(args.repeats):
        for packing in (False, True):
            model = copy.deepcopy(base)
            learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), None, loss=LossSettings(),
                              max_tokens_per_microbatch=args.budget, packing=packing, pack_tokens=args.budget)
            learner.prepare(batch, old_needed_early=True)
            batch.advantages = batch.loss_mask.clone()
            t0 = time.perf_counter()
            learner.update(batch, torch.Generator().manual_seed(0))
            times["packed" if packing else "padded"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"rows": batch.num_rows, "lengths": [args.min_len + 12, args.max_len + 12],
                      "real_tokens": int(lengths.sum()), "padded_tokens": padded_tokens,
                      "padding_share": round(padded_tokens / int(lengths.sum()) - 1, 3), "budget": args.budget,
                      "threads": args.threads, "update_s_median": {k: round(v, 3) for k, v in med.items()},
                      "speedup_packed": round(med["padded"] / med["packed"], 2), "all_s": times}, indent=1))


if __name__ == "__main__":
    main()
