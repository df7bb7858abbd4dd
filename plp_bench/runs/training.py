"""The trained run: ``train(workload, method, seed, device) -> RunResult``.

Protocol (AlgoPerf-style time to target, the PLP paper's metrics; what every run shares is in
:mod:`plp_bench.runs.protocol`):

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

The loop is four phases (:func:`train` reads as this list): the set-up (sampler, method,
schedules, random streams); an evaluation at step 0; then, until the budget is spent, the run
diverges or stops early, a training segment (the steps up to the next checkpoint, on the clock)
followed by the checkpoint (off the clock: a fixed epoch's test accuracy, the evaluation and
the early-stopping decision); and finishing the record (the best model's test metrics).

The training clock runs over the segments (schedules, batches and updates) and is paused for
everything else. On CUDA nothing in a training step waits for the GPU: the device is
synchronised only when the clock stops or starts, batch indices and augmentation draws reach the
device through pinned memory, and the step losses stay on the device and are read together
(every ``LOSS_READ_EVERY`` steps and at each checkpoint). A run that diverges is recorded at the
first non-finite loss all the same; on CUDA it may have trained up to ``LOSS_READ_EVERY - 1``
steps past it before stopping. On CPU the loss is read every step. How the model executes
(precision, channels_last, compilation, cuDNN autotuning) is set by
:class:`~plp_bench.core.execution_settings.ExecutionSettings`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from plp_baselines.optimizer_wrapper import wrappers

from .. import data as data_module
from ..core import environment
from ..core.config import to_plain
from ..core.execution_settings import ExecutionSettings
from ..core.record import (
    TRAIN_SCORED_MAX_ROWS,
    Curves,
    RunResult,
    TargetResult,
    TestMetrics,
    config_hash,
)
from ..data import Dataset, EpochSampler, random_crop_flip
from ..methods.build_context import BuildContext
from ..methods.catalogue import MethodConfig, build_method
from ..methods.schedules import ScheduleRunner
from ..workloads import Workload
from .clock import TrainingClock
from .device import resolve_device
from .execution import PreparedModel, backend_flags, prepare
from .protocol import Progress, initial_model, run_identity, step_budget, stream_seed
from .scoring import Scores, evaluate, training_rows_scored

# CUDA: the step losses read in one synchronisation per this many steps (see the module)
LOSS_READ_EVERY = 50


def loss_read_interval(device: torch.device) -> int:
    """Steps between the host's reads of the step losses: every step on the CPU, where a read
    costs nothing, and ``LOSS_READ_EVERY`` on CUDA, where each read waits for the device."""
    return 1 if device.type == "cpu" else LOSS_READ_EVERY


def evaluation_view(optimizer) -> contextlib.AbstractContextManager:
    """Weights to evaluate: a method that trains on shifted weights (e.g. weight prediction)
    exposes ``evaluation_parameters()``, a context manager swapping in its true weights."""
    view = getattr(optimizer, "evaluation_parameters", None)
    return view() if view is not None else contextlib.nullcontext()


def train(
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
    if method.solver is not None:
        raise ValueError(f"method {method.name!r} is solved by an ODE solver, not trained; "
                         "run it through plp_bench.run")
    wall_start = time.perf_counter()
    settings = ExecutionSettings() if settings is None else settings
    device = resolve_device(device)
    if dataset is None:
        dataset = data_module.load(workload.dataset, root=data_root, device=device, seed=seed,
                                   val_fraction=workload.val_fraction)
    with backend_flags(settings, device):
        prepared = prepare(initial_model(workload, dataset, seed, device), settings, device,
                           dataset.input_shape)
        trained = _TrainedRun(workload, method, seed, settings, prepared, dataset, callback,
                              method_built)
        keep_going = trained.validate(train_loss=None)  # step 0, before any update
        trained.report()
        while keep_going and trained.step < trained.total_steps:
            keep_going = trained.train_segment() and trained.checkpoint()
        return trained.finish(wall_start)


@dataclass
class _Best:
    """The lowest validation loss so far, the weights that had it, and their step."""

    loss: float = math.inf
    state: dict[str, torch.Tensor] | None = None
    step: int | None = None


class _BatchFeed:
    """The run's training batches: index permutations from the seeded sampler, the rows moved
    to the model's memory format, augmented (pad-4 crop and flip, batched on the device) where
    the workload says so, from a generator of their own."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, prepared: PreparedModel,
                 augment: bool):
        self.dataset, self.prepared = dataset, prepared
        sampler = EpochSampler(len(dataset.y_train), batch_size,
                               seed=stream_seed(seed, "batches"), device=prepared.device)
        self.per_epoch = sampler.batches_per_epoch
        self._indices = iter(sampler)
        self._generator = torch.Generator().manual_seed(stream_seed(seed, "augment"))
        self._fill = [-m / s for m, s in zip(dataset.normalization["mean"],
                                             dataset.normalization["std"], strict=True)
                      ] if augment else None

    def next_indices(self) -> torch.Tensor:
        return next(self._indices)[1]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset.x_train[index], self.dataset.y_train[index]
        if self._fill is not None:
            return random_crop_flip(x, self._generator, fill=self._fill,
                                    memory_format=self.prepared.memory_format), y
        return self.prepared.batch(x), y


