"""Plain-data codec for values that cross between sandboxed processes (stdlib only: this file is
copied into the sandboxes).

Only exact built-in types are encoded: None, bool, int, float, str, bytes, complex, list, tuple,
set, frozenset, dict, range, and iterators (materialised to a list). Subclasses and other objects
are refused, so an object with a forged __eq__ can never reach the judge: what arrives there is
rebuilt from JSON by this decoder, never unpickled.
"""
import json
import math

MAX_ITEMS = 1_000_000
MAX_DEPTH = 200


class CodecError(ValueError):
    pass


def encode(obj, _depth=0, _budget=None):
    budget = _budget if _budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if budget[0] < 0 or _depth > MAX_DEPTH:
        raise CodecError("value too large or too deeply nested")
    t = type(obj)
    if obj is None or t is bool or t is str or t is int:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else {"$": "float", "v": repr(obj)}
    if t is complex:
        return {"$": "complex", "v": [encode(obj.real), encode(obj.imag)]}
    if t is bytes:
        return {"$": "bytes", "v": obj.hex()}
    if t is range:
        return {"$": "range", "v": [obj.start, obj.stop, obj.step]}
    if t in (list, tuple, set, frozenset):
        items = sorted(obj, key=repr) if t in (set, frozenset) else obj
        return {"$": t.__name__, "v": [encode(x, _depth + 1, budget) for x in items]}
    if t is dict:
        return {"$": "dict", "v": [[encode(k, _depth + 1, budget), encode(v, _depth + 1, budget)] for k, v in obj.items()]}
    if hasattr(t, "__next__") and t.__module__ == "builtins":  # generator, map, filter, zip ...
        out = []
        for x in obj:
            out.append(encode(x, _depth + 1, budget))
        return {"$": "iter", "v": out}
    raise CodecError(f"cannot pass a {t.__module__}.{t.__qualname__} between processes (plain data only)")


def decode(data, _depth=0):
    if _depth > MAX_DEPTH:
        raise CodecError("too deeply nested")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        raise CodecError("untagged list")
    if not isinstance(data, dict) or set(data) != {"$", "v"}:
        raise CodecError("malformed value")
    tag, v = data["$"], data["v"]
    if tag == "float":
        if v not in ("nan", "inf", "-inf"):
            raise CodecError("bad float")
        return float(v)
    if tag == "complex":
        return complex(decode(v[0], _depth + 1), decode(v[1], _depth + 1))
    if tag == "bytes":
        return bytes.fromhex(v)
    if tag == "range":
        return range(*[int(x) for x in v])
    if tag in ("list", "tuple", "set", "frozenset", "iter"):
        items = [decode(x, _depth + 1) for x in v]
        return iter(items) if tag == "iter" else {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
    if tag == "dict":
        return {decode(k, _depth + 1): decode(x, _depth + 1) for k, x in v}
    raise CodecError(f"unknown tag {tag!r}")


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def loads(line: str):
    return json.loads(line)
