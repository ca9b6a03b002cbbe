"""The verifier pool (hard timeouts, crashes, order, parallelism) and the plug-in mechanisms."""
from __future__ import annotations

import time

import pytest

from reasonrl.registry import UnknownNameError
from verifiers import VerifierPool, get_verifier, resolve
from verifiers.registry import entry_point_names

PLUGIN = "tests.verifiers.plugin_fixtures"


@pytest.fixture(scope="module")
def pool():
    with VerifierPool({"math": {"timeout_s": 5}}, workers=2, timeout_s=1.5, plugins=[PLUGIN]) as p:
        yield p


def test_sympy_bombs_time_out_and_the_batch_returns(pool):
    bombs = ["\\boxed{9^{9^{9^9}}}", "\\boxed{1000000!}", "\\boxed{2^{2^{31}}}"]
    responses = ["\\boxed{2}", *bombs, "\\boxed{3}"]
    t0 = time.perf_counter()
    out = pool.verify_batch(responses, ["2", "1", "1", "1", "3"], ["math"] * 5)
    elapsed = time.perf_counter() - t0
    assert [r.correct for r in out] == [True, False, False, False, True]
    assert all(r.status in ("timeout", "ok") and not r.correct for r in out[1:4])
    assert any(r.status == "timeout" for r in out[1:4])
    assert elapsed < 3 * 1.5 + 6  # bounded by the hard timeout, not by sympy
    again = pool.verify_batch(["\\boxed{5}"], ["5"], ["math"])  # replaced workers serve the next batch
    assert again[0].correct


def test_hard_timeout_kills_and_replaces_the_worker(pool):
    restarts = pool.stats.restarts
    out = pool.verify_batch(["a", "b", "c"], [0.0, 30.0, 0.0], ["test_sleepy"] * 3)
    assert [r.status for r in out] == ["ok", "timeout", "ok"]
    assert "killed" in out[1].detail and pool.stats.restarts == restarts + 1


def test_a_dying_worker_is_a_crash_verdict(pool):
    out = pool.verify_batch(["x", "y", "z"], [0.0, None, 0.0], ["test_sleepy", "test_crasher", "test_sleepy"])
    assert [r.status for r in out] == ["ok", "crash", "ok"] and "died" in out[1].detail


def test_exceptions_and_unknown_names_are_crash_verdicts(pool):
    out = pool.verify_batch(["x", "y"], [None, None], ["test_raiser", "no_such_verifier"])
    assert out[0].status == "crash" and "ZeroDivisionError" in out[0].detail
    assert out[1].status == "crash" and "no_such_verifier" in out[1].detail


def test_work_runs_in_parallel_and_in_order(pool):
    t0 = time.perf_counter()
    out = pool.verify_batch([str(i) for i in range(4)], [0.4] * 4, ["test_sleepy"] * 4)
    assert [r.extracted for r in out] == ["0", "1", "2", "3"]
    assert time.perf_counter() - t0 < 1.4  # 4 x 0.4 s on 2 workers, not 1.6 s serially


def test_inline_mode_verifies_without_workers():
    with VerifierPool(workers=0) as p:
        out = p.verify_batch(["\\boxed{4}", "\\boxed{5}"], ["4", "4"], ["math", "math"])
    assert [r.correct for r in out] == [True, False]


def test_plugins_by_decorator_dotted_path_and_options():
    import tests.verifiers.plugin_fixtures  # noqa: F401  (registers its decorated classes)

    assert resolve("test_sleepy").__name__ == "Sleepy"
    v = get_verifier(f"{PLUGIN}:Exact", case_sensitive=False)
    assert v.verify("ABC", "abc").correct and not get_verifier(f"{PLUGIN}:Exact").verify("ABC", "abc").correct
    with pytest.raises(ValueError, match="does not accept options"):
        get_verifier("math", no_such_option=1)
    with pytest.raises(ValueError, match="has no attribute 'Nope'"):
        get_verifier(f"{PLUGIN}:Nope")
    with pytest.raises(UnknownNameError, match="Did you mean 'math'.*Known: .*code.*math"):
        get_verifier("maths")


def test_entry_point_plugin_from_examples():
    if "countdown" not in entry_point_names():
        pytest.skip("examples/countdown is not installed (make setup installs it)")
    v = get_verifier("countdown")
    assert v.verify("\\boxed{(25-5)*4}", {"numbers": [25, 5, 4], "target": 80}).correct
    assert not v.verify("\\boxed{25*4}", {"numbers": [25, 5, 4], "target": 80}).correct


def test_config_names_plugins_and_verifier_options(tmp_path):
    from reasonrl.config import ConfigError, load

    cfg = load([f"verifier.plugins=[{PLUGIN}]", "data.verifier=test_sleepy", "verifier.options.code.mode=all"])
    assert cfg.verifier.options == {"code": {"mode": "all"}}
    with pytest.raises(ConfigError) as err:
        load(["verifier.plugins=[no_such_module_xyz]", "data.verifier=nonexistent"])
    assert "cannot import" in str(err.value) and "data.verifier='nonexistent'" in str(err.value)


def test_a_plugin_that_does_not_import_is_a_clear_error():
    with VerifierPool(workers=1, plugins=["no_such_plugin_module_xyz"]) as p:
        with pytest.raises(RuntimeError, match="died while starting"):
            p.verify_batch(["x"], ["x"], ["math"])


def test_stragglers_get_extra_workers_so_a_batch_takes_about_one_timeout():
    with VerifierPool(workers=2, timeout_s=2.0, plugins=[PLUGIN]) as p:
        p.verify_batch(["w"], [0.0], ["test_sleepy"])
        t0 = time.perf_counter()
        out = p.verify_batch([str(i) for i in range(14)], [30.0] * 6 + [0.0] * 8, ["test_sleepy"] * 14)
        elapsed = time.perf_counter() - t0
        assert [r.status for r in out] == ["timeout"] * 6 + ["ok"] * 8
        assert elapsed < 2.0 + 4.0  # six 2-second deadlines side by side, not three rounds of two
        assert p.stats.extra_workers >= 1 and len(p._workers) == 2  # extras retired after the batch
