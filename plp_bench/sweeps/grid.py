"""Sweeps: the grid workloads x methods x seeds, resumable, behind a small executor interface.

An executor decides where the runs happen (:class:`SequentialExecutor`: one after another in
this process, the default; :class:`plp_bench.sweeps.ray.RayExecutor`: as tasks of a Ray
cluster) and yields each run's record or error as it finishes; the sweep alone writes the
records, so every executor gets the same files, checksums, failure files and resume.

Each finished run is written at once (atomically) to
``results_dir/<workload>/<method>/seed-<seed>-<config hash>.json``. Before running a cell the
sweep looks for that file: if it is there and valid (its checksum matches), the run is skipped,
so rerunning an interrupted sweep redoes nothing that had finished. A record that is there but
invalid (truncated, edited, of an unknown schema) is moved aside to ``<name>.invalid`` (kept for
inspection, never read again), reported by name, and the run is redone.

A run that raises is written as ``failed-seed-<seed>-<config hash>.json`` beside where its
record would go (the error, its traceback, the config and the environment) and the sweep goes
on; the next sweep tries it again, and a success removes the failure file. Temporary files that
a killed writer left behind (``.seed-*.tmp``) are removed when the sweep starts; sweeps into
one folder are not meant to run concurrently.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..core import record as results_module
from ..core.config import ConfigError
from ..core.environment import describe
from ..core.execution_settings import ExecutionSettings
from ..core.record import ResultError, RunResult, config_hash, record_path, write_json_atomic
from ..methods.catalogue import MethodConfig
from ..runs.device import DeviceError, resolve_device
from ..runs.entry import run
from ..runs.protocol import Progress, run_identity
from ..workloads import Workload


@dataclass(frozen=True)
class RunTask:
    """One cell of the grid and where its record goes."""

    workload: Workload
    method: MethodConfig
    seed: int
    device: str
    path: Path
    settings: ExecutionSettings = ExecutionSettings()

    @property
    def label(self) -> str:
        return f"{self.workload.name} / {self.method.name} / seed {self.seed}"

    @property
    def failure_path(self) -> Path:
        return self.path.with_name(f"failed-{self.path.name}")


@dataclass(frozen=True)
class RunError:
    """Why a run failed: ``Type: message`` and the traceback."""

    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return self.message


@dataclass
class SweepReport:
    results: list[RunResult] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[RunTask, RunError]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    invalid: list[tuple[Path, str]] = field(default_factory=list)  # (moved-aside file, why)
    # (workload, method, the backbones the method applies to)
    not_applicable: list[tuple[str, str, list[str]]] = field(default_factory=list)


def not_applicable(workloads: Iterable[Workload],
                   methods: Iterable[MethodConfig]) -> list[tuple[str, str, list[str]]]:
    """Pairs left out because the method does not apply to the workload's backbone."""
    methods = list(methods)
    return [(w.name, m.name, list(m.models)) for w in workloads for m in methods
            if not m.applies_to(w.model)]


class SweepObserver(Protocol):
    """What a progress display may watch; every method is optional in spirit (no-ops allowed).
    Several runs may be in flight at once (between ``run_started`` and ``run_finished``)."""

    def sweep_started(self, total: int, skipped: int) -> None: ...
    def run_started(self, task: RunTask) -> None: ...
    def run_progress(self, task: RunTask, progress: Progress) -> None: ...
    def run_finished(self, task: RunTask, result: RunResult | None,
                     error: RunError | None) -> None: ...


TaskOutcome = tuple[RunTask, RunResult | None, RunError | None]


