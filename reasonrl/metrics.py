"""Metric sinks for a run: progress bar, metrics.jsonl, samples.jsonl, TensorBoard / W&B, plots.

metrics.jsonl has one JSON object per training step. Keys:
  step                      1-based step number
  reward/mean               mean scalar reward the advantages were computed from: the verifier score of each
                            response trained on, after overlong shaping and a KL penalty in the reward
  accuracy/train            share of every response generated this step that the verifier marked correct
                            (all generation rounds, including groups a filter then dropped)
  accuracy/kept             the same over the groups kept for training
  response_length/mean      mean response length in tokens; response_length/truncated the share cut at max_new_tokens;
                            response_length/empty the share with no text (ended at once)
  groups/kept, groups/zero_variance   groups trained on; groups whose rewards were all equal
  groups/dropped_accuracy   groups the PRIME accuracy filter dropped (algorithm.accuracy_filter)
  gen_rounds                generation rounds this step (> 1 only when a filter refills the batch)
  rollout/logprob_gap_mean, rollout/logprob_gap_max   |engine - learner| log-prob of the sampled tokens
  verifier/<status>         counts of verifier statuses (ok, no_answer, parse_error, timeout, crash)
  adv/mean, adv/std         advantage statistics over valid tokens
  loss, pg_loss, kl, entropy, clip_frac, clip_frac_low, clip_frac_high, grad_norm, lr   from the update
  time/generate, time/verify, time/logprobs, time/prm, time/update, time/sync, time/step   seconds (time/prm:
                            PRM work -- reference forward, update, scoring -- ~0 without a PRM; time/sync:
                            the engine's weight sync and its probe check, ~0 for the transformers engine)
  tokens/generated, tokens_per_s   generated tokens this step, and per second of step time
  prm/loss, prm/accuracy, prm/auroc, prm/grad_norm   the implicit PRM (prm.enabled), before its update
  process/return, process/return_correct, process/return_wrong, process/steps   process values per response
  eval/accuracy, eval/response_length   greedy held-out results, on steps where evaluation ran
  eval/prm_auroc            the PRM's AUROC on the held-out greedy answers
"""
from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from reasonrl import faults
from reasonrl.registry import Problems


WANDB_MODES = ("offline", "online", "disabled")


def check_logging(lg) -> Problems:
    """The logging section (LoggingConfig)."""
    p = Problems()
    p.one_of(WANDB_MODES, "logging.wandb_mode", lg.wandb_mode)
    p.need(lg.samples_per_step >= 0, "logging.samples_per_step", lg.samples_per_step, "must be >= 0")
    return p


class Timer:
    """Seconds spent in named phases of a step: `with timer("update"): ...` adds to time/update."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        return {f"time/{k}": v for k, v in self.seconds.items()}


class RunLogger:
    def __init__(self, run_dir: Path, cfg, total_steps: int, start_step: int = 0):
        self.run_dir = run_dir
        self.cfg = cfg
        self.metrics_file = (run_dir / "metrics.jsonl").open("a")
        self.samples_file = (run_dir / "samples.jsonl").open("a")
        self.bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True,
                            file=sys.stderr)
        tensorboard = self._sink("tensorboard", "torch.utils.tensorboard") if cfg.tensorboard else None
        self.tb = tensorboard and tensorboard.SummaryWriter(str(run_dir / "tensorboard"))
        wandb = self._sink("wandb", "wandb") if cfg.wandb else None
        self.wandb = wandb and wandb.init(project=cfg.wandb_project, mode=cfg.wandb_mode, dir=str(run_dir),
                                          name=run_dir.name, config={})

    def _sink(self, key: str, module: str):
        """The metric sink's module, or None (said once) when logging.<key> is on but it is not installed."""
        try:
            return importlib.import_module(module)
        except ImportError:
            self.print(f"logging.{key}=true but {key} is not installed: pip install 'reasonrl[tracking]'")
            return None

    def print(self, text: str) -> None:
        (self.bar.write if self.bar is not None else print)(text)

    def log_step(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        faults.write_line(self.metrics_file, json.dumps(row) + "\n", "metrics.write")
        self.metrics_file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(row, step=step)
        if self.bar is not None:
            self.bar.update(1)
            post = {"reward": row.get("reward/mean"), "acc": row.get("accuracy/train"),
                    "len": row.get("response_length/mean"), "tok/s": row.get("tokens_per_s")}
            if "eval/accuracy" in row:
                post["eval"] = row["eval/accuracy"]
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in post.items() if isinstance(v, (int, float))})

    def log_eval(self, step: int, rows: list[dict]) -> Path:
        """Every held-out answer of one evaluation (prompt as fed, response, extracted answer, verdict) to
        eval/step_<step>.jsonl, written as a whole, so a reader never sees a half-written file."""
        out = self.run_dir / "eval" / f"step_{step}.jsonl"
        out.parent.mkdir(exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps({"step": step, **r}, default=str) + "\n" for r in rows))
        tmp.replace(out)
        return out

    def sync(self) -> None:
        """metrics.jsonl and samples.jsonl on disk (before a checkpoint says their steps are done)."""
        for f in (self.metrics_file, self.samples_file):
            f.flush()
            os.fsync(f.fileno())

    def log_samples(self, step: int, samples: list[dict]) -> None:
        for s in samples:
            self.samples_file.write(json.dumps({"step": step, **s}) + "\n")
        self.samples_file.flush()

    def close(self) -> None:
        for f in (self.metrics_file, self.samples_file):
            f.close()
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_plots(run_dir: Path, rows: list[dict], evals: list[dict]) -> list[Path]:
    """PNG plots of training reward and held-out accuracy over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    for name, series, ylabel in (
        ("reward", [(r["step"], r.get("reward/mean")) for r in rows], "mean reward trained on (shaped)"),
        ("eval_accuracy", [(e["step"], e["accuracy"]) for e in evals], "held-out greedy accuracy"),
    ):
        pts = [(x, y) for x, y in series if y is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if name == "eval_accuracy":
            ax.plot(xs, ys, marker="o")
        else:  # per-step rewards are noisy: show them faintly, with a 10-step moving average on top
            ax.plot(xs, ys, alpha=0.35, label="per step")
            window = [sum(ys[max(0, i - 9):i + 1]) / len(ys[max(0, i - 9):i + 1]) for i in range(len(ys))]
            ax.plot(xs, window, label="10-step mean")
            ax.legend(loc="lower right")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


class QuietLogger:
    """What ranks other than 0 log through: nothing (rank 0 writes the run's files from reduced metrics)."""

    def print(self, text: str) -> None:
        pass

    def log_step(self, step: int, metrics: dict) -> None:
        pass

    def log_eval(self, step: int, rows: list[dict]) -> None:
        pass

    def sync(self) -> None:
        pass

    def log_samples(self, step: int, samples: list[dict]) -> None:
        pass

    def close(self) -> None:
        pass
