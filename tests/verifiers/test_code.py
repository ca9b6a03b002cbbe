"""The code verifier and its sandbox: one test per property a hostile program must not break.

With bubblewrap installed (make setup installs it where it can) the isolation tests run for real;
without it they are skipped with the reason (a failure under REASONRL_STRICT=1), and the rest still run.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import need
from verifiers import get_verifier
from verifiers.code import extract_program, normalise_output
from verifiers.sandbox import bwrap_works, default_python

ADD = {"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]}
GOOD = "def add(a, b):\n    return a + b\n"


@pytest.fixture()
def needs_bwrap():
    need(bwrap_works(default_python()), "bubblewrap is not available here (make setup installs it as root)")


@pytest.fixture(scope="module")
def code():
    return get_verifier("code", timeout_s=3)


def score(code, program, reference=ADD):
    return code.verify(program, reference)


def test_correct_partial_and_wrong_programs(code):
    assert score(code, GOOD).score == 1.0 and score(code, GOOD).correct
    half = score(code, "def add(a, b):\n    return 3 if a == 1 else a + b + 1\n")
    assert half.score == pytest.approx(1 / 3) and not half.correct and half.status == "ok"
    assert score(code, "def add(a, b):\n    return a - b\n").score == 0.0
    assert get_verifier("code", mode="all").verify("def add(a, b):\n    return 3 if a == 1 else 0\n", ADD).score == 0.0


def test_fenced_reply_and_statuses(code):
    assert score(code, f"Here you go:\n```python\n{GOOD}```\nDone.").correct
    assert score(code, "def add(a, b) return a").status == "parse_error"
    assert score(code, "   ").status == "no_answer"
    assert score(code, GOOD, {"nothing": 1}).status == "crash"
    assert extract_program("```py\nx=1\n```\n```python\ny=2\n```") == "y=2\n"


HOSTILE = {  # each returns nothing right for ADD (expected 3, 0, 4) unless it can cheat
    # exiting early, with any status
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "os._exit(0) inside the call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "SystemExit inside the call": "def add(a, b):\n    raise SystemExit(0)\n",
    "atexit forcing status 0": "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    raise SystemExit(0)\n",
    "SIGKILL to itself": "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "sleeps through the test": "import time\ntime.sleep(60)\ndef add(a, b):\n    return a + b\n",
    # objects that claim to be equal
    "__eq__ always true": "class A:\n    def __eq__(self, o): return True\n    __hash__ = None\ndef add(a, b):\n    return A()\n",
    "int subclass with forged __eq__": "class I(int):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return I(-99)\n",
    "str subclass with forged __eq__": "class S(str):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return S('no')\n",
    "list subclass with forged __eq__": "class L(list):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return L()\n",
    "forged __bool__ and __eq__": "class T:\n    def __bool__(self): return True\n    def __eq__(self, o): return True\n"
                                  "def add(a, b):\n    return T()\n",
    "NaN-like object": "class N(float):\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
                       "def add(a, b):\n    return N('nan')\n",
    # patching builtins, the harness or the channel
    "patched AssertionError and isinstance": "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
                                              "builtins.isinstance = lambda *a: True\ndef add(a, b):\n    return None\n",
    "patched codec": "import plaincodec\nplaincodec.encode = lambda *a, **k: True\ndef add(a, b):\n    return None\n",
    "patched json": "import json\njson.dumps = lambda *a, **k: '{\"ok\": true}'\ndef add(a, b):\n    return None\n",
    "forged replies on the channel": "import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b'{\"ok\": true}\\n' * 50)\n"
                                     "    except OSError:\n        pass\ndef add(a, b):\n    return None\n",
    "prints a fake pass report": "print('3/3 tests passed'); print('{\"verdicts\": {\"0\": true}}')\ndef add(a, b):\n    return None\n",
    # re-running itself without the asserts
    "re-execs itself": "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])\n",
    "spawns a fresh harness": "import subprocess, sys\nsubprocess.run([sys.executable, 'candidate.py', 'program.py', '0', '1'])\n"
                              "def add(a, b):\n    return None\n",
    # looking for the tests or the judge
    "hunts for the tests on disk and in /proc": (
        "import os, re\nfound = []\nfor root in ('/', '/proc', '/tmp', '/sandbox', '/work', '/root'):\n"
        "    for dirpath, dirs, files in os.walk(root):\n        if dirpath.count('/') > 4:\n            dirs[:] = []\n"
        "        for f in files:\n            try:\n                t = open(os.path.join(dirpath, f), errors='ignore').read(200000)\n"
        "            except Exception:\n                continue\n            found += re.findall(r'add\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', t)\n"
        "answers = {(int(a), int(b)): int(c) for a, b, c in found}\ndef add(a, b):\n    return answers.get((a, b))\n"),
    "kills every process it can see": "import os, signal\nfor p in os.listdir('/proc'):\n    if p.isdigit() and int(p) != os.getpid():\n"
                                      "        try:\n            os.kill(int(p), signal.SIGKILL)\n        except OSError:\n            pass\n"
                                      "def add(a, b):\n    return None\n",
    # resource abuse
    "fork bomb": "import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
    "memory bomb": "def add(a, b):\n    x = [0] * (10 ** 10)\n    return None\n",
    "floods stdout": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    "huge answer": "def add(a, b):\n    return list(range(10 ** 8))\n",
    "endless generator": "def add(a, b):\n    def g():\n        while True:\n            yield 3\n    return g()\n",
    "deeply nested answer": "def add(a, b):\n    x = []\n    for _ in range(100000):\n        x = [x]\n    return x\n",
    "ignores SIGTERM and spins": "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ndef add(a, b):\n    while True:\n        pass\n",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_programs_never_pass(code, name):
    r = score(code, HOSTILE[name])
    assert r.score == 0.0 and not r.correct, (name, r)
    if os.geteuid() == 0:  # and the host is left as it was: no process of a sandbox uid survives
        assert _stray_processes() == []


@pytest.mark.usefixtures("needs_bwrap")
def test_cannot_read_the_tests_or_other_files_from_disk(code, tmp_path):
    secret = tmp_path / "expected.txt"
    secret.write_text("3")
    os.chmod(tmp_path, 0o755)
    program = (f"def add(a, b):\n    try:\n        return int(open({str(secret)!r}).read())\n"
               f"    except Exception:\n        return -1\n")
    assert score(code, program, {"tests": ["assert add(1, 2) == 3"]}).score == 0.0
    here = str(tmp_path)
    sees = f"import os\ndef add(a, b):\n    return [os.path.exists(p) for p in ('/work', '/root', {here!r})]\n"
    assert score(code, sees, {"tests": ["assert add(1, 2) == [False, False, False]"]}).correct


@pytest.mark.usefixtures("needs_bwrap")
def test_no_network(code):
    import socket

    with socket.socket() as server:  # a listener on the host's loopback the program would reach without isolation
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        program = ("import socket\ndef add(a, b):\n    try:\n"
                   f"        socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                   "        return 'connected'\n    except OSError:\n        return a + b\n")
        assert score(code, program, {"tests": ["assert add(1, 2) == 3"]}).correct  # it ran, but found no network


@pytest.mark.usefixtures("needs_bwrap")
def test_no_writes_outside_the_sandbox(code, tmp_path):
    target = tmp_path / "pwned"
    os.chmod(tmp_path, 0o777)
    program = f"def add(a, b):\n    open({str(target)!r}, 'w').write('x')\n    return a + b\n"
    score(code, program, {"tests": ["assert add(1, 2) == 3"]})
    assert not target.exists()


def _stray_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "uid=,stat=,cmd="], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if ln.split() and int(ln.split()[0]) >= 200_000]


def test_no_surviving_processes_daemons_or_fork_bombs(code):
    daemon = ("import os, time\ndef add(a, b):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
              "            time.sleep(120)\n        os._exit(0)\n    return a + b\n")
    bomb = ("import os\ndef add(a, b):\n    n = 0\n    try:\n        while True:\n            if os.fork() == 0:\n"
            "                import time; time.sleep(60); os._exit(0)\n            n += 1\n    except OSError:\n        return n\n")
    score(code, daemon, {"tests": ["assert add(1, 2) == 3"]})
    r = score(code, bomb, {"tests": ["assert add(1, 2) == 3"]})
    assert not r.correct
    if os.geteuid() == 0:  # sandbox uids exist only when the host can switch to them
        assert _stray_processes() == []


def test_a_hanging_input_fails_only_its_own_test(code):
    program = "def add(a, b):\n    if a == -1:\n        while True:\n            pass\n    return a + b\n"
    r = score(code, program)
    assert r.score == pytest.approx(2 / 3)  # the hang cost one test its 3 s limit; the other two still ran


def test_memory_bomb_is_contained(code):
    r = score(code, "def add(a, b):\n    x = bytearray(8 * 1024**3)\n    return a + b\n")
    assert r.score == 0.0


def test_stdin_stdout_cases(code):
    io = {"io": [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "5 5\n", "stdout": "10"}]}
    assert score(code, "a, b = map(int, input().split())\nprint(a + b)  \n", io).correct
    assert score(code, "import sys\nsys.exit(0)\n", io).score == 0.0
    assert score(code, "print(3)\nimport sys\nsys.exit(1)\n", {"io": [io["io"][0]]}).score == 0.0
    assert score(code, "print('x' * 10**8)\n", io).score == 0.0
    assert normalise_output("a  \r\nb\n\n") == "a\nb"


def test_plain_data_crosses_and_arguments_mutated_in_place(code):
    ref = {"tests": ["x = [3, 1, 2]\nsort_in_place(x)\nassert x == [1, 2, 3]",
                     "assert set(pairs(2)) == {(0, 1), (1, 0)}", "assert math.isclose(half(3), 1.5)",
                     "assert list(gen(3)) == [0, 1, 2]"],
           "setup": "import math"}
    program = ("def sort_in_place(x):\n    x.sort()\ndef pairs(n):\n    return [(i, n - 1 - i) for i in range(n)]\n"
               "def half(v):\n    return v / 2\ndef gen(n):\n    yield from range(n)\n")
    assert score(code, program, ref).correct


def test_stdlib_containers_custom_classes_and_shadowed_builtins(code):
    """What MBPP's reference solutions need: Counter results, objects of the program's own classes built by
    the test setup, builtin types as arguments, modules the tests use unimported, builtins the program shadows."""
    cases = [
        ("from collections import Counter\ndef freq(xs):\n    return Counter(xs)\n",
         {"tests": ["assert freq([1, 1, 2]) == {1: 2, 2: 1}", "assert freq('aab')['a'] == 2"]}),
        ("from collections import defaultdict, OrderedDict\ndef group(xs):\n    d = defaultdict(list)\n"
         "    for x in xs:\n        d[x % 2].append(x)\n    return d\ndef od():\n    return OrderedDict(a=1)\n",
         {"tests": ["assert group([1, 2, 3]) == {1: [1, 3], 0: [2]}", "assert od() == {'a': 1}"]}),
        ("class Node:\n    def __init__(self, v):\n        self.v, self.left = v, None\n"
         "def depth(n):\n    return 0 if n is None else 1 + depth(n.left)\n",
         {"setup": "root = Node(1)\nroot.left = Node(2)\nroot.left.left = Node(3)", "tests": ["assert depth(root) == 3",
          "assert root.left.v == 2"]}),
        ("def keep(xs, t):\n    return [x for x in xs if isinstance(x, t)]\n", {"tests": ["assert keep([1, 'a', 2.5], int) == [1]"]}),
        ("import sys\ndef size(x):\n    return sys.getsizeof(x)\n", {"tests": ["assert size((1, 2)) == sys.getsizeof((1, 2))"]}),
        ("def sum(a, b):\n    return a * b\n", {"tests": ["assert sum(3, 4) == 12"]}),
        ("import re\ndef m(s):\n    return re.search('a(b)', s)\n",
         {"tests": ["assert m('xab')", "assert not m('xx')", "assert m('xab').group(1) == 'b'",
                    "assert m('xab').span() == (1, 3)"]}),
        ("class I(int):\n    def __eq__(self, o): return False\ndef add(a, b):\n    return I(a + b)\n", ADD),
    ]
    for program, reference in cases:
        r = score(code, program, reference)
        assert r.correct, (program, r.detail)


def test_objects_that_stay_in_the_candidate_are_never_compared_or_truth_tested(code):
    program = ("class Box:\n    def __init__(self, v):\n        self.v = v\n    def __eq__(self, o):\n        return True\n"
               "    def __bool__(self):\n        return True\ndef make(v):\n    return Box(v)\n")
    ref = {"tests": ["assert make(1) == 5", "assert make(1)", "assert make(1).v == 1", "assert make(2) != make(2)"]}
    r = score(code, program, ref)
    assert r.score == pytest.approx(2 / 4) and "truth value" in r.detail  # only the attribute and identity tests pass
