"""Methods: a base optimizer plus optional wrappers and schedules, all by registered name.

Three registries are the extension points; the training loop knows none of their members:

* ``OPTIMIZERS``: base optimizers (``sgd``, ``gd``, ``adam``, ``adamw``, ``adabelief``,
  ``adam3``), each a factory
  ``(params, **hyperparameters) -> torch.optim.Optimizer`` with the defaults used when a
  workload was not tuned for it.
* ``WRAPPERS``: ``(optimizer, **options) -> optimizer``, ``torch.optim.Optimizer`` subclasses
  that wrap another and share its ``param_groups``
  (:class:`plp_baselines.optimizer_wrapper.OptimizerWrapper`):
  ``plp`` (:class:`plp_bench.methods.plp.PLP`), ``xgrad`` (:class:`plp_baselines.xgrad.WeightPrediction`)
  and the weight jumps of :mod:`plp_bench.methods.weight_jumps`. They stack in the order listed. A
  factory with a keyword ``context`` is given the run's
  :class:`~plp_bench.methods.build_context.BuildContext` (step budget, the workload's jump steps, a
  seed); it is not an option a config can set.
* ``SCHEDULES`` (:mod:`plp_bench.methods.schedules`): per-step values of one param-group field.

A named method (``METHODS``, read from the ``methods.yaml`` shipped in the package) is a
:class:`MethodConfig`. Hyperparameters resolve in this order: the optimizer's defaults, then the
workload's tuned settings for that optimizer, then the method's own overrides.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import torch

from plp_baselines.adaptive import AdaBelief, AdaM3
from plp_baselines.xgrad import WeightPrediction

from .. import models as models_module
from ..core.config import ConfigError, closest, field, parse, read_yaml
from ..core.registry import Registry
from . import weight_jumps
from .build_context import PROBE_CONTEXT, BuildContext
from .option_schemas import (
    ADAM_HYPERPARAMETERS,
    ADAMW_HYPERPARAMETERS,
    ADAPTIVE_MOMENTS_HYPERPARAMETERS,
    ANY,
    SCHEDULE_OPTIONS,
    SGD_HYPERPARAMETERS,
    SOLVER_OPTIONS,
    WRAPPER_OPTIONS,
    Option,
    check_settings,
)
from .plp import PLP
from .schedules import SCHEDULES, Schedule
from .solvers import SOLVERS

OptimizerFactory = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerSpec:
    factory: OptimizerFactory
    defaults: dict[str, Any]
    hyperparameters: dict[str, Option]  # what the factory takes, key by key


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")
WRAPPERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("wrapper")

OPTIMIZERS.add("sgd", OptimizerSpec(torch.optim.SGD, {"lr": 0.01, "momentum": 0.9},
                                    SGD_HYPERPARAMETERS))
# plain gradient descent, tuned apart from SGD because full-batch methods use it
OPTIMIZERS.add("gd", OptimizerSpec(torch.optim.SGD, {"lr": 0.1, "momentum": 0.0},
                                   SGD_HYPERPARAMETERS))
OPTIMIZERS.add("adam", OptimizerSpec(torch.optim.Adam, {"lr": 1e-3}, ADAM_HYPERPARAMETERS))
OPTIMIZERS.add("adamw", OptimizerSpec(torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2},
                                      ADAMW_HYPERPARAMETERS))
OPTIMIZERS.add("adabelief", OptimizerSpec(AdaBelief, {"lr": 1e-3},
                                          ADAPTIVE_MOMENTS_HYPERPARAMETERS))
OPTIMIZERS.add("adam3", OptimizerSpec(AdaM3, {"lr": 1e-3}, ADAPTIVE_MOMENTS_HYPERPARAMETERS))
WRAPPERS.add("plp", PLP)
WRAPPERS.add("xgrad", WeightPrediction)
WRAPPERS.add("introspection", weight_jumps.introspection)
WRAPPERS.add("fit-jumps", weight_jumps.fit_jumps)
WRAPPERS.add("noise-jumps", weight_jumps.noise_jumps)
WRAPPERS.add("record-history", weight_jumps.record_history)


@dataclass(frozen=True)
class ComponentConfig:
    """A wrapper or schedule by registered name, with its options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodConfig:
    """An update rule: base optimizer, hyperparameter overrides, wrappers, schedules.

    ``full_batch`` makes every step use the whole training split (the workload's budget in
    steps is kept). ``solver`` replaces iterated steps with an ODE solver on the linearised
    network (:mod:`plp_bench.methods.solvers`; the base optimizer then only supplies the learning
    rate). ``models`` restricts the method to workloads with those backbones (empty: all).
    ``in_default_run: false`` leaves it out of runs that name no methods (costly baselines
    that answer their own question, such as the ODE solvers, run when named).
    """

    name: str
    optimizer: str = field(choices=OPTIMIZERS.names)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    wrappers: list[ComponentConfig] = field(default_factory=list)
    schedules: list[ComponentConfig] = field(default_factory=list)
    full_batch: bool = False
    solver: ComponentConfig | None = None
    models: list[str] = field(default_factory=list)
    in_default_run: bool = True
    description: str = ""

    def applies_to(self, model: str) -> bool:
        return not self.models or model in self.models


