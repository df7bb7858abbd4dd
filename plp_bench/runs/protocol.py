"""What every run shares, trained by an optimizer or solved by an ODE solver.

* The device: ``cpu`` or ``cuda[:N]``, checked before anything is built.
* Seed streams: the run's seed fixes the validation split, the initial weights, the batch order
  and the augmentation, each from its own stream (:func:`stream_seed`), so every method sees the
  same initial weights and the same batches for a seed (comparisons are paired by seed).
* The initial model: the workload's backbone drawn on the host from the ``init`` stream, then
  moved, so it is the same on every device.
* The step budget: batch size, total steps and evaluation period on the training split.
* The identity: everything that determines a run's outcome (:func:`run_identity`), whose hash
  names the record.
* What a progress display is told (:class:`Progress`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from .. import models
from ..core.config import to_plain
from ..core.execution_settings import ExecutionSettings
from ..data import Dataset, EpochSampler
from ..methods.catalogue import MethodConfig
from ..workloads import Workload


def stream_seed(seed: int, stream: str) -> int:
    """Independent seed for one random stream of a run: the first 63 bits of
    ``sha256(f"{seed}:{stream}")`` (so that, e.g., turning augmentation on does not shift the
    batch order)."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class Progress:
    """What a progress display is told; ``val_error`` is the latest evaluation's."""

    step: int
    total_steps: int
    epoch: float
    train_seconds: float
    val_error: float | None


def initial_model(workload: Workload, dataset: Dataset, seed: int,
                  device: torch.device) -> torch.nn.Module:
    """The workload's backbone with the seed's initial weights (the same for every method and
    every device: they are drawn on the host, then moved)."""
    torch.manual_seed(stream_seed(seed, "init"))
    return models.create(workload.model, num_classes=dataset.num_classes,
                         input_shape=dataset.input_shape, **workload.model_options).to(device)


@dataclass(frozen=True)
class StepBudget:
    batch_size: int
    total_steps: int
    period: int


def step_budget(workload: Workload, rows: int) -> StepBudget:
    """Batch size, total steps and evaluation period of ``workload`` on ``rows`` training rows.
    Full-batch methods keep the total and the period in steps (the same number of updates)."""
    batch_size = min(workload.batch_size, rows)  # larger = full batch
    per_epoch = EpochSampler(rows, batch_size, seed=0).batches_per_epoch
    return StepBudget(batch_size, workload.total_steps(per_epoch),
                      workload.evaluation_period(per_epoch))


def run_identity(workload: Workload, method: MethodConfig, seed: int, device: str,
               settings: ExecutionSettings | None = None) -> dict:
    """Everything that determines a run's outcome (its hash names the record). Execution
    settings enter only where they differ from the defaults and the method trains a model
    (the linearised-ODE methods take none)."""
    identity = {"workload": to_plain(workload), "method": to_plain(method), "seed": seed,
                "device": device}
    if settings is not None and not settings.is_default and method.solver is None:
        identity["settings"] = settings.identity()
    return identity
