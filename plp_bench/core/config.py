"""YAML validated into dataclasses: one error type, one message shape, unknown keys refused.

:func:`parse` walks a dataclass's type hints and checks a plain mapping against them: every
key known, every value of the declared type, numbers inside the bounds given in the field's
metadata (``minimum``, ``maximum``, ``exclusive_minimum``), names among the allowed ones
(``choices``: a callable returning the registered names). The first problem raises
:class:`ConfigError` naming the file, the key path and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
# libyaml's safe loader where PyYAML was built with it (about ten times faster: every command
# reads the shipped method and workload files), else the pure-Python one; both build the same
# plain data
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# bounds on any YAML file the harness reads (configs, registries): the shipped ones are a few
# kilobytes, a few levels deep, a few hundred values
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000
MAX_INTEGER_BITS = 63  # larger integers are no count, seed or size the harness can use
# ceilings on what one command may ask for (each flag's --help states its own)
MAX_SEEDS = 1000  # seeds of a sweep, pairs of a claim
MAX_STEPS = 100_000_000  # a run's step budget (the papers' longest is about 40,000 epochs' worth less)
MAX_EPOCHS = 100_000


def shown(value: Any, limit: int = 200) -> str:
    """``value`` for a message, bounded whatever it is: a scalar's repr cut to ``limit``
    characters; a container that holds at most 64 values in all (each scalar short) as its
    repr; any larger container named by its type and length, without walking it (a YAML
    alias bomb is never rendered)."""
    if isinstance(value, dict | list | tuple | set):
        return repr(value) if _small(value) else f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _small(value: Any, budget: int = 64) -> bool:
    """Whether ``value`` holds at most ``budget`` values, each scalar short (read until the
    budget is spent, never further)."""
    stack = [value]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            return False
        if isinstance(item, dict):
            if len(item) > budget:
                return False
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            if len(item) > budget:
                return False
            stack.extend(item)
        elif (isinstance(item, str) and len(item) > 40) or (
                isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 200):
            return False
    return True


class ConfigError(ValueError):
    """A configuration value that is not allowed; ``str()`` is the whole user-facing message."""

    def __init__(self, problem: str, *, source: str | None = None, path: tuple = ()):
        self.problem = problem
        self.source = source
        self.path = tuple(path)
        if source is None and not self.path:  # not from a file: the problem says it all
            super().__init__(problem)
            return
        where = ".".join(str(p) for p in self.path) or "(top level)"
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{where}: {problem}")


def close_matches(name: object, choices: list[str]) -> list[str]:
    """Up to three of ``choices`` close to ``name`` (difflib's ratio at least 0.5); none for
    anything but a short text or number (a name is never a container or a page of text)."""
    if isinstance(name, dict | list | tuple | set) or (
            isinstance(name, int) and name.bit_length() > 600) or len(text := str(name)) > 200:
        return []
    return difflib.get_close_matches(text, choices, n=3, cutoff=0.5)


def did_you_mean(name: object, choices: list[str]) -> str:
    """The one "did you mean" of the harness: `` (did you mean 'x', 'y'?)`` naming the close
    matches of ``name``, or nothing where none is close."""
    matches = close_matches(name, choices)
    return f" (did you mean {', '.join(map(repr, matches))}?)" if matches else ""


def closest(name: object, choices: list[str]) -> str:
    """:func:`did_you_mean`, then every allowed choice: the tail of an "unknown name" message
    (`` (did you mean 'x'?); allowed: x, y``)."""
    return f"{did_you_mean(name, choices)}; allowed: {', '.join(choices) or '(none)'}"


def field(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
          minimum: float | None = None, maximum: float | None = None,
          exclusive_minimum: float | None = None,
          choices: Callable[[], list[str]] | None = None, doc: str = "") -> Any:
    """A dataclass field carrying validation metadata for :func:`parse`."""
    metadata = {"minimum": minimum, "maximum": maximum, "exclusive_minimum": exclusive_minimum,
                "choices": choices, "doc": doc}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, bounded: at most ``MAX_YAML_BYTES`` of UTF-8 text, nested at most
    ``MAX_YAML_DEPTH`` deep, at most ``MAX_YAML_VALUES`` values once its aliases are expanded
    (a few bytes of anchors can stand for billions of values). A missing, unreadable,
    oversized or malformed file is a :class:`ConfigError` naming it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{size} bytes; a config file is at most {MAX_YAML_BYTES}",
                              source=str(path))
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the file ({err.strerror})", source=str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start}: {err.reason})",
                          source=str(path)) from None
    return load_yaml_text(text, source=str(path))


def load_yaml_text(text: str, *, source: str | None = None) -> Any:
    """YAML text to plain data within the bounds of :func:`read_yaml`."""
    if _flow_depth(text) > MAX_YAML_DEPTH:
        raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH}", source=source)
    loader = SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = _expanded_values(node)
        if values > MAX_YAML_VALUES:
            raise ConfigError(f"expands to more than {MAX_YAML_VALUES} values (YAML anchors "
                              "and aliases); write the values out", source=source)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(err, 'problem', err)}",
                          source=source) from None
    except RecursionError:
        raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH}", source=source) from None
    finally:
        loader.dispose()


def _flow_depth(text: str) -> int:
    """An upper bound on the nesting of YAML's bracketed (flow) collections, read in one pass
    before the parser recurses into them (block nesting is bounded by the file's size)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _expanded_values(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded, counted over the
    node graph (shared nodes once each, weighted by how often they are used), stopping as
    soon as the count passes the bound."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if children_done or isinstance(node, yaml.ScalarNode):
            if isinstance(node, yaml.ScalarNode):
                sizes[id(node)] = 1
            else:
                children = [c for item in node.value
                            for c in (item if isinstance(item, tuple) else (item,))]
                sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children),
                                      MAX_YAML_VALUES + 1)
            order.append(node)
            continue
        stack.append((node, True))
        for item in node.value:
            for child in (item if isinstance(item, tuple) else (item,)):
                if id(child) not in sizes:
                    stack.append((child, False))
    return sizes[id(root)]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return {type(None): "null", dict: "mapping", list: "list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _of_kind(value: Any, tp: Any) -> bool:
    """Whether ``value`` is of the kind annotation ``tp`` takes (its checks aside)."""
    kind = typing.get_origin(tp) or tp
    if dataclasses.is_dataclass(tp) or kind is dict:
        return isinstance(value, Mapping)
    if kind in (list, tuple):
        return isinstance(value, list | tuple)
    if kind in (int, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(kind, type) and isinstance(value, kind)


def check_value(value: Any, tp: Any, *, source: str | None, path: tuple, meta: Mapping) -> Any:
    """``value`` checked against annotation ``tp`` (and the bounds and choices in ``meta``),
    converted where the annotation allows (text that spells a number); a :class:`ConfigError`
    at ``path`` otherwise."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return check_value(value, option, source=source, path=path, meta=meta)
            except ConfigError as err:
                errors.append((option, err))
        # a value of one option's kind (a name among names or mappings) gets that option's
        # own message: "unknown name 'x'; did you mean ...", not "expected a or b"
        of_its_kind = [err for option, err in errors if _of_kind(value, option)]
        if len(errors) == 1 or len(of_its_kind) == 1:
            raise (errors[0][1] if len(errors) == 1 else of_its_kind[0])
        raise ConfigError(f"expected {_type_name(tp)}, got {shown(value)}", source=source, path=path)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{shown(value)} is not allowed{closest(value, [str(a) for a in args])}",
                              source=source, path=path)
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, source=source, path=path)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {shown(value)}", source=source, path=path)
        item_type = args[0] if args else Any
        items = [
            check_value(v, item_type, source=source, path=(*path, i), meta=meta)
            for i, v in enumerate(value)
        ]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {shown(value)}", source=source, path=path)
        value_type = args[1] if len(args) == 2 else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"keys must be strings, got {shown(k)}", source=source, path=path)
            out[k] = check_value(v, value_type, source=source, path=(*path, k), meta=meta)
        return out
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {shown(value)}", source=source, path=path)
        return value
    if tp in (int, float):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if tp is float and isinstance(value, float):
            ok = True
        if tp is float and isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" as a string
                value, ok = float(value), True
            except ValueError:
                ok = False
        if not ok:
            raise ConfigError(f"expected {'an integer' if tp is int else 'a number'}, "
                              f"got {shown(value)}", source=source, path=path)
        if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
            raise ConfigError(f"{shown(value)} is too large (at most {MAX_INTEGER_BITS} bits)",
                              source=source, path=path)
        value = tp(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"expected a finite number, got {shown(value)}", source=source, path=path)
        _check_bounds(value, meta, source=source, path=path)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {shown(value)}", source=source, path=path)
        choices = meta.get("choices")
        if choices is not None:
            allowed = choices()
            if value not in allowed:
                raise ConfigError(f"unknown name {shown(value)}{closest(value, allowed)}",
                                  source=source, path=path)
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a bug in a schema, not input


def _check_bounds(value: float, meta: Mapping, *, source: str | None, path: tuple) -> None:
    low, high, open_low = meta.get("minimum"), meta.get("maximum"), meta.get("exclusive_minimum")
    if low is not None and value < low:
        raise ConfigError(f"{value!r} is below the minimum {low}", source=source, path=path)
    if open_low is not None and value <= open_low:
        raise ConfigError(f"{value!r} must be greater than {open_low}", source=source, path=path)
    if high is not None and value > high:
        raise ConfigError(f"{value!r} is above the maximum {high}", source=source, path=path)


def parse(cls: type[T], data: Any, *, source: str | None = None, path: tuple = ()) -> T:
    """Validate mapping ``data`` against dataclass ``cls`` and build it.

    A ``__post_init__`` that raises ``ValueError`` is reported as a :class:`ConfigError` at
    ``path``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping with keys {', '.join(_field_names(cls))}, "
                          f"got {shown(data)}", source=source, path=path)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(f"unknown key{closest(key, list(fields))}", source=source,
                          path=(*path, key))
    values = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError("this key is required", source=source, path=(*path, name))
            continue
        values[name] = check_value(data[name], hints[name], source=source, path=(*path, name),
                                    meta=f.metadata)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err), source=source, path=path) from None


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and mappings as plain JSON-ready data (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj
