"""Named registries for datasets, models, workloads and methods.

Every kind of thing the harness can name lives in one :class:`Registry`. Names are explicit
(never derived from class names), a duplicate name is an error, and an unknown name raises
:class:`UnknownNameError` listing the closest registered names. ``names()`` feeds the CLI, the
YAML validation, the asv ``params`` and the tests.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not registered; carries the registered names and the closest ones."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind = kind
        self.name = name
        self.choices = choices
        self.suggestions = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, self.suggestions))}?" if self.suggestions else ""
        super().__init__(
            f"unknown {kind} {name!r}.{hint} Registered {kind}s: {', '.join(choices) or '(none)'}."
        )


class Registry(Generic[T]):
    """A mapping from explicit names to objects of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj)

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
