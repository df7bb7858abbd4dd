"""Sweeps on Ray: each run of the grid is one Ray task, scheduled by CPU and GPU resources on
an embedded single-machine Ray (the default), on a running cluster (``address``), or on the Ray
this process already started with ``ray.init`` (used as it is and left running).

What each run gets and keeps:

* **Resources**: ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs. Its torch thread count is set
  to its CPUs inside the worker, and the record's environment stores the thread count and
  ``executor`` (Ray, workers in flight, CPUs and GPUs per run, the worker's host and Ray node),
  so timings made under different thread counts or co-scheduling form their own report variant
  (:func:`plp_bench.core.record.variant_label`) instead of pooling silently.
* **Data**: the driver reads each dataset of the sweep once, unsplit (:func:`data.read_raw`),
  and puts it in Ray's object store; a worker splits it by its run's seed on its device
  (:func:`data.build_dataset`) and keeps the last one it built. Cluster nodes need no copy of
  the data root. This stops scaling where a dataset no longer fits a node's object store (by
  default 30% of its memory): past that, give every node the data root instead.
* **Records**: a worker returns the record (or the run's error) and never writes; the driver
  writes it through the sweep, atomically and with its checksum, so resume, failure files, the
  setting aside of damaged records and ``rerun`` are the same as in-process.
* **Faults**: a worker process that dies (SIGKILL, out of memory) or a node that is lost has its
  run retried by Ray up to ``retries`` times; after that the run is a failed run with the error.
  A run that raises is not retried (the same error would come back). An interrupt
  (``KeyboardInterrupt``) first keeps the runs that had finished, then cancels the rest.

``workers`` caps the runs in flight. Defaults: on ``cuda``, one GPU per run and as many runs as
the cluster has GPUs; on the CPU, one run per core; the cluster's CPUs are split evenly over
the runs in flight. Ray is imported only here and only when a sweep uses it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.config import ConfigError
from ..core.record import RunResult
from ..runs.device import DeviceError, parse_device
from ..runs.protocol import Progress
from .grid import DatasetCache, RunError, RunTask, SweepContext, TaskOutcome, release_device_memory, run_error

POLL_SECONDS = 0.2  # how often the driver checks for finished runs and their progress
CONNECT_TIMEOUT_SECONDS = 5.0
INSTALL_HINT = "pip install 'plp-bench[ray]' (Ray 2.60.0)"


@dataclass(frozen=True)
class RaySettings:
    """How a sweep uses Ray; ``None`` means the default described in the module."""

    address: str | None = None
    workers: int | None = None
    cpus_per_run: int | None = None
    gpus_per_run: float | None = None
    retries: int = 3  # Ray's own default for tasks whose worker died

    def __post_init__(self) -> None:
        for flag, value, low in (("--workers", self.workers, 1),
                                 ("--cpus-per-run", self.cpus_per_run, 1),
                                 ("--retries", self.retries, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < low):
                raise ConfigError(f"{value!r} is not a whole number >= {low}", path=(flag,))
        gpus = self.gpus_per_run
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int | float)
                                 or not gpus >= 0):
            raise ConfigError(f"{gpus!r} is not a number >= 0", path=("--gpus-per-run",))


def ray_module():
    """``ray``, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"ray needs the ray package, which is not installed here: "
                          f"{INSTALL_HINT}", path=("--executor",)) from None
    return ray


def check_reachable(address: str, option: str = "--address") -> None:
    """A ``host:port`` address that nothing answers at is refused before Ray tries it (Ray
    itself would retry for a minute); ``option`` names where the address came from
    (``--address``, or ``$RAY_ADDRESS``)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{address!r} is not a Ray address: give HOST:PORT of the head node "
                          "(ray start --head prints it) or auto", path=(option,))
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"{address!r}: port {port} is not a port (1 to 65535)", path=(option,))
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError as error:
        raise ConfigError(f"no Ray cluster answers at {address} ({error.strerror or error}); "
                          "start one with `ray start --head` or give its head node's address",
                          path=(option,)) from None


@dataclass(frozen=True)
class Placement:
    """What every run of the sweep is given, as the record's ``environment.executor`` says."""

    workers: int
    cpus_per_run: int
    gpus_per_run: float

    def resources(self) -> dict[str, float]:
        return {"num_cpus": self.cpus_per_run, "num_gpus": self.gpus_per_run}


