"""The procedural task and the jsonl loader."""
from __future__ import annotations

import json

import pytest

from reasonrl.data import DataError, FileSampler, TaskSampler, load_jsonl
from reasonrl.tasks import TASKS
from reasonrl.tasks.arithmetic import ArithmeticTask


def test_problems_are_deterministic_and_correct():
    t = ArithmeticTask(ops="+-*")
    a, b = t.train_record(0, 17), t.train_record(0, 17)
    assert a == b and a != t.train_record(1, 17)
    for i in range(200):
        r = t.train_record(0, i)
        assert eval(r.meta["expression"]) == int(r.reference)  # the printed expression means what it says
        lines = ArithmeticTask.solution(r).splitlines()
        assert lines[-1] == f"\\boxed{{{r.reference}}}" and len(lines) == r.meta["num_operands"]


def test_train_and_held_out_splits_are_disjoint_and_fixed():
    t = ArithmeticTask()
    held = t.eval_records(300)
    assert len({r.meta["expression"] for r in held}) == 300
    assert held == ArithmeticTask().eval_records(300)  # independent of any seed
    train = {t.train_record(s, i).meta["expression"] for s in (0, 1) for i in range(3000)}
    assert not train & {r.meta["expression"] for r in held}


def test_difficulty_knobs():
    t = TASKS.get("arithmetic")(min_operands=4, max_operands=4, max_value=5, ops="-")
    for i in range(50):
        r = t.train_record(0, i)
        assert r.meta["num_operands"] == 4 and "+" not in r.meta["expression"]
        assert all(0 <= int(x) <= 5 for x in r.meta["expression"].split("-") if x)


def test_task_sampler_cursor_resumes_the_stream():
    s = TaskSampler(ArithmeticTask(), seed=3)
    first = s.next(5) + s.next(5)
    s2 = TaskSampler(ArithmeticTask(), seed=3)
    s2.next(5)
    state = s2.state_dict()
    s3 = TaskSampler(ArithmeticTask(), seed=3)
    s3.load_state_dict(state)
    assert s3.next(5) == first[5:]


def test_jsonl_malformed_rows_are_skipped_and_counted(tmp_path):
    f = tmp_path / "d.jsonl"
    rows = [json.dumps({"prompt": "1+1?", "reference": "2"}), "{not json", json.dumps([1, 2]),
            json.dumps({"prompt": "", "reference": "1"}), json.dumps({"prompt": "x"}), "",
            json.dumps({"question": "2+2?", "answer": 4, "verifier": "math", "id": 7})]
    f.write_text("\n".join(rows) + "\n")
    recs, report = load_jsonl(f)
    assert len(recs) == 1 and report.kept == 1 and report.skipped == 5
    assert "d.jsonl:2: not valid JSON" in report.summary("d") and "d.jsonl:5" in report.summary("d")
    recs, report = load_jsonl(f, prompt_field="question", reference_field="answer")
    assert [(r.prompt, r.reference, r.meta) for r in recs] == [("2+2?", 4, {"id": 7})]


def test_jsonl_with_no_usable_row_or_no_file_is_a_clear_error(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text("nope\n")
    with pytest.raises(DataError, match="no usable rows"):
        load_jsonl(f)
    with pytest.raises(DataError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_file_sampler_reshuffles_each_epoch_deterministically(tmp_path):
    from reasonrl.types import Record

    recs = [Record(str(i), str(i)) for i in range(6)]
    a = [r.prompt for r in FileSampler(recs, seed=0).next(12)]
    assert sorted(a[:6]) == sorted(a[6:]) == [str(i) for i in range(6)] and a[:6] != a[6:]
    assert a == [r.prompt for r in FileSampler(recs, seed=0).next(12)]
