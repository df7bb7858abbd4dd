"""The one training loop: ``run(workload, method, seed, device) -> RunResult``.

Protocol (AlgoPerf-style time to target, the PLP paper's metrics):

1. The seed fixes the validation split, the initial weights, the batch order and the
   augmentation, each from its own stream, so every method sees the same init and the same
   batches for a seed (comparisons are paired by seed). On CPU a seed is bit-reproducible.
2. Each step: apply schedules, draw the batch, then ``optimizer.step(closure)`` with a closure
   that zeroes the gradients, runs forward and backward and returns the loss (the protocol of
   ``torch.optim``, so methods that evaluate gradients elsewhere, such as weight prediction,
   need no special case). The training clock covers exactly this and nothing else; on CUDA it
   is read after synchronising.
3. Every evaluation period (and at step 0 and at the end), the clock is paused and the model is
   scored on the validation split. A target is reached at the first evaluation whose validation
   error is at or below it; its steps and training seconds are recorded.
4. A non-finite training or validation loss ends the run and marks it diverged: a result.
5. The weights with the lowest validation loss are kept and scored on the test split at the end
   (top-1 accuracy, top-1 and top-5 error); optionally the test accuracy at fixed epochs too.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import data as data_module
from . import environment, models
from .config import to_plain
from .context import BuildContext
from .data import Dataset, EpochSampler, random_crop_flip
from .methods import MethodConfig, build_method
from .results import Curves, RunResult, TargetResult, TestMetrics, config_hash
from .schedules import ScheduleRunner
from .workloads import Workload


class DeviceError(ValueError):
    """A device that is not available here."""


def resolve_device(device: str | torch.device) -> torch.device:
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r}; use cpu or cuda[:N]") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device cuda was asked for, but this machine has no CUDA device "
                          "(torch.cuda.is_available() is False); use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {device!r} is not supported; use cpu or cuda[:N]")
    return resolved


def stream_seed(seed: int, stream: str) -> int:
    """Independent seed for one random stream of a run (so that, e.g., turning augmentation on
    does not shift the batch order)."""
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


class TrainingClock:
    """Accumulates training time only; synchronises CUDA before reading the time."""

    def __init__(self, device: torch.device):
        self.seconds = 0.0
        self._sync = torch.cuda.synchronize if device.type == "cuda" else None
        self._device = device
        self._started = 0.0

    def start(self) -> None:
        if self._sync:
            self._sync(self._device)
        self._started = time.perf_counter()

    def stop(self) -> None:
        if self._sync:
            self._sync(self._device)
        self.seconds += time.perf_counter() - self._started


@dataclass
class Scores:
    loss: float
    error: float
    top5_error: float


def _counts(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Summed cross-entropy (float64), top-1 and top-k misses (k = min(5, classes))."""
    loss = F.cross_entropy(logits.float(), target, reduction="sum").double()
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return loss, (top[:, 0] != target).sum(), (~(top == target[:, None]).any(dim=1)).sum()


@torch.no_grad()
def score_logits(logits: torch.Tensor, y: torch.Tensor) -> Scores:
    """Mean cross-entropy, top-1 and top-k error of given logits."""
    loss, wrong, wrong5 = _counts(logits, y)
    n = len(y)
    return Scores(loss.item() / n, wrong.item() / n, wrong5.item() / n)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Scores:
    """Mean cross-entropy, top-1 and top-k error (k = min(5, classes)) over ``(x, y)``."""
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    wrong = torch.zeros((), dtype=torch.int64, device=x.device)
    wrong5 = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(y), batch_size):
        counts = _counts(model(x[start:start + batch_size]), y[start:start + batch_size])
        total_loss += counts[0]
        wrong += counts[1]
        wrong5 += counts[2]
    n = len(y)
    return Scores(total_loss.item() / n, wrong.item() / n, wrong5.item() / n)


