"""Weight-jump methods in the harness: the wrappers ``introspection``, ``fit-jumps``,
``noise-jumps`` (:mod:`plp_baselines.introspection`) and ``record-history`` (used by
``plp-bench introspection train``), with the jump steps resolved per run.

Jump steps come from, in order: the method's own ``jump_steps`` option, the workload's
``jump_steps`` (the Introspection paper's schedules: MNIST_1 3000/4000/5000, MNIST_3
6000/8000/10000), else :data:`DEFAULT_JUMP_FRACTIONS` of the run's step budget. The fractions
are MNIST_1's schedule relative to its budget in this harness (3000-5000 of ~10k steps), so
the jumps land at the same stage of training on any workload. Jumps past the end of a shortened
run do not happen; the record lists the jumps made.
"""

from __future__ import annotations

import copy
import functools

import torch

from plp_baselines.introspection.histories import WeightHistoryRecorder
from plp_baselines.introspection.jumps import FitJumps, IntrospectionJumps, NoiseJumps, WeightJumps
from plp_baselines.introspection.net import SHIPPED, IntrospectionNet, load_net

from .build_context import PROBE_CONTEXT, BuildContext

DEFAULT_JUMP_FRACTIONS = (0.3, 0.4, 0.5)


def resolve_jump_steps(own: list[int] | None, context: BuildContext) -> tuple[int, ...]:
    if own:
        return tuple(own)
    if context.jump_steps:
        return tuple(context.jump_steps)
    return tuple(sorted({max(1, round(f * context.total_steps))
                         for f in DEFAULT_JUMP_FRACTIONS}))


@functools.lru_cache(maxsize=8)
def _cached_net(name: str, weights: str | None) -> IntrospectionNet:
    return load_net(name, weights)


def introspection(optimizer: torch.optim.Optimizer, *, net: str = "introspection", weights: str | None = None,
                  jump_steps: list[int] | None = None, reset_state: bool = False,
                  context: BuildContext = PROBE_CONTEXT) -> WeightJumps:
    """Jumps by the introspection network ``net`` (``introspection`` or
    ``introspection-linear``) from the shipped weights, or from the file ``weights``."""
    if net not in SHIPPED:
        raise ValueError(f"net must be one of {', '.join(SHIPPED)}, got {net!r}")
    try:
        trained = copy.deepcopy(_cached_net(net, weights))
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    return IntrospectionJumps(optimizer, jump_steps=resolve_jump_steps(jump_steps, context),
                              net=trained, reset_state=reset_state)


def fit_jumps(optimizer: torch.optim.Optimizer, *, degree: int = 1, ratio: float = 1.1,
              jump_steps: list[int] | None = None, reset_state: bool = False,
              context: BuildContext = PROBE_CONTEXT) -> WeightJumps:
    """Jumps to a least-squares line (degree 1) or parabola (degree 2) at ``ratio * t``."""
    return FitJumps(optimizer, jump_steps=resolve_jump_steps(jump_steps, context),
                    degree=degree, ratio=ratio, reset_state=reset_state)


def noise_jumps(optimizer: torch.optim.Optimizer, *, std: float = 1e-3, jump_steps: list[int] | None = None,
                reset_state: bool = False,
                context: BuildContext = PROBE_CONTEXT) -> WeightJumps:
    """Jumps that add N(0, std^2) to every weight; the noise is seeded by the run's seed."""
    return NoiseJumps(optimizer, jump_steps=resolve_jump_steps(jump_steps, context), std=std,
                      seed=context.seed, reset_state=reset_state)


def record_history(optimizer: torch.optim.Optimizer, *, pool_size: int = 20000, every: int = 10,
                   context: BuildContext = PROBE_CONTEXT) -> WeightHistoryRecorder:
    """Records a random pool of scalar weights every ``every`` steps (chosen by the seed)."""
    return WeightHistoryRecorder(optimizer, pool_size=pool_size, every=every, seed=context.seed)
