"""A run's directory: where it goes (or which one a resume continues), its logs cut back to the checkpoint a
resume starts from, and the summary written at the end: runs/<name>/ holds config.yaml, metrics.jsonl,
samples.jsonl, checkpoints/, plots/ and summary.json."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from reasonrl import checkpoint
from reasonrl.config import Config
from reasonrl.metrics import read_metrics, write_plots


def prepare_run_dir(cfg: Config, say=print) -> tuple[Path, Path | None]:
    """-> (run directory, checkpoint to resume from or None). checkpoint.resume=auto takes the newest intact
    checkpoint (checkpoint.intact), and a run killed before its first checkpoint starts again."""
    root = Path(cfg.logging.run_dir)
    resume = cfg.checkpoint.resume
    if resume not in ("auto", "never"):
        ckpt = Path(resume)
        if (ckpt / "checkpoints" / "latest").exists():  # a run directory was given
            ckpt = ckpt / "checkpoints" / "latest"
        if not (ckpt / "trainer_state.pt").is_file():
            raise FileNotFoundError(f"checkpoint.resume={resume!r}: no checkpoint there (expected trainer_state.pt); "
                                    f"pass a checkpoints/step_N directory, a run directory, or auto")
        ckpt = ckpt.resolve()
        if (problem := checkpoint.check_manifest(ckpt)) is not None:
            raise checkpoint.CheckpointError(f"checkpoint.resume={resume!r}: {ckpt} is damaged ({problem}); pass an "
                                             f"older checkpoints/step_N, or auto to take the newest intact one")
        if ckpt.parent.name == "checkpoints" and checkpoint.latest(ckpt.parent.parent) != ckpt:
            checkpoint.point_latest(ckpt.parent, ckpt)  # a later resume=auto continues from here, not a later step
        return ckpt.parent.parent, ckpt
    if cfg.logging.name:
        run_dir = root / cfg.logging.name
    elif resume == "auto" and (newest := _newest_run_with_checkpoint(root)) is not None:
        run_dir = newest
    else:
        run_dir = root / datetime.now().strftime("%Y%m%d-%H%M%S")
    ckpt = checkpoint.intact(run_dir, say) if resume == "auto" else None
    if ckpt is None and run_dir.exists() and (run_dir / "metrics.jsonl").exists():
        if resume != "auto":
            raise FileExistsError(f"run directory {run_dir} already holds a run; pass checkpoint.resume=auto to "
                                  f"continue it, or choose another logging.name")
        written = checkpoint.step_dirs(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else []
        if written or (run_dir / "checkpoints" / "latest").is_symlink():
            raise checkpoint.CheckpointError(
                f"{run_dir} has checkpoints but none is intact (each one's problem is said above); nothing was "
                f"changed. Repair or remove them, pass checkpoint.resume=<a checkpoint>, or start another "
                f"logging.name")
        say(f"{run_dir} holds a run with no checkpoint (stopped before its first): starting it again from step 0")
        truncate_logs(run_dir, 0)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, ckpt


def _newest_run_with_checkpoint(root: Path) -> Path | None:
    runs = [p for p in root.glob("*") if (p / "checkpoints" / "latest").exists()] if root.is_dir() else []
    return max(runs, key=lambda p: (p / "checkpoints" / "latest").stat().st_mtime, default=None)


def truncate_logs(run_dir: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (and a line torn by a kill mid-write), so the
    files stay consistent; each file is replaced atomically, never left half-rewritten."""
    for name in ("metrics.jsonl", "samples.jsonl"):
        path = run_dir / name
        if path.is_file():
            keep = [ln for ln in path.read_text().splitlines() if (row := _row(ln)) is not None and row["step"] <= step]
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("w") as f:
                f.write("".join(ln + "\n" for ln in keep))
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
    checkpoint.fsync_dir(run_dir)  # the renames too


def _row(line: str) -> dict | None:
    """A log line's JSON object; None for a blank or torn one."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and "step" in row else None


def finish(run_dir: Path, state: checkpoint.TrainState, cfg: Config, *, write: bool = True) -> dict:
    """summary.json (and plots/) at the end of a run (write: False on ranks other than 0); returns the summary."""
    evals = state.evals
    summary = {
        "run_dir": str(run_dir), "steps": state.step, "seconds": round(state.seconds, 1),
        "tokens_generated": state.tokens_generated,
        "eval_accuracy_before": evals[0]["accuracy"] if evals else None,
        "eval_accuracy_after": evals[-1]["accuracy"] if evals else None,
        "evals": evals,
    }
    if not write:
        return summary
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if cfg.logging.plots:
        write_plots(run_dir, read_metrics(run_dir), evals)
    return summary
