"""Code RL end to end: the embedded code task (configs/code_tiny.yaml) and MBPP (configs/code_mbpp.yaml)."""
from __future__ import annotations

import json
from pathlib import Path


from reasonrl.validate import load_config
from reasonrl.loop import run
from reasonrl.tasks import TASKS
from tests.conftest import REPO, need, shared_data
from verifiers import get_verifier

QUIET = ["logging.progress=false", "logging.plots=false", "checkpoint.every=0"]


def test_function_spec_task_solutions_pass_and_splits_are_disjoint():
    task = TASKS.get("function_spec")()
    code = get_verifier("code")
    for i in range(5):
        rec = task.train_record(0, i)
        assert rec.verifier == "code" and code.verify(task.solution(rec), rec.reference).correct
    held = {r.meta["spec"] for r in task.eval_records(100)}
    assert len(held) == 100 and not held & {task.train_record(1, i).meta["spec"] for i in range(2000)}


def test_code_tiny_runs_with_sandboxed_rewards(tmp_path):
    need((REPO / "assets" / "tiny-code" / "config.json").is_file(),
         "assets/tiny-code is missing: python scripts/build_tiny_model.py --task function_spec")
    cfg = load_config(["--config", str(REPO / "configs" / "code_tiny.yaml"), "trainer.steps=2", "rollout.prompts_per_step=4",
                "eval.size=8", f"logging.run_dir={tmp_path}", "logging.name=code", *QUIET])
    summary = run(cfg)
    rows = [json.loads(x) for x in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    samples = [json.loads(x) for x in (Path(summary["run_dir"]) / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r.get("verifier/ok", 0) > 0 for r in rows)
    assert {round(s["score"] * 3) / 3 for s in samples} <= {0.0, 1 / 3, 2 / 3, 1.0}
    assert any(s["response"].startswith("def f(x):") for s in samples)


def test_mbpp_pipeline_records_every_verdict(tmp_path):
    cfg = load_config(["--config", str(REPO / "configs" / "code_mbpp.yaml"), "trainer.steps=1", "eval.size=4",
                "data.source=file", f"data.path={shared_data('mbpp.jsonl')}",
                f"data.eval_path={shared_data('mbpp_sanitized.jsonl')}",
                f"logging.run_dir={tmp_path}", "logging.name=mbpp", "logging.samples_per_step=16", *QUIET])
    summary = run(cfg)
    row = json.loads((Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()[0])
    counted = sum(v for k, v in row.items() if k.startswith("verifier/"))
    assert counted == 16  # 4 prompts x 4 samples, each with a recorded status
    samples = [json.loads(x) for x in (Path(summary["run_dir"]) / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 16 and all(s["status"] in ("ok", "no_answer", "parse_error", "timeout", "crash") for s in samples)
