"""Where verifiers come from: a name registry, dotted paths, and the `reasonrl.verifiers` entry points.

    @register_verifier("my_domain")           # by name, in any imported module
    class MyVerifier: ...

    get_verifier("my_domain", **options)       # a registered name
    get_verifier("my_pkg.checks:MyVerifier")   # a dotted path "module:attribute" (imported on demand)
    # or a package that declares   [project.entry-points."reasonrl.verifiers"]  my_domain = "my_pkg.checks:MyVerifier"

The options are the verifier's constructor keywords (from the config's `verifier.options.<name>`).
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from reasonrl.registry import Registry, UnknownNameError

ENTRY_POINT_GROUP = "reasonrl.verifiers"
VERIFIERS: Registry = Registry("verifier")


def register_verifier(name: str):
    """Class decorator: make a verifier available by name."""
    return VERIFIERS.register(name)


def load_dotted(path: str) -> Any:
    """'package.module:Attribute' -> the attribute."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"dotted verifier path {path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} for verifier {path!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r} (verifier {path!r})") from None


def _entry_point(name: str):
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def entry_point_names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def resolve(name: str) -> type:
    """A verifier class from a registered name, a dotted path, or an entry point."""
    if name in VERIFIERS:
        return VERIFIERS.get(name)
    if ":" in name:
        return load_dotted(name)
    cls = _entry_point(name)
    if cls is not None:
        return cls
    known = VERIFIERS.names() + [n for n in entry_point_names() if n not in VERIFIERS]
    msg = VERIFIERS.unknown_message(name)
    if len(known) > len(VERIFIERS.names()):
        msg = msg.rstrip(".") + f"; from entry points: {', '.join(n for n in known if n not in VERIFIERS)}."
    raise UnknownNameError(msg + " A plug-in can also be named by a dotted path 'package.module:ClassName'.")


def get_verifier(name: str, **options: Any):
    """A ready verifier instance; options are its constructor's keyword arguments."""
    cls = resolve(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"verifier {name!r} does not accept options {sorted(options)}: {exc}") from None
