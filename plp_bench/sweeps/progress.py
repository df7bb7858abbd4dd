"""Rich progress display for a sweep: one bar for the whole grid (done, running, failed, time
left) and one bar per run in flight (its steps and latest validation error). In this process
one run is in flight at a time; on Ray, as many as the workers."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..core.record import RunResult
from ..runs.protocol import Progress as RunProgress
from .grid import RunError, RunTask


class RichSweepProgress:
    """A :class:`~plp_bench.sweeps.grid.SweepObserver` drawing rich progress bars."""

    def __init__(self, console: Console):
        self.console = console
        self.bars = Progress(
            # labels hold user-given names: shown as written (no markup, no emoji codes)
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}", markup=False), TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.sweep_bar: TaskID | None = None
        self.run_bars: dict[str, TaskID] = {}  # run label -> its bar, while in flight
        self.skipped = 0
        self.failed = 0
        self.label = "runs"  # the grid bar's name; a caller running several sweeps renames it

    def __enter__(self) -> RichSweepProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def _grid_status(self) -> str:
        parts = [f"{len(self.run_bars)} running"] if self.run_bars else []
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        return ", ".join(parts)

    def _update_grid(self) -> None:
        self.bars.update(self.sweep_bar, status=self._grid_status())

    def sweep_started(self, total: int, skipped: int) -> None:
        """A new grid bar; one sweep after another (``plp-bench claims``) replaces the
        finished one's."""
        if self.sweep_bar is not None:
            self.bars.remove_task(self.sweep_bar)
        self.skipped, self.failed = skipped, 0
        self.sweep_bar = self.bars.add_task(self.label, total=total, completed=skipped,
                                            status=self._grid_status())

    def run_started(self, task: RunTask) -> None:
        self.run_bars[task.label] = self.bars.add_task(task.label, total=1,
                                                       completed=0, status="")
        self._update_grid()

    def run_progress(self, task: RunTask, progress: RunProgress) -> None:
        bar = self.run_bars.get(task.label)
        if bar is None:
            return
        error = "" if progress.val_error is None else f"val err {progress.val_error:.4f}"
        self.bars.update(bar, total=progress.total_steps, completed=progress.step,
                         status=f"steps  {error}")

    def run_finished(self, task: RunTask, result: RunResult | None,
                     error: RunError | None) -> None:
        bar = self.run_bars.pop(task.label, None)
        if bar is not None:
            self.bars.remove_task(bar)
        self.bars.advance(self.sweep_bar)
        if error is not None:
            self.failed += 1
            self.console.print(f"[red]failed[/] {escape(task.label)}: {escape(str(error))}")
        elif result is not None and result.diverged:
            self.console.print(f"[yellow]diverged[/] {escape(task.label)} at step "
                               f"{result.diverged_at_step}")
        self._update_grid()
