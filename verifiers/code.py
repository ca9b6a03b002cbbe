"""Code checking: run a candidate program against tests in the sandbox (verifiers/sandbox.py).

The reference is either
  {"tests": ["assert f(1) == 2", ...], "setup": "import math"}   assert statements (MBPP / HumanEval), or
  {"io": [{"stdin": "1 2\\n", "stdout": "3\\n"}, ...]}          stdin -> expected stdout pairs.
The response is the program, or a reply holding a fenced ```python block (the last one is used).
With "prefix" (and "entry_point") in the reference, as HumanEval has, a response that does not
define the entry point itself is taken as the completion of the prefix.
The score is the fraction of tests passed (`mode="fraction"`) or 1/0 for all-or-nothing (`mode="all"`).

How the verdict is kept out of the program's reach (assert tests). Two sandboxed processes run
side by side, each under its own throw-away uid:
  * the **candidate** process (verifiers/harness/candidate.py) loads the program and answers calls;
    it is never given the tests, the setup or any expected value, in memory or on disk;
  * the **judge** process (verifiers/harness/judge.py) runs the trusted setup and test code; every
    name the tests use that the setup does not define is bound to a proxy that sends the call's
    arguments to the candidate and receives the return value back as plain data (exact built-in
    types, rebuilt from JSON: verifiers/plaincodec.py).
So the comparisons `==`, `isclose`, `sorted(...)` run in the judge on honest built-in values: an
object whose `__eq__` is always true cannot cross; patching builtins, the harness or the test
runner only changes the candidate's own process; `sys.exit(0)`, `os._exit(0)` or atexit hooks just
end the candidate, and the calls the judge still needs fail; re-running itself without the asserts
changes nothing because the asserts never ran there. The judge's verdict goes to a pipe that only
it holds. A call that outlasts its test's time budget kills the candidate; the remaining tests get
a fresh one (so one hanging input does not fail every later test).
Limitations: arguments and results must be plain data (no lambdas or custom objects), and only
top-level names of the program can be called (in-place changes to list / dict / set arguments are
copied back).

For stdin/stdout tests the program runs as a script; a case passes when it exits with status 0 and
its output equals the expected one after stripping trailing whitespace on each line and trailing
blank lines. Both are checked by this (host) process, never by the program.
"""
from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verifiers.base import VerificationResult
from verifiers.registry import register_verifier
from verifiers.sandbox import Limits, Sandbox

HERE = Path(__file__).resolve().parent
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_program(response: str) -> str:
    """The last fenced code block of a reply, or the whole reply when it has none."""
    blocks = _FENCE.findall(response)
    return blocks[-1] if blocks else response


def _harness_files() -> dict[str, str]:
    return {"plaincodec.py": (HERE / "plaincodec.py").read_text(),
            "candidate.py": (HERE / "harness" / "candidate.py").read_text(),
            "judge.py": (HERE / "harness" / "judge.py").read_text()}


def normalise_output(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).rstrip("\n")


