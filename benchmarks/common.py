"""What the asv suites share, carried with them: asv runs the current ``benchmarks/`` against
every commit it measures, with that commit's own ``plp_bench`` installed.

Three rules keep an older commit measurable by today's suites:

* **Parameters are fixed here**, never read from the installed package. asv imports a suite
  again in each commit's environment and finds a point by its index into the parameters
  computed there: parameters read from a registry that differs between commits would file
  values under the wrong names. ``tests/test_benchmarks.py`` checks that the lists below cover
  the registries of the checked-out commit.
* **The harness is touched only inside** :func:`harness` **blocks**, in ``setup`` or what it
  calls. A name the installed commit lacks raises ``NotImplementedError`` there, which asv
  reports as a skipped point (``n/a``), never a failed one.
* **Only the stable interface is used** (:data:`INTERFACE`: the public ``run`` and ``sweep``,
  the registries of workloads, methods, models and datasets, the run records, and the
  measured objects of a few suites); everything else a suite needs (sizes, the run cache,
  medians, timers, the cost benches of :mod:`benchmarks.costs`) lives in ``benchmarks/``. A
  test reads every import of the suites and refuses any other name.

Sizes (``PLP_BENCH_SIZE``):

* ``ci`` (the default): the offline workloads and banknote, budgets cut to at most
  ``CI_STEP_CAP`` steps and ended at the last target (:func:`grid_workload`), 1 seed, the
  methods of the default run; update-time ratios on the
  MLP and ResNet18, held memory on the MLP, no absolute update and jump times (see
  ``Size.absolute_times``); minutes on 2 CPU cores.
* ``full``: every workload at the papers' budgets, every method, 5 seeds. Workloads whose data
  is absent, and CIFAR workloads without a CUDA device, are skipped.
* ``gpu``: the convergence of the PLP paper's GPU workloads (CIFAR-100 with VGG16, ResNet18 and
  GoogLeNet; MNIST) at full budgets for SGD, PLP, DEMON and PLP+DEMON, 3 seeds, on CUDA; the
  other suites at their smallest. Run it with ``--bench`` naming the suites wanted.
* ``smoke``: every suite at its smallest (one workload of each kind, a few methods, 1 seed,
  ``SMOKE_STEP_CAP`` steps): whether the suites run at all on a commit, in a minute or two.

A convergence point (commit, workload, method, seed) trains exactly once however many
``track_`` benchmarks read it: :func:`convergence_records` runs ``plp_bench.sweep`` into a
folder named by the commit and size (:func:`runs_dir`), which skips what is already there. The
first point asked for trains the size's whole grid in one sweep.

``PLP_BENCH_EXECUTOR=ray`` makes that sweep go through Ray, so a machine with several GPUs (or
a cluster: ``RAY_ADDRESS``) fills them all; ``PLP_BENCH_WORKERS``, ``PLP_BENCH_CPUS_PER_RUN``
and ``PLP_BENCH_GPUS_PER_RUN`` are the run command's ``--workers``, ``--cpus-per-run`` and
``--gpus-per-run``. A commit without the Ray
executor trains in-process, as without the variable.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .sampling import prepare_timing

# Every name of the installed package the suites may use. Removing or renaming one of these in
# plp_bench breaks the comparison of commits across that change: keep them, or skip cleanly.
INTERFACE = {
    "plp_bench": {"run", "sweep"},
    "plp_bench.workloads": {"get", "list_workloads"},  # and Workload's replace, total_steps,
    # evaluation_period, stop_at_targets; MethodConfig's applies_to; RunResult's fields
    "plp_bench.methods": {"get_method", "list_methods", "build_method", "MethodConfig"},
    "plp_bench.models": {"create"},
    "plp_bench.data": {"load", "check_available", "DataError", "EpochSampler"},
    "plp_bench.methods.schedules": {"ScheduleRunner"},
    "plp_bench.methods.solvers": {"SOLVERS"},
    "plp_bench.studies.ode_comparison": {"compare"},
    # the comparison's pieces, whose instructions benchmarks.ode_counting counts
    "plp_bench.runs.solving": {"linearize"},
    "plp_baselines.linearized": {"integrate", "gradient_descent"},
    "plp_bench.core.execution_settings": {"ExecutionSettings"},
    "plp_bench.studies.image_throughput": {"ThroughputBench"},
    "plp_bench.sweeps.ray": {"RayExecutor", "RaySettings"},
    "plp_baselines.introspection.jumps": {"WeightJumps", "history_steps", "predict_flat"},
}
# Where commits from before the package's folders keep the interface modules that moved; the
# suites reach these modules only through interface_module(), which looks here second.
FORMER_HOMES = {
    "plp_bench.methods.schedules": "plp_bench.schedules",
    "plp_bench.methods.solvers": "plp_bench.solvers",
    "plp_bench.studies.ode_comparison": "plp_bench.ode_table",
    "plp_bench.runs.solving": "plp_bench.linearized_run",
    "plp_bench.core.execution_settings": "plp_bench.execution",
    "plp_bench.studies.image_throughput": "plp_bench.throughput",
    "plp_bench.sweeps.ray": "plp_bench.ray_executor",
    # installed under the folder's own name before "baselines" was found taken on PyPI
    "plp_baselines.introspection.jumps": "baselines.introspection.jumps",
    "plp_baselines.linearized": "baselines.linearized",
}


def interface_module(name: str) -> Any:
    """The interface module ``name`` of the installed commit: at its home today, else at the
    home an older commit keeps it in (:data:`FORMER_HOMES`). Where neither imports, the
    ``ImportError`` is the one of today's home, which :func:`harness` turns into a skip."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if name not in FORMER_HOMES:
            raise
        try:
            return importlib.import_module(FORMER_HOMES[name])
        except ImportError:
            pass
        raise


