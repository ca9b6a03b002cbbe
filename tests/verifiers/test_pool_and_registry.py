"""The verifier pool (hard timeouts, crashes, order, parallelism) and the plug-in mechanisms."""
from __future__ import annotations

import pytest

from reasonrl.registry import UnknownNameError
from verifiers import VerifierPool, VerifierSetupError, get_verifier, resolve
from tests.conftest import need
from verifiers.registry import entry_point_names

PLUGIN = "tests.verifiers.plugin_fixtures"


@pytest.fixture(scope="module")
def pool():
    with VerifierPool({"math": {"timeout_s": 5}}, workers=2, timeout_s=1.5, plugins=[PLUGIN]) as p:
        yield p


def test_sympy_bombs_time_out_and_the_batch_returns(pool):
    bombs = ["\\boxed{9^{9^{9^9}}}", "\\boxed{1000000!}", "\\boxed{2^{2^{31}}}"]
    responses = ["\\boxed{2}", *bombs, "\\boxed{3}"]
    restarts = pool.stats.restarts
    out = pool.verify_batch(responses, ["2", "1", "1", "1", "3"], ["math"] * 5)
    assert [r.correct for r in out] == [True, False, False, False, True]
    assert all(r.status in ("timeout", "ok") and not r.correct for r in out[1:4])
    timed_out = [r for r in out[1:4] if r.status == "timeout"]
    assert timed_out and all("worker killed" in r.detail for r in timed_out)  # the hard timeout ended them, not sympy
    assert pool.stats.restarts == restarts + len(timed_out)
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


def test_a_segfaulting_worker_is_a_crash_verdict_and_is_replaced(pool):
    restarts = pool.stats.restarts
    out = pool.verify_batch(["x", "y", "z"], [0.0, None, 0.0], ["test_sleepy", "test_segfaulter", "test_sleepy"])
    assert [r.status for r in out] == ["ok", "crash", "ok"] and "SIGSEGV" in out[1].detail
    assert pool.stats.restarts == restarts + 1
    assert pool.verify_batch(["\\boxed{5}"], ["5"], ["math"])[0].correct


def test_workers_killed_from_outside_mid_batch_give_crash_verdicts_and_no_lost_item(pool):
    """What the OOM killer does: SIGKILL every worker while each holds an item. Every item still gets a verdict
    (crash for the ones held, ok for the rest, served by the replacements), in order, and the pool goes on."""
    import os
    import signal
    import threading
    import time

    pool.verify_batch(["warm"], [0.0], ["test_sleepy"])  # the workers are up and have imported their verifiers

    def kill_workers():  # as soon as the two workers hold items 0 and 1 (each sleeps 1 s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            held = [w for w in list(pool._workers) if w.item in (0, 1)]
            if len(held) == 2:
                for w in held:
                    os.kill(w.process.pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_workers)
    killer.start()
    out = pool.verify_batch([f"r{i}" for i in range(6)], [1.0, 1.0, 0.0, 0.0, 0.0, 0.0], ["test_sleepy"] * 6)
    killer.join()
    assert len(out) == 6 and [r.status for r in out[:2]] == ["crash", "crash"]
    assert all("SIGKILL" in r.detail for r in out[:2]) and [r.status for r in out[2:]] == ["ok"] * 4
    assert [r.extracted for r in out[2:]] == ["r2", "r3", "r4", "r5"]  # each verdict belongs to its own item
    assert pool.verify_batch(["\\boxed{7}"], ["7"], ["math"])[0].correct


def test_a_worker_killed_while_idle_is_replaced_and_no_item_is_lost(pool):
    import os
    import signal

    pool.start()  # every worker up and idle
    restarts = pool.stats.restarts
    for w in list(pool._workers):  # between two batches: nobody holds an item
        os.kill(w.process.pid, signal.SIGKILL)
        w.process.join(timeout=5)
    out = pool.verify_batch([f"r{i}" for i in range(4)], [0.0] * 4, ["test_sleepy"] * 4)
    assert [r.status for r in out] == ["ok"] * 4 and [r.extracted for r in out] == ["r0", "r1", "r2", "r3"]
    assert pool.stats.restarts >= restarts + 2


