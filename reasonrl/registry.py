"""A name -> factory registry with a duplicate check and "did you mean" errors.

Every pluggable choice in reasonrl (advantage estimators, policy losses, loss aggregation modes,
tasks, verifiers, rollout engines) is a Registry, so a config string selects a function without an
if/elif chain, and a typo names the close match. `Problems` collects what a part's config check finds.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered to {self._items[name]!r}")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UnknownNameError(self.unknown_message(name))
        return self._items[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), list(self._items), n=1) or \
            sorted(k for k in self._items if str(name) and k.startswith(str(name)))[:1]  # "ppo" -> "ppo_clip"
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._items))}."

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


SWITCH = ("auto", "true", "false")  # a setting the project can choose for the model in hand, or the user fixes


def switch(value: object, auto: bool) -> bool:
    """A SWITCH value (YAML may give a bool) as a bool; `auto` is what "auto" resolves to."""
    return {"true": True, "false": False}.get(str(value).lower(), auto)


class Problems(list):
    """What a part's config check found, one 'key=value: fix' line each (reasonrl/validate.py joins them)."""

    def need(self, ok: bool, key: str, value: object, fix: str) -> None:
        if not ok:
            self.append(f"{key}={value!r}: {fix}")

    def known(self, registry: "Registry", key: str, value: str) -> None:
        """value must be a registered name."""
        if value not in registry:
            self.append(f"{key}={value!r}: {registry.unknown_message(value)}")

    def one_of(self, options: tuple, key: str, value: object) -> None:
        if value not in options:
            self.append(f"{key}={value!r}: use {' or '.join(map(str, options))}")
