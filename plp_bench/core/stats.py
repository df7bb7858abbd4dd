"""Small statistics for comparing runs: medians, paired ratios, bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    @property
    def excludes_one(self) -> bool:
        """Whether the interval is clear of 1; never claimed from fewer than 3 pairs, whose
        bootstrap distribution has too few distinct values to mean anything."""
        return self.n >= 3 and (self.low > 1.0 or self.high < 1.0)


def bootstrap_median(values: Sequence[float], *, level: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> Interval | None:
    """Median with a percentile bootstrap interval (Efron & Tibshirani, 1993, ch. 13).

    Resamples are drawn from a generator seeded with ``seed`` so the interval is reproducible.
    With one value the interval is that value.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return None
    estimate = float(np.median(data))
    if data.size == 1:
        return Interval(estimate, estimate, estimate, 1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, data.size, size=(resamples, data.size))
    medians = np.median(data[draws], axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(medians, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), int(data.size))


def paired_ratios(reference: dict[int, float | None], other: dict[int, float | None]) -> list[float]:
    """``reference[s] / other[s]`` for every seed ``s`` where both reached a positive value."""
    ratios = []
    for seed, ref in reference.items():
        value = other.get(seed)
        if ref is not None and value is not None and ref > 0 and value > 0:
            ratios.append(ref / value)
    return ratios


def censored(records: Sequence, index: int, field: str) -> float:
    """Median over seeds of the steps (``field="steps"``) or training seconds to target
    ``index`` of run records; a run that missed counts as its whole budget (a lower bound), so
    a method that stops reaching a target shows up as slower rather than vanishing from the
    median. The asv ``convergence`` suite tracks the same value, so a report's comparison of
    two commits agrees with ``asv compare``."""
    values = []
    for record in records:
        target = record.targets[index]
        if field == "steps":
            values.append(target.steps if target.reached else record.steps_run)
        else:
            values.append(target.seconds if target.reached else record.train_seconds)
    return float(np.median(values))
