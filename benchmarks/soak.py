"""Soak: the embedded default trained for hours on the CPU, memory and step time sampled every minute. Prints JSON.

    python benchmarks/soak.py [--minutes 60 60] [--sample-s 60] [--threads 1] [key=value ...]

Phase 1 is the embedded default (outcome rewards); phase 2 continues from phase 1's last checkpoint with PRIME
on (an implicit PRM learned online, Clip/Delta shaping: the PRM, its optimiser and its reference are the
extra memory a leak would show in). Each phase is `python train.py` with more steps than it can finish,
stopped with SIGINT when its minutes are up.

Every `--sample-s` seconds: the RSS of the training process and its verifier workers (MB, summed from
/proc), the training process's own, and the mean `time/step` of the steps logged since the last sample. For each phase: RSS and step time
at start and end, and their least-squares slopes per hour -- over the whole phase, and after the first
10 minutes (allocator warm-up). `flat` is a slope under 2 % of the level per hour. Other CPU work on the
machine during a soak moves step time: the JSON carries the minutes the caller says were shared
(--shared-minutes), and slopes without them.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRIME = ["prm.enabled=true", "algorithm.advantage=prime", "prm.granularity=step", "prm.shaping=clip_delta"]
WARMUP_MIN = 10.0


def rss_mb(pid: int) -> float:
    """RSS of one process, MB (0 when it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree_rss_mb(pid: int) -> float:
    """RSS of pid and all its descendants, MB (from /proc; 0 for processes that vanished meanwhile)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def step_times(metrics: Path, seen: int) -> tuple[list[float], int]:
    """time/step of the complete lines after the first `seen`."""
    if not metrics.is_file():
        return [], seen
    lines = [ln for ln in metrics.read_text().splitlines() if ln.endswith("}")]
    return [json.loads(ln)["time/step"] for ln in lines[seen:]], len(lines)


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (minute, value) points, per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return 60 * sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def windows(pts: list[tuple[float, float]], width: float = 10.0) -> list[dict]:
    """Per `width`-minute window: the lowest, median and highest sample. A sample lands anywhere in a step
    (RSS is ~0.5 GB higher during the update than between steps), so a leak shows as rising minima."""
    if not pts:
        return []
    out, start = [], pts[0][0]
    while start <= pts[-1][0]:
        vals = sorted(v for m, v in pts if start <= m < start + width)
        if vals:
            out.append({"from_minute": round(start, 1), "min": vals[0], "median": vals[len(vals) // 2], "max": vals[-1]})
        start += width
    return out


def summarise(samples: list[dict], key: str, shared: set[int]) -> dict:
    pts = [(s["minute"], s[key]) for s in samples if s.get(key) is not None]
    first = pts[0][0] if pts else 0.0
    wins = windows(pts)
    later = [(m, v) for m, v in pts if m - first >= WARMUP_MIN]
    quiet = [(m, v) for m, v in later if int(m) not in shared]  # minutes (from the soak's start) of no other work
    level = sum(v for _, v in later) / len(later) if later else None
    slope = slope_per_hour(later)
    return {"start": pts[0][1] if pts else None, "end": pts[-1][1] if pts else None,
            "slope_per_hour": slope_per_hour(pts), "slope_per_hour_after_warmup": slope,
            "slope_per_hour_after_warmup_quiet": slope_per_hour(quiet),
            "flat": None if slope is None or not level else abs(slope) < 0.02 * level,
            "windows": wins, "window_min_slope_per_hour": slope_per_hour([(w["from_minute"], w["min"]) for w in wins]),
            "window_max_slope_per_hour": slope_per_hour([(w["from_minute"], w["max"]) for w in wins])}


def phase(name: str, minutes: float, sample_s: float, overrides: list[str], run_dir: str, threads: int,
          shared: set[int], offset: float) -> dict:
    cmd = [sys.executable, "train.py", f"logging.run_dir={run_dir}", f"logging.name={name}", "logging.progress=false",
           "trainer.steps=100000", "eval.every=100000", "eval.size=64", "checkpoint.every=200", "logging.plots=false",
           f"trainer.threads={threads}", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log = open(REPO / run_dir / f"{name}.log", "w") if (REPO / run_dir).is_dir() else subprocess.DEVNULL
    # SIGINT stops a phase (the run saves nothing extra; phase 2 starts from phase 1's last checkpoint). A shell
    # that starts this in the background (nohup ... &) ignores SIGINT, and children inherit that: restored here.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics, seen, samples, t0 = REPO / run_dir / name / "metrics.jsonl", 0, [], time.monotonic()
    while (elapsed := time.monotonic() - t0) < minutes * 60 and proc.poll() is None:
        time.sleep(min(sample_s, max(0.0, minutes * 60 - elapsed)))
        times, seen = step_times(metrics, seen)
        samples.append({"minute": round(offset + (time.monotonic() - t0) / 60, 2),
                        "rss_mb": round(process_tree_rss_mb(proc.pid), 1), "main_rss_mb": round(rss_mb(proc.pid), 1),
                        "step_s": round(sum(times) / len(times), 4) if times else None, "steps": seen})
        print(json.dumps({"phase": name, **samples[-1]}), file=sys.stderr, flush=True)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"phase": name, "overrides": overrides, "minutes": minutes, "steps": seen, "exit": proc.returncode,
            "rss_mb": summarise(samples, "rss_mb", shared), "main_rss_mb": summarise(samples, "main_rss_mb", shared),
            "step_s": summarise(samples, "step_s", shared),
            "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs=2, default=[60.0, 60.0], help="phase 1 (outcome), phase 2 (PRIME)")
    ap.add_argument("--sample-s", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default="runs/soak")
    ap.add_argument("--shared-minutes", type=str, default="", help="minutes (from the start) when other CPU work ran, e.g. 30-42,80-90")
    ap.add_argument("--summarise", help="recompute the summaries of a saved result JSON (with --shared-minutes)")
    args, overrides = ap.parse_known_args()
    shared = {m for span in filter(None, args.shared_minutes.split(",")) for m in
              range(int(span.split("-")[0]), int(span.split("-")[-1]) + 1)}
    if args.summarise:
        saved = json.loads(Path(args.summarise).read_text())
        for ph in saved["phases"]:
            for key in ("rss_mb", "main_rss_mb", "step_s"):
                if any(key in x for x in ph["samples"]):
                    ph[key] = summarise(ph["samples"], key, shared)
        saved["shared_minutes"] = sorted(shared)
        print(json.dumps(saved, indent=1))
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (REPO / args.run_dir).mkdir(parents=True, exist_ok=True)
    first = phase(f"outcome-{stamp}", args.minutes[0], args.sample_s, overrides, args.run_dir, args.threads, shared, 0.0)
    start = REPO / args.run_dir / first["phase"] / "checkpoints" / "latest"  # none if phase 1 was too short
    begin = [f"model.path={start.resolve()}"] if start.exists() else []
    second = phase(f"prime-{stamp}", args.minutes[1], args.sample_s, [*begin, *PRIME, *overrides],
                   args.run_dir, args.threads, shared, args.minutes[0])
    print(json.dumps({"threads": args.threads, "sample_s": args.sample_s, "shared_minutes": sorted(shared),
                      "phases": [first, second]}, indent=1))


if __name__ == "__main__":
    main()