def interface_name(module: str, name: str) -> Any:
    """``name`` from the interface module ``module`` (see :func:`interface_module`); a name
    the commit lacks is an ``ImportError`` naming it, so that :func:`harness` skips."""
    found = interface_module(module)
    try:
        return getattr(found, name)
    except AttributeError:
        raise ImportError(f"cannot import name {name!r} from {found.__name__!r}",
                          name=module) from None


# What the harness and torch import on first use, not on import, and what each benchmark's
# process would otherwise import again for itself: torch's first optimizer imports
# torch._dynamo (3.4 s on a 2 GHz core, sympy among it), the offline datasets' readers import
# scikit-learn (3.1 s). Measured in a process forked as asv forks one: a step-cost point of
# digits-mlp took 6.2 s, 0.75 s of it the timing.
LAZY_IMPORTS = ("torch._dynamo", "sklearn.datasets", "scipy.integrate", "scipy.stats")
FORKSERVER = "asv_runner.server"  # the module asv's forkserver runs in


def _preload() -> None:
    """Import the interface's modules once, when asv's forkserver imports the suites, so that
    every benchmark's process (asv forks one per point) starts with the harness loaded: a fresh
    import of it costs seconds. A module the commit lacks is left for :func:`harness` to report
    in the ``setup`` that needs it.

    In a forkserver, :data:`LAZY_IMPORTS` too, and then everything loaded is frozen out of the
    collector's sight. Elsewhere (the tests, asv's spawned processes, the instruction counts'
    children, which import the suites under Valgrind) they would cost their import and save
    nothing."""
    for module in INTERFACE:
        with contextlib.suppress(ImportError):
            interface_module(module)
    if FORKSERVER not in sys.modules:
        return
    for module in LAZY_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    # A forked process's full collection (every timing's setup runs one) would otherwise walk
    # these objects and so copy their pages: 0.3 s a process here (Python's documentation of
    # gc.freeze describes this use).
    gc.freeze()


_preload()

CI_STEP_CAP = 400
SMOKE_STEP_CAP = 8
SIZES = ("ci", "full", "gpu", "smoke")

# The registries of the harness, as the suites track them (see the module: fixed here).
WORKLOADS = ["banknote-mlp", "breast_cancer-mlp", "cifar10-cifar1", "cifar100-googlenet",
             "cifar100-resnet18", "cifar100-vgg16", "digits-cnn", "digits-mlp", "magic-mlp",
             "mnist-mnist1", "mnist-mnist2", "mnist-mnist3", "mnist-mnist4", "mnist-n0"]
