"""evaluate.py's runner: every method in search.methods at every budget in search.budgets on the
held-out problems, one table (method, budget, accuracy, generated tokens per problem, wall time,
problems per minute, share of time in the engine / value function / tree code), and per-problem
results as JSONL."""
from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import torch

from reasonrl import distributed
from reasonrl.config import Config, ConfigError, from_yaml_file, verifier_names, verifier_options
from search.methods import METHODS, NEEDS_VALUE, Context, step_split


class Timed:
    """Wraps a callable object's method and adds up the seconds spent in it."""

    def __init__(self, target, method: str):
        self.target, self.method, self.seconds = target, method, 0.0

    def __getattr__(self, name):
        attr = getattr(self.target, name)
        if name != self.method:
            return attr

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed

    def __call__(self, *args, **kwargs):
        return self.__getattr__("__call__")(*args, **kwargs)


def run_config_of(model_path: str) -> Config | None:
    """The training run's resolved config when model.path is one of its checkpoints, else None."""
    for parent in Path(model_path).resolve().parents[:3]:
        if (parent / "config.yaml").is_file():
            try:
                return from_yaml_file(parent / "config.yaml")
            except ConfigError as exc:
                raise ConfigError([f"{parent / 'config.yaml'} (the run that wrote model.path): {p}"
                                   for p in exc.problems]) from None
    return None


def build_value(cfg: Config, tokenizer, device):
    """The implicit PRM and its reference (search.prm_path / prm_ref / prm_beta, or the training run's)."""
    from reasonrl.models import load_model
    from search.values import PRMValue

    s, run = cfg.search, run_config_of(cfg.model.path)
    prm_path = s.prm_path or str(Path(cfg.model.path) / "prm")
    if not (Path(prm_path) / "config.json").is_file():
        raise FileNotFoundError(f"no PRM at {prm_path}: train with prm.enabled=true (train.py saves it beside the "
                                "policy) or set search.prm_path, or use search.value=verifier")
    ref_path = s.prm_ref or (run and (run.prm.path or run.model.path))
    if not ref_path:
        raise FileNotFoundError("the PRM's reference model is unknown: set search.prm_ref (the model the PRM "
                                "started from, e.g. the initial policy)")
    if s.prm_beta is None and run is None:
        raise FileNotFoundError("the PRM's beta is unknown (model.path is not inside a training run): set "
                                "search.prm_beta to the prm.beta it was trained with")
    beta = s.prm_beta if s.prm_beta is not None else run.prm.beta
    load = lambda p: load_model(p, dtype=cfg.model.dtype, attn_implementation=cfg.model.attn_implementation,  # noqa
                                device=device)
    return PRMValue(load(prm_path), load(ref_path), tokenizer, beta, reduce=s.value_reduce)


def run_collection(cfg: Config, engine, verifier, sampler, d: distributed.Dist = distributed.Dist()) -> dict:
    """search.collect_dir set: ReST-MCTS* data from training problems (search/collect.py). Under torchrun every rank
    draws the same problems and searches its contiguous slice, seeded with trainer.seed + its rank (so not the
    one-process samples); rank 0 writes every rank's rows, in problem order."""
    from search.collect import collect_rows, write_collection
    from search.methods import mcts_settings

    s = cfg.search
    records = sampler.next(s.collect_size)
    lo, hi = d.share(len(records))
    part = collect_rows(engine, verifier, records[lo:hi], s.budgets[-1], mcts_settings(s, step_split(cfg)),
                        cfg.eval.max_new_tokens, torch.Generator().manual_seed(cfg.trainer.seed + d.rank))
    return write_collection(s.collect_dir, d.gather(part), len(records), write=d.is_main)


def run(cfg: Config, *, log=print) -> dict:
    """Every method at every budget on the held-out problems; per-problem rows appended to search.output as each
    batch of problems finishes, and problems already there (an interrupted evaluation) skipped. Under torchrun
    each rank searches every world-th batch with its own engine (the weights replicated, not sharded: nothing
    trains) and writes its rows to its own file beside search.output; the rows are gathered for the table."""
    d = distributed.init(cfg.trainer.device)
    try:
        return run_ranked(cfg, d, log=log if d.is_main else (lambda line: None))
    finally:
        d.close()


