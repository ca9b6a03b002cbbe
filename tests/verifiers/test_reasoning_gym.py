"""The reasoning-gym adapter (skipped when reasoning-gym is not installed; a failure under REASONRL_STRICT=1)."""
from __future__ import annotations

import json


from reasonrl.data import load_records
from tests.conftest import need_module
from verifiers import VerifierPool, get_verifier

rg = need_module("reasoning_gym", "pip install reasoning-gym")


def test_records_verify_with_the_tasks_own_scorer(tmp_path):
    from verifiers.reasoning_gym import records

    recs = records("leg_counting", size=5, seed=1, template="{prompt}Answer in \\boxed{}.")
    v = get_verifier("reasoning_gym")
    for r in recs:
        assert r.prompt.endswith("\\boxed{}.") and r.verifier == "reasoning_gym"
        assert v.verify(f"so \\boxed{{{r.reference['answer']}}}", r.reference).correct
        assert v.verify(f"<answer>{r.reference['answer']}</answer>", r.reference).correct
        assert not v.verify("\\boxed{-1}", r.reference).correct
    # written as JSON lines, they load as plain records and verify in the pool's workers
    f = tmp_path / "rg.jsonl"
    f.write_text("".join(json.dumps({"prompt": r.prompt, "reference": r.reference, "verifier": r.verifier}) + "\n"
                         for r in recs))
    loaded, _ = load_records(str(f))
    with VerifierPool(workers=1) as pool:
        out = pool.verify_batch([f"\\boxed{{{r.reference['answer']}}}" for r in loaded], [r.reference for r in loaded],
                                [r.verifier for r in loaded])
    assert all(o.correct for o in out)


def test_bad_reference_is_a_verdict_not_an_exception():
    r = get_verifier("reasoning_gym").verify("\\boxed{1}", {"no": "metadata"})
    assert r.status == "crash" and not r.correct
