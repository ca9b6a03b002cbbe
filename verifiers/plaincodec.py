"""Plain-data codec for values that cross between sandboxed processes (stdlib only: this file is
copied into the sandboxes).

What crosses, rebuilt on the other side from JSON by this decoder (never unpickled):
  * None, bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict, range;
  * subclasses of those, *downcast* to the base type through the base type's own methods, so an
    override such as a forged __eq__ or __iter__ never runs and never crosses;
  * the stdlib containers and numbers Counter, OrderedDict, defaultdict (as dict), deque, Fraction,
    Decimal, and namedtuples (as tuples);
  * iterators (generators, map, zip, ...) materialised to a list;
  * re.Match objects, as read-only MatchData (groups and spans; truthy);
  * builtin types (`int`, `str`, ...) and stdlib modules, by name.
Anything else goes through `ref`, a hook that stores the object on the sending side and sends an
opaque handle instead (see harness/judge.py: the judge can only get and set attributes of such an
object and call it; it never compares it or asks for its truth value).
"""
import collections
import decimal
import fractions
import json
import math
import re
import sys
import types

MAX_ITEMS = 1_000_000
MAX_DEPTH = 200
BUILTIN_TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bool, list, tuple, set, frozenset, dict,
                                         range, type(None), object)}
SEQUENCES = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "deque": collections.deque}


class CodecError(ValueError):
    pass


class MatchData:
    """What crosses of an re.Match (re.Match cannot be subclassed, so its data is trustworthy): the
    groups and spans, read-only; truthy, as a match is."""

    def __init__(self, groups, spans, named):
        self._groups, self._spans, self._named = list(groups), [tuple(x) for x in spans], dict(named)

    def group(self, *which):
        keys = which or (0,)
        values = [self._groups[k] if isinstance(k, int) else self._named[k] for k in keys]
        return values[0] if len(values) == 1 else tuple(values)

    def __getitem__(self, k):
        return self.group(k)

    def groups(self, default=None):
        return tuple(default if g is None else g for g in self._groups[1:])

    def groupdict(self, default=None):
        return {k: default if v is None else v for k, v in self._named.items()}

    def span(self, k=0):
        return self._spans[k]

    def start(self, k=0):
        return self._spans[k][0]

    def end(self, k=0):
        return self._spans[k][1]

    def __bool__(self):
        return True

    def __repr__(self):
        return f"<match span={self._spans[0]} match={self._groups[0]!r}>"


