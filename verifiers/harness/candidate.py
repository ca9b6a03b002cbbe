"""Runs INSIDE the candidate's sandbox (stdlib only). Loads the untrusted program, then serves the
judge's requests over two pipes. Nothing here decides a verdict: a tampered copy of this file can only
change what the candidate answers, and it never sees the tests or their expected values.

Objects that cannot cross as plain data stay here in `objects`; the judge holds opaque handles.

    python candidate.py program.py REQ_FD RESP_FD
"""
import os
import sys

from plaincodec import decode, dumps, encode, loads

MUTABLE = (list, dict, set)


class Store:
    def __init__(self):
        self.objects = {}

    def put(self, obj):
        key = id(obj)
        self.objects[key] = obj
        return key

    def get(self, key):
        return self.objects[key]


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
    store = Store()
    for line in req:
        try:
            out = handle(loads(line), ns, store, load_error)
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        resp.write(dumps(out) + "\n")
        resp.flush()


def handle(msg, ns, store, load_error):
    if load_error is not None:
        return {"error": f"program failed to load: {load_error}"[:2000]}
    op = msg["op"]
    if op == "describe":
        name = msg["name"]
        return {"missing": True} if name not in ns else {"ok": encode(ns[name], store.put)}
    target = store.get(msg["ref"])
    if op == "getattr":
        return {"ok": encode(getattr(target, msg["name"]), store.put)}
    if op == "setattr":
        setattr(target, msg["name"], decode(msg["value"], store.get))
        return {"ok": None}
    if op == "call":
        args = [decode(a, store.get) for a in msg["args"]]
        kwargs = {k: decode(v, store.get) for k, v in msg["kwargs"].items()}
        result = target(*args, **kwargs)
        after = [encode(a, store.put) if type(a) in MUTABLE else None for a in args]
        return {"ok": encode(result, store.put), "args_after": after}
    return {"error": f"unknown op {op!r}"}


if __name__ == "__main__":
    main()
