"""The verdict on a paper's claim from paired seeds, and when to stop adding seeds.

A claim compares a treatment (the paper's method) with a control (what it claims to beat) on
the same seeds: seed ``s`` of both starts from the same initial weights and sees the same
batches, so the per-seed effect removes most of the seed-to-seed variation. The effect of one
pair is a ``difference`` (treatment - control: accuracies, errors) or a ``speedup`` (control /
treatment: seconds or steps to a target, so above 1 means the treatment is faster).

The interval is Student's t on the mean of the paired effects (on the logarithm for a speedup,
whose ratio scale is multiplicative), 95% overall. Seeds are added one pair at a time and the
interval is looked at after each, so the level of each look is Bonferroni-corrected over the
looks the cap allows (``1 - 0.05 / looks``): the chance that any look of a sequential run
claims a wrong direction stays at most 5% (the price of stopping as soon as the evidence is
clear). No verdict is taken from fewer than :data:`MIN_PAIRS` pairs.

Given the direction the paper claims and a threshold (the no-effect value, or a margin, e.g.
``-0.01`` for "no harm in accuracy"), the interval decides:

* ``confirmed``: the whole interval lies beyond the threshold in the paper's direction;
* ``contradicted``: the whole interval lies on the other side (it excludes the paper's
  direction);
* ``not confirmed``: the interval contains the threshold (the cap was reached undecided).

``not testable here`` is given without measuring, with the reason (data missing, needs CUDA,
outside the budget of the size chosen).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

EffectKind = Literal["difference", "speedup"]
Direction = Literal["higher", "lower"]

CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed"
CONTRADICTED = "contradicted"
NOT_TESTABLE = "not testable here"
VERDICTS = (CONFIRMED, NOT_CONFIRMED, CONTRADICTED, NOT_TESTABLE)

LEVEL = 0.95
MIN_PAIRS = 3


def no_effect(kind: EffectKind) -> float:
    """The effect of a treatment that changes nothing."""
    return 1.0 if kind == "speedup" else 0.0


def paired_effects(kind: EffectKind, treatment: Sequence[float],
                   control: Sequence[float]) -> list[float]:
    """The effect of each pair (seed): ``t - c`` or ``c / t``. A speedup of a value that is not
    positive is refused: a zero time or step count means the record is wrong."""
    if len(treatment) != len(control):
        raise ValueError(f"{len(treatment)} treatment values for {len(control)} control values")
    if kind == "difference":
        return [t - c for t, c in zip(treatment, control, strict=True)]
    if any(t <= 0 or c <= 0 for t, c in zip(treatment, control, strict=True)):
        raise ValueError("a speedup needs positive times or step counts")
    return [c / t for t, c in zip(treatment, control, strict=True)]


@dataclass(frozen=True)
class EffectInterval:
    estimate: float
    low: float
    high: float
    pairs: int
    level: float  # of this look (Bonferroni-corrected); the overall level is LEVEL


def looks(max_pairs: int) -> int:
    """How many times the interval may be looked at: after pair MIN_PAIRS, ..., max_pairs."""
    return max(1, max_pairs - MIN_PAIRS + 1)


def interval(kind: EffectKind, effects: Sequence[float], *,
             max_pairs: int) -> EffectInterval | None:
    """The mean effect with its t interval at the corrected level of one look; ``None`` below
    :data:`MIN_PAIRS` pairs."""
    from scipy import stats

    n = len(effects)
    if n < MIN_PAIRS:
        return None
    values = [math.log(e) for e in effects] if kind == "speedup" else list(effects)
    mean = math.fsum(values) / n
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    level = 1.0 - (1.0 - LEVEL) / looks(max_pairs)
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * spread / math.sqrt(n)
    low, high = mean - half, mean + half
    if kind == "speedup":
        return EffectInterval(math.exp(mean), math.exp(low), math.exp(high), n, level)
    return EffectInterval(mean, low, high, n, level)


def decide(found: EffectInterval | None, direction: Direction, threshold: float) -> str | None:
    """The verdict the interval gives, or ``None`` while it straddles the threshold (or there
    are too few pairs): add a pair, or report ``not confirmed`` at the cap."""
    if found is None:
        return None
    beyond, short = (found.low > threshold, found.high < threshold) if direction == "higher" \
        else (found.high < threshold, found.low > threshold)
    if beyond:
        return CONFIRMED
    if short:
        return CONTRADICTED
    return None


def combine(verdicts: Sequence[str]) -> str:
    """One verdict from those of a claim's checks on one workload: contradicted if any check
    is, confirmed if all are, else not confirmed."""
    if any(v == NOT_TESTABLE for v in verdicts):
        return NOT_TESTABLE
    if any(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    if verdicts and all(v == CONFIRMED for v in verdicts):
        return CONFIRMED
    return NOT_CONFIRMED


def sequential(kind: EffectKind, effects: Sequence[float], direction: Direction,
               threshold: float, *, max_pairs: int) -> tuple[str, int]:
    """The sequential rule on a stream of paired effects: the verdict and the pairs it took
    (the first look, from :data:`MIN_PAIRS` on, whose interval decides; ``not confirmed`` at
    ``max_pairs``). :func:`plp_bench.claims.measurement.measure` follows it, a round at a time."""
    for n in range(MIN_PAIRS, min(max_pairs, len(effects)) + 1):
        verdict = decide(interval(kind, effects[:n], max_pairs=max_pairs), direction, threshold)
        if verdict is not None:
            return verdict, n
    return NOT_CONFIRMED, min(max_pairs, len(effects))
