"""Sweeps: the grid workloads x methods x seeds, resumable, behind a small executor interface.

Each finished run is written at once (atomically) to
``results_dir/<workload>/<method>/seed-<seed>-<config hash>.json``. Before running a cell the
sweep looks for that file: if it is there and readable, the run is skipped, so rerunning an
interrupted sweep redoes nothing that had finished. A run that raises is reported and the sweep
goes on; it has no file, so the next sweep tries it again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import results as results_module
from .methods import MethodConfig
from .results import ResultError, RunResult, config_hash, record_path
from .training import Progress, resolve_device, run, run_config
from .workloads import Workload


@dataclass(frozen=True)
class RunTask:
    """One cell of the grid and where its record goes."""

    workload: Workload
    method: MethodConfig
    seed: int
    device: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.workload.name} / {self.method.name} / seed {self.seed}"


@dataclass
class SweepReport:
    results: list[RunResult] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[RunTask, str]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    # (workload, method, the backbones the method applies to)
    not_applicable: list[tuple[str, str, list[str]]] = field(default_factory=list)


def not_applicable(workloads: Iterable[Workload],
                   methods: Iterable[MethodConfig]) -> list[tuple[str, str, list[str]]]:
    """Pairs left out because the method does not apply to the workload's backbone."""
    methods = list(methods)
    return [(w.name, m.name, list(m.models)) for w in workloads for m in methods
            if not m.applies_to(w.model)]


class SweepObserver(Protocol):
    """What a progress display may watch; every method is optional in spirit (no-ops allowed)."""

    def sweep_started(self, total: int, skipped: int) -> None: ...
    def run_started(self, task: RunTask) -> None: ...
    def run_progress(self, task: RunTask, progress: Progress) -> None: ...
    def run_finished(self, task: RunTask, result: RunResult | None, error: str | None) -> None: ...


class Executor(Protocol):
    """Runs tasks and yields ``(task, result or None, error or None)`` as each finishes."""

    def execute(
        self, tasks: Sequence[RunTask], work: Callable[[RunTask], RunResult]
    ) -> Iterator[tuple[RunTask, RunResult | None, str | None]]: ...


class SequentialExecutor:
    """Runs tasks one after another in this process. Exceptions inside a run become errors;
    ``KeyboardInterrupt`` and ``SystemExit`` are not caught, so Ctrl-C stops the sweep."""

    def execute(self, tasks, work):
        for task in tasks:
            try:
                yield task, work(task), None
            except Exception as err:
                yield task, None, f"{type(err).__name__}: {err}"


def plan(workloads: Iterable[Workload], methods: Iterable[MethodConfig], seeds: Iterable[int],
         device: str, results_dir: str | os.PathLike[str]) -> list[RunTask]:
    """The grid, ordered workload, seed, method (consecutive runs share a dataset), less the
    pairs where the method does not apply to the workload's backbone."""
    methods = list(methods)
    seeds = list(seeds)
    tasks = []
    for workload in workloads:
        for seed in seeds:
            for method in methods:
                if not method.applies_to(workload.model):
                    continue
                digest = config_hash(run_config(workload, method, seed, device))
                path = record_path(results_dir, workload.name, method.name, seed, digest)
                tasks.append(RunTask(workload, method, seed, device, path))
    return tasks


def finished(task: RunTask) -> RunResult | None:
    """The task's record if a valid one is on disk."""
    if not task.path.is_file():
        return None
    try:
        return results_module.load(task.path)
    except ResultError:
        return None


def sweep(
    workloads: Iterable[Workload],
    methods: Iterable[MethodConfig],
    seeds: Iterable[int],
    device: str = "cpu",
    results_dir: str | os.PathLike[str] = "results",
    *,
    data_root: str | None = None,
    executor: Executor | None = None,
    observer: SweepObserver | None = None,
) -> SweepReport:
    """Run every missing cell of the grid and return all records (old and new)."""
    device = str(resolve_device(device))
    workloads, methods = list(workloads), list(methods)
    tasks = plan(workloads, methods, seeds, device, results_dir)
    report = SweepReport(not_applicable=not_applicable(workloads, methods))
    todo = []
    for task in tasks:
        existing = finished(task)
        if existing is None:
            todo.append(task)
        else:
            report.results.append(existing)
            report.paths.append(task.path)
            report.skipped += 1
    if observer:
        observer.sweep_started(len(tasks), report.skipped)
    cache: dict[tuple, object] = {}

    def work(task: RunTask) -> RunResult:
        from . import data

        key = (task.workload.dataset, task.seed, task.workload.val_fraction, task.device)
        if key not in cache:
            cache.clear()  # one dataset in memory at a time
            cache[key] = data.load(task.workload.dataset, root=data_root, device=task.device,
                                   seed=task.seed, val_fraction=task.workload.val_fraction)
        if observer:
            observer.run_started(task)

        def callback(progress: Progress) -> None:
            if observer:
                observer.run_progress(task, progress)

        result = run(task.workload, task.method, task.seed, task.device, dataset=cache[key],
                     callback=callback)
        results_module.save(result, task.path)
        return result

    for task, result, error in (executor or SequentialExecutor()).execute(todo, work):
        if result is not None:
            report.results.append(result)
            report.paths.append(task.path)
            report.ran += 1
        else:
            report.failed.append((task, error or "unknown error"))
        if observer:
            observer.run_finished(task, result, error)
    return report
