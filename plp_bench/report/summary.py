"""Per-workload summary tables of run records (terminal, via rich).

Columns: method; runs that reached each target (k/n); median and interquartile range of the
steps and of the seconds to each target; speedup against the reference method (SGD) at the
primary (strictest) target paired by seed, in steps and in seconds, as a median ratio with a
95% bootstrap interval (marked when the interval excludes 1); the best-validation-loss model's
test accuracy, top-1 and top-5 error (the PLP paper's Table 4 columns); test accuracy at fixed
epochs when recorded; diverged runs. The best value of each column is highlighted. Across
workloads: :func:`overall` (geometric-mean speedup, performance-profile scores).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from rich.console import Group

from ..core.record import RunResult, group_runs
from ..core.stats import Interval, bootstrap_median, median, paired_ratios
from ..core.tables import Cell, Column, TableData, to_rich

REFERENCE_METHOD = "sgd"


@dataclass
class Spread:
    """Median and interquartile range of the runs that reached a target."""

    median: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        if not values:
            return None
        q1, mid, q3 = np.quantile(np.asarray(values, dtype=np.float64), [0.25, 0.5, 0.75])
        return cls(float(mid), float(q1), float(q3))


@dataclass
class MethodRow:
    method: str
    runs: int
    reached: list[int]  # per target
    speedup_steps: Interval | None
    speedup_seconds: Interval | None
    test_accuracy: float | None
    test_error: float | None
    test_top5_error: float | None
    diverged: int
    steps_spread: list[Spread | None] = field(default_factory=list)  # per target
    seconds_spread: list[Spread | None] = field(default_factory=list)
    accuracy_at_epochs: dict[str, float] = field(default_factory=dict)  # median over runs

    @property
    def steps(self) -> float | None:
        """Median steps to the primary target of the runs that reached it."""
        return None if self.steps_spread[-1] is None else self.steps_spread[-1].median

    @property
    def seconds(self) -> float | None:
        return None if self.seconds_spread[-1] is None else self.seconds_spread[-1].median


@dataclass
class WorkloadSummary:
    workload: str
    targets: list[float]
    rows: list[MethodRow]


def _by_seed(runs: list[RunResult], target: float, what: str) -> dict[int, float | None]:
    return {r.seed: getattr(r.target(target), what) for r in runs}


def summarize(results: Iterable[RunResult], reference: str = REFERENCE_METHOD
              ) -> list[WorkloadSummary]:
    grouped = group_runs(results)
    summaries = []
    for workload in sorted(grouped):
        methods = grouped[workload]
        targets = [t.target for t in next(iter(methods.values()))[0].targets]
        primary = targets[-1]
        ref_runs = methods.get(reference, [])
        rows = []
        for method in sorted(methods, key=lambda m: (m != reference, m)):
            runs = sorted(methods[method], key=lambda r: r.seed)
            speed_steps = speed_secs = None
            if ref_runs and method != reference:
                speed_steps = bootstrap_median(paired_ratios(
                    _by_seed(ref_runs, primary, "steps"), _by_seed(runs, primary, "steps")))
                speed_secs = bootstrap_median(paired_ratios(
                    _by_seed(ref_runs, primary, "seconds"), _by_seed(runs, primary, "seconds")))
            tests = [r.best_test for r in runs if r.best_test is not None]
            rows.append(MethodRow(
                method=method, runs=len(runs),
                reached=[sum(r.target(t).reached for r in runs) for t in targets],
                speedup_steps=speed_steps, speedup_seconds=speed_secs,
                test_accuracy=median([t.accuracy for t in tests]),
                test_error=median([t.error for t in tests]),
                test_top5_error=median([t.top5_error for t in tests]),
                diverged=sum(r.diverged for r in runs),
                steps_spread=[Spread.of([r.target(t).steps for r in runs
                                         if r.target(t).reached]) for t in targets],
                seconds_spread=[Spread.of([r.target(t).seconds for r in runs
                                           if r.target(t).reached]) for t in targets],
                accuracy_at_epochs=_median_by_epoch(runs),
            ))
        summaries.append(WorkloadSummary(workload, targets, rows))
    return summaries


def _median_by_epoch(runs: list[RunResult]) -> dict[str, float]:
    epochs = sorted({e for r in runs for e in r.test_accuracy_at_epochs}, key=float)
    return {e: median([r.test_accuracy_at_epochs[e] for r in runs
                       if e in r.test_accuracy_at_epochs]) for e in epochs}


def _fmt_spread(spread: Spread | None, spec: str, scale: float = 1.0) -> str:
    if spread is None:
        return "—"
    return (f"{spread.median * scale:{spec}} ({spread.q1 * scale:{spec}}–"
            f"{spread.q3 * scale:{spec}})")


def _time_unit(medians: list[float | None]) -> tuple[str, float, str]:
    """Label, scale and format of a seconds column: milliseconds (3 significant digits) when
    every median is below a second, so that short runs do not read as 0.01 everywhere."""
    if max((m for m in medians if m is not None), default=0.0) < 1.0:
        return "ms", 1e3, ".3g"
    return "sec", 1.0, ".2f"


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _fmt_interval(interval: Interval | None, runs: int) -> str:
    if interval is None:
        return "—"
    mark = "*" if interval.excludes_one else ""
    pairs = f" n={interval.n}" if interval.n < runs else ""
    return f"{interval.estimate:.2f}x [{interval.low:.2f}, {interval.high:.2f}]{mark}{pairs}"


def _best(values: list[float | None], lower_is_better: bool) -> float | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return min(present) if lower_is_better else max(present)


def _mark(text: str, value: float | None, best: float | None) -> Cell:
    return Cell(text, "best" if value is not None and value == best else None)


def table(summary: WorkloadSummary, reference: str = REFERENCE_METHOD) -> Group:
    """Two tables for a workload, so that each fits a terminal: the time to each target, then
    the speedups and the tested model. The best value of each column is in bold green."""
    return Group(to_rich(time_table(summary)), to_rich(outcome_table(summary, reference)))


def time_table(summary: WorkloadSummary) -> TableData:
    primary = summary.targets[-1]
    rows = summary.rows
    columns: list[tuple[Column, list[Cell]]] = [
        (Column("method", numeric=False), [Cell(r.method) for r in rows]),
        (Column("reached"), [Cell(" ".join(f"{k}/{r.runs}" for k in r.reached)) for r in rows]),
    ]
    for attr in ("steps_spread", "seconds_spread"):
        for i, target in enumerate(summary.targets):
            spreads = [getattr(r, attr)[i] for r in rows]
            medians = [None if x is None else x.median for x in spreads]
            label, scale, spec = (("steps", 1.0, ".0f") if attr == "steps_spread"
                                  else _time_unit(medians))
            best = _best(medians, lower_is_better=True)
            columns.append((Column(f"{label}@{target:g}"),
                            [_mark(_fmt_spread(x, spec, scale), m, best)
                             for x, m in zip(spreads, medians, strict=True)]))
    return TableData.from_columns(
        f"{summary.workload}: time to target  (val error ≤ "
        f"{', '.join(f'{x:g}' for x in summary.targets)}; primary {primary:g})", columns,
        caption="median (interquartile range) of the runs that reached the target")


def outcome_table(summary: WorkloadSummary, reference: str = REFERENCE_METHOD) -> TableData:
    primary = summary.targets[-1]
    rows = summary.rows
    columns: list[tuple[Column, list[Cell]]] = [
        (Column("method", numeric=False), [Cell(r.method) for r in rows])]
    for label, attr in (("speedup (steps)", "speedup_steps"),
                        ("speedup (sec)", "speedup_seconds")):
        intervals = [getattr(r, attr) for r in rows]
        estimates = [None if x is None else x.estimate for x in intervals]
        best = _best(estimates, lower_is_better=False)
        columns.append((Column(label), [Cell("1 (ref)") if r.method == reference else
                                        _mark(_fmt_interval(x, r.runs), e, best)
                                        for r, x, e in zip(rows, intervals, estimates,
                                                           strict=True)]))
    for label, attr, lower in (("test acc", "test_accuracy", False),
                               ("top-1 err", "test_error", True),
                               ("top-5 err", "test_top5_error", True)):
        values = [getattr(r, attr) for r in rows]
        best = _best(values, lower_is_better=lower)
        columns.append((Column(label), [_mark(_fmt(v, ".4f"), v, best) for v in values]))
    epochs = sorted({e for r in rows for e in r.accuracy_at_epochs}, key=float)
    if epochs:
        columns.append((Column("test acc @ epoch"),
                        [Cell(", ".join(f"{e}: {r.accuracy_at_epochs[e]:.3f}" for e in epochs
                                        if e in r.accuracy_at_epochs) or "—") for r in rows]))
    columns.append((Column("diverged"), [Cell(str(r.diverged), "warn" if r.diverged else None)
                                         for r in rows]))
    return TableData.from_columns(
        f"{summary.workload}: speedup at {primary:g} and the tested model", columns,
        caption=f"speedup = {reference} / method, paired by seed, median [95% bootstrap]; "
        "* interval excludes 1; n= seeds where both reached the target; test: the "
        "best-validation-loss model")


@dataclass
class OverallRow:
    """One method across workloads: geometric mean of its per-workload median speedups at the
    primary target (steps, seconds) and its performance-profile scores (steps, seconds)."""

    method: str
    workloads: int
    speedup_steps: float | None
    speedup_seconds: float | None
    profile_steps: float
    profile_seconds: float


def primary_times(summaries: list[WorkloadSummary]
                  ) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, float | None]]]:
    """``steps[method][workload]`` and ``seconds[...]`` to the primary target, the inputs of the
    performance profiles: the median of the runs that reached it, ``None`` for a method that
    missed it in most of its runs (it has no time there)."""
    steps: dict[str, dict[str, float | None]] = defaultdict(dict)
    seconds: dict[str, dict[str, float | None]] = defaultdict(dict)
    for s in summaries:
        for row in s.rows:
            reached = 2 * row.reached[-1] > row.runs
            steps[row.method][s.workload] = row.steps if reached else None
            seconds[row.method][s.workload] = row.seconds if reached else None
    return dict(steps), dict(seconds)


def overall(summaries: list[WorkloadSummary], reference: str = REFERENCE_METHOD
            ) -> list[OverallRow]:
    """Every method that ran on at least one summarised workload."""
    from .performance_profiles import geometric_mean, performance_ratios, profile_score

    methods = sorted({row.method for s in summaries for row in s.rows},
                     key=lambda m: (m != reference, m))
    steps, seconds = primary_times(summaries)
    step_ratios = performance_ratios(steps)
    second_ratios = performance_ratios(seconds)
    rows = []
    for m in methods:
        own = [row for s in summaries for row in s.rows if row.method == m]
        rows.append(OverallRow(
            method=m, workloads=len(own),
            speedup_steps=geometric_mean([r.speedup_steps.estimate for r in own
                                          if r.speedup_steps is not None]),
            speedup_seconds=geometric_mean([r.speedup_seconds.estimate for r in own
                                            if r.speedup_seconds is not None]),
            profile_steps=profile_score(list(step_ratios[m].values())),
            profile_seconds=profile_score(list(second_ratios[m].values())),
        ))
    return rows


def overall_table(rows: list[OverallRow], reference: str = REFERENCE_METHOD) -> TableData:
    t = TableData(
        title="all workloads",
        columns=[Column("method", numeric=False), Column("workloads"),
                 *(Column(name) for name in ("speedup (steps)", "speedup (sec)",
                                             "profile (steps)", "profile (sec)"))],
        caption="speedup: geometric mean over workloads of the median paired speedup at "
        f"the primary target against {reference}; profile: AlgoPerf performance-profile "
        "score (1 = fastest everywhere, 0 = never within 4x of the fastest; a method "
        "that missed in most runs counts as never)")
    fields = ("speedup_steps", "speedup_seconds", "profile_steps", "profile_seconds")
    best = {f: max((getattr(r, f) for r in rows if getattr(r, f) is not None), default=None)
            for f in fields}
    for row in rows:
        cells = []
        for f in fields:
            value = getattr(row, f)
            if f.startswith("speedup") and row.method == reference:
                cells.append(Cell("1 (ref)"))
                continue
            text = _fmt(value, ".2f") + ("x" if f.startswith("speedup") and value else "")
            cells.append(_mark(text, value, best[f]))
        t.add_row(row.method, str(row.workloads), *cells)
    return t
