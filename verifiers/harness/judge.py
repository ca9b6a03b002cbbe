"""Runs INSIDE the judge's sandbox (stdlib only). Executes the trusted test code; every name the tests
use that the setup does not define is bound to a proxy that calls the candidate's process and gets
back plain data. The verdict is decided here, where no candidate code ever runs, and is written to a
pipe only this process holds.

    python judge.py REQ_FD RESP_FD RESULT_FD        (the spec comes on stdin as JSON)
"""
import ast
import ctypes
import json
import os
import select
import sys
import time

from plaincodec import CodecError, decode, dumps, encode, loads

MAX_LINE = 64 * 1024 * 1024


class CandidateStopped(Exception):
    """The candidate timed out or died: later tests need a fresh candidate process."""


class Channel:
    def __init__(self, req_fd, resp_fd):
        self.req = os.fdopen(req_fd, "w")
        self.resp_fd = resp_fd
        self.buf = b""
        self.deadline = time.monotonic() + 10

    def encode(self, value):
        def handle_of(obj):
            if isinstance(obj, Remote):
                return obj._id
            raise CodecError(f"cannot send a {type(obj).__qualname__} to the candidate (plain data only)")

        return encode(value, handle_of)

    def decode(self, data):
        return decode(data, lambda handle: Remote(self, handle))

    def ask(self, msg):
        try:
            self.req.write(dumps(msg) + "\n")
            self.req.flush()
        except (BrokenPipeError, OSError):
            raise CandidateStopped("candidate process is gone")
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.resp_fd], [], [], left)[0]:
                raise CandidateStopped("candidate timed out")
            chunk = os.read(self.resp_fd, 1 << 20)
            if not chunk:
                raise CandidateStopped("candidate process is gone")
            self.buf += chunk
            if len(self.buf) > MAX_LINE:
                raise CandidateStopped("candidate answer too large")
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            return loads(line.decode())
        except (ValueError, UnicodeDecodeError):
            raise CandidateStopped("candidate sent garbage")


class Remote:
    """A handle on an object that lives in the candidate's process (its function, a class, an instance).

    The judge may call it and get or set its attributes, which round-trip as plain data or further
    handles. It never runs the object's own __eq__, __bool__, __len__ ... here: equality is identity of
    the handle and truth-testing is an error, so a forged comparison can never reach a verdict."""

    __slots__ = ("_channel", "_id")

    def __init__(self, channel, handle):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_id", handle)

    def _ask(self, msg):
        reply = self._channel.ask(msg)
        if "error" in reply:
            raise RuntimeError(f"candidate raised {reply['error']}")
        return reply

    def __call__(self, *args, **kwargs):
        reply = self._ask({"op": "call", "ref": self._id, "args": [self._channel.encode(a) for a in args],
                           "kwargs": {k: self._channel.encode(v) for k, v in kwargs.items()}})
        for arg, after in zip(args, reply.get("args_after") or []):  # in-place changes to arguments
            if after is None:
                continue
            new = self._channel.decode(after)
            if type(arg) is list and type(new) is list:
                arg[:] = new
            elif type(arg) in (dict, set) and type(new) is type(arg):
                arg.clear()
                arg.update(new)
        return self._channel.decode(reply["ok"])

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.decode(self._ask({"op": "getattr", "ref": self._id, "name": name})["ok"])

    def __setattr__(self, name, value):
        self._ask({"op": "setattr", "ref": self._id, "name": name, "value": self._channel.encode(value)})

    def __eq__(self, other):
        return isinstance(other, Remote) and other._id == self._id

    def __hash__(self):
        return hash(("remote", self._id))

    def __bool__(self):
        raise TypeError("the truth value of an object that lives in the candidate's process is not trusted")

    def __repr__(self):
        return f"<candidate object #{self._id}>"


def free_names(sources):
    """Names the code reads but never binds itself (builtins included: the program may shadow them)."""
    loads_, stores = set(), set()
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Name):
                (loads_ if isinstance(node.ctx, ast.Load) else stores).add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                stores.add(node.name)
            elif isinstance(node, ast.arg):
                stores.add(node.arg)
    return sorted(loads_ - stores)


def main():
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no peeking at /proc/<us>/fd
    except Exception:
        pass
    spec = json.loads(sys.stdin.read())
    channel = Channel(int(sys.argv[1]), int(sys.argv[2]))
    result = os.fdopen(int(sys.argv[3]), "w")
    tests, start, per_test = spec["tests"], spec["start"], spec["per_test_s"]
    ns = {"__name__": "__judge__"}
    setup = spec.get("setup") or ""
    verdicts, errors, stopped_at = {}, {}, None
    channel.deadline = time.monotonic() + per_test
    try:  # bind what the setup and the tests use from the program (functions, classes, constants)
        for name in free_names([setup, *tests[start:]]):
            reply = channel.ask({"op": "describe", "name": name})
            if "error" in reply:
                errors["load"] = reply["error"]
                break
            if "ok" in reply:
                ns[name] = channel.decode(reply["ok"])
        if "load" not in errors:
            exec(compile(setup, "setup", "exec"), ns)  # may build objects of the program's classes
    except (CandidateStopped, CodecError) as exc:
        errors["load"] = str(exc)
    for i in range(start, len(tests)):
        if "load" in errors:
            verdicts[i] = False
            continue
        channel.deadline = time.monotonic() + per_test
        try:
            exec(compile(tests[i], f"test_{i}", "exec"), ns)
            verdicts[i] = True
        except CandidateStopped as exc:
            verdicts[i], errors[str(i)], stopped_at = False, str(exc), i
            break
        except BaseException as exc:  # an assertion failed, the candidate raised, a value was not plain data
            verdicts[i], errors[str(i)] = False, f"{type(exc).__name__}: {exc}"[:500]
    result.write(json.dumps({"verdicts": {str(k): v for k, v in verdicts.items()}, "errors": errors,
                             "stopped_at": stopped_at}))
    result.flush()


if __name__ == "__main__":
    main()