class DatasetCache:
    """One dataset in memory at a time, kept while consecutive runs share it (the grid's order,
    workload then seed then method, makes them); the old one is dropped before the next is
    built, so two never sit in memory together."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._dataset: Any = None

    def get(self, task: RunTask, build: Callable[[], Any], source: Any = None) -> Any:
        """``task``'s dataset: the kept one if it is the same split of the same ``source`` (what
        it is read from, where that can change between sweeps), else ``build()``."""
        key = (task.workload.dataset, task.seed, task.workload.val_fraction, task.device,
               source)
        if key != self._key:
            self._key = self._dataset = None
            self._dataset = build()
            self._key = key
        return self._dataset


class SweepContext:
    """What an executor is given besides the tasks: the data root, the observer, and
    :meth:`work`, which performs a task in this process."""

    def __init__(self, data_root: str | None = None, observer: SweepObserver | None = None):
        self.data_root = data_root
        self.observer = observer
        self._datasets = DatasetCache()

    def dataset(self, task: RunTask):
        """The task's dataset on its device, read from the data root."""
        from .. import data

        return self._datasets.get(task, lambda: data.load(
            task.workload.dataset, root=self.data_root, device=task.device, seed=task.seed,
            val_fraction=task.workload.val_fraction))

    def work(self, task: RunTask) -> RunResult:
        """Run ``task`` here, telling the observer how it goes."""
        dataset = self.dataset(task)
        if self.observer:
            self.observer.run_started(task)
        return run(task.workload, task.method, task.seed, task.device, settings=task.settings,
                   dataset=dataset, callback=self.progress_callback(task))

    def progress_callback(self, task: RunTask) -> Callable[[Progress], None]:
        observer = self.observer

        def callback(progress: Progress) -> None:
            if observer:
                observer.run_progress(task, progress)

        return callback


class Executor(Protocol):
    """Runs tasks and yields ``(task, result or None, error or None)`` as each finishes (an
    exception inside a run is its error; ``KeyboardInterrupt`` stops the sweep). ``salvage``
    yields the runs that had finished when an interrupt arrived but were not yet yielded.
    ``device_for_runs`` returns the device string the runs are given, or raises where the runs
    cannot have it."""

    def device_for_runs(self, device: str) -> str: ...
    def execute(self, tasks: Sequence[RunTask], context: SweepContext) -> Iterator[TaskOutcome]: ...
    def salvage(self) -> Iterator[TaskOutcome]: ...


def release_device_memory() -> None:
    """After a failed run (an out-of-memory error above all), give the CUDA caching allocator's
    blocks back so the next run starts with the memory the failed one held."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_error(error: BaseException) -> RunError:
    """A run's exception as a failure record states it: ``Type: message`` and the traceback."""
    return RunError(f"{type(error).__name__}: {error}",
                    "".join(traceback.format_exception(error)))


class SequentialExecutor:
    """Runs tasks one after another in this process. Exceptions inside a run (``MemoryError``
    and CUDA out-of-memory included) become errors; ``KeyboardInterrupt`` and ``SystemExit``
    are not caught, so Ctrl-C and SIGTERM stop the sweep."""

    def device_for_runs(self, device: str) -> str:
        return str(resolve_device(device))

    def execute(self, tasks: Sequence[RunTask], context: SweepContext) -> Iterator[TaskOutcome]:
        for task in tasks:
            failure = None
            try:
                result = context.work(task)
            except Exception as err:
                failure = run_error(err)
            if failure is not None:
                # outside the handler, so the failed run's frames and tensors can be freed
                release_device_memory()
                yield task, None, failure
                continue
            yield task, result, None

    def salvage(self) -> Iterator[TaskOutcome]:
        return iter(())  # the run in progress when the interrupt came never finished


def plan(workloads: Iterable[Workload], methods: Iterable[MethodConfig], seeds: Iterable[int],
         device: str, results_dir: str | os.PathLike[str],
         settings: ExecutionSettings | None = None) -> list[RunTask]:
    """The grid, ordered workload, seed, method (consecutive runs share a dataset), less the
    pairs where the method does not apply to the workload's backbone."""
    methods = list(methods)
    seeds = list(seeds)
    settings = ExecutionSettings() if settings is None else settings
    tasks = []
    for workload in workloads:
        for seed in seeds:
            for method in methods:
                if not method.applies_to(workload.model):
                    continue
                digest = config_hash(run_identity(workload, method, seed, device, settings))
                path = record_path(results_dir, workload.name, method.name, seed, digest)
                tasks.append(RunTask(workload, method, seed, device, path, settings))
    return tasks


def check_finished(task: RunTask) -> tuple[RunResult | None, str | None]:
    """``(record, None)`` when a valid record is on disk, ``(None, None)`` when there is none,
    and ``(None, why)`` when there is one that cannot be used."""
    if not task.path.is_file():
        return None, None
    try:
        return results_module.load(task.path), None
    except ResultError as error:
        return None, str(error)


def set_aside(path: Path) -> Path:
    """Rename an invalid record to ``<name>.invalid`` (``.invalid-2``, ... if taken)."""
    target = path.with_name(path.name + ".invalid")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.invalid-{n}")
    path.rename(target)
    return target