METHODS = ["adabelief", "adam", "adam3", "adamw", "demon", "gd-fullbatch", "introspection",
           "introspection-adam", "introspection-linear", "jump-linear", "jump-noise", "jump-quadratic",
           "linearized-bdf", "linearized-lsoda", "plp", "plp-1n", "plp-adam", "plp-compiled",
           "plp-demon", "sgd", "xgrad-adabelief", "xgrad-adam", "xgrad-adam3", "xgrad-adamw",
           "xgrad-sgd"]
# PLP over SGD on its other path and kernel: what they cost is measured (step_cost); how fast
# they train is plp's (the same updates within rounding), so the convergence grid leaves them
PLP_VARIANTS = ["plp-1n", "plp-compiled"]
# XGrad's fourth and fifth optimizers: out of the default run, and measured at the full size
# only (CI's time holds no more; their update rules are tested against their papers)
XGRAD_EXTRA_OPTIMIZERS = ["adabelief", "adam3", "xgrad-adabelief", "xgrad-adam3"]
DEFAULT_METHODS = [m for m in METHODS if m not in ("gd-fullbatch", "introspection-adam",
                                                   "linearized-bdf", "linearized-lsoda",
                                                   *PLP_VARIANTS, *XGRAD_EXTRA_OPTIMIZERS)]
SOLVED_METHODS = ["linearized-bdf", "linearized-lsoda"]  # no optimizer step to time
STEPPED_METHODS = [m for m in METHODS if m not in SOLVED_METHODS]
# the bare optimizers themselves
BASE_OPTIMIZERS = ["adabelief", "adam", "adam3", "adamw", "gd-fullbatch", "sgd"]
COMPOSED_METHODS = [m for m in STEPPED_METHODS if m not in BASE_OPTIMIZERS]
JUMP_METHODS = ["introspection", "introspection-adam", "introspection-linear", "jump-linear",
                "jump-noise", "jump-quadratic"]
CIFAR_PARAMETER_SETS = ["resnet18", "vgg16", "googlenet"]
GPU_WORKLOADS = ["cifar100-vgg16", "cifar100-resnet18", "cifar100-googlenet", "mnist-mnist1"]
GPU_METHODS = ["sgd", "plp", "demon", "plp-demon"]


@dataclass(frozen=True)
class Size:
    name: str
    workloads: list[str]
    methods: list[str]
    seeds: int
    step_cap: int | None
    parameter_sets: list[str]
    secondary_sets: list[str]  # absolute update and jump times, held memory: what the
    # ratios over parameter_sets already watch, or (memory) the same on every set
    training_step_sets: list[str]
    loop_workloads: list[str]
    ode_workloads: list[str]
    stepped_methods: list[str]
    composed_methods: list[str]
    jump_methods: list[str]
    # absolute update and jump seconds: on this 2-vCPU machine a busy neighbour vCPU slows a
    # call up to 2.3x (the two share a core's pipeline), so no pairing cancels it; CI compares
    # the ratios and leaves these to the sizes that are run on a machine kept for them
    absolute_times: bool = True


