"""Rich progress display for a sweep: one bar for the grid, one for the current run."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .results import RunResult
from .run_protocol import Progress as RunProgress
from .sweeps import RunError, RunTask


class RichSweepProgress:
    """A :class:`~plp_bench.sweep.SweepObserver` drawing two rich progress bars."""

    def __init__(self, console: Console):
        self.console = console
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.sweep_bar = None
        self.run_bar = None

    def __enter__(self) -> RichSweepProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def sweep_started(self, total: int, skipped: int) -> None:
        status = f"{skipped} already done" if skipped else ""
        self.sweep_bar = self.bars.add_task("runs", total=total, completed=skipped,
                                            status=status)
        self.run_bar = self.bars.add_task("", total=1, completed=0, status="", visible=False)

    def run_started(self, task: RunTask) -> None:
        self.bars.update(self.run_bar, description=task.label, completed=0, total=1,
                         status="", visible=True)
        self.bars.reset(self.run_bar)

    def run_progress(self, task: RunTask, progress: RunProgress) -> None:
        error = "" if progress.val_error is None else f"val err {progress.val_error:.4f}"
        self.bars.update(self.run_bar, total=progress.total_steps, completed=progress.step,
                         status=f"steps  {error}")

    def run_finished(self, task: RunTask, result: RunResult | None,
                     error: RunError | None) -> None:
        self.bars.advance(self.sweep_bar)
        if error is not None:
            self.console.print(f"[red]failed[/] {task.label}: {escape(str(error))}")
        elif result is not None and result.diverged:
            self.console.print(f"[yellow]diverged[/] {task.label} at step "
                               f"{result.diverged_at_step}")