def remove_stale_temporaries(tasks: Iterable[RunTask]) -> int:
    """Delete the temporary files (``.seed-*.tmp``, ``.failed-*.tmp``) that an atomic write
    killed before its rename left in the tasks' folders; returns how many."""
    removed = 0
    for folder in {task.path.parent for task in tasks}:
        if folder.is_dir():
            for stale in [*folder.glob(".seed-*.tmp"), *folder.glob(".failed-seed-*.tmp")]:
                stale.unlink(missing_ok=True)
                removed += 1
    return removed


def write_failure(task: RunTask, error: RunError) -> Path:
    """The failure file of a run that raised: what failed, why, and where."""
    return write_json_atomic(task.failure_path, {
        "failed_run": task.label, "workload": task.workload.name, "method": task.method.name,
        "seed": task.seed, "device": task.device, "error": error.message,
        "traceback": error.traceback,
        "config": run_identity(task.workload, task.method, task.seed, task.device,
                             task.settings),
        "config_hash": task.path.stem.rsplit("-", 1)[-1],
        "environment": _environment_of(task.device),
    })


def _environment_of(device: str) -> dict:
    """The environment of a failed run: its device's where this machine has it (a run that
    failed on a cluster's GPU may be recorded by a driver that has none)."""
    import torch

    try:
        return describe(resolve_device(device))
    except DeviceError:
        return describe(torch.device("cpu"))


class FolderLock:
    """A results folder owned by one sweep at a time: an advisory lock (``flock``) on
    ``<folder>/.plp-bench.lock``, held while the sweep runs and released by the operating
    system on any exit, a kill included. A second sweep into the same folder is refused with
    a :class:`ConfigError` instead of training every cell a second time (and removing the
    other's temporary files). Sweeps run side by side with a folder each, or as one sweep
    with several runs in flight (``--executor ray --workers N``)."""

    FILE = ".plp-bench.lock"

    def __init__(self, folder: Path):
        self.folder = folder
        self._handle: Any = None

    def __enter__(self) -> FolderLock:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / self.FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(200).strip() or "another process"
            handle.close()
            raise ConfigError(f"{self.folder} is in use by another sweep ({holder}); wait for "
                              "it to finish, or give this one its own folder (sweeps run side "
                              "by side with a results folder each)", path=("--results",)
                              ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()  # closing releases the lock


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
    settings: ExecutionSettings | None = None,
) -> SweepReport:
    """Run every missing cell of the grid and return all records (old and new); ``settings``:
    how the models execute (default: eager float32)."""
    executor = executor or SequentialExecutor()
    device = executor.device_for_runs(device)
    workloads, methods = list(workloads), list(methods)
    tasks = plan(workloads, methods, seeds, device, results_dir, settings)
    with FolderLock(Path(results_dir)):
        return _sweep_owned(tasks, workloads, methods, data_root, executor, observer)


def _sweep_owned(tasks: list[RunTask], workloads: list[Workload], methods: list[MethodConfig],
                 data_root: str | None, executor: Executor,
                 observer: SweepObserver | None) -> SweepReport:
    """The sweep, once its results folder is this process's alone."""
    report = SweepReport(not_applicable=not_applicable(workloads, methods))
    remove_stale_temporaries(tasks)
    todo = []
    for task in tasks:
        existing, problem = check_finished(task)
        if problem is not None:
            report.invalid.append((set_aside(task.path), problem))
        if existing is None:
            todo.append(task)
        else:
            report.results.append(existing)
            report.paths.append(task.path)
            report.skipped += 1
    if observer:
        observer.sweep_started(len(tasks), report.skipped)

    def keep(task: RunTask, result: RunResult | None, error: RunError | None) -> None:
        """Write what a run gave: its record (atomically, with its checksum), or its failure."""
        if result is not None:
            results_module.save(result, task.path)
            report.results.append(result)
            report.paths.append(task.path)
            report.ran += 1
            task.failure_path.unlink(missing_ok=True)
        else:
            error = error or RunError("unknown error")
            write_failure(task, error)
            report.failed.append((task, error))
        if observer:
            observer.run_finished(task, result, error)

    context = SweepContext(data_root, observer)
    try:
        for outcome in executor.execute(todo, context):
            keep(*outcome)
    except KeyboardInterrupt:
        for outcome in executor.salvage():  # finished before the interrupt: keep them
            keep(*outcome)
        raise
    return report