def current_size() -> Size:
    """The size named by ``PLP_BENCH_SIZE`` (a ``ValueError`` names the allowed values)."""
    name = os.environ.get("PLP_BENCH_SIZE", "ci")
    every = (STEPPED_METHODS, COMPOSED_METHODS, JUMP_METHODS)
    if name == "ci":
        # MAGIC's grid (a minute and a half) and ResNet18's absolute times and held memory
        # are left to the full size: CI keeps the time ratios on ResNet18 and a full-batch
        # UCI workload. One seed: on the CPU a seed's steps to a target are bit-reproducible,
        # so a change between commits is real whatever the seed count (a change to a method's
        # arithmetic moves every seed's trajectory); CI trains the grid twice (the commit's
        # and its parent's), and a second seed would cost each 2 minutes on a 2 GHz core
        # the compiled PLP kernel compiles in every benchmark process: full size only
        uncompiled = [[m for m in names if m not in ("plp-compiled", *XGRAD_EXTRA_OPTIMIZERS)]
                      for names in every]
        return Size("ci", ["digits-mlp", "digits-cnn", "breast_cancer-mlp", "banknote-mlp"],
                    DEFAULT_METHODS, 1, CI_STEP_CAP, ["mlp", "resnet18"], ["mlp"],
                    ["mlp"], ["digits-mlp"], ["banknote-mlp"], *uncompiled,
                    absolute_times=False)
    if name == "full":
        return Size("full", WORKLOADS, [m for m in METHODS if m not in PLP_VARIANTS], 5, None,
                    ["mlp", "resnet18", "vgg16"],
                    ["mlp", "resnet18", "vgg16"], ["mlp", "resnet18"],
                    ["digits-mlp", "breast_cancer-mlp", "digits-cnn"], ["banknote-mlp", "magic-mlp"],
                    *every)
    if name == "gpu":
        return Size("gpu", GPU_WORKLOADS, GPU_METHODS, 3, None, ["mlp"], ["mlp"], ["mlp"],
                    ["digits-mlp"], ["banknote-mlp"], *every)
    if name == "smoke":
        return Size("smoke", ["breast_cancer-mlp", "digits-cnn"],
                    ["sgd", "plp", "introspection", "linearized-bdf"], 1, SMOKE_STEP_CAP,
                    ["mlp"], ["mlp"], ["mlp"], ["breast_cancer-mlp"], ["banknote-mlp"], ["sgd", "plp"],
                    ["plp"], ["introspection"])
    raise ValueError(f"PLP_BENCH_SIZE={name!r}; allowed: {', '.join(SIZES)}")


@contextlib.contextmanager
def harness() -> Iterator[None]:
    """Imports of the installed ``plp_bench`` (or ``plp_baselines``) inside this block that the
    commit lacks skip the benchmark (asv: ``NotImplementedError``) instead of failing it."""
    try:
        yield
    except ImportError as error:
        raise NotImplementedError(f"this commit's package lacks {error.name or error}: "
                                  f"{error}") from None


# what a commit named by a variable may be (the harness's rule for record commits): a hash or a
# token such as a branch name, never a path, since it names the run cache's folder
COMMIT_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
COMMIT_VARIABLES = ("PLP_BENCH_COMMIT", "ASV_COMMIT")


@cache
def commit() -> str:
    """The commit being measured: ``$PLP_BENCH_COMMIT``, else ``$ASV_COMMIT`` (asv sets it
    where it installs the commit itself), else the checkout of ``benchmarks/``, but only where
    the installed ``plp_bench`` is that checkout's own (an editable install). asv's
    ``existing:`` environments set no ``$ASV_COMMIT``: whatever package that Python has is
    measured, another commit's in ``.ci/run``'s parent round, and its records and memos
    filed under the checkout's commit would be read as another commit's (and that commit's
    read as its own). Raises ``ValueError`` naming the variable where a value is not a
    commit, and ``RuntimeError`` where the commit cannot be told."""
    for var in COMMIT_VARIABLES:
        value = os.environ.get(var)
        if value:
            if not COMMIT_TOKEN.fullmatch(value):
                raise ValueError(f"${var}={value[:80]!r} is not a commit: letters, digits, "
                                 "_ . - (64 at most, starting with a letter or digit)")
            return value
    checkout = Path(__file__).resolve().parent.parent
    installed = _installed_package_folder()
    if installed is not None and checkout not in installed.parents:
        raise RuntimeError(
            f"the installed plp_bench ({installed}) is not this checkout's ({checkout}), and "
            "neither $PLP_BENCH_COMMIT nor $ASV_COMMIT names its commit: set "
            "PLP_BENCH_COMMIT to the commit that package was installed from")
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown-commit"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown-commit"


def _installed_package_folder() -> Path | None:
    """Where the installed ``plp_bench`` lives (found without importing it), or ``None``."""
    spec = importlib.util.find_spec("plp_bench")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent


