"""Training data for the introspection network from real weight histories (Sinha et al.,
ICLR 2017, section 4.1).

1. :class:`WeightHistoryRecorder` wraps the optimizer of a reference network N0 and records a
   fixed random pool of its scalar weights (drawn uniformly over all parameters) at step 0 and
   every ``every`` steps. Storing the pool on a grid, rather than every weight at every step,
   keeps the history to ``pool_size x (steps / every + 1)`` values.
2. :func:`sample_examples` turns the histories into ``(input, target)`` pairs. For each example
   a weight is drawn and a jump point ``t``; the input is the weight at ``0, 0.4 t, 0.7 t, t``
   and the target its value at ``ratio * t``. ``t`` is uniform over the grid steps at which all
   five positions are recorded exactly (multiples of ``10 * every`` for ratio 2) with
   ``ratio * t`` within the run. Weights are drawn by their total change over the run
   ``|w_T - w_0|``, sorted from largest: ``strata`` lists ``(fraction of the weights,
   fraction of the examples)`` from the top, the paper's ``(0.5, 0.5), (0.25, 0.25),
   (0.25, 0.25)``: half of the examples from the weights above the median change, a quarter
   from the next quartile, a quarter from the rest. (Read literally these shares equal the
   strata's sizes, so the draw matches uniform sampling in expectation while fixing the
   proportions exactly; other strata weight large movers more.)
3. Validation examples come from weights held out of the pool before any example is drawn, so
   they measure prediction on histories the network has not seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, overload

import torch

from ..optimizer_wrapper import OptimizerWrapper
from .net import HISTORY_FRACTIONS

PAPER_STRATA = ((0.5, 0.5), (0.25, 0.25), (0.25, 0.25))


class WeightHistoryRecorder(OptimizerWrapper):
    """Steps the wrapped optimizer and records a pool of scalar weights: the histories the
    introspection network is trained on (Sinha et al., ICLR 2017, section 3.1: weights of N0
    recorded through training).

    Args:
        optimizer: the optimizer to step (its param groups are this optimizer's).
        pool_size: scalar weights recorded, drawn uniformly without replacement over all
            parameters (the paper samples from N0's weights).
        every: steps between recordings (and one at step 0, when created).
        seed: the draw of the pool.

    How it differs from the paper: the paper keeps every weight's history; this records a
    fixed random pool on a grid of steps, enough to sample the training examples from.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, pool_size: int = 20000, every: int = 10,
                 seed: int = 0) -> None:
        super().__init__(optimizer)
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        params = self.parameters()
        sizes = [p.numel() for p in params]
        total = sum(sizes)
        pool_size = min(pool_size, total)
        generator = torch.Generator().manual_seed(seed)
        flat_index = torch.randperm(total, generator=generator)[:pool_size].sort().values
        self.every = every
        self.pool_size = pool_size
        self.flat_index = flat_index
        offsets = torch.tensor([0, *sizes]).cumsum(0)
        owner = torch.bucketize(flat_index, offsets[1:], right=True)
        self._picks = []  # (parameter, local indices) in pool order
        for i, p in enumerate(params):
            local = flat_index[owner == i] - offsets[i]
            if len(local):
                self._picks.append((p, local.to(p.device)))
        self.steps_taken = 0
        self._rows: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._record()

    def _settings_repr(self) -> str:
        return (f"pool_size={self.pool_size}, every={self.every}, "
                f"steps_taken={self.steps_taken}, rows={len(self._rows)}")

    @torch.no_grad()
    def _record(self) -> None:
        row = torch.cat([p.detach().reshape(-1)[local].float().cpu() for p, local in self._picks])
        self._rows.append(row)
        self._steps.append(self.steps_taken)

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """The wrapped optimizer's step; every ``every`` steps the pool's weights are recorded."""
        loss = self.optimizer.step(closure)
        self.steps_taken += 1
        if self.steps_taken % self.every == 0:
            self._record()
        return loss

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise ValueError("the recorded pool is drawn from the parameters present at step 0: "
                         "parameters cannot be added while recording")

    def _extra_state(self) -> dict[str, Any]:
        return {"steps_taken": self.steps_taken, "steps": list(self._steps),
                "rows": [row.clone() for row in self._rows]}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.steps_taken = int(extra["steps_taken"])
        self._steps = [int(s) for s in extra["steps"]]
        self._rows = [row.float().cpu().clone() for row in extra["rows"]]

    def histories(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(steps, values)``: the recorded steps ``(R,)`` and the weights ``(R, pool_size)``."""
        return torch.tensor(self._steps), torch.stack(self._rows)

    def run_details(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "every": self.every,
                "records": len(self._steps)}


def jump_points(last_step: int, every: int, ratio: float) -> list[int]:
    """The ``t`` at which 0.4 t, 0.7 t, t and ``ratio * t`` all fall on the recording grid
    (multiples of ``every``) and ``ratio * t <= last_step``."""
    fractions = _fractions(ratio)
    unit = every * math.lcm(*(f.denominator for f in fractions))
    return [t for t in range(unit, last_step + 1, unit) if fractions[-1] * t <= last_step]


def _fractions(ratio: float) -> list[Fraction]:
    """The input positions and the target position as exact fractions of ``t``."""
    return [Fraction(f).limit_denominator(1000) for f in (*HISTORY_FRACTIONS, ratio)]


@dataclass
class Examples:
    """``inputs (n, 4)`` and ``targets (n,)`` in weight units, with where each came from."""

    inputs: torch.Tensor
    targets: torch.Tensor
    weight: torch.Tensor  # column of the pool
    t: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def no_change_targets(self) -> torch.Tensor:
        """The trivial prediction: the weight stays at its value at ``t``."""
        return self.inputs[:, -1]


def split_pool(pool_size: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns of the pool for training and for validation (held out before sampling)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = torch.randperm(pool_size, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(val_fraction * pool_size))
    return order[n_val:].sort().values, order[:n_val].sort().values


def sample_examples(steps: torch.Tensor, values: torch.Tensor, columns: torch.Tensor, *,
                    count: int, ratio: float = 2.0,
                    strata: Sequence[tuple[float, float]] = PAPER_STRATA,
                    seed: int = 0) -> Examples:
    """``count`` examples from the pool ``columns`` of recorded ``values (R, pool)``."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if abs(sum(f for f, _ in strata) - 1) > 1e-9 or abs(sum(s for _, s in strata) - 1) > 1e-9:
        raise ValueError(f"strata fractions must each sum to 1, got {list(strata)}")
    every = int(steps[1] - steps[0]) if len(steps) > 1 else 0
    if every < 1 or not torch.equal(steps, torch.arange(len(steps)) * every):
        raise ValueError("histories must be recorded on a regular grid starting at step 0")
    points = jump_points(int(steps[-1]), every, ratio)
    if not points:
        raise ValueError(f"the run is too short for a jump of ratio {ratio}: {int(steps[-1])} "
                         f"steps recorded every {every}")
    generator = torch.Generator().manual_seed(seed)
    change = (values[-1, columns] - values[0, columns]).abs()
    ranked = columns[torch.argsort(change, descending=True, stable=True)]
    picks, start = [], 0
    quotas = [round(share * count) for _, share in strata]
    quotas[-1] = count - sum(quotas[:-1])
    for i, ((fraction, _), quota) in enumerate(zip(strata, quotas, strict=True)):
        stop = len(ranked) if i == len(strata) - 1 else start + round(fraction * len(ranked))
        stratum = ranked[start:max(stop, start + 1)]
        picks.append(stratum[torch.randint(len(stratum), (quota,), generator=generator)])
        start = stop
    weight = torch.cat(picks)
    t = torch.tensor(points)[torch.randint(len(points), (count,), generator=generator)]
    rows = [(t * f.numerator) // (f.denominator * every) for f in _fractions(ratio)]
    inputs = torch.stack([values[r, weight] for r in rows[:4]], dim=1)
    targets = values[rows[4], weight]
    return Examples(inputs, targets, weight, t)