class _StepLosses:
    """The step losses of a run: kept on the device and read by the host in groups (one
    synchronisation per read, every :func:`loss_read_interval` steps and at each
    checkpoint), summed for the training loss of the evaluation period."""

    def __init__(self, device: torch.device):
        self.read_every = loss_read_interval(device)
        self.pending: list[torch.Tensor] = []
        self._sum, self._count = 0.0, 0

    def read(self, step: int) -> int | None:
        """Read the pending losses, the last being ``step``'s; the step of the first that is
        not finite (the run diverged there), else ``None``."""
        pending = self.pending
        values = [pending[0].item()] if len(pending) == 1 else torch.stack(pending).tolist()
        first = step - len(pending) + 1
        pending.clear()
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                return first + offset
            self._sum += value
            self._count += 1
        return None

    def period_mean(self) -> float:
        """The mean loss of the steps read since the last call."""
        mean = self._sum / self._count
        self._sum, self._count = 0.0, 0
        return mean


class _TrainedRun:
    """One trained run between its phases (see the module): built by the set-up, advanced by
    :meth:`train_segment` and :meth:`checkpoint`, closed by :meth:`finish`."""

    def __init__(self, workload: Workload, method: MethodConfig, seed: int,
                 settings: ExecutionSettings, prepared: PreparedModel, dataset: Dataset,
                 callback: Callable[[Progress], None] | None,
                 method_built: Callable[[Any], None] | None):
        self.workload, self.method, self.seed, self.settings = workload, method, seed, settings
        self.prepared, self.model, self.dataset = prepared, prepared.module, dataset
        self.device = prepared.device
        rows = len(dataset.y_train)
        budget = step_budget(workload, rows)
        self.total_steps, self.period = budget.total_steps, budget.period
        self.batch_size = rows if method.full_batch else budget.batch_size
        self.feed = _BatchFeed(dataset, self.batch_size, seed, prepared, workload.augment)
        self.per_epoch = self.feed.per_epoch
        context = BuildContext(self.total_steps, tuple(workload.jump_steps),
                               stream_seed(seed, "method"))
        self.built = build_method(method, self.model.parameters(), tuned=workload.optimizers,
                                  workload_schedules=workload.schedules(), context=context)
        self.optimizer = self.built.optimizer
        if method_built is not None:
            method_built(self.optimizer)
        self.schedules = ScheduleRunner(self.optimizer, self.built.schedules, self.total_steps)
        torch.manual_seed(stream_seed(seed, "dropout"))

        scored = training_rows_scored(rows, seed, TRAIN_SCORED_MAX_ROWS)
        self.train_scored = ((dataset.x_train, dataset.y_train) if scored is None else
                             (dataset.x_train[scored.to(dataset.x_train.device)],
                              dataset.y_train[scored.to(dataset.y_train.device)]))
        self.clock = TrainingClock(self.device)
        self.curves = Curves()
        self.targets = [TargetResult(t) for t in workload.targets]
        self.best = _Best()
        self.test_at_epochs: dict[str, float] = {}
        self.step = 0
        self.diverged_at: int | None = None
        self.last_val_error: float | None = None
        self.callback = callback
        self.report_every = max(1, self.total_steps // 200)
        self.losses = _StepLosses(self.device)
        self._compile_seconds_excluded = 0.0

    # -- a training segment: on the clock ------------------------------------------------------

    def train_segment(self) -> bool:
        """Train up to the next checkpoint (every segment ends at one: the last step of the
        budget is always evaluated). False when a step loss was not finite: the run diverged
        at that step and the segment stops there."""
        self.model.train()
        self.clock.start()
        try:
            while True:
                self._train_step()
                at_checkpoint = self._evaluation_due() or self._test_epoch_due()
                if ((at_checkpoint or len(self.losses.pending) >= self.losses.read_every)
                        and not self._read_losses()):
                    return False
                if at_checkpoint:
                    return True
                if self.step % self.report_every == 0:
                    self.report()
        finally:
            self.clock.stop()

    def _train_step(self) -> None:
        """Schedules, the batch (augmented if the workload says so), the method's update."""
        index = self.feed.next_indices()
        self.schedules.apply(self.step)
        x, y = self.feed.batch(index)
        loss = self.optimizer.step(self.prepared.training_closure(self.optimizer, x, y))
        self.step += 1
        self.losses.pending.append(loss.detach())
        compiled = self.prepared.compile_seconds - self._compile_seconds_excluded
        if compiled:  # this step compiled a graph: compilation is not training time
            self.clock.exclude(compiled)
            self._compile_seconds_excluded = self.prepared.compile_seconds

    def _read_losses(self) -> bool:
        """Read the pending step losses (one synchronisation); False at a non-finite one,
        whose step is recorded as the divergence."""
        self.diverged_at = self.losses.read(self.step)
        return self.diverged_at is None

    # -- a checkpoint: off the clock -------------------------------------------------------------

    def _evaluation_due(self) -> bool:
        return self.step % self.period == 0 or self.step == self.total_steps

    def _test_epoch_due(self) -> bool:
        return (self.step % self.per_epoch == 0
                and (self.step // self.per_epoch) in self.workload.test_at_epochs)

    def checkpoint(self) -> bool:
        """The test accuracy of a fixed epoch, then the evaluation, whichever are due; False
        when the run must stop (it diverged, or every target is reached and the workload stops
        there)."""
        keep_going = True
        if self._test_epoch_due():
            scores = self._scores(self.dataset.x_test, self.dataset.y_test)
            self.test_at_epochs[str(self.step // self.per_epoch)] = 1.0 - scores.error
        if self._evaluation_due():
            keep_going = self.validate(self.losses.period_mean())
        if self.step % self.report_every == 0:
            self.report()
        return keep_going

    def _scores(self, x: torch.Tensor, y: torch.Tensor) -> Scores:
        with evaluation_view(self.optimizer):
            return evaluate(self.model, x, y, self.workload.eval_batch_size,
                            self.prepared.evaluate_forward)

    def validate(self, train_loss: float | None) -> bool:
        """Score the validation split at this step: a point of the curves, the best weights so
        far, the targets reached; False when the run must stop (see :meth:`checkpoint`)."""
        with evaluation_view(self.optimizer):
            scores = evaluate(self.model, self.dataset.x_val, self.dataset.y_val,
                              self.workload.eval_batch_size, self.prepared.evaluate_forward)
            if math.isfinite(scores.loss) and scores.loss < self.best.loss:
                state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.best = _Best(scores.loss, state, self.step)
            on_training_rows = evaluate(self.model, *self.train_scored,
                                        self.workload.eval_batch_size,
                                        self.prepared.evaluate_forward)
        epoch = self.step / self.per_epoch
        curves = self.curves
        curves.step.append(self.step)
        curves.epoch.append(epoch)
        curves.train_seconds.append(self.clock.seconds)
        curves.train_loss.append(train_loss)
        curves.val_loss.append(scores.loss if math.isfinite(scores.loss) else None)
        curves.val_error.append(scores.error)
        curves.val_top5_error.append(scores.top5_error)
        curves.train_error.append(on_training_rows.error)
        curves.train_scored_loss.append(
            on_training_rows.loss if math.isfinite(on_training_rows.loss) else None)
        self.last_val_error = scores.error
        for t in self.targets:
            if t.steps is None and scores.error <= t.target:
                t.steps, t.seconds, t.epoch = self.step, self.clock.seconds, epoch
        if not math.isfinite(scores.loss):
            self.diverged_at = self.step
            return False
        return not (self.workload.stop_at_targets and all(t.reached for t in self.targets))

    def report(self) -> None:
        if self.callback is not None:
            self.callback(Progress(self.step, self.total_steps, self.step / self.per_epoch,
                                   self.clock.peek(), self.last_val_error))

    # -- finishing the record --------------------------------------------------------------------

    def finish(self, wall_start: float) -> RunResult:
        """The record: the best-validation-loss weights scored on the test split, the config
        with what was resolved for this run, and the method's details."""
        best_test = None
        if self.best.state is not None:
            self.model.load_state_dict(self.best.state)
            scores = evaluate(self.model, self.dataset.x_test, self.dataset.y_test,
                              self.workload.eval_batch_size, self.prepared.evaluate_forward)
            best_test = TestMetrics(1.0 - scores.error, scores.error, scores.top5_error,
                                    scores.loss)
        device = str(self.device)
        identity = run_identity(self.workload, self.method, self.seed, device,
                                self.settings)
        execution = dict(self.prepared.applied)
        if self.settings.compile != "off":
            execution.update(compile_seconds=self.prepared.compile_seconds,
                             compilations=self.prepared.compilations)
        resolved = {"hyperparameters": to_plain(self.built.hyperparameters),
                    "tuned": self.built.tuned, "batch_size": self.batch_size,
                    "train_rows_scored": len(self.train_scored[1]),
                    "steps_per_epoch": self.per_epoch, "total_steps": self.total_steps,
                    "eval_every": self.period, "dataset": self.dataset.describe(),
                    "execution": execution}
        best_step = self.best.step
        return RunResult(
            workload=self.workload.name, method=self.method.name, seed=self.seed,
            device=device, config={**identity, "resolved": resolved},
            config_hash=config_hash(identity), environment=environment.describe(self.device),
            curves=self.curves, targets=self.targets,
            steps_run=self.step if self.diverged_at is None else min(self.step,
                                                                      self.diverged_at),
            train_seconds=self.clock.seconds, wall_seconds=time.perf_counter() - wall_start,
            diverged=self.diverged_at is not None, diverged_at_step=self.diverged_at,
            best_epoch=None if best_step is None else best_step / self.per_epoch,
            best_step=best_step, best_val_loss=None if best_step is None else self.best.loss,
            best_test=best_test, test_accuracy_at_epochs=self.test_at_epochs,
            details=method_details(self.optimizer),
        )


def method_details(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What the method reports about itself (``run_details()`` of each wrapper in the chain,
    outermost first), keyed by the wrapper's class name."""
    details: dict[str, Any] = {}
    for layer in wrappers(optimizer):
        report = getattr(type(layer), "run_details", None)
        if report is not None:
            details[type(layer).__name__] = report(layer)
    return details