def runs_dir() -> Path:
    """Where this commit's convergence records go: ``$PLP_BENCH_ASV_RUNS``, else ``.asv/runs``
    beside the asv config (``$ASV_CONF_DIR``), else ``~/.cache/plp-bench/asv-runs``; then one
    folder per commit and size, where ``plp-bench report`` looks for them. (asv runs each
    benchmark in a fresh temporary folder, so the current folder would not outlive it.)"""
    root = os.environ.get("PLP_BENCH_ASV_RUNS")
    if root is None and os.environ.get("ASV_CONF_DIR"):
        root = str(Path(os.environ["ASV_CONF_DIR"]) / ".asv" / "runs")
    if root is None:
        root = str(Path.home() / ".cache" / "plp-bench" / "asv-runs")
    return Path(root) / commit() / current_size().name


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def device() -> str:
    return "cuda" if cuda_available() else "cpu"


def require_absolute_times() -> None:
    """Skip (asv: ``n/a``) an absolute timing at a size that leaves them out."""
    if not current_size().absolute_times:
        raise NotImplementedError(f"absolute times are not measured at the "
                                  f"{current_size().name} size")


def require_device(name: str) -> None:
    """``NotImplementedError`` (asv: skipped) when device ``name`` is not here."""
    if name.startswith("cuda") and not cuda_available():
        raise NotImplementedError("needs a CUDA device; this machine has none")


def write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle)
    os.replace(tmp, path)


