"""The one training loop: ``run(workload, method, seed, device) -> RunResult``.

Protocol (AlgoPerf-style time to target, the PLP paper's metrics):

1. The seed fixes the validation split, the initial weights, the batch order and the
   augmentation, each from its own stream, so every method sees the same init and the same
   batches for a seed (comparisons are paired by seed). On CPU a seed is bit-reproducible.
2. Each step: apply schedules, draw the batch, then ``optimizer.step(closure)`` with a closure
   that zeroes the gradients, runs forward and backward and returns the loss (the protocol of
   ``torch.optim``, so methods that evaluate gradients elsewhere, such as weight prediction,
   need no special case).
3. Every evaluation period (and at step 0 and at the end), the clock is paused and the model is
   scored on the validation split. A target is reached at the first evaluation whose validation
   error is at or below it; its steps and training seconds are recorded.
4. A non-finite training or validation loss ends the run and marks it diverged: a result.
5. The weights with the lowest validation loss are kept and scored on the test split at the end
   (top-1 accuracy, top-1 and top-k error); optionally the test accuracy at fixed epochs too.

The training clock runs over the steps between two evaluations (schedules, batches and updates)
and is paused for everything else. On CUDA nothing in a training step waits for the GPU: the
device is synchronised only when the clock stops or starts, batch indices and augmentation
draws reach the device through pinned memory, and the step losses stay on the device and are
read together (every ``LOSS_READ_EVERY`` steps and at each evaluation). A run that diverges is
recorded at the first non-finite loss all the same; on CUDA it may have trained up to
``LOSS_READ_EVERY - 1`` steps past it before stopping. On CPU the loss is read every step.
How the model executes (precision, channels_last, compilation, cuDNN autotuning) is set by
:class:`~plp_bench.execution.ExecutionSettings`.
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
from .execution import ExecutionSettings, PreparedModel, backend_flags, prepare
from .methods import MethodConfig, build_method
from .results import Curves, RunResult, TargetResult, TestMetrics, config_hash
from .schedules import ScheduleRunner
from .workloads import Workload

# CUDA: the step losses read in one synchronisation per this many steps (see the module)
LOSS_READ_EVERY = 50


def loss_read_interval(device: torch.device) -> int:
    """Steps between the host's reads of the step losses: every step on the CPU, where a read
    costs nothing, and ``LOSS_READ_EVERY`` on CUDA, where each read waits for the device."""
    return 1 if device.type == "cpu" else LOSS_READ_EVERY


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
    """Accumulates training time only. On CUDA the device is synchronised when the clock starts
    and stops, so the work queued while it ran is counted, and nothing queued before it is."""

    def __init__(self, device: torch.device):
        self.seconds = 0.0
        self._sync = torch.cuda.synchronize if device.type == "cuda" else None
        self._device = device
        self._started: float | None = None

    @property
    def running(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        if self._sync:
            self._sync(self._device)
        self._started = time.perf_counter()

    def stop(self) -> None:
        if self._sync:
            self._sync(self._device)
        self.seconds += time.perf_counter() - self._started
        self._started = None

    def exclude(self, seconds: float) -> None:
        """Take ``seconds`` that passed while the clock ran off it (e.g. compilation)."""
        self.seconds -= seconds

    def peek(self) -> float:
        """The seconds so far without synchronising (for progress displays: on CUDA it can
        run ahead of the device)."""
        if self._started is None:
            return self.seconds
        return self.seconds + time.perf_counter() - self._started


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
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Scores:
    """Mean cross-entropy, top-1 and top-k error (k = min(5, classes)) over ``(x, y)``, in
    batches of ``batch_size``; ``forward`` (default: ``model``) computes the logits of a batch.
    The sums stay on the device; the host reads them once at the end."""
    model.eval()
    forward = model if forward is None else forward
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    wrong = torch.zeros((), dtype=torch.int64, device=x.device)
    wrong5 = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(y), batch_size):
        counts = _counts(forward(x[start:start + batch_size]), y[start:start + batch_size])
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


def run_config(workload: Workload, method: MethodConfig, seed: int, device: str,
               settings: ExecutionSettings | None = None) -> dict:
    """Everything that determines a run's outcome (its hash names the record). Execution
    settings enter only where they differ from the defaults and the method trains a model
    (the linearised-ODE methods take none)."""
    identity = {"workload": to_plain(workload), "method": to_plain(method), "seed": seed,
                "device": device}
    if settings is not None and not settings.is_default and method.solver is None:
        identity["settings"] = settings.identity()
    return identity


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
    """Train ``workload`` with ``method`` from ``seed`` and return the record. Prints nothing.

    ``settings``: how the model executes (default: eager float32). ``method_built(optimizer)``
    is called with the built (wrapped) optimizer before the first step, for callers that read
    what a wrapper recorded (e.g. weight histories). A method object with ``run_details()`` has
    its return value stored in the record's ``details``."""
    settings = ExecutionSettings() if settings is None else settings
    if method.solver is not None:
        from .linearized_run import run_linearized  # it builds on this module

        # it integrates in float64 on the CPU: execution settings do not apply (run_config
        # leaves them out of its identity)
        return run_linearized(workload, method, seed, device, dataset=dataset,
                              data_root=data_root, callback=callback)
    wall_start = time.perf_counter()
    device = resolve_device(device)
    if dataset is None:
        dataset = data_module.load(workload.dataset, root=data_root, device=device, seed=seed,
                                   val_fraction=workload.val_fraction)
    with backend_flags(settings, device):
        prepared = prepare(initial_model(workload, dataset, seed, device), settings, device,
                           dataset.input_shape)
        return _train(workload, method, seed, device, settings, prepared, dataset, callback,
                      method_built, wall_start)


