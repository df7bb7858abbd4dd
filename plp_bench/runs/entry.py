"""One run, whatever trains it: ``run(workload, method, seed, device) -> RunResult``.

A method with a ``solver`` is solved (:func:`plp_bench.runs.solving.run_linearized`: the
network linearised at its initial weights, its gradient flow integrated by an ODE solver); every
other method is trained by its optimizer (:func:`plp_bench.runs.training.train`). Both follow the
protocol of :mod:`plp_bench.runs.protocol` and return the same record, so a sweep, a rerun or an
asv suite never needs to know which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..core.execution_settings import ExecutionSettings
from ..core.record import RunResult
from ..data import Dataset
from ..methods.catalogue import MethodConfig
from ..workloads import Workload
from .protocol import Progress
from .solving import run_linearized
from .training import train


def run(
    workload: Workload,
    method: MethodConfig,
    seed: int,
    device: str | torch.device = "cpu",
    *,
    settings: ExecutionSettings | None = None,
    dataset: Dataset | None = None,
    data_root: str | None = None,
    callback: Callable[[Progress], None] | None = None,
    method_built: Callable[[Any], None] | None = None,
) -> RunResult:
    """Run ``workload`` with ``method`` from ``seed`` and return the record. Prints nothing.

    ``settings``: how the model executes (default: eager float32); a solved method integrates
    in float64 on the CPU and takes none (they stay out of its identity). ``method_built``:
    see :func:`plp_bench.runs.training.train` (a solved method builds no optimizer)."""
    if method.solver is not None:
        return run_linearized(workload, method, seed, device, dataset=dataset,
                              data_root=data_root, callback=callback)
    return train(workload, method, seed, device, settings=settings, dataset=dataset,
                 data_root=data_root, callback=callback, method_built=method_built)
