"""ODE solvers a method may name instead of an optimizer (the linearised-model baseline).

``SOLVERS`` maps a method's ``solver`` name to a factory of :class:`SolverSettings`: which
SciPy ``OdeSolver`` integrates the linearised network's gradient flow
(:mod:`plp_baselines.linearized`), its tolerances, the state space and a memory limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from plp_baselines.linearized import SPACES

from ..core.registry import Registry


@dataclass(frozen=True)
class SolverSettings:
    method: str
    rtol: float = 1e-6
    atol: float = 1e-8
    space: str = "auto"
    memory_limit_gib: float | None = None

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}, got {self.space!r}")
        limit = self.memory_limit_gib
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))
                                  or not limit > 0):
            raise ValueError(f"memory_limit_gib must be a number > 0 or null, got {limit!r}")

    @property
    def memory_limit_bytes(self) -> int | None:
        return None if self.memory_limit_gib is None else int(self.memory_limit_gib * 2**30)


SOLVERS: Registry[Callable[..., SolverSettings]] = Registry("solver")


def _factory(method: str) -> Callable[..., SolverSettings]:
    def settings(*, rtol: float = 1e-6, atol: float = 1e-8, space: str = "auto",
                 memory_limit_gib: float | None = None) -> SolverSettings:
        return SolverSettings(method, rtol, atol, space, memory_limit_gib)

    return settings


for _name, _method in (("bdf", "BDF"), ("lsoda", "LSODA"), ("radau", "Radau"), ("rk45", "RK45")):
    SOLVERS.add(_name, _factory(_method))
