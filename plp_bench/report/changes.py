"""What changed between two commits: the record tables' headline columns side by side, and
asv's own values, each change flagged when it is outside the measured noise.

The noise is the regression threshold ``asv.conf.json`` gives the same benchmark (written there
by ``plp-bench noise``, see :mod:`plp_bench.report.noise_model`), and a change is decided by
:func:`plp_bench.report.comparison.decide`: beyond the threshold, and for a value with samples
(asv's timings; the records' seconds, one per seed) also beyond the noise of the samples.
Steps and seconds are compared as the asv suite tracks them: the median over seeds with a
missed target counted as the run's whole budget, so a method that stops reaching a target is a
change, not a gap.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.record import RunResult, group_runs
from ..core.stats import censored, median
from ..core.tables import Cell, Column, Style, TableData
from .asv_results import AsvValue, Thresholds, point_name
from .comparison import Measured, decide

STEPS = "convergence.TargetTracks.track_steps_to_target"
SECONDS = "convergence.TargetTracks.track_wall_seconds_to_target"
TEST_ERROR = "convergence.TestTracks.track_test_error"
RECORD_SUITES = ("convergence",)  # asv suites whose values are the records' own numbers


def verdict(before: float | None, now: float | None, threshold: float) -> Style:
    """``"worse"``/``"better"`` when a deterministic lower-is-better value moved beyond the
    threshold (:func:`plp_bench.report.comparison.decide` without samples)."""
    if before is None or now is None:
        return None
    return decide(Measured(before), Measured(now), threshold)


def asv_changes(values: list[AsvValue], before: list[AsvValue], thresholds: Thresholds
                ) -> Iterable[tuple[AsvValue, AsvValue | None, Style | str]]:
    """Each value of a commit with the other commit's value of the same point (machine,
    benchmark, parameters; None where it has none) and the change between them:
    ``"worse"``, ``"better"``, None, or ``"other version"`` where another version of the
    benchmark measured the other (not the same quantity, so not compared)."""
    old = {v.key: v for v in before}
    for value in values:
        previous = old.get(value.key)
        if previous is not None and not previous.comparable(value):
            yield value, previous, "other version"
        else:
            yield value, previous, decide(Measured.of(previous), Measured.of(value),
                                          thresholds.of(value.label))


def _seed_seconds(runs: list[RunResult], index: int) -> tuple[float, ...]:
    """Each run's seconds to target ``index`` (a miss: its whole training time)."""
    return tuple(r.targets[index].seconds if r.targets[index].steps is not None
                 else r.train_seconds for r in runs)


def _change(before: float | None, now: float | None) -> str:
    if before is None or now is None:
        return ""
    if before == 0:
        return " (=)" if now == 0 else " (new >0)"
    percent = 100.0 * (now / before - 1.0)
    return " (=)" if percent == 0 else f" ({percent:+.1f}%)"


def _test_error(runs: list[RunResult]) -> float | None:
    return median([r.best_test.error for r in runs if r.best_test is not None])


