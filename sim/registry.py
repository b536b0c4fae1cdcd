"""Registries that map a policy name (a distribution, an arrival process, a scheduler) to code.

A new policy is one decorated function or class: ``@SAMPLERS.register("gamma")``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def nearest(word: str, choices: Iterator[str] | list[str] | tuple[str, ...]) -> str | None:
    """The closest spelling of ``word`` among ``choices``, if any is close enough.

    Case is ignored (``h100-sxm`` finds ``H100-SXM``, spelled as in ``choices``), so a choice
    that differs from ``word`` only in case is the closest.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[found[0]] if found else None


class Registry(Generic[T]):
    """A named collection of implementations of one kind of policy."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self.unknown(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._items)

    def unknown(self, name: str) -> str:
        """The message for a name that is not registered, with the nearest one suggested."""
        hint = nearest(name, self.names())
        known = ", ".join(repr(n) for n in self.names())
        msg = f"unknown {self.kind} {name!r}; expected one of {known}"
        return f"{msg} (did you mean {hint!r}?)" if hint else msg
