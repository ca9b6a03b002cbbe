"""evaluate.py end to end on the embedded model: every method under a token budget with a PRM as value
function, the table and the per-problem JSONL; collection mode; and train.py consuming what it wrote."""
from __future__ import annotations

import json
import shutil

import evaluate
import train

COMMON = ["eval.size=6", "eval.max_new_tokens=48", "verifier.workers=0"]


def test_every_method_runs_within_its_budget_and_writes_results(tmp_path, embedded_model_dir, capsys):
    ckpt = tmp_path / "run" / "checkpoints" / "latest"
    shutil.copytree(embedded_model_dir, ckpt)
    shutil.copytree(embedded_model_dir, ckpt / "prm")  # a PRM equal to its reference: every value is 0.5
    out = tmp_path / "results.jsonl"
    args = ["--config", "configs/eval_mcts.yaml", f"model.path={ckpt}", f"search.prm_ref={embedded_model_dir}",
            "search.budgets=[96]", "search.max_simulations=6", f"search.output={out}", *COMMON]
    assert evaluate.main(args) == 2  # no run config beside the checkpoint: beta must be given, not guessed
    assert "set search.prm_beta" in capsys.readouterr().err
    (tmp_path / "run" / "config.yaml").write_text("prm:\n  beta: 0.05\n")  # as train.py writes it (resolved)
    rc = evaluate.main(args)
    assert rc == 0
    printed = capsys.readouterr().out
    rows = json.loads(printed.strip().splitlines()[-1])
    assert [r["method"] for r in rows] == ["greedy", "best_of_n", "majority", "beam", "mcts"]
    assert "tokens/problem" in printed and all(0 <= r["accuracy"] <= 1 for r in rows)
    per = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(per) == 5 * 6
    for r in per:
        if r["method"] != "greedy":
            assert r["tokens"] <= 96, r
    assert all(r["tree"]["nodes"] > 0 for r in per if r["method"] == "mcts")


def test_missing_prm_is_a_clear_error(tmp_path, embedded_model_dir, capsys):
    rc = evaluate.main([f"model.path={embedded_model_dir}", "search.methods=[mcts]", *COMMON])
    assert rc == 2 and "no PRM at" in capsys.readouterr().err


def test_collected_traces_and_value_targets_feed_sft_and_the_prm_warm_start(tmp_path, embedded_model_dir, capsys):
    data = tmp_path / "collected"
    rc = evaluate.main([f"model.path={embedded_model_dir}", f"search.collect_dir={data}", "search.collect_size=8",
                        "search.budgets=[192]", "search.max_simulations=8", "search.value=verifier", *COMMON])
    assert rc == 0 and "verified traces" in capsys.readouterr().out
    sft = [json.loads(x) for x in (data / "sft.jsonl").read_text().splitlines()]
    values = [json.loads(x) for x in (data / "values.jsonl").read_text().splitlines()]
    assert sft and values and all(0 <= v["target"] <= 1 for v in values)
    assert all("\\boxed{" in r["response"] for r in sft)
    rc = train.main(["trainer.steps=0", "eval.size=8", "logging.progress=false", "logging.plots=false",
                     f"logging.run_dir={tmp_path}", "logging.name=stages", f"trainer.sft_path={data / 'sft.jsonl'}",
                     "prm.enabled=true", "algorithm.advantage=prime", f"prm.warmstart={data / 'values.jsonl'}"])
    out = capsys.readouterr().out
    assert rc == 0 and f"SFT stage: {len(sft)} traces" in out and "PRM warm start:" in out
    latest = tmp_path / "stages" / "checkpoints" / "latest"  # steps=0: the stages' result is saved
    assert (latest / "model.safetensors").is_file() and (latest / "prm" / "model.safetensors").is_file()


def test_results_are_written_per_batch_and_an_interrupted_evaluation_resumes(tmp_path, embedded_model_dir, capsys):
    """search.problems_per_call=2: rows reach the file batch by batch. An evaluation cut short (the file holds
    its first rows and half a line) is resumed by running it again: whole batches already written are kept, the
    rest searched with the seeds the uninterrupted run used, so the results end as the uninterrupted run's."""
    args = [f"model.path={embedded_model_dir}", "search.methods=[greedy,mcts]", "search.value=verifier",
            "search.budgets=[64]", "search.max_simulations=4", "search.problems_per_call=2", *COMMON]
    whole = tmp_path / "whole.jsonl"
    assert evaluate.main([*args, f"search.output={whole}"]) == 0
    table_whole = capsys.readouterr().out.strip().splitlines()[-1]
    rows = whole.read_text().splitlines()
    assert len(rows) == 12
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(rows[:7]) + "\n" + rows[7][: len(rows[7]) // 2])  # 3 batches and a torn line
    assert evaluate.main([*args, f"search.output={cut}"]) == 0
    key = lambda r: (r["method"], r["index"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "engine_s", "value_s")}  # noqa: E731
    lines = cut.read_text().splitlines()
    assert lines[:7] == rows[:7] and len(lines) == 7 + 1 + 6  # kept, the torn line, the whole mcts batches again
    final = {key(json.loads(x)): json.loads(x) for x in lines[:7] + lines[8:]}  # the last row of a problem counts
    assert [strip(final[k]) for k in sorted(final)] == sorted((strip(json.loads(x)) for x in rows), key=key)
    resumed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(r["method"], r["accuracy"], r["tokens_per_problem"]) for r in resumed] == \
        [(r["method"], r["accuracy"], r["tokens_per_problem"]) for r in json.loads(table_whole)]