@register_verifier("code")
@dataclass
class CodeVerifier:
    mode: str = "fraction"  # fraction | all
    timeout_s: float = 5.0  # wall-clock budget per test
    memory_mb: int = 1024
    max_program_chars: int = 100_000
    sandbox: str = "auto"  # auto (bubblewrap when it works) | bwrap | none
    python: str | None = None
    _box: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("fraction", "all"):
            raise ValueError(f"mode must be 'fraction' or 'all', got {self.mode!r}")
        use = {"auto": "auto", "bwrap": True, "none": False}[self.sandbox]
        limits = Limits(wall_s=self.timeout_s, cpu_s=max(1, int(self.timeout_s) + 1), memory_mb=self.memory_mb)
        self._box = Sandbox(limits, python=self.python, use_bwrap=use)

    def verify(self, response: str, reference: Any) -> VerificationResult:
        if isinstance(reference, str):
            try:
                reference = json.loads(reference)
            except ValueError:
                return VerificationResult(0.0, False, "crash", None, "code reference is not a dict or JSON")
        if not isinstance(reference, dict) or not (reference.get("tests") or reference.get("io")):
            return VerificationResult(0.0, False, "crash", None, "code reference needs 'tests' or 'io'")
        program = extract_program(response)
        prefix, entry = reference.get("prefix"), reference.get("entry_point")
        if prefix and not (entry and re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", program, re.MULTILINE)):
            program = prefix + program  # HumanEval-style: the response completes the given stub
        if not program.strip():
            return VerificationResult(0.0, False, "no_answer", None, "empty program")
        if len(program) > self.max_program_chars:
            return VerificationResult(0.0, False, "parse_error", program[:200], "program too long")
        try:
            ast.parse(program)
        except (SyntaxError, ValueError) as exc:
            return VerificationResult(0.0, False, "parse_error", program[:200], f"SyntaxError: {exc}")
        if reference.get("tests"):
            passed, details, timed_out = self._assert_tests(program, list(reference["tests"]),
                                                            reference.get("setup") or "")
        else:
            passed, details, timed_out = self._io_tests(program, list(reference["io"]))
        frac = sum(passed) / len(passed)
        score = frac if self.mode == "fraction" else float(all(passed))
        status = "timeout" if timed_out and not any(passed) else "ok"
        return VerificationResult(score, all(passed), status, program[:200],
                                  f"{sum(passed)}/{len(passed)} tests passed; {details}"[:2000])

    # --- assert tests: candidate and judge processes ---------------------------------------
    def _assert_tests(self, program: str, tests: list[str], setup: str) -> tuple[list[bool], str, bool]:
        verdicts: list[bool | None] = [None] * len(tests)
        errors: dict[str, str] = {}
        timed_out, start = False, 0
        while start < len(tests):
            report = self._judge_round(program, tests, setup, start)
            errors.update(report.get("errors", {}))
            for k, v in report.get("verdicts", {}).items():
                verdicts[int(k)] = bool(v)
            stopped = report.get("stopped_at")
            if report.get("failed"):
                timed_out = timed_out or report.get("timed_out", False)
                break
            if stopped is None:
                break
            timed_out = timed_out or "timed out" in errors.get(str(stopped), "")
            start = stopped + 1
        passed = [bool(v) for v in verdicts]
        return passed, "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:5]), timed_out

    def _judge_round(self, program: str, tests: list[str], setup: str, start: int) -> dict:
        req_r, req_w = os.pipe()  # judge -> candidate
        resp_r, resp_w = os.pipe()  # candidate -> judge
        res_r, res_w = os.pipe()  # judge -> host: the verdict
        files = _harness_files()
        py = self._box.python
        cand = judge = None
        try:
            cand = self._box.start({"program.py": program, "plaincodec.py": files["plaincodec.py"],
                                    "candidate.py": files["candidate.py"]},
                                   [py, "candidate.py", "program.py", str(req_r), str(resp_w)],
                                   pass_fds=(req_r, resp_w))
            judge = self._box.start({"plaincodec.py": files["plaincodec.py"], "judge.py": files["judge.py"]},
                                    [py, "judge.py", str(req_w), str(resp_r), str(res_w)],
                                    pass_fds=(req_w, resp_r, res_w))
            for fd in (req_r, req_w, resp_r, resp_w, res_w):  # only the children hold these now
                os.close(fd)
            spec = json.dumps({"tests": tests, "setup": setup, "start": start, "per_test_s": self.timeout_s})
            budget = self.timeout_s * (len(tests) - start + 1) + 5
            outcome = judge.finish(spec.encode(), wall_s=budget)
            raw = _read_all(res_r)
        finally:
            for running in (cand, judge):
                if running is not None:
                    running.kill()
            for fd in (req_r, req_w, resp_r, resp_w, res_r, res_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            return json.loads(raw)
        except ValueError:
            tail = outcome.stderr.decode(errors="replace")[-300:]
            return {"failed": True, "timed_out": outcome.timed_out,
                    "errors": {"judge": f"no verdict (exit {outcome.returncode}, timed out {outcome.timed_out}): {tail}"}}

    # --- stdin / stdout tests --------------------------------------------------------------
    def _io_tests(self, program: str, cases: list[dict]) -> tuple[list[bool], str, bool]:
        passed, notes, timed_out = [], [], False
        for i, case in enumerate(cases):
            out = self._box.run({"program.py": program}, [self._box.python, "program.py"],
                                stdin=str(case.get("stdin", "")).encode())
            ok = (out.returncode == 0 and not out.output_truncated
                  and normalise_output(out.stdout.decode(errors="replace")) == normalise_output(str(case.get("stdout", ""))))
            timed_out = timed_out or out.timed_out
            passed.append(ok)
            if not ok and len(notes) < 3:
                why = "timed out" if out.timed_out else f"exit {out.returncode}" if out.returncode else "wrong output"
                notes.append(f"case {i}: {why}")
        return passed, "; ".join(notes), timed_out


def _read_all(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