def encode(obj, ref=None, _depth=0, _budget=None):
    """obj -> JSON-able data. `ref(obj) -> int` stores an object that cannot cross and returns its handle."""
    budget = _budget if _budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if budget[0] < 0 or _depth > MAX_DEPTH:
        raise CodecError("value too large or too deeply nested")

    def sub(x):
        return encode(x, ref, _depth + 1, budget)

    t = type(obj)
    if obj is None or t is bool:  # bool cannot be subclassed
        return obj
    if isinstance(obj, int):
        return int.__index__(obj) if t is not int else obj
    if isinstance(obj, float):
        v = float.__float__(obj)
        return v if math.isfinite(v) else {"$": "float", "v": repr(v)}
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, complex):
        return {"$": "complex", "v": [sub(complex.__getattribute__(obj, "real")), sub(complex.__getattribute__(obj, "imag"))]}
    if isinstance(obj, bytes):
        return {"$": "bytes", "v": bytes.hex(obj)}
    if t is range:
        return {"$": "range", "v": [obj.start, obj.stop, obj.step]}
    if t is fractions.Fraction:
        return {"$": "fraction", "v": [obj.numerator, obj.denominator]}
    if t is decimal.Decimal:
        return {"$": "decimal", "v": str(obj)}
    if t is collections.Counter:
        return {"$": "counter", "v": [[sub(k), sub(v)] for k, v in dict.items(obj)]}
    if t is collections.OrderedDict:
        return {"$": "ordereddict", "v": [[sub(k), sub(v)] for k, v in dict.items(obj)]}
    if isinstance(obj, dict):  # dict, defaultdict, other subclasses: their items, as a plain dict
        return {"$": "dict", "v": [[sub(k), sub(v)] for k, v in dict.items(obj)]}
    if t is collections.deque:
        return {"$": "deque", "v": [sub(x) for x in obj]}
    if isinstance(obj, (set, frozenset)):
        base = frozenset if isinstance(obj, frozenset) else set
        items = [sub(x) for x in base.__iter__(obj)]
        return {"$": base.__name__, "v": sorted(items, key=lambda e: json.dumps(e, sort_keys=True))}
    if isinstance(obj, (list, tuple)):
        base = list if isinstance(obj, list) else tuple
        return {"$": base.__name__, "v": [sub(x) for x in base.__iter__(obj)]}
    if t is re.Match:
        n = len(obj.groups()) + 1
        return {"$": "match", "v": [[sub(obj.group(i)) for i in range(n)], [list(obj.span(i)) for i in range(n)],
                                    [[k, sub(x)] for k, x in obj.groupdict().items()]]}
    if isinstance(obj, type) and BUILTIN_TYPES.get(obj.__name__) is obj:
        return {"$": "type", "v": obj.__name__}
    if isinstance(obj, types.ModuleType) and obj.__name__.split(".")[0] in sys.stdlib_module_names:
        return {"$": "module", "v": obj.__name__}
    if isinstance(obj, (types.GeneratorType, map, filter, zip, enumerate, reversed)) or (
            hasattr(t, "__next__") and t.__module__ == "builtins"):
        return {"$": "iter", "v": [sub(x) for x in obj]}
    if ref is not None:
        return {"$": "ref", "v": int(ref(obj))}
    raise CodecError(f"cannot pass a {t.__module__}.{t.__qualname__} between processes")


def decode(data, ref=None, _depth=0):
    """JSON data -> value. `ref(handle)` turns a handle back into an object (or a proxy for it)."""
    if _depth > MAX_DEPTH:
        raise CodecError("too deeply nested")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if not isinstance(data, dict) or set(data) != {"$", "v"}:
        raise CodecError("malformed value")
    tag, v = data["$"], data["v"]

    def sub(x):
        return decode(x, ref, _depth + 1)

    if tag == "float":
        if v not in ("nan", "inf", "-inf"):
            raise CodecError("bad float")
        return float(v)
    if tag == "complex":
        return complex(sub(v[0]), sub(v[1]))
    if tag == "bytes":
        return bytes.fromhex(v)
    if tag == "range":
        return range(*[int(x) for x in v])
    if tag == "fraction":
        return fractions.Fraction(int(v[0]), int(v[1]))
    if tag == "decimal":
        return decimal.Decimal(str(v))
    if tag in SEQUENCES:
        return SEQUENCES[tag](sub(x) for x in v)
    if tag == "iter":
        return iter([sub(x) for x in v])
    if tag in ("dict", "counter", "ordereddict"):
        kind = {"dict": dict, "counter": collections.Counter, "ordereddict": collections.OrderedDict}[tag]
        return kind(dict((sub(k), sub(x)) for k, x in v))  # Counter(pairs) would count the pairs
    if tag == "match":
        return MatchData([sub(x) for x in v[0]], v[1], {k: sub(x) for k, x in v[2]})
    if tag == "type":
        if v not in BUILTIN_TYPES:
            raise CodecError(f"not a builtin type: {v!r}")
        return BUILTIN_TYPES[v]
    if tag == "module":
        if str(v).split(".")[0] not in sys.stdlib_module_names:
            raise CodecError(f"not a standard-library module: {v!r}")
        import importlib

        return importlib.import_module(str(v))
    if tag == "ref":
        if ref is None:
            raise CodecError("object handles are not accepted here")
        return ref(int(v))
    raise CodecError(f"unknown tag {tag!r}")


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def loads(line: str):
    return json.loads(line)