def _train(workload: Workload, method: MethodConfig, seed: int, device: torch.device,
           settings: ExecutionSettings, prepared: PreparedModel, dataset: Dataset,
           callback: Callable[[Progress], None] | None,
           method_built: Callable[[Any], None] | None, wall_start: float) -> RunResult:
    """The loop of :func:`run` (see the module) on a prepared model."""
    model = prepared.module
    rows = len(dataset.y_train)
    budget = step_budget(workload, rows)
    total_steps, period = budget.total_steps, budget.period
    batch_size = rows if method.full_batch else budget.batch_size
    sampler = EpochSampler(rows, batch_size, seed=stream_seed(seed, "batches"), device=device)
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
    pending: list[torch.Tensor] = []  # step losses not yet read by the host
    read_every = loss_read_interval(device)
    compile_seconds_excluded = 0.0

    def scores_of(x: torch.Tensor, y: torch.Tensor) -> Scores:
        with evaluation_view(optimizer):
            return evaluate(model, x, y, workload.eval_batch_size, prepared.evaluate_forward)

    def record(step: int, train_loss: float | None) -> bool:
        """Evaluate at ``step``; returns False when the run must stop (diverged / done)."""
        nonlocal diverged_at, last_val_error
        with evaluation_view(optimizer):
            scores = evaluate(model, dataset.x_val, dataset.y_val, workload.eval_batch_size,
                              prepared.evaluate_forward)
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

    def read_losses(step: int) -> bool:
        """Read the pending step losses (one synchronisation); False at a non-finite one,
        whose step is recorded as the divergence."""
        nonlocal loss_sum, loss_count, diverged_at
        values = [pending[0].item()] if len(pending) == 1 else torch.stack(pending).tolist()
        first = step - len(pending) + 1
        pending.clear()
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                diverged_at = first + offset
                return False
            loss_sum += value
            loss_count += 1
        return True

    def report(step: int) -> None:
        if callback is not None:
            callback(Progress(step, total_steps, step / per_epoch, clock.peek(), last_val_error))

    keep_going = record(0, None)
    report(0)
    report_every = max(1, total_steps // 200)
    batches = iter(sampler)
    step = 0
    model.train()
    clock.start()
    while keep_going and step < total_steps:
        _, index = next(batches)
        schedules.apply(step)
        x, y = x_train[index], y_train[index]
        if fill is not None:
            x = random_crop_flip(x, augment_generator, fill=fill,
                                 memory_format=prepared.memory_format)
        else:
            x = prepared.batch(x)
        loss = optimizer.step(prepared.training_closure(optimizer, x, y))
        step += 1
        pending.append(loss.detach())
        if prepared.compile_seconds != compile_seconds_excluded:  # a step that compiled
            clock.exclude(prepared.compile_seconds - compile_seconds_excluded)
            compile_seconds_excluded = prepared.compile_seconds
        evaluate_now = step % period == 0 or step == total_steps
        test_now = step % per_epoch == 0 and (step // per_epoch) in workload.test_at_epochs
        if (evaluate_now or test_now or len(pending) >= read_every) and not read_losses(step):
            break
        if evaluate_now or test_now:
            clock.stop()
            if test_now:
                test_at_epochs[str(step // per_epoch)] = 1.0 - scores_of(
                    dataset.x_test, dataset.y_test).error
            if evaluate_now:
                keep_going = record(step, loss_sum / loss_count)
                loss_sum, loss_count = 0.0, 0
            model.train()
            clock.start()
        if step % report_every == 0:
            report(step)
    if clock.running:
        clock.stop()
    steps_run = step if diverged_at is None else min(step, diverged_at)

    best_test = None
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        scores = evaluate(model, dataset.x_test, dataset.y_test, workload.eval_batch_size,
                          prepared.evaluate_forward)
        best_test = TestMetrics(1.0 - scores.error, scores.error, scores.top5_error, scores.loss)
    identity = run_config(workload, method, seed, str(device), settings)
    config = dict(identity)
    config["resolved"] = {"hyperparameters": to_plain(built.hyperparameters),
                          "tuned": built.tuned, "batch_size": batch_size,
                          "steps_per_epoch": per_epoch, "total_steps": total_steps,
                          "eval_every": period, "dataset": dataset.describe(),
                          "execution": dict(prepared.applied)}
    if settings.compile != "off":
        config["resolved"]["execution"].update(compile_seconds=prepared.compile_seconds,
                                               compilations=prepared.compilations)
    return RunResult(
        workload=workload.name, method=method.name, seed=seed, device=str(device),
        config=config, config_hash=config_hash(identity),
        environment=environment.describe(device), curves=curves, targets=targets,
        steps_run=steps_run, train_seconds=clock.seconds,
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
