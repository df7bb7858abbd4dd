"""Named registries for datasets, models, workloads and methods.

Every kind of thing the harness can name lives in one :class:`Registry`. Names are explicit
(never derived from class names), a duplicate name is an error, and an unknown name raises
:class:`UnknownNameError` listing the closest registered names. ``names()`` feeds the CLI, the
YAML validation, the asv ``params`` and the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .config import ConfigError, close_matches, closest

T = TypeVar("T")


class UnknownNameError(ConfigError):
    """A name that is not registered; carries the registered names and the closest ones. The
    message is the harness's one shape for unknown names (:func:`~plp_bench.core.config.closest`)."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind = kind
        self.name = name
        self.choices = choices
        self.suggestions = close_matches(name, choices)
        super().__init__(f"unknown {kind} {name!r}{closest(name, choices)}")


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