def record_changes(now: Iterable[RunResult], before: Iterable[RunResult], *,
                   thresholds: Thresholds, label: str) -> dict[str, TableData]:
    """A table for each workload of ``now``: each method's values at the primary target now,
    and their change against ``before`` (the records of ``label``)."""
    current, base = group_runs(now), group_runs(before)
    tables = {}
    for workload in sorted(current):
        # the noise model may have a row for the workload
        limits = {name: thresholds.of(point_name(name, (workload,)))
                  for name in (STEPS, SECONDS, TEST_ERROR)}
        methods = current[workload]
        targets = [t.target for t in next(iter(methods.values()))[0].targets]
        primary = len(targets) - 1
        table = TableData(
            title=f"{workload}: change against {label} at {targets[-1]:g}",
            columns=[Column("method", numeric=False), Column("reached"),
                     Column("steps (median)"), Column("sec (median)"),
                     Column("top-1 err")],
            caption="median over seeds, a miss counted as the whole budget (as the asv suite "
            "tracks it); (change against the other commit); red/green: beyond the noise "
            f"threshold of {thresholds.source} (steps {limits[STEPS]:.0%}, seconds "
            f"{limits[SECONDS]:.0%} and a test on the seeds' seconds, test error "
            f"{limits[TEST_ERROR]:.0%})")
        for method in sorted(set(methods) | set(base.get(workload, {}))):
            runs, old = methods.get(method, []), base.get(workload, {}).get(method, [])
            if not runs:
                table.add_row(Cell(method), Cell("gone", "warn"), "—", "—", "—")
                continue
            cells = [Cell(method)]
            reached = sum(r.targets[primary].reached for r in runs)
            if old and len(old[0].targets) == len(runs[0].targets):
                old_reached = sum(r.targets[primary].reached for r in old)
                style: Style = None if reached == old_reached else (
                    "better" if reached > old_reached else "worse")
                cells.append(Cell(f"{old_reached}/{len(old)} → {reached}/{len(runs)}", style))
                a, b = censored(old, primary, "steps"), censored(runs, primary, "steps")
                cells.append(Cell(f"{b:.0f}{_change(a, b)}", verdict(a, b, limits[STEPS])))
                a, b = censored(old, primary, "seconds"), censored(runs, primary, "seconds")
                style = decide(Measured(a, _seed_seconds(old, primary)),
                               Measured(b, _seed_seconds(runs, primary)), limits[SECONDS])
                cells.append(Cell(f"{b:.2f}{_change(a, b)}", style))
                a, b = _test_error(old), _test_error(runs)
                cells.append(Cell("—" if b is None else f"{b:.4f}{_change(a, b)}",
                                  verdict(a, b, limits[TEST_ERROR])))
            else:
                note = "new" if not old else "targets differ"
                b_err = _test_error(runs)
                cells += [Cell(f"{reached}/{len(runs)} ({note})"),
                          Cell(f"{censored(runs, primary, 'steps'):.0f}"),
                          Cell(f"{censored(runs, primary, 'seconds'):.2f}"),
                          Cell("—" if b_err is None else f"{b_err:.4f}")]
            table.add_row(*cells)
        tables[workload] = table
    return tables


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "seconds":
        return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    if unit == "bytes":
        return f"{value / 2**20:.3g} MiB"
    return f"{value:.4g}" + (f" {unit}" if unit and unit not in ("unit", "ratio") else "")


def asv_table(values: list[AsvValue], before: list[AsvValue] | None = None, *,
              thresholds: Thresholds, label: str = "",
              skip_suites: tuple[str, ...] = RECORD_SUITES) -> TableData:
    """asv's values of a commit (the suites not already shown from the records), with the
    change against another commit's when given."""
    shown = [v for v in values if v.suite not in skip_suites and not v.skipped]
    machines = sorted({v.machine for v in shown})
    columns = [Column("benchmark", numeric=False), Column("parameters", numeric=False),
               Column("value")]
    if before is not None:
        columns += [Column(f"{label or 'before'}"), Column("ratio")]
    table = TableData(
        title="asv benchmarks" + (f" (machine {', '.join(machines)})" if machines else ""),
        columns=columns,
        caption="every value is lower-is-better; points asv skipped are left out" + (
            f"; ratio = now / {label}; red/green: beyond the threshold of "
            f"{thresholds.source} for that benchmark and, for a timing, beyond the noise of "
            "its samples; other version: the benchmark's definition changed between the two, "
            "so they are not compared" if before is not None else ""))
    paired = (asv_changes(shown, before, thresholds) if before is not None
              else ((v, None, None) for v in shown))
    for v, previous, style in paired:
        cells = [Cell(v.benchmark), Cell(", ".join(v.params)),
                 Cell(_format(v.value, v.unit)) if v.value is not None else Cell("failed", "warn")]
        if before is not None:
            a = None if previous is None else previous.value
            if style == "other version":
                change = Cell("other version", "warn")
            else:
                ratio = "—" if a in (None, 0) or v.value is None else f"{v.value / a:.2f}"
                cells[2] = Cell(cells[2].text, style)
                change = Cell(ratio, style)
            cells += [Cell(_format(a, v.unit)), change]
        table.add_row(*cells)
    return table
