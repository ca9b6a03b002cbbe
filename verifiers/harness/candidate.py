"""Runs INSIDE the candidate's sandbox (stdlib only). Loads the untrusted program, then serves calls
from the judge over two pipes. Nothing here decides a verdict: a tampered copy of this file can only
change what the candidate answers, and it never sees the tests or their expected values.

    python candidate.py program.py REQ_FD RESP_FD
"""
import os
import sys

from plaincodec import decode, dumps, encode, loads

MUTABLE = (list, dict, set)


def main():
    req = os.fdopen(int(sys.argv[2]), "r")
    resp = os.fdopen(int(sys.argv[3]), "w")
    source = open(sys.argv[1]).read()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # the program's prints go nowhere
    ns = {"__name__": "__candidate__", "__builtins__": __builtins__}
    load_error = None
    try:
        exec(compile(source, "program.py", "exec"), ns)
    except BaseException as exc:  # SystemExit included: exiting at import time is a load failure
        load_error = f"{type(exc).__name__}: {exc}"
    for line in req:
        msg = loads(line)
        try:
            out = handle(msg, ns, load_error)
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        resp.write(dumps(out) + "\n")
        resp.flush()


def handle(msg, ns, load_error):
    if load_error is not None:
        return {"error": f"program failed to load: {load_error}"[:2000]}
    name = msg["name"]
    if msg["op"] == "describe":
        if name not in ns:
            return {"missing": True}
        return {"callable": True} if callable(ns[name]) else {"value": encode(ns[name])}
    args = [decode(a) for a in msg["args"]]
    kwargs = {k: decode(v) for k, v in msg["kwargs"].items()}
    result = ns[name](*args, **kwargs)
    after = [encode(a) if type(a) in MUTABLE else None for a in args]
    return {"ok": encode(result), "args_after": after}


if __name__ == "__main__":
    main()