def plan_placement(settings: RaySettings, device: str, nodes: list[dict]) -> Placement:
    """The resources of each run and the runs in flight on the cluster's live ``nodes``
    (``ray.nodes()``); a request no single node can meet is refused naming its flag."""
    cpus = [float(n["Resources"].get("CPU", 0)) for n in nodes]
    gpus = [float(n["Resources"].get("GPU", 0)) for n in nodes]
    on_gpu = device.startswith("cuda")
    gpus_per_run = settings.gpus_per_run if settings.gpus_per_run is not None else (
        1.0 if on_gpu else 0.0)
    if on_gpu and gpus_per_run == 0:
        raise ConfigError("a run on --device cuda needs a GPU: give --gpus-per-run > 0",
                          path=("--gpus-per-run",))
    if not on_gpu and gpus_per_run > 0:
        raise ConfigError(f"{gpus_per_run:g} GPUs per run, but the runs are on the CPU: use "
                          "--device cuda", path=("--gpus-per-run",))
    if gpus_per_run > max(gpus, default=0):
        raise ConfigError(f"{gpus_per_run:g} GPU(s) per run, but no node of the cluster has "
                          f"that many (GPUs per node: {', '.join(f'{g:g}' for g in gpus)})",
                          path=("--gpus-per-run",))
    usable = [i for i, g in enumerate(gpus) if g >= gpus_per_run]
    if settings.workers is not None:
        workers = settings.workers
        capacity = (int(sum(gpus[i] // gpus_per_run for i in usable)) if on_gpu
                    else int(sum(cpus[i] // (settings.cpus_per_run or 1) for i in usable)))
        if workers > max(capacity, 1):
            raise ConfigError(f"{workers} runs in flight, but the cluster can run at most "
                              f"{max(capacity, 1)} at once (CPUs per node: "
                              f"{', '.join(f'{c:g}' for c in cpus)}"
                              + (f"; GPUs per node: {', '.join(f'{g:g}' for g in gpus)})"
                                 if on_gpu else ")"), path=("--workers",))
    elif on_gpu:
        workers = max(1, int(sum(gpus[i] // gpus_per_run for i in usable)))
    else:
        workers = max(1, int(sum(cpus)))
    cpus_per_run = settings.cpus_per_run
    if cpus_per_run is None:
        cpus_per_run = max(1, min(int(sum(cpus[i] for i in usable)) // workers,
                                  int(max(cpus[i] for i in usable))))
    if not any(cpus[i] >= cpus_per_run for i in usable):
        raise ConfigError(f"{cpus_per_run} CPU(s) per run, but no node of the cluster has "
                          f"that many{' beside the GPUs asked for' if gpus_per_run else ''} "
                          f"(CPUs per node: {', '.join(f'{c:g}' for c in cpus)})",
                          path=("--cpus-per-run",))
    return Placement(workers, cpus_per_run, gpus_per_run)


class ProgressBoard:
    """A Ray actor the workers tell their progress to; the driver takes it at each poll."""

    def __init__(self) -> None:
        self.latest: dict[int, Progress] = {}

    def report(self, key: int, progress: Progress) -> None:
        self.latest[key] = progress

    def take(self) -> dict[int, Progress]:
        latest, self.latest = self.latest, {}
        return latest


_WORKER_DATASETS = DatasetCache()  # in a worker process: the last dataset it built


def _dataset_on_worker(task: RunTask, raw_ref) -> Any:
    """The task's split of the arrays behind ``raw_ref``; a worker serves runs of several
    sweeps (several data roots) in one Ray session, so the cache is keyed by the object too."""
    import ray

    from .. import data

    return _WORKER_DATASETS.get(task, lambda: data.build_dataset(
        task.workload.dataset, ray.get(raw_ref), seed=task.seed,
        val_fraction=task.workload.val_fraction, test_split_seed=0, device=task.device),
        source=raw_ref.hex())


def run_on_worker(task: RunTask, raw: list, placement: Placement, key: int,
                  board) -> tuple[RunResult | None, RunError | None]:
    """One run, inside a Ray worker: its thread count, its dataset, the run, and where it ran
    (the record's ``environment.executor``). ``raw`` holds the dataset's object reference
    (inside a list, so that Ray passes the reference rather than the arrays: a worker that
    already has the split fetches nothing). Returns the record or the run's error."""
    import ray
    import torch

    from ..runs.entry import run

    torch.set_num_threads(placement.cpus_per_run)

    def callback(progress: Progress) -> None:
        board.report.remote(key, progress)

    try:
        result = run(task.workload, task.method, task.seed, task.device,
                     settings=task.settings, dataset=_dataset_on_worker(task, raw[0]),
                     callback=callback)
    except Exception as error:
        failure = run_error(error)
    else:
        result.environment["executor"] = {
            "name": "ray", "workers": placement.workers, "cpus_per_run": placement.cpus_per_run,
            "gpus_per_run": placement.gpus_per_run, "host": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id()}
        return result, None
    release_device_memory()  # outside the handler, so the failed run's tensors can go
    return None, failure


class RayExecutor:
    """Runs a sweep's tasks on Ray (see the module). :meth:`start` connects and checks the
    resources before any run (a bad address or an impossible request is a
    :class:`ConfigError`); :meth:`close` cancels what is in flight and disconnects (an embedded
    Ray is shut down)."""

    def __init__(self, settings: RaySettings | None = None):
        self.settings = settings or RaySettings()
        self.placement: Placement | None = None
        self.nodes = 0
        self._owns_ray = False  # started or joined Ray here, so leaves it in close()
        self._ray = None
        self._remote = None
        self._board = None
        self._in_flight: dict[Any, tuple[int, RunTask]] = {}  # ref -> (progress key, task)

    # -- connecting ----------------------------------------------------------------------------

    @property
    def address(self) -> str | None:
        return self.settings.address or os.environ.get("RAY_ADDRESS") or None

    @property
    def address_source(self) -> str:
        """Where :attr:`address` came from, as a message names it."""
        return "--address" if self.settings.address else "$RAY_ADDRESS"

    def device_for_runs(self, device: str) -> str:
        """The device string every run is given: ``cpu`` or ``cuda`` (Ray assigns each run its
        GPU, which it sees as ``cuda``); the driver itself needs no GPU, so the name is parsed
        (:func:`~plp_bench.runs.device.parse_device`) but not looked for here."""
        try:
            parsed = parse_device(device)
        except DeviceError as error:
            raise ConfigError(str(error), path=("--device",)) from None
        if parsed.index is not None:
            raise ConfigError(f"with --executor ray each run is given its GPU by Ray; use "
                              f"--device cuda, not {device}", path=("--device",))
        return parsed.type

    def start(self, device: str) -> Placement:
        """Connect (or start the embedded Ray), check that some node can run a run, and decide
        the placement. Safe to call again."""
        if self.placement is not None:
            return self.placement
        ray = ray_module()
        device = self.device_for_runs(device)
        address = self.address
        self._owns_ray = not ray.is_initialized()  # else: the caller's Ray, left running
        if self._owns_ray:
            if address:
                check_reachable(address, self.address_source)
            try:
                # Ray's notices (token authentication, ports) would break into the progress
                # display; its errors still show, and every run's failure is in its record
                # an embedded Ray's workers run at the driver's priority: Ray's default
                # niceness (15) starves them behind any other process on a shared machine,
                # and a run's seconds would then measure the neighbours
                extra = {} if address else {"_system_config": {"worker_niceness": 0}}
                ray.init(address=address or "local", include_dashboard=False,
                         log_to_driver=False, logging_level="error", configure_logging=True,
                         **extra)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = f"at {address}" if address else "on this machine"
                raise ConfigError(f"could not start or join Ray {where}: {error}",
                                  path=(self.address_source,) if address else ("--executor",)
                                  ) from None
        self._ray = ray
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            self.nodes = len(nodes)
            self.placement = plan_placement(self.settings, device, nodes)
        except ConfigError:
            self.close()
            raise
        self._remote = ray.remote(run_on_worker).options(
            max_retries=self.settings.retries, retry_exceptions=False,
            **self.placement.resources())
        self._board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        return self.placement

    def describe(self) -> str:
        """Where the runs go and what each is given, in one line."""
        p = self.placement
        where = (f"at {self.address}" if self.address else "embedded") if self._owns_ray \
            else "already started in this process"
        return (f"Ray {where}, {self.nodes} node(s): {p.workers} runs in flight, each with "
                f"{p.cpus_per_run} CPU(s) and {p.gpus_per_run:g} GPU(s)")

    def close(self) -> None:
        """Cancel the runs in flight and leave Ray (shutting down an embedded one); a Ray this
        process had started before :meth:`start` is left running."""
        ray = self._ray
        if ray is None:
            return
        for ref in list(self._in_flight):
            # a run that already finished, or whose worker is gone, has nothing to stop
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        self._in_flight.clear()
        if self._owns_ray:
            ray.shutdown()
        elif self._board is not None:
            ray.kill(self._board)
        self._ray = self._remote = self._board = None
        self.placement = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running -------------------------------------------------------------------------------

    def execute(self, tasks: Sequence[RunTask], context: SweepContext) -> Iterator[TaskOutcome]:
        if not tasks:
            return
        ray = self._ray
        if ray is None:
            self.start(tasks[0].device)
            ray = self._ray
        pending = deque(enumerate(tasks))
        raw_refs: dict[str, Any] = {}  # dataset name -> its arrays in the object store
        while pending or self._in_flight:
            while pending and len(self._in_flight) < self.placement.workers:
                key, task = pending.popleft()
                try:
                    raw = raw_refs.get(task.workload.dataset)
                    if raw is None:
                        raw = raw_refs[task.workload.dataset] = ray.put(
                            self._read_raw(task, context))
                except Exception as error:
                    yield task, None, run_error(error)
                    continue
                ref = self._remote.remote(task, [raw], self.placement, key, self._board)
                self._in_flight[ref] = key, task
                if context.observer:
                    context.observer.run_started(task)
            ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=POLL_SECONDS)
            self._forward_progress(context)
            for ref in ready:
                yield self._outcome(ref)

    def salvage(self) -> Iterator[TaskOutcome]:
        """The runs that had finished when the interrupt came; the others are cancelled."""
        ray = self._ray
        if ray is None or not self._in_flight:
            return
        ready, _ = ray.wait(list(self._in_flight), num_returns=len(self._in_flight), timeout=0)
        for ref in ready:
            yield self._outcome(ref)
        self.close()

    @staticmethod
    def _read_raw(task: RunTask, context: SweepContext):
        from .. import data

        return data.read_raw(task.workload.dataset, root=context.data_root)

    def _outcome(self, ref) -> TaskOutcome:
        """The finished run of ``ref``: its record or its error (a worker that died as many
        times as Ray retries it is an error too)."""
        _, task = self._in_flight.pop(ref)
        try:
            result, error = self._ray.get(ref)
        except self._ray.exceptions.RayError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return task, None, RunError(f"{type(error).__name__}: {first_line} (after "
                                        f"{self.settings.retries} retries)", str(error))
        return task, result, error

    def _forward_progress(self, context: SweepContext) -> None:
        """The latest progress the runs in flight reported, to the observer."""
        if context.observer is None:
            return
        latest = self._ray.get(self._board.take.remote())
        for key, task in self._in_flight.values():
            if key in latest:
                context.observer.run_progress(task, latest[key])
