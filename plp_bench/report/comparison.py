"""The rule that decides whether a lower-is-better benchmark value changed between two commits.

Given the benchmark's noise threshold ``t`` (measured by ``plp-bench noise``, kept in
``asv.conf.json``'s ``regressions_thresholds``; :mod:`plp_bench.report.noise_model`):

1. The medians must differ by more than ``t``: worse when ``now > before * (1 + t)``, better
   when ``now < before / (1 + t)`` (asv's ``--factor`` is ``1 + t``).
2. Where both sides carry samples (every timing of the suites), the samples must differ too:
   a two-sided Mann-Whitney U test at ``p < ALPHA``, and where there are too few samples for
   the test to reach that level, the 99% confidence intervals of the two medians must not
   overlap (asv's fallback, ``asv._stats.is_different``). A ratio of two medians alone never
   decides a timing.
3. A value without samples is deterministic on the CPU (steps, counts, errors, held memory):
   its threshold is 0 in the noise model, so any change is one.

Rule 1 guards against what samples from one process cannot show (one process's layout in
memory, a neighbour that stayed for the whole of one side); rule 2 against a median that moved
by chance within the noise of its own samples.

Beside the rule, not part of it: a side whose samples come from two rounds (two processes of
one package) carries an A/A pair of its own. A flagged change no larger than the noise model's
margin times the shift between them (:func:`within_own_rounds`) is named in a warning, since
the thresholds, measured on one machine under one load, may not hold where that happened.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

from .asv_results import AsvValue

# The test's level. asv's own (``asv._stats.is_different``) is ASV_ALPHA, where the test alone
# guards a ``time_`` benchmark; here rule 1's threshold, measured on A/A rounds, guards too, and
# at asv's level the test's power set the smallest change detected (a 6% change of the ODE
# over GD ratio, 8 samples a side spread over 4%, was flagged in 20 of 48 A/A pairs). Measured
# on the A/A rounds (README, "Comparing commits"): at 0.01 no held-out A/A pair of r12-r15 was
# flagged (r16, with both cores busy, moved absolute times 15% past the model of r12-r15, which
# asv's level flagged too).
ALPHA = 0.01
ASV_ALPHA = 0.002
Verdict = Literal["worse", "better"] | None


@dataclass(frozen=True)
class Measured:
    """One benchmark point of one commit: its median, and its samples or asv's 99% confidence
    interval of the median where it has them."""

    value: float
    samples: tuple[float, ...] | None = None
    interval: tuple[float, float] | None = None

    @classmethod
    def of(cls, value: AsvValue | None) -> Measured | None:
        """An asv value as the rule reads it; None where it failed or was skipped."""
        if value is None or value.value is None:
            return None
        return cls(value.value, value.samples, value.interval)

    def scaled(self, factor: float) -> Measured:
        """The same measurement with every number multiplied by ``factor`` (a change put into
        it, :mod:`plp_bench.report.noise_model`)."""
        return Measured(self.value * factor,
                        None if self.samples is None else tuple(x * factor for x in self.samples),
                        None if self.interval is None else (self.interval[0] * factor,
                                                            self.interval[1] * factor))

    @property
    def sampled(self) -> bool:
        return self.samples is not None or self.interval is not None


def smallest_p(first: int, second: int) -> float:
    """The smallest two-sided p-value a Mann-Whitney U test of samples of these sizes can
    give: 2 / C(n1 + n2, n1), one of the two most extreme orderings."""
    if first == 0 or second == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(first + second, first))


def samples_differ(before: Measured, now: Measured, alpha: float = ALPHA) -> bool:
    """Rule 2 of the module: a Mann-Whitney U test where it can reach ``alpha``, else the
    confidence intervals of the medians (from the samples' range where asv gave none)."""
    a = [x for x in before.samples or () if math.isfinite(x)]
    b = [x for x in now.samples or () if math.isfinite(x)]
    if a and b and smallest_p(len(a), len(b)) < alpha:
        # imported here: SciPy's statistics take over a second to import, and every command
        # of the CLI imports this module
        from scipy.stats import mannwhitneyu

        return bool(mannwhitneyu(a, b, alternative="two-sided").pvalue < alpha)
    first = before.interval or ((min(a), max(a)) if a else None)
    second = now.interval or ((min(b), max(b)) if b else None)
    if first is None or second is None:
        return True  # one side has no spread to go by: rule 1 decides
    return first[1] < second[0] or second[1] < first[0]


def decide(before: Measured | None, now: Measured | None, threshold: float,
           alpha: float = ALPHA) -> Verdict:
    """``"worse"``, ``"better"`` or ``None`` (no change, or nothing to compare) for a
    lower-is-better value, by the rules of the module."""
    if before is None or now is None:
        return None
    if not (math.isfinite(before.value) and math.isfinite(now.value)):
        return None
    factor = 1.0 + threshold
    if before.value == 0 or now.value == 0:
        moved = now.value != before.value
        direction: Verdict = "worse" if now.value > before.value else "better"
    elif now.value > before.value * factor:
        moved, direction = True, "worse"
    elif now.value < before.value / factor:
        moved, direction = True, "better"
    else:
        moved, direction = False, None
    if not moved:
        return None
    if before.sampled and now.sampled and not samples_differ(before, now, alpha):
        return None
    return direction


# Rounds a timing's samples come from (benchmarks.rounds.TIMING_ROUNDS: each an asv process,
# appended in order).
ROUNDS = 2
# The margin on a spread between two processes of one package: the noise model's threshold is
# MARGIN times the largest it measured (plp_bench.report.noise_model)
MARGIN = 1.5


def round_shift(measured: Measured | None, rounds: int = ROUNDS) -> float | None:
    """How far apart the medians of one side's own rounds lie (largest over smallest, minus
    1): its samples cut, in order, into ``rounds`` equal parts of at least two, each the
    samples of one process (``asv run --append-samples`` appends a round's after the last).
    Two rounds of one package are an A/A pair the comparison carries with it; where a side
    ran one round, its halves are two parts of one process (which agree more). None where the
    samples cannot be cut so, or a value without samples."""
    if measured is None or measured.samples is None:
        return None
    samples = [x for x in measured.samples if math.isfinite(x)]
    size, left = divmod(len(samples), rounds)
    if left or size < 2 or len(samples) != len(measured.samples):
        return None
    medians = [statistics.median(samples[k * size:(k + 1) * size]) for k in range(rounds)]
    if min(medians) <= 0:
        return None
    return max(medians) / min(medians) - 1.0


def within_own_rounds(before: Measured | None, now: Measured | None) -> float | None:
    """For a change the rule flagged: the larger of the two sides' :func:`round_shift` where
    the change is no more than :data:`MARGIN` times it, else None. Such a change is as
    large as the noise this machine showed between two processes of one package, so the
    thresholds (measured on another machine, or under other load) may not hold here. A
    warning beside the verdict, never a verdict: the rule's thresholds are the measured model's."""
    if before is None or now is None or before.value <= 0 or now.value <= 0:
        return None
    shifts = [shift for shift in (round_shift(before), round_shift(now)) if shift is not None]
    if not shifts:
        return None
    change = max(now.value, before.value) / min(now.value, before.value) - 1.0
    return max(shifts) if change <= MARGIN * max(shifts) else None