def _options_of(fn: Callable, skip: int) -> list[str]:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return [p.name for p in params
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "context"]


def _build_wrapper(name: str, optimizer: torch.optim.Optimizer, options: dict[str, Any],
                   context: BuildContext) -> torch.optim.Optimizer:
    factory = WRAPPERS.get(name)
    if "context" in inspect.signature(factory).parameters:
        return factory(optimizer, **options, context=context)
    return factory(optimizer, **options)


def check_method(method: MethodConfig, *, source: str | None = None, path: tuple = (),
                 values: bool = True) -> MethodConfig:
    """Every name registered and every hyperparameter and option of the right type and in
    range (:mod:`plp_bench.methods.option_schemas`), or a :class:`ConfigError` naming the key path;
    with ``values``, the method is also built once (see :func:`_check_values`). Returns the
    method with its settings converted (text that spells a number, as YAML 1.1 writes 1e-4)."""
    spec = OPTIMIZERS.get(method.optimizer)
    hyperparameters = check_settings(spec.hyperparameters, method.hyperparameters,
                                     receiver=method.optimizer, noun="hyperparameter",
                                     source=source,
                                     path=(*path, "hyperparameters"))
    solvers = [method.solver] if method.solver is not None else []
    checked: dict[str, list[ComponentConfig]] = {}
    for kind, registry, schemas, items, skip in (
            ("wrappers", WRAPPERS, WRAPPER_OPTIONS, method.wrappers, 1),
            ("schedules", SCHEDULES, SCHEDULE_OPTIONS, method.schedules, 0),
            ("solver", SOLVERS, SOLVER_OPTIONS, solvers, 0)):
        checked[kind] = []
        for i, item in enumerate(items):
            where = (*path, kind) if kind == "solver" else (*path, kind, i)
            if item.name not in registry:
                raise ConfigError(f"unknown {registry.kind} {item.name!r}"
                                  f"{closest(item.name, registry.names())}", source=source,
                                  path=(*where, "name"))
            schema = schemas.get(item.name) or {
                key: Option(ANY) for key in _options_of(registry.get(item.name), skip)}
            options = check_settings(schema, item.options,
                                     receiver=f"{registry.kind} {item.name!r}", noun="option",
                                     source=source, path=(*where, "options"))
            checked[kind].append(ComponentConfig(item.name, options))
    if method.solver is not None and (method.wrappers or method.schedules):
        raise ConfigError("a method with a solver integrates the linearised network instead of "
                          "stepping an optimizer: it takes no wrappers or schedules",
                          source=source, path=(*path, "solver"))
    for i, model in enumerate(method.models):
        if model not in models_module.list_models():
            raise ConfigError(f"unknown model {model!r}"
                              f"{closest(model, models_module.list_models())}", source=source,
                              path=(*path, "models", i))
    method = replace(method, hyperparameters=hyperparameters, wrappers=checked["wrappers"],
                     schedules=checked["schedules"],
                     solver=checked["solver"][0] if checked["solver"] else None)
    if values:
        _check_values(method, source=source, path=path)
    return method