def run_ranked(cfg: Config, d: distributed.Dist, *, log=print) -> dict:
    from reasonrl.data import build_data, chat_renderer
    from reasonrl.models import load_model, load_tokenizer, resolve_device
    from reasonrl.rollout import ENGINES

    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    device = d.device if d.enabled else resolve_device(cfg.trainer.device)
    tok = load_tokenizer(cfg.model.path)
    policy = load_model(cfg.model.path, dtype=cfg.model.dtype, attn_implementation=cfg.model.attn_implementation,
                        device=device)
    sampler, problems = build_data(cfg.data, cfg.eval.size, cfg.trainer.seed,
                                   render=chat_renderer(tok, cfg.data.chat_template, cfg.data.system_prompt))
    engine = Timed(ENGINES.get(cfg.rollout.engine)(policy, tok, cfg.rollout, dtype=cfg.model.dtype,
                                                   seed=cfg.trainer.seed, dist=d), "generate")
    try:  # however the search ends: vLLM's shutdown must come before the process group's (reasonrl/loop.py)
        return search_all(cfg, d, tok, device, sampler, problems, engine, log)
    finally:
        engine.target.close()


def search_all(cfg: Config, d: distributed.Dist, tok, device, sampler, problems: list, engine, log) -> dict:
    """Every method at every budget (or, with search.collect_dir, collection), with the verifier pool open."""
    from verifiers import VerifierPool

    out = Path(cfg.search.output) if cfg.search.output else None
    done = read_results(out)
    rows = []
    with VerifierPool(verifier_options(cfg, "evaluate"), workers=d.cpu_share(cfg.verifier.workers),
                      timeout_s=cfg.verifier.timeout_s, plugins=cfg.verifier.plugins).require(verifier_names(cfg)) as verifier:
        if cfg.search.collect_dir:
            summary = run_collection(cfg, engine, verifier, sampler, d)
            log(json.dumps(summary))
            return {"problems": summary["problems"], "rows": [], "output": None, "collected": summary, "main": d.is_main}
        prm_value = build_value(cfg, tok, device) if cfg.search.value == "prm" and NEEDS_VALUE & set(cfg.search.methods) else None
        for budget in cfg.search.budgets:
            for method in cfg.search.methods:
                mine = search_problems(cfg, method, budget, problems, done, engine, verifier, prm_value,
                                       rank_output(out, d), d)
                results = sorted((r for part in d.gather(mine) for r in part), key=lambda r: r["index"])
                rows.append(summarise(method, budget, results))
                log(json.dumps(rows[-1]))
    return {"problems": len(problems), "rows": rows, "output": str(out) if out else None, "main": d.is_main}


def search_problems(cfg: Config, method: str, budget: int, problems: list, done: dict, engine, verifier,
                    prm_value, out: Path | None, d: distributed.Dist = distributed.Dist()) -> list[dict]:
    """Per-problem rows of `method` at `budget`: the problems go in fixed batches of search.problems_per_call;
    a batch whose rows are all in `done` (an earlier, interrupted evaluation) is taken from there, any other is
    searched and its rows appended to `out` when it finishes. Each batch is seeded from (seed, method, budget,
    its first problem), so a resumed evaluation ends with the rows the uninterrupted one would have written --
    and a batch's rows do not depend on which rank searched it (rank r takes batches r, r + world, ...)."""
    from reasonrl.process import StepScores
    from search.values import StepVerifierValue, VerifierValue

    results = []
    per_call = cfg.search.problems_per_call
    for i, start in enumerate(range(0, len(problems), per_call)):
        if i % d.world != d.rank:
            continue
        batch = problems[start:start + per_call]
        kept = [done.get((method, budget, p.prompt)) for p in batch]
        if all(r is not None for r in kept):
            results += kept
            continue
        generator = torch.Generator().manual_seed(batch_seed(cfg.trainer.seed, method, budget, start))
        value_fn = None
        if method in NEEDS_VALUE:
            raw = {"prm": lambda: prm_value,
                   "step_verifier": lambda: StepVerifierValue(verifier, StepScores(cfg.verifier.options)),
                   "verifier": lambda: VerifierValue(verifier, engine, cfg.eval.max_new_tokens, generator),
                   }[cfg.search.value]()
            value_fn = Timed(raw, "__call__")
        ctx = Context(engine, value_fn, cfg.search, cfg.eval.max_new_tokens, generator, step_split(cfg))
        engine.seconds, t0 = 0.0, time.perf_counter()
        found = METHODS.get(method)(ctx, batch, budget)
        wall = time.perf_counter() - t0
        verdicts = verifier.verify_batch([r.text for r in found], [p.reference for p in batch], [p.verifier for p in batch])
        value_s = value_fn.seconds if value_fn is not None else 0.0
        share = 1 / len(batch)  # each problem carries its share of the batch's time
        new = [{"method": method, "budget": budget, "index": start + k, "prompt": p.prompt, "reference": p.reference,
                "response": r.text, "correct": v.correct, "tokens": r.tokens_used, "simulations": r.simulations,
                "value": r.value, "path": r.path, "tree": r.tree, "seconds": wall * share,
                "engine_s": engine.seconds * share, "value_s": value_s * share}
               for k, (p, r, v) in enumerate(zip(batch, found, verdicts))]
        if out is not None:
            append_rows(out, new)
        results += new
    return results