def memo(name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per commit and size: kept as JSON under :func:`runs_dir`."""
    path = runs_dir() / "memo" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    write_json_atomic(path, value)
    return value


def measurement_token() -> str:
    """What tells one ``asv run`` (of one commit) from the next: the process that starts the
    benchmark processes (asv's forkserver, or asv itself when it spawns them), by pid and start
    time. Deterministic values (records, steps) are kept for every run of a commit; timings
    are kept only within one run, so that repeated runs sample the machine again."""
    parent = os.getppid()
    try:
        # field 22 of /proc/<pid>/stat, after the parenthesised command name
        started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    return f"{parent}-{started}"


def memo_per_run(name: str, compute: Callable[[], Any]) -> Any:
    """:func:`memo` for timings: shared by the benchmarks of one asv run, measured again by
    the next (see :func:`measurement_token`)."""
    return memo(f"{name}-run-{measurement_token()}", compute)


def benchmark_workload(name: str):
    """The workload as this size runs it, or ``NotImplementedError`` (asv: skipped) when its
    data or the device it needs is absent. A capped size cuts the budget to its step cap."""
    with harness():
        from plp_bench import data, workloads
    if name not in workloads.list_workloads():
        raise NotImplementedError(f"this commit has no workload {name!r}")
    workload = workloads.get(name)
    try:
        data.check_available(workload.dataset)
    except data.DataError as error:
        raise NotImplementedError(f"{name}: data not available ({error})") from None
    if workload.dataset.startswith("cifar") and device() == "cpu":
        raise NotImplementedError(f"{name} needs a CUDA device")
    cap = current_size().step_cap
    if cap is None:
        return workload
    rows = memo(f"rows-{workload.dataset}",
                lambda: len(data.load(workload.dataset, seed=0).y_train))
    batches = min(workload.batch_size, rows)
    per_epoch = -(-rows // batches)  # the last batch of an epoch may be smaller
    if workload.total_steps(per_epoch) <= cap:
        return workload
    return workload.replace(steps=cap, epochs=None,
                            eval_every=min(workload.evaluation_period(per_epoch), cap))


def grid_workload(name: str):
    """The workload as the convergence grid trains it: :func:`benchmark_workload`, and at a
    size that caps budgets, ended once every target is reached (the workload's
    ``stop_at_targets``). Steps, times and seconds to each target are those of the whole
    capped run (the evaluations up to the last target are the same); a run that misses a
    target still runs its whole budget, which the medians count. Only the best model's test
    errors differ: they are the best up to the last target. On the ci size's grid (60 runs)
    this left out 53% of the steps, and every run's steps to each target were the same."""
    workload = benchmark_workload(name)
    if current_size().step_cap is None:
        return workload
    return workload.replace(stop_at_targets=True)


def _number(variable: str, kind: type) -> Any:
    value = os.environ.get(variable)
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{variable}={value!r} is not a {kind.__name__}") from None
    low = 0 if variable == "PLP_BENCH_GPUS_PER_RUN" else 1
    if not number >= low:  # named here: the executor would blame its command-line flag
        raise ValueError(f"{variable}={value!r} is below the minimum {low}")
    return number


def _grid_executor(name: str):
    """The executor that trains the grid: ``None`` (the sweep's own, in-process) or a Ray
    executor; ``NotImplementedError`` where the installed commit has no Ray executor."""
    if name == "in-process":
        return contextlib.nullcontext()
    with harness():
        RayExecutor = interface_name("plp_bench.sweeps.ray", "RayExecutor")
        RaySettings = interface_name("plp_bench.sweeps.ray", "RaySettings")
    return RayExecutor(RaySettings(workers=_number("PLP_BENCH_WORKERS", int),
                                   cpus_per_run=_number("PLP_BENCH_CPUS_PER_RUN", int),
                                   gpus_per_run=_number("PLP_BENCH_GPUS_PER_RUN", float)))


def train_grid(executor_name: str) -> bool:
    """Train every point of the size's convergence grid in one sweep (see the module); a
    commit without the Ray executor trains in-process. Runs that fail are left to their
    points, which sweep them again and report the error."""
    with harness():
        from plp_bench import methods, sweep
    prepare_timing()  # training runs on one thread, as every timing does
    try:
        executor = _grid_executor(executor_name)
    except NotImplementedError:
        executor = contextlib.nullcontext()
    points = []
    for name in current_size().workloads:
        with contextlib.suppress(NotImplementedError):
            points.append(grid_workload(name))
    chosen = [methods.get_method(m) for m in current_size().methods
              if m in methods.list_methods()]
    with executor as running:
        # an older commit's sweep may take no executor: pass one only when there is one
        on_ray = {} if running is None else {"executor": running}
        sweep(points, chosen, range(current_size().seeds), device(), runs_dir(), **on_ray)
    return True


def convergence_records(workload_name: str, method_name: str) -> list:
    """The records of every seed of one point. The first point asked for trains the whole grid
    in one sweep (one process: the imports and each dataset's loading are paid once, not once
    a point); each point then reads its records, training only what is still missing."""
    executor = os.environ.get("PLP_BENCH_EXECUTOR", "in-process")
    if executor not in ("in-process", "ray"):
        raise ValueError(f"PLP_BENCH_EXECUTOR={executor!r}; allowed: in-process, ray")
    with harness():
        from plp_bench import methods, sweep
    if method_name not in methods.list_methods():
        raise NotImplementedError(f"this commit has no method {method_name!r}")
    method = methods.get_method(method_name)
    workload = grid_workload(workload_name)
    if not method.applies_to(workload.model):
        raise NotImplementedError(f"{method_name} does not apply to {workload.model}")
    memo(f"convergence-grid-{executor}", lambda: train_grid(executor))
    report = sweep([workload], [method], range(current_size().seeds), device(), runs_dir())
    if report.failed:
        raise RuntimeError("; ".join(f"{task.label}: {error}" for task, error in report.failed))
    return sorted(report.results, key=lambda r: r.seed)


def censored_median(records: list, index: int, field: str) -> float:
    """Median over seeds of the steps or seconds to target ``index``; a run that missed counts
    as its whole budget (a lower bound), so a method that stops reaching a target shows up as
    slower rather than vanishing from the median. (The reports compare commits with the same
    rule, ``plp_bench.stats.censored``; a test holds the two together.)"""
    values = []
    for record in records:
        target = record.targets[index]
        if field == "steps":
            values.append(target.steps if target.steps is not None else record.steps_run)
        else:
            values.append(target.seconds if target.steps is not None else record.train_seconds)
    return float(statistics.median(values))


def stream_seed(seed: int, stream: str) -> int:
    """The harness's seed of one random stream of a run (``run_protocol.stream_seed``: the first
    63 bits of ``sha256(f"{seed}:{stream}")``), for the hand-written reference loop to see the
    same initial weights and batches; a test holds the two together."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
