"""Summaries across workloads: geometric-mean speedup and AlgoPerf performance profiles.

Performance profiles (Dolan & Moré, 2002, as used for scoring by AlgoPerf: Dahl et al.,
"Benchmarking Neural Network Training Algorithms", 2023, section 4.4): for workload ``w`` and
method ``m`` with time to target ``t[m, w]`` (infinite when the target was missed), the
performance ratio is ``r[m, w] = t[m, w] / min_m' t[m', w]``. The profile of ``m`` is the
fraction of workloads it solves within a factor ``tau`` of the best,
``rho_m(tau) = |{w : r[m, w] <= tau}| / |W|``, and its score is the normalised area under the
profile, ``B_m = 1 / (r_max - 1) * integral_1^r_max rho_m(tau) dtau`` (AlgoPerf: ``r_max = 4``).
A method best everywhere scores 1; one that never comes within ``r_max`` of the best scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

R_MAX = 4.0


def performance_ratios(times: Mapping[str, Mapping[str, float | None]]
                       ) -> dict[str, dict[str, float]]:
    """``times[method][workload]`` (``None`` = missed) -> ``r[method][workload]`` (``inf`` when
    missed, or when no method reached the target on that workload)."""
    workloads = sorted({w for per in times.values() for w in per})
    best = {}
    for w in workloads:
        reached = [per[w] for per in times.values() if per.get(w) is not None]
        best[w] = min(reached) if reached else None
    ratios: dict[str, dict[str, float]] = {}
    for method, per in times.items():
        ratios[method] = {}
        for w in workloads:
            t = per.get(w)
            ratios[method][w] = math.inf if t is None or best[w] is None else t / best[w]
    return ratios


def profile(ratios: Sequence[float], tau: float) -> float:
    """``rho(tau)``: the fraction of workloads within a factor ``tau`` of the best."""
    return sum(r <= tau for r in ratios) / len(ratios) if ratios else 0.0


def profile_score(ratios: Sequence[float], r_max: float = R_MAX) -> float:
    """``1 / (r_max - 1) * integral_1^r_max rho(tau) dtau``, exactly: ``rho`` is a step
    function that rises by ``1/|W|`` at each ratio, so each workload with ratio ``r <= r_max``
    contributes ``(r_max - r) / ((r_max - 1) |W|)``."""
    if not ratios:
        return 0.0
    area = sum(r_max - max(r, 1.0) for r in ratios if r <= r_max)
    return area / ((r_max - 1.0) * len(ratios))


def geometric_mean(values: Sequence[float]) -> float | None:
    """Geometric mean of positive values (``None`` for none)."""
    positive = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not positive:
        return None
    return math.exp(sum(math.log(v) for v in positive) / len(positive))