def _check_values(method: MethodConfig, *, source: str | None, path: tuple) -> None:
    """Build the method once over a one-element parameter, so that what only the receivers
    check (a combination such as Nesterov without momentum, a weights file that is missing) is
    reported before any training starts, at the key the message names when it names one."""
    spec = OPTIMIZERS.get(method.optimizer)
    probe = [torch.nn.Parameter(torch.zeros(1))]
    try:
        optimizer = spec.factory(probe, **{**spec.defaults, **method.hyperparameters})
    except (ValueError, TypeError) as err:
        raise _refused(f"{method.optimizer}: {err}", method.hyperparameters, source,
                       (*path, "hyperparameters")) from None
    for i, wrapper in enumerate(method.wrappers):
        try:
            optimizer = _build_wrapper(wrapper.name, optimizer, wrapper.options, PROBE_CONTEXT)
        except (ValueError, TypeError) as err:
            raise _refused(str(err), wrapper.options, source,
                           (*path, "wrappers", i, "options")) from None
    for i, schedule in enumerate(method.schedules):
        try:
            SCHEDULES.get(schedule.name)(**schedule.options)
        except (ValueError, TypeError) as err:
            raise _refused(str(err), schedule.options, source,
                           (*path, "schedules", i, "options")) from None
    if method.solver is not None:
        try:
            SOLVERS.get(method.solver.name)(**method.solver.options)
        except (ValueError, TypeError) as err:
            raise _refused(str(err), method.solver.options, source,
                           (*path, "solver", "options")) from None


def _refused(problem: str, settings: dict[str, Any], source: str | None,
             path: tuple) -> ConfigError:
    """A receiver's refusal at the one key of ``settings`` its message names (or the only
    key given), with that key's value; else at the settings as a whole."""
    named = [key for key in settings if re.search(rf"\b{re.escape(key)}\b", problem)]
    if not named and len(settings) == 1:
        named = list(settings)
    if len(named) == 1:
        key = named[0]
        return ConfigError(f"{problem} (got {settings[key]!r})", source=source,
                           path=(*path, key))
    return ConfigError(problem, source=source, path=path[:-1] if path[-1] == "options" else path)


def resolve_hyperparameters(
    method: MethodConfig, tuned: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """Hyperparameters for ``method`` on a workload tuned with ``tuned``; and whether tuned."""
    spec = OPTIMIZERS.get(method.optimizer)
    was_tuned = method.optimizer in tuned
    merged = {**spec.defaults, **tuned.get(method.optimizer, {}), **method.hyperparameters}
    if "betas" in merged:
        merged["betas"] = tuple(merged["betas"])
    return merged, was_tuned


@dataclass
class BuiltMethod:
    """What the training loop drives: the (possibly wrapped) optimizer and its schedules."""

    optimizer: torch.optim.Optimizer
    schedules: list[Schedule]
    hyperparameters: dict[str, Any]
    tuned: bool


def build_method(
    method: MethodConfig,
    params: Iterable[torch.nn.Parameter],
    *,
    tuned: dict[str, dict[str, Any]],
    workload_schedules: Iterable[Schedule] = (),
    context: BuildContext = PROBE_CONTEXT,
) -> BuiltMethod:
    """Instantiate ``method`` over ``params``: optimizer, then wrappers in order, then schedules
    (the workload's learning-rate schedule first, then the method's own)."""
    method = check_method(method)
    hyperparameters, was_tuned = resolve_hyperparameters(method, tuned)
    try:
        optimizer = OPTIMIZERS.get(method.optimizer).factory(params, **hyperparameters)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{method.optimizer}: {err}", path=("methods", method.name)) from None
    for wrapper in method.wrappers:
        optimizer = _build_wrapper(wrapper.name, optimizer, wrapper.options, context)
    schedules = [*workload_schedules,
                 *(SCHEDULES.get(s.name)(**s.options) for s in method.schedules)]
    return BuiltMethod(optimizer, schedules, hyperparameters, was_tuned)


METHODS: Registry[MethodConfig] = Registry("method")


def load_methods_file(path, registry: Registry[MethodConfig] = METHODS, *,
                      values: bool = True) -> None:
    """Register every method defined in a YAML mapping ``name -> method`` (``values``: see
    :func:`check_method`)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of method names to definitions", source=str(path))
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError("expected a mapping", source=str(path), path=(name,))
        method = parse(MethodConfig, {"name": name, **body}, source=str(path), path=(name,))
        registry.add(name, check_method(method, source=str(path), path=(name,), values=values))


def list_methods() -> list[str]:
    return METHODS.names()


def default_methods() -> list[str]:
    """The methods a run that names none runs."""
    return [name for name in METHODS.names() if METHODS.get(name).in_default_run]


def get_method(name: str) -> MethodConfig:
    return METHODS.get(name)


# The shipped methods' values are checked when a run builds them and by the tests, which build
# every registered method; building them here would make every command, even `plp-bench list`,
# import torch._dynamo (torch.optim does on the first optimizer built), about two seconds.
load_methods_file(resources.files(__package__) / "catalogue.yaml", values=False)