def evaluation_view(optimizer) -> contextlib.AbstractContextManager:
    """Weights to evaluate: a method that trains on shifted weights (e.g. weight prediction)
    exposes ``evaluation_parameters()``, a context manager swapping in its true weights."""
    view = getattr(optimizer, "evaluation_parameters", None)
    return view() if view is not None else contextlib.nullcontext()


def initial_model(workload: Workload, dataset: Dataset, seed: int,
                  device: torch.device) -> torch.nn.Module:
    """The workload's backbone with the seed's initial weights (the same for every method)."""
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


def run_config(workload: Workload, method: MethodConfig, seed: int, device: str) -> dict:
    """Everything that determines a run's outcome (its hash names the record)."""
    return {"workload": to_plain(workload), "method": to_plain(method), "seed": seed,
            "device": device}


def run(
    workload: Workload,
    method: MethodConfig,
    seed: int,
    device: str | torch.device = "cpu",
    *,
    dataset: Dataset | None = None,
    data_root: str | None = None,
    callback: Callable[[Progress], None] | None = None,
    method_built: Callable[[Any], None] | None = None,
) -> RunResult:
    """Train ``workload`` with ``method`` from ``seed`` and return the record. Prints nothing.

    ``method_built(optimizer)`` is called with the built (wrapped) optimizer before the first
    step, for callers that read what a wrapper recorded (e.g. weight histories). A method
    object with ``run_details()`` has its return value stored in the record's ``details``."""
    if method.solver is not None:
        from .linearized_run import run_linearized  # it builds on this module

        return run_linearized(workload, method, seed, device, dataset=dataset,
                              data_root=data_root, callback=callback)
    wall_start = time.perf_counter()
    device = resolve_device(device)
    if dataset is None:
        dataset = data_module.load(workload.dataset, root=data_root, device=device, seed=seed,
                                   val_fraction=workload.val_fraction)
    model = initial_model(workload, dataset, seed, device)
    rows = len(dataset.y_train)
    budget = step_budget(workload, rows)
    total_steps, period = budget.total_steps, budget.period
    batch_size = rows if method.full_batch else budget.batch_size
    sampler = EpochSampler(rows, batch_size, seed=stream_seed(seed, "batches"))
    per_epoch = sampler.batches_per_epoch
    context = BuildContext(total_steps, tuple(workload.jump_steps), stream_seed(seed, "method"))
    built = build_method(method, model.parameters(), tuned=workload.optimizers,
                         workload_schedules=workload.schedules(), context=context)
    optimizer = built.optimizer
    if method_built is not None:
        method_built(optimizer)
    schedules = ScheduleRunner(optimizer, built.schedules, total_steps)
    augment_generator = torch.Generator().manual_seed(stream_seed(seed, "augment"))
    fill = [-m / s for m, s in zip(dataset.normalization["mean"], dataset.normalization["std"],
                                   strict=True)] if workload.augment else None
    torch.manual_seed(stream_seed(seed, "dropout"))

    clock = TrainingClock(device)
    curves = Curves()
    targets = [TargetResult(t) for t in workload.targets]
    best = {"loss": math.inf, "state": None, "step": None}
    test_at_epochs: dict[str, float] = {}
    x_train, y_train = dataset.x_train, dataset.y_train
    diverged_at: int | None = None
    loss_sum, loss_count = 0.0, 0
    last_val_error: float | None = None

    def record(step: int, train_loss: float | None) -> bool:
        """Evaluate at ``step``; returns False when the run must stop (diverged / done)."""
        nonlocal diverged_at, last_val_error
        with evaluation_view(optimizer):
            scores = evaluate(model, dataset.x_val, dataset.y_val, workload.eval_batch_size)
            if math.isfinite(scores.loss) and scores.loss < best["loss"]:
                best.update(loss=scores.loss, step=step, state={
                    k: v.detach().clone() for k, v in model.state_dict().items()})
        epoch = step / per_epoch
        curves.step.append(step)
        curves.epoch.append(epoch)
        curves.train_seconds.append(clock.seconds)
        curves.train_loss.append(train_loss)
        curves.val_loss.append(scores.loss if math.isfinite(scores.loss) else None)
        curves.val_error.append(scores.error)
        curves.val_top5_error.append(scores.top5_error)
        last_val_error = scores.error
        for t in targets:
            if t.steps is None and scores.error <= t.target:
                t.steps, t.seconds, t.epoch = step, clock.seconds, epoch
        if not math.isfinite(scores.loss):
            diverged_at = step
            return False
        return not (workload.stop_at_targets and all(t.reached for t in targets))

    def report(step: int) -> None:
        if callback is not None:
            callback(Progress(step, total_steps, step / per_epoch, clock.seconds, last_val_error))

    keep_going = record(0, None)
    report(0)
    report_every = max(1, total_steps // 200)
    batches = iter(sampler)
    step = 0
    model.train()
    while keep_going and step < total_steps:
        _, index = next(batches)
        schedules.apply(step)
        clock.start()
        x, y = x_train[index], y_train[index]
        if fill is not None:
            x = random_crop_flip(x, augment_generator, fill=fill)

        def closure(x=x, y=y):
            optimizer.zero_grad(set_to_none=True)
            batch_loss = F.cross_entropy(model(x), y)
            batch_loss.backward()
            return batch_loss

        loss = optimizer.step(closure)
        clock.stop()
        step += 1
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            diverged_at = step
            break
        loss_sum += loss_value
        loss_count += 1
        if step % per_epoch == 0 and (step // per_epoch) in workload.test_at_epochs:
            with evaluation_view(optimizer):
                scores = evaluate(model, dataset.x_test, dataset.y_test, workload.eval_batch_size)
            test_at_epochs[str(step // per_epoch)] = 1.0 - scores.error
            model.train()
        if step % period == 0 or step == total_steps:
            keep_going = record(step, loss_sum / loss_count)
            loss_sum, loss_count = 0.0, 0
            model.train()
        if step % report_every == 0:
            report(step)

    best_test = None
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        scores = evaluate(model, dataset.x_test, dataset.y_test, workload.eval_batch_size)
        best_test = TestMetrics(1.0 - scores.error, scores.error, scores.top5_error, scores.loss)
    identity = run_config(workload, method, seed, str(device))
    config = dict(identity)
    config["resolved"] = {"hyperparameters": to_plain(built.hyperparameters),
                          "tuned": built.tuned, "batch_size": batch_size,
                          "steps_per_epoch": per_epoch, "total_steps": total_steps,
                          "eval_every": period, "dataset": dataset.describe()}
    return RunResult(
        workload=workload.name, method=method.name, seed=seed, device=str(device),
        config=config, config_hash=config_hash(identity),
        environment=environment.describe(device), curves=curves, targets=targets,
        steps_run=step, train_seconds=clock.seconds,
        wall_seconds=time.perf_counter() - wall_start,
        diverged=diverged_at is not None, diverged_at_step=diverged_at,
        best_epoch=None if best["step"] is None else best["step"] / per_epoch,
        best_step=best["step"],
        best_val_loss=None if best["step"] is None else best["loss"],
        best_test=best_test, test_accuracy_at_epochs=test_at_epochs,
        details=method_details(optimizer),
    )


def method_details(optimizer: Any) -> dict[str, Any]:
    """What the method reports about itself (``run_details()`` of each wrapper in the chain,
    outermost first), keyed by the wrapper's class name."""
    details: dict[str, Any] = {}
    layer = optimizer
    while layer is not None and not isinstance(layer, torch.optim.Optimizer):
        report = getattr(type(layer), "run_details", None)
        if report is not None:
            details[type(layer).__name__] = report(layer)
        layer = getattr(layer, "optimizer", None)
    return details
