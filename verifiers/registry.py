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

from reasonrl.registry import Problems, Registry, UnknownNameError
from verifiers.extract import EXTRACTION_MODES

ENTRY_POINT_GROUP = "reasonrl.verifiers"
VERIFIERS: Registry = Registry("verifier")


class VerifierSetupError(ValueError):
    """A plug-in that does not import, or a verifier name that nothing registers: found when the pool starts."""


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


def import_plugins(plugins: list[str]) -> None:
    """Import the plug-in modules (their @register_verifier classes register themselves)."""
    for module in plugins:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise VerifierSetupError(f"verifier.plugins={module!r}: cannot import it ({type(exc).__name__}: {exc}); "
                                     "install the package or fix the module path") from None


def require(names: dict[str, str]) -> None:
    """Every verifier name resolves (call after import_plugins); names maps a config key to the name it gives."""
    problems = []
    for key, name in names.items():
        try:
            resolve(name)
        except (UnknownNameError, ValueError) as exc:
            problems.append(f"{key}={name!r}: {exc}")
    if problems:
        raise VerifierSetupError("\n".join(problems))


def check_verifier(v, names: dict[str, str]) -> Problems:
    """The verifier section (VerifierConfig) and the names the config gives verifiers (key -> name), without
    importing plug-ins: they are imported when the pool starts (VerifierPool), and a name only a plug-in can
    register is checked then. Here: plug-in modules must exist, and any other name must be a built-in, an
    entry point or a dotted path whose module exists."""
    p = Problems()
    p.need(v.workers is None or v.workers >= 0, "verifier.workers", v.workers, "must be >= 0, or null for one per core")
    p.need(v.timeout_s > 0, "verifier.timeout_s", v.timeout_s, "must be > 0")
    p.one_of(("auto", *EXTRACTION_MODES), "verifier.extraction", v.extraction)
    for name, opts in v.options.items():
        p.need(isinstance(opts, dict), f"verifier.options.{name}", opts, "give a mapping of constructor options")
    for module in v.plugins:
        p.need(_findable(module), "verifier.plugins", module, "no such module; install the package or fix the module path")
    for key, name in names.items():
        if name in VERIFIERS or name in entry_point_names() or v.plugins:
            continue
        if ":" in name:
            p.need(_findable(name.partition(":")[0]), key, name, "its module does not exist; give 'package.module:Class'")
        else:
            p.append(f"{key}={name!r}: {VERIFIERS.unknown_message(name)} A plug-in module listed in verifier.plugins "
                     "can register more, or name a class by its dotted path 'package.module:ClassName'.")
    return p


def _findable(module: str) -> bool:
    """Whether the module exists, without running it (its parent packages are imported)."""
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False