def test_exceptions_and_unknown_names_are_crash_verdicts(pool):
    out = pool.verify_batch(["x", "y"], [None, None], ["test_raiser", "no_such_verifier"])
    assert out[0].status == "crash" and "ZeroDivisionError" in out[0].detail
    assert out[1].status == "crash" and "no_such_verifier" in out[1].detail


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that hold one moment in common."""
    return max(sum(a <= start < b for a, b in spans) for start, _ in spans)


def test_most_at_once_counts_overlaps():
    assert most_at_once([(0, 1), (2, 3)]) == 1 and most_at_once([(0, 2), (1, 3), (1.5, 4)]) == 3


def test_work_runs_in_parallel_and_in_order(pool):
    pool.start()  # both workers up, so neither takes every item while the other is still importing
    out = pool.verify_batch([str(i) for i in range(4)], [0.4] * 4, ["test_sleepy"] * 4)
    assert [r.extracted for r in out] == ["0", "1", "2", "3"]
    ran = [tuple(map(float, r.detail.split())) for r in out]  # each item's own start / end, in its worker
    assert most_at_once(ran) >= 2  # not one after another


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
    need("countdown" in entry_point_names(), "examples/countdown is not installed (make setup installs it)")
    v = get_verifier("countdown")
    assert v.verify("\\boxed{(25-5)*4}", {"numbers": [25, 5, 4], "target": 80}).correct
    assert not v.verify("\\boxed{25*4}", {"numbers": [25, 5, 4], "target": 80}).correct


def test_config_names_plugins_and_verifier_options(tmp_path, monkeypatch):
    """Validation checks names and modules without importing plug-ins; the pool imports them and resolves
    the names a plug-in registers."""
    import sys

    from reasonrl.config import ConfigError
    from reasonrl.validate import load_config

    (tmp_path / "late_plugin_xyz.py").write_text(
        "from verifiers import VerificationResult, register_verifier\n\n\n@register_verifier('late_xyz')\n"
        "class Late:\n    def verify(self, response, reference):\n"
        "        return VerificationResult(1.0, True, 'ok', response)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(["verifier.plugins=[late_plugin_xyz]", "data.verifier=late_xyz", "verifier.options.code.mode=all"])
    assert cfg.verifier.options == {"code": {"mode": "all"}} and "late_plugin_xyz" not in sys.modules  # not run
    with VerifierPool(cfg.verifier.options, workers=0, plugins=cfg.verifier.plugins) as p:
        assert "late_plugin_xyz" in sys.modules
        p.require({"data.verifier": "late_xyz"})
        assert p.verify_batch(["x"], ["x"], ["late_xyz"])[0].correct
        with pytest.raises(VerifierSetupError, match="data.verifier='nonexistent'"):
            p.require({"data.verifier": "nonexistent"})
    with pytest.raises(ConfigError) as err:
        load_config(["verifier.plugins=[no_such_module_xyz]"])
    assert "verifier.plugins='no_such_module_xyz': no such module" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(["data.verifier=nonexistent"])  # no plug-in could register it
    assert "data.verifier='nonexistent'" in str(err.value) and "Known: " in str(err.value)


def test_a_plugin_that_does_not_import_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_xyz.py").write_text("raise RuntimeError('half-written plug-in')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(VerifierSetupError, match="verifier.plugins='broken_plugin_xyz': cannot import it.*half-written"):
        VerifierPool(workers=1, plugins=["broken_plugin_xyz"])


def test_stragglers_get_extra_workers_so_a_batch_takes_about_one_timeout():
    with VerifierPool(workers=2, timeout_s=2.0, plugins=[PLUGIN]) as p:
        p.verify_batch(["w"], [0.0], ["test_sleepy"])
        out = p.verify_batch([str(i) for i in range(14)], [30.0] * 6 + [0.0] * 8, ["test_sleepy"] * 14)
        assert [r.status for r in out] == ["timeout"] * 6 + ["ok"] * 8
        assert most_at_once(p.spans[:6]) >= 3  # slow items' deadlines ran side by side, beyond the 2 workers
        assert p.stats.extra_workers >= 1 and len(p._workers) == 2  # extras retired after the batch
