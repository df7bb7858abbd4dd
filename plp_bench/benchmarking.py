"""What the asv suites in ``benchmarks/`` measure at which size, and the run cache they share.

Two sizes, chosen by ``PLP_BENCH_SIZE``:

* ``ci`` (the default): the offline workloads and the UCI ones in the shared data folder,
  budgets cut to at most ``CI_STEP_CAP`` steps, 3 seeds, the methods of the default run; the
  whole suite runs in minutes on 2 CPU cores.
* ``full``: every workload at the papers' budgets, every method, 5 seeds. Workloads whose data
  is absent, and CIFAR workloads without a CUDA device, are skipped (``NotImplementedError``,
  which asv reports as skipped).
* ``gpu``: the convergence of the PLP paper's GPU workloads (CIFAR-100 with VGG16, ResNet18
  and GoogLeNet; MNIST) at full budgets for SGD, PLP, DEMON and PLP+DEMON, 3 seeds, on the
  CUDA device; the other suites at their smallest. Run it with ``--bench`` naming the suites
  wanted (``convergence``, ``step_cost.*Cuda``, ``throughput``).

A convergence point (commit, workload, method, seed) trains exactly once however many ``track_``
benchmarks read it: the records are written by :func:`plp_bench.sweep` into a folder named by
the commit (``runs_dir``), and a record already there (same config hash) is loaded, not retrained.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import data, methods, workloads
from .environment import git_commit
from .results import RunResult, write_json_atomic
from .run_protocol import step_budget
from .sweeps import sweep
from .workloads import Workload

CI_STEP_CAP = 400
SIZES = ("ci", "full", "gpu")
# the gpu size: the PLP paper's CIFAR-100 backbones and MNIST, for SGD, PLP and DEMON
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
    training_step_sets: list[str]
    loop_workloads: list[str]
    ode_workloads: list[str]


def current_size() -> Size:
    """The size named by ``PLP_BENCH_SIZE`` (a ``ValueError`` names the allowed values)."""
    name = os.environ.get("PLP_BENCH_SIZE", "ci")
    if name == "ci":
        return Size("ci", ["digits-mlp", "digits-cnn", "breast_cancer-mlp", "banknote-mlp",
                           "magic-mlp"], methods.default_methods(), 3, CI_STEP_CAP,
                    ["mlp", "resnet18"], ["mlp"], ["digits-mlp"], ["banknote-mlp"])
    if name == "full":
        return Size("full", workloads.list_workloads(), methods.list_methods(), 5, None,
                    ["mlp", "resnet18", "vgg16"], ["mlp", "resnet18"],
                    ["digits-mlp", "breast_cancer-mlp", "digits-cnn"],
                    ["banknote-mlp", "magic-mlp"])
    if name == "gpu":
        return Size("gpu", GPU_WORKLOADS, GPU_METHODS, 3, None, ["mlp"], ["mlp"],
                    ["digits-mlp"], ["banknote-mlp"])
    raise ValueError(f"PLP_BENCH_SIZE={name!r}; allowed: {', '.join(SIZES)}")


def runs_dir() -> Path:
    """Where convergence records of this commit go: ``$PLP_BENCH_ASV_RUNS``, else ``.asv/runs``
    beside the asv config (``$ASV_CONF_DIR``, which asv sets in the environments it builds),
    else ``~/.cache/plp-bench/asv-runs``; then one folder per commit and size. (asv runs each
    benchmark in a fresh temporary folder, so the current folder would not outlive it.)"""
    root = os.environ.get("PLP_BENCH_ASV_RUNS")
    if root is None and os.environ.get("ASV_CONF_DIR"):
        root = str(Path(os.environ["ASV_CONF_DIR"]) / ".asv" / "runs")
    if root is None:
        root = str(Path.home() / ".cache" / "plp-bench" / "asv-runs")
    return Path(root) / (git_commit() or "unknown-commit") / current_size().name


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def require_device(name: str) -> None:
    """``NotImplementedError`` (asv: skipped) when device ``name`` is not here."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NotImplementedError("needs a CUDA device; this machine has none")


def benchmark_workload(name: str) -> Workload:
    """The workload as this size runs it, or ``NotImplementedError`` (asv: skipped) when its
    data or the device it needs is absent."""
    workload = workloads.get(name)
    try:
        data.check_available(workload.dataset)
    except data.DataError as error:
        raise NotImplementedError(f"{name}: data not available ({error})") from None
    if workload.dataset.startswith("cifar") and device() == "cpu":
        raise NotImplementedError(f"{name} needs a CUDA device")
    size = current_size()
    if size.step_cap is not None:
        rows = memo(f"rows-{workload.dataset}",
                    lambda: len(data.load(workload.dataset, seed=0).y_train))
        budget = step_budget(workload, rows)
        if budget.total_steps > size.step_cap:
            workload = workloads.override(workload, {
                "steps": size.step_cap, "eval_every": min(budget.period, size.step_cap)})
    return workload


def convergence_records(workload_name: str, method_name: str) -> list[RunResult]:
    """The records of every seed of one point, trained now only if not already on disk."""
    method = methods.get_method(method_name)
    workload = benchmark_workload(workload_name)
    if not method.applies_to(workload.model):
        raise NotImplementedError(f"{method_name} does not apply to {workload.model}")
    report = sweep([workload], [method], range(current_size().seeds), device(), runs_dir())
    if report.failed:
        raise RuntimeError("; ".join(f"{task.label}: {error}" for task, error in report.failed))
    return sorted(report.results, key=lambda r: r.seed)


def censored(records: list[RunResult], index: int, field: str) -> float:
    """Median over seeds of the steps or seconds to target ``index``; a run that missed counts
    as its whole budget (a lower bound), so a method that stops reaching a target shows up as
    slower rather than vanishing from the median."""
    values = []
    for record in records:
        target = record.targets[index]
        if field == "steps":
            values.append(target.steps if target.reached else record.steps_run)
        else:
            values.append(target.seconds if target.reached else record.train_seconds)
    return float(statistics.median(values))


def memo(name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per commit and size: kept as JSON under :func:`runs_dir`."""
    path = runs_dir() / "memo" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    write_json_atomic(path, value)
    return value
