"""Per-workload summary tables of run records (terminal, via rich).

Columns: method; runs that reached each target (k/n); median steps and seconds to the primary
(strictest) target; speedup against the reference method (SGD) paired by seed, in steps and in
seconds, as a median ratio with a 95% bootstrap interval (marked when the interval excludes 1);
the best-validation-loss model's test accuracy, top-1 and top-5 error; diverged runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rich.table import Table

from .results import RunResult
from .stats import Interval, bootstrap_median, median, paired_ratios

REFERENCE_METHOD = "sgd"


@dataclass
class MethodRow:
    method: str
    runs: int
    reached: list[int]  # per target
    steps: float | None
    seconds: float | None
    speedup_steps: Interval | None
    speedup_seconds: Interval | None
    test_accuracy: float | None
    test_error: float | None
    test_top5_error: float | None
    diverged: int


@dataclass
class WorkloadSummary:
    workload: str
    targets: list[float]
    rows: list[MethodRow]


def _by_seed(runs: list[RunResult], target: float, what: str) -> dict[int, float | None]:
    return {r.seed: getattr(r.target(target), what) for r in runs}


def summarize(results: Iterable[RunResult], reference: str = REFERENCE_METHOD
              ) -> list[WorkloadSummary]:
    grouped: dict[str, dict[str, list[RunResult]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        grouped[r.workload][r.method].append(r)
    summaries = []
    for workload in sorted(grouped):
        methods = grouped[workload]
        targets = [t.target for t in next(iter(methods.values()))[0].targets]
        primary = targets[-1]
        ref_runs = methods.get(reference, [])
        rows = []
        for method in sorted(methods, key=lambda m: (m != reference, m)):
            runs = sorted(methods[method], key=lambda r: r.seed)
            steps = [r.target(primary).steps for r in runs if r.target(primary).reached]
            secs = [r.target(primary).seconds for r in runs if r.target(primary).reached]
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
                steps=median(steps), seconds=median(secs),
                speedup_steps=speed_steps, speedup_seconds=speed_secs,
                test_accuracy=median([t.accuracy for t in tests]),
                test_error=median([t.error for t in tests]),
                test_top5_error=median([t.top5_error for t in tests]),
                diverged=sum(r.diverged for r in runs),
            ))
        summaries.append(WorkloadSummary(workload, targets, rows))
    return summaries


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _fmt_interval(interval: Interval | None, runs: int) -> str:
    if interval is None:
        return "—"
    mark = "*" if interval.excludes_one else ""
    pairs = f" n={interval.n}" if interval.n < runs else ""
    return f"{interval.estimate:.2f}x [{interval.low:.2f}, {interval.high:.2f}]{mark}{pairs}"


def table(summary: WorkloadSummary, reference: str = REFERENCE_METHOD) -> Table:
    primary = summary.targets[-1]
    t = Table(title=f"{summary.workload}  (targets: val error ≤ "
                    f"{', '.join(f'{x:g}' for x in summary.targets)}; primary {primary:g})",
              title_justify="left", caption_justify="left",
              caption=f"speedup = {reference} / method, paired by seed, median [95% bootstrap]; "
              "* interval excludes 1; n= seeds where both reached the target")
    t.add_column("method", no_wrap=True)
    t.add_column("reached", justify="right")
    t.add_column(f"steps@{primary:g}", justify="right")
    t.add_column(f"sec@{primary:g}", justify="right")
    t.add_column("speedup (steps)", justify="right")
    t.add_column("speedup (sec)", justify="right")
    t.add_column("test acc", justify="right")
    t.add_column("top-1 err", justify="right")
    t.add_column("top-5 err", justify="right")
    t.add_column("diverged", justify="right")
    best_steps = min((r.steps for r in summary.rows if r.steps is not None), default=None)
    best_acc = max((r.test_accuracy for r in summary.rows if r.test_accuracy is not None),
                   default=None)
    for row in summary.rows:
        steps = _fmt(row.steps, ".0f")
        if row.steps is not None and row.steps == best_steps:
            steps = f"[bold green]{steps}[/]"
        acc = _fmt(row.test_accuracy, ".4f")
        if row.test_accuracy is not None and row.test_accuracy == best_acc:
            acc = f"[bold green]{acc}[/]"
        t.add_row(
            row.method,
            " ".join(f"{k}/{row.runs}" for k in row.reached),
            steps,
            _fmt(row.seconds, ".2f"),
            _fmt_interval(row.speedup_steps, row.runs) if row.method != reference else "1 (ref)",
            _fmt_interval(row.speedup_seconds, row.runs) if row.method != reference else "1 (ref)",
            acc,
            _fmt(row.test_error, ".4f"),
            _fmt(row.test_top5_error, ".4f"),
            f"[red]{row.diverged}[/]" if row.diverged else "0",
        )
    return t


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


def overall(summaries: list[WorkloadSummary], reference: str = REFERENCE_METHOD
            ) -> list[OverallRow]:
    """Every method that ran on at least one summarised workload."""
    from .profiles import geometric_mean, performance_ratios, profile_score

    methods = sorted({row.method for s in summaries for row in s.rows},
                     key=lambda m: (m != reference, m))
    steps = {m: {} for m in methods}
    seconds = {m: {} for m in methods}
    for s in summaries:
        for row in s.rows:
            # a method that missed the primary target in most of its runs has no time there
            reached = 2 * row.reached[-1] > row.runs
            steps[row.method][s.workload] = row.steps if reached else None
            seconds[row.method][s.workload] = row.seconds if reached else None
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


def overall_table(rows: list[OverallRow], reference: str = REFERENCE_METHOD) -> Table:
    t = Table(title="all workloads", title_justify="left", caption_justify="left",
              caption="speedup: geometric mean over workloads of the median paired speedup at "
              f"the primary target against {reference}; profile: AlgoPerf performance-profile "
              "score (1 = fastest everywhere, 0 = never within 4x of the fastest; a method "
              "that missed in most runs counts as never)")
    t.add_column("method", no_wrap=True)
    t.add_column("workloads", justify="right")
    for name in ("speedup (steps)", "speedup (sec)", "profile (steps)", "profile (sec)"):
        t.add_column(name, justify="right")
    fields = ("speedup_steps", "speedup_seconds", "profile_steps", "profile_seconds")
    best = {f: max((getattr(r, f) for r in rows if getattr(r, f) is not None), default=None)
            for f in fields}
    for row in rows:
        cells = []
        for f in fields:
            value = getattr(row, f)
            if f.startswith("speedup") and row.method == reference:
                cells.append("1 (ref)")
                continue
            text = _fmt(value, ".2f") + ("x" if f.startswith("speedup") and value else "")
            cells.append(f"[bold green]{text}[/]" if value is not None and value == best[f]
                         else text)
        t.add_row(row.method, str(row.workloads), *cells)
    return t
