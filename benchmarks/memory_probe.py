"""Leak or allocator? A training run with the process's memory taken apart after every step. Prints JSON.

    python benchmarks/memory_probe.py [--minutes 30] [--every 25] [--trim] [key=value ...]

The soak (benchmarks/soak.py) samples RSS once a minute from outside, so it cannot tell memory the program
still holds from memory glibc keeps after the program freed it. This runs `train.py` in this process and,
after each step is logged (between steps: gradients dropped, the engine synced), reads

- `rss_mb`: the resident size (/proc/self/status);
- `heap_in_use_mb`: what malloc has handed out and not had back (glibc's mallinfo2: uordblks + hblkhd). A leak
  -- of Python objects, tensors or C++ buffers, all of which come from malloc on a CPU -- raises this;
  fragmentation or a heap that does not shrink raises only `rss_mb` (and `heap_free_mb`, held but unused);
- every `--every` steps: the number of Python objects the garbage collector tracks and the live torch tensors
  (count and bytes of their storages), from gc.get_objects().

The run's own trim (trainer.release_memory_every, 100 steps by default) shows as a drop in RSS at those steps;
`trainer.release_memory_every=0` reads glibc's heap as it is (the 2026-12-06 figures were taken before that setting).
`--trim` calls malloc_trim(0) after each reading, which hands glibc's free pages back: if RSS then stays
flat, what grew was the allocator's, not the program's. For each series: first / last value and the
least-squares slope per hour after the first `--warmup` steps.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from soak import slope_per_hour  # noqa: E402  (benchmarks/soak.py: (minute, value) points, per hour)


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
LIBC.mallinfo2.restype = MallInfo2


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def heap() -> dict:
    """malloc's view, summed over its arenas (mallinfo2 covers all of them)."""
    m = LIBC.mallinfo2()
    return {"heap_in_use_mb": round((m.uordblks + m.hblkhd) / 2**20, 1), "heap_free_mb": round(m.fordblks / 2**20, 1)}


def live_objects() -> dict:
    import torch

    gc.collect()
    objs = gc.get_objects()
    storages, tensors = {}, 0
    for o in objs:
        try:
            if isinstance(o, torch.Tensor):
                tensors += 1
                s = o.untyped_storage()
                storages[s.data_ptr()] = s.nbytes()
        except Exception:  # a tensor subclass without storage (meta, sparse): not what a CPU leak is made of
            continue
    return {"gc_objects": len(objs), "tensors": tensors, "tensor_mb": round(sum(storages.values()) / 2**20, 1)}


def summary(rows: list[dict], warmup: int) -> dict:
    out = {}
    keys = {k for r in rows for k in r} - {"step", "seconds"}
    for k in sorted(keys):
        pts = [(r["seconds"], r[k]) for r in rows if k in r]
        later = [(s, v) for (s, v), r in zip(pts, [r for r in rows if k in r]) if r["step"] > warmup]
        if pts:
            out[k] = {"first": pts[0][1], "last": pts[-1][1], "min": min(v for _, v in pts),
                      "max": max(v for _, v in pts),
                      "slope_per_hour_after_warmup": slope_per_hour([(sec / 60, v) for sec, v in later])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every", type=int, default=25, help="steps between object counts (a full gc pass)")
    ap.add_argument("--warmup", type=int, default=20, help="steps left out of the slopes")
    ap.add_argument("--trim", action="store_true", help="malloc_trim(0) after each reading")
    ap.add_argument("--out", default=None, help="JSON lines of the readings as they are taken")
    args, overrides = ap.parse_known_args()

    from reasonrl import metrics as metrics_module

    rows: list[dict] = []
    t0 = time.monotonic()
    sink = open(args.out, "w") if args.out else None
    original = metrics_module.RunLogger.log_step

    def probed(self, step: int, metrics: dict) -> None:
        original(self, step, metrics)
        row = {"step": step, "seconds": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(), 1), **heap()}
        if step % args.every == 0:
            row.update(live_objects())
        if args.trim:
            LIBC.malloc_trim(0)
            row["rss_after_trim_mb"] = round(rss_mb(), 1)
        rows.append(row)
        if sink:
            sink.write(json.dumps(row) + "\n")
            sink.flush()

    metrics_module.RunLogger.log_step = probed
    # Stop after --minutes the way Ctrl-C does (the run's own SIGINT handling ends it cleanly). A shell starts a
    # background job with SIGINT ignored (`... &`, nohup): take Python's handler back, or nothing would stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Timer(args.minutes * 60, lambda: os.kill(os.getpid(), 2)).start()
    import train

    argv = ["trainer.steps=100000", "eval.every=100000", "eval.size=64", "checkpoint.every=100000",
            "logging.plots=false", "logging.progress=false", *overrides]
    code = train.main(argv)
    print(json.dumps({"overrides": overrides, "trim": args.trim, "steps": len(rows), "exit": code,
                      "summary": summary(rows, args.warmup)}, indent=1))
    os._exit(0)  # the timer thread and the verifier pool need not be joined


if __name__ == "__main__":
    main()
