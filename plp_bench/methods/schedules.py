"""Schedules: one named hyperparameter of every param group, set before each step.

A schedule is told the step count and returns the field's value from the value the group
started with, so one mechanism serves learning-rate schedules and momentum schedules (DEMON):
``value = schedule(initial, step, total_steps)``.

* ``constant``: the value never changes.
* ``cyclic``: the triangular cyclical learning rate of Smith (2017, "Cyclical Learning Rates
  for Training Neural Networks", eq. for the triangular policy), which the PLP paper trains
  with: the value rises linearly from ``low * initial`` to ``initial`` over ``step_size_up``
  steps, falls back over as many, and repeats:
  ``cycle = floor(1 + t / (2 s))``, ``x = |t / s - 2 cycle + 1|``,
  ``value = low * initial + (initial - low * initial) * max(0, 1 - x)``.
* ``inv``: Caffe's "inv" learning-rate policy (``caffe/src/caffe/solvers/sgd_solver.cpp``),
  ``value = initial * (1 + gamma * t) ^ (-power)`` (Introspection's MNIST_2: gamma 1e-4,
  power 0.75).
* ``step``: step decay, ``value = initial * gamma ^ floor(t / step_size)`` (Caffe's "step"
  policy; Introspection's CIFAR_1: 0.1 every 350 epochs).
* ``demon``: decaying momentum (Chen et al., ICASSP 2022), :func:`plp_baselines.demon.demon_momentum`
  from ``beta_init`` (default: the momentum the optimizer started with) to 0 at the last step.

The field ``momentum`` means SGD's ``momentum`` or Adam's ``betas[0]``, whichever the group
has; ``beta1`` always means ``betas[0]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from plp_baselines.demon import demon_momentum, get_momentum, set_momentum

from ..core.registry import Registry


class Schedule:
    """Base class: ``field`` names the param-group key the schedule sets."""

    field: str = "lr"

    def __call__(self, initial: float, step: int, total_steps: int) -> float:
        raise NotImplementedError


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


@SCHEDULES.register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    field: str = "lr"

    def __call__(self, initial: float, step: int, total_steps: int) -> float:
        return initial


@SCHEDULES.register("cyclic")
@dataclass(frozen=True)
class Cyclic(Schedule):
    low: float = 0.5
    step_size_up: int = 2000
    field: str = "lr"

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= 1.0:
            raise ValueError(f"cyclic: low must be in [0, 1], got {self.low!r}")
        if self.step_size_up < 1:
            raise ValueError(f"cyclic: step_size_up must be at least 1, got {self.step_size_up!r}")

    def __call__(self, initial: float, step: int, total_steps: int) -> float:
        s = self.step_size_up
        cycle = math.floor(1 + step / (2 * s))
        x = abs(step / s - 2 * cycle + 1)
        low = self.low * initial
        return low + (initial - low) * max(0.0, 1.0 - x)


@SCHEDULES.register("inv")
@dataclass(frozen=True)
class Inverse(Schedule):
    gamma: float = 1e-4
    power: float = 0.75
    field: str = "lr"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"inv: gamma must be a finite number >= 0, got {self.gamma!r}")
        if not (math.isfinite(self.power) and self.power >= 0):
            raise ValueError(f"inv: power must be a finite number >= 0, got {self.power!r}")

    def __call__(self, initial: float, step: int, total_steps: int) -> float:
        return initial * (1.0 + self.gamma * step) ** (-self.power)


@SCHEDULES.register("step")
@dataclass(frozen=True)
class StepDecay(Schedule):
    step_size: int = 1000
    gamma: float = 0.1
    field: str = "lr"

    def __post_init__(self) -> None:
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, int) or \
                self.step_size < 1:
            raise ValueError(f"step: step_size must be an integer >= 1, got {self.step_size!r}")
        if not (math.isfinite(self.gamma) and 0 < self.gamma <= 1):
            raise ValueError(f"step: gamma must be in (0, 1], got {self.gamma!r}")

    def __call__(self, initial: float, step: int, total_steps: int) -> float:
        return initial * self.gamma ** (step // self.step_size)


@SCHEDULES.register("demon")
@dataclass(frozen=True)
class Demon(Schedule):
    beta_init: float | None = None
    field: str = "momentum"

    def __post_init__(self) -> None:
        if self.beta_init is not None and not 0.0 <= self.beta_init < 1.0:
            raise ValueError(f"demon: beta_init must be in [0, 1), got {self.beta_init!r}")

    def __call__(self, initial: float, step: int, total_steps: int) -> float:
        beta_init = initial if self.beta_init is None else self.beta_init
        return demon_momentum(beta_init, step, total_steps)


def get_field(group: dict, field: str) -> float:
    """A param-group value; ``beta1`` names ``betas[0]``, ``momentum`` whichever momentum the
    group has (a ``ValueError`` names what it has when there is none)."""
    if field == "beta1":
        return group["betas"][0]
    if field == "momentum":
        return get_momentum(group)
    return group[field]


def set_field(group: dict, field: str, value: float) -> None:
    if field == "beta1":
        group["betas"] = (value, *group["betas"][1:])
    elif field == "momentum":
        set_momentum(group, value)
    else:
        group[field] = value


class ScheduleRunner:
    """Applies schedules to an optimizer's param groups, remembering their initial values."""

    def __init__(self, optimizer, schedules: Iterable[Schedule], total_steps: int):
        self.optimizer = optimizer
        self.schedules = [s for s in schedules if not isinstance(s, Constant)]
        self.total_steps = total_steps
        for s in self.schedules:
            for group in optimizer.param_groups:
                try:
                    get_field(group, s.field)
                except (KeyError, ValueError):
                    keys = ", ".join(sorted(k for k in group if k != "params"))
                    raise ValueError(f"schedule field {s.field!r} is not a hyperparameter of "
                                     f"this optimizer ({keys})") from None
        self.initial = [
            {s.field: get_field(g, s.field) for s in self.schedules} for g in optimizer.param_groups
        ]

    def apply(self, step: int) -> None:
        """Set every scheduled field for ``step``; schedules of one field compose in order."""
        for group, initial in zip(self.optimizer.param_groups, self.initial, strict=True):
            values = dict(initial)
            for s in self.schedules:
                values[s.field] = s(values[s.field], step, self.total_steps)
            for field, value in values.items():
                set_field(group, field, value)
