"""Measuring the claims: paired seeds through the normal sweep until each verdict is decided.

Every testable measurement starts with :data:`~plp_bench.claims.verdicts.MIN_PAIRS` seeds of its
treatment and control, then adds one seed (one pair) per round while a check is undecided, up
to ``max_seeds``; a contradicted check ends the measurement at once. The measurements of a round
that pair the same two methods run in one sweep (a Ray executor runs them side by side). Runs
are ordinary sweep cells: their records land in the results folder under the usual names, so a
cell that a ``plp-bench run`` already computed with the same settings is read, not trained
again, and an interrupted ``claims`` resumes where it stopped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.record import RunResult, config_hash
from ..runs.protocol import run_identity
from ..sweeps.grid import Executor, SweepObserver, sweep
from .registry import METRICS, Check, Planned
from .verdicts import (
    CONTRADICTED,
    MIN_PAIRS,
    NOT_CONFIRMED,
    NOT_TESTABLE,
    EffectInterval,
    combine,
    decide,
    interval,
    paired_effects,
)


@dataclass
class CheckOutcome:
    check: Check
    treatment: list[float] = field(default_factory=list)  # by seed, pairs with both values
    control: list[float] = field(default_factory=list)
    missed: tuple[int, int] = (0, 0)  # runs that missed a *_to_target target: treatment, control
    excluded: int = 0  # pairs without a value (no tested model) or with a zero time or step
    found: EffectInterval | None = None
    verdict: str | None = None  # None while undecided


@dataclass
class ClaimOutcome:
    """One measurement's result: the seeds it took, each check's interval and verdict."""

    planned: Planned
    checks: list[CheckOutcome]
    seeds: list[int] = field(default_factory=list)
    records: int = 0  # records read (trained now or found)
    error: str | None = None

    @property
    def verdict(self) -> str:
        if self.planned.not_testable:
            return NOT_TESTABLE
        if self.error:
            return "failed"
        return combine([c.verdict or NOT_CONFIRMED for c in self.checks if c.check.judged])

    @property
    def open(self) -> bool:
        """Whether another pair could change the verdict."""
        if self.planned.not_testable or self.error:
            return False
        verdicts = [c.verdict for c in self.checks if c.check.judged]
        return CONTRADICTED not in verdicts and any(v is None for v in verdicts)


def judge(outcome: ClaimOutcome, pairs: dict[int, tuple[RunResult, RunResult]],
          max_seeds: int) -> None:
    """Each undecided check's values, interval and verdict from the records of the seeds so
    far; a check keeps the verdict of the first look that decided it (the sequential rule of
    :func:`plp_bench.claims.verdicts.sequential`) while the claim's other checks take more pairs."""
    for result in outcome.checks:
        if result.verdict is not None:
            continue
        check = result.check
        metric = METRICS[check.metric]
        treatment, control, missed, excluded = [], [], [0, 0], 0
        for seed in sorted(pairs):
            records = pairs[seed]
            values = [metric.read(r, check.at) for r in records]
            for side, record in enumerate(records):
                missed[side] += metric.missed(record, check.at)
            if None in values or (check.effect == "speedup" and min(values) <= 0):
                excluded += 1  # a ratio of a zero time or step count says nothing
                continue
            treatment.append(values[0])
            control.append(values[1])
        result.treatment, result.control = treatment, control
        result.missed, result.excluded = (missed[0], missed[1]), excluded
        effects = paired_effects(check.effect, treatment, control)
        result.found = interval(check.effect, effects, max_pairs=max_seeds)
        result.verdict = decide(result.found, check.direction, check.bar)


@dataclass
class Measured:
    """Every outcome, and how many runs were trained now or read from earlier work."""

    outcomes: list[ClaimOutcome]
    trained: int = 0
    reused: int = 0


def identity_hash(workload, method, seed: int, device: str, settings=None) -> str:
    """The hash that names a run's record (and is stored in it)."""
    return config_hash(run_identity(workload, method, seed, device, settings))


def measure(planned: list[Planned], *, max_seeds: int, device: str, results: str,
            data_root: str | None = None, executor: Executor | None = None,
            observer: SweepObserver | None = None, settings=None,
            on_round: Callable[[list[ClaimOutcome]], None] | None = None) -> Measured:
    """Run every testable measurement until its verdict is decided or ``max_seeds`` pairs are
    in (see the module); ``on_round`` sees the outcomes after each round."""
    measured = Measured([ClaimOutcome(p, [CheckOutcome(c) for c in p.claim.checks])
                         for p in planned])
    pairs: dict[int, dict[int, tuple[RunResult, RunResult]]] = defaultdict(dict)
    seeds_done = 0
    while seeds_done < max_seeds:
        active = [o for o in measured.outcomes if o.open]
        if not active:
            break
        count = min(MIN_PAIRS if seeds_done == 0 else 1, max_seeds - seeds_done)
        seeds = list(range(seeds_done, seeds_done + count))
        groups: dict[tuple[str, str], list[ClaimOutcome]] = defaultdict(list)
        for outcome in active:
            groups[(outcome.planned.treatment.name, outcome.planned.control.name)].append(outcome)
        for group in groups.values():
            _run_round(group, seeds, pairs, measured, device=device, results=results,
                       data_root=data_root, executor=executor, observer=observer,
                       settings=settings)
        seeds_done += count
        for outcome in active:
            if outcome.error is None:
                outcome.seeds = sorted(pairs[id(outcome)])
                judge(outcome, pairs[id(outcome)], max_seeds)
        if on_round:
            on_round(measured.outcomes)
    return measured


def _run_round(group: list[ClaimOutcome], seeds: list[int], pairs: dict, measured: Measured, *,
               device: str, results: str, data_root: str | None, executor: Executor | None,
               observer: SweepObserver | None, settings) -> None:
    """One sweep over the group's workloads x (treatment, control) x ``seeds``; each record is
    given back to its measurement by the hash of its run's identity (two measurements may
    share a workload's name with different settings)."""
    first = group[0].planned
    methods = [first.treatment, first.control]
    workloads = list({identity_hash(o.planned.workload, first.control, 0, device):
                      o.planned.workload for o in group}.values())
    report = sweep(workloads, methods, seeds, device, results, data_root=data_root,
                   executor=executor, observer=observer, settings=settings)
    measured.trained += report.ran
    measured.reused += report.skipped
    by_hash = {record.config_hash: record for record in report.results}
    failed = {identity_hash(task.workload, task.method, task.seed, task.device, task.settings):
              error for task, error in report.failed}
    for outcome in group:
        p = outcome.planned
        for seed in seeds:
            hashes = [identity_hash(p.workload, m, seed, device, settings) for m in methods]
            errors = [failed[h] for h in hashes if h in failed]
            if errors:
                outcome.error = f"seed {seed}: {errors[0]}"
                continue
            records = tuple(by_hash.get(h) for h in hashes)
            if None in records:
                outcome.error = f"seed {seed}: the sweep returned no record"
                continue
            pairs[id(outcome)][seed] = records
            outcome.records += 2