def append_rows(out: Path, rows: list[dict]) -> None:
    """Append JSON lines, after a newline if an interrupted write left the last line torn."""
    out.parent.mkdir(parents=True, exist_ok=True)
    torn = out.is_file() and out.stat().st_size > 0 and out.read_bytes()[-1:] != b"\n"
    with out.open("a") as f:
        f.write(("\n" if torn else "") + "".join(json.dumps(r, default=str) + "\n" for r in rows))
        f.flush()


def batch_seed(seed: int, method: str, budget: int, first: int) -> int:
    """A generator seed for one batch of problems, the same whether or not the evaluation was resumed."""
    return (seed * 1_000_003 + zlib.crc32(f"{method}:{budget}:{first}".encode())) % 2**63


def rank_output(out: Path | None, d: distributed.Dist) -> Path | None:
    """Where this rank appends its rows: search.output itself on rank 0, <stem>.rank<r><suffix> beside it else."""
    if out is None or d.rank == 0:
        return out
    return out.with_name(f"{out.stem}.rank{d.rank}{out.suffix}")


def read_results(out: Path | None) -> dict[tuple, dict]:
    """Rows an earlier (interrupted) evaluation wrote to `out` and its ranks' files beside it, by (method, budget,
    prompt); a torn last line is dropped (its problem is searched again)."""
    done: dict[tuple, dict] = {}
    if out is None:
        return done
    files = [out, *sorted(out.parent.glob(f"{out.stem}.rank*{out.suffix}"))]
    lines = [line for f in files if f.is_file() for line in f.read_text().splitlines()]
    for line in lines:
        try:
            row = json.loads(line)
            done[(row["method"], row["budget"], row["prompt"])] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return done


def summarise(method: str, budget: int, results: list[dict]) -> dict:
    """One table row from the per-problem rows of a method at a budget."""
    n, wall = len(results), sum(r["seconds"] for r in results)
    engine_s, value_s = sum(r["engine_s"] for r in results), sum(r["value_s"] for r in results)
    return {"method": method, "budget": budget, "accuracy": sum(r["correct"] for r in results) / max(n, 1),
            "tokens_per_problem": sum(r["tokens"] for r in results) / max(n, 1), "wall_s": round(wall, 2),
            "problems_per_min": round(60 * n / max(wall, 1e-9), 1),
            "engine_share": round(engine_s / max(wall, 1e-9), 3), "value_share": round(value_s / max(wall, 1e-9), 3),
            "tree_share": round(max(wall - engine_s - value_s, 0.0) / max(wall, 1e-9), 3)}


def table(rows: list[dict]) -> str:
    head = f"{'method':<10} {'budget':>6} {'accuracy':>8} {'tokens/problem':>14} {'wall s':>7} {'problems/min':>12} {'engine':>6} {'value':>6} {'tree':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<10} {r['budget']:>6} {100 * r['accuracy']:>7.1f}% {r['tokens_per_problem']:>14.1f} "
                     f"{r['wall_s']:>7.1f} {r['problems_per_min']:>12.1f} {r['engine_share']:>6.0%} "
                     f"{r['value_share']:>6.0%} {r['tree_share']:>6.0%}")
    return "\n".join(lines)
