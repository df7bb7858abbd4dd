"""The linearised-model baseline as a harness run: same workload, seed, initial weights and
record as every other method, trained by an ODE solver instead of an optimizer.

The network with the seed's initial weights is linearised on the training split
(:mod:`plp_baselines.linearized`); the learning rate is the method's base optimizer's (``gd`` on
the workloads tuned for it); the flow is integrated up to ODE time = the workload's budget in
steps (one unit of ODE time is one full-batch GD step). The record's curves have one entry per
solver step: ``step`` counts solver steps and ``epoch`` is ODE time (full-batch epochs). What is
scored is the linearised model (the thing trained): the validation error for the targets, the
best-validation-loss point's test metrics in ``best_test``; the training split's accuracy and
cross-entropy (all of its rows, whose logits the flow computes anyway) at every point. The
training clock covers the
Jacobian build and the integration, not the evaluations. ``details`` holds the solver's
counters, the build and integration seconds, and the real (nonlinear) network's train and test
accuracy at the parameters the flow reached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from plp_baselines.linearized import (
    LinearizedModel,
    flat_parameters,
    integrate,
    load_flat_parameters,
    network_jacobian,
)

from .. import data as data_module
from ..core import environment
from ..core.config import to_plain
from ..core.record import Curves, RunResult, TargetResult, TestMetrics, config_hash
from ..data import Dataset
from ..methods.catalogue import MethodConfig, resolve_hyperparameters
from ..methods.solvers import SOLVERS, SolverSettings
from ..workloads import Workload
from .device import resolve_device
from .protocol import Progress, initial_model, run_identity, step_budget
from .scoring import evaluate, score_logits

CPU = torch.device("cpu")


def linearize(workload: Workload, dataset: Dataset, seed: int, lr: float,
              settings: SolverSettings
              ) -> tuple[torch.nn.Module, torch.Tensor, LinearizedModel, float]:
    """The seed's initial network (on the CPU), its flat parameters, the linearised flow on
    the training split, and the seconds the Jacobian and the flow took to build.

    The Jacobian of one row is taken first, off the clock: the first Jacobian of a process
    imports ``torch.func`` (and with it ``torch._dynamo``), 1.5-2.5 s that no later run pays,
    which would otherwise be charged to whichever run came first (measured: the first of
    three ``ode-table`` widths took 3.1 s to 0.80 against 0.6 s when run second)."""
    network = initial_model(workload, dataset, seed, CPU)
    theta0 = flat_parameters(network)
    network_jacobian(network, dataset.x_train[:1].to(CPU))  # warm-up, off the clock
    build_start = time.perf_counter()
    outputs, jacobian = network_jacobian(network, dataset.x_train.to(CPU))
    linear = LinearizedModel(jacobian, outputs, dataset.y_train.to(CPU), lr,
                             space=settings.space, memory_limit=settings.memory_limit_bytes)
    return network, theta0, linear, time.perf_counter() - build_start


def run_linearized(
    workload: Workload,
    method: MethodConfig,
    seed: int,
    device: str | torch.device = "cpu",
    *,
    dataset: Dataset | None = None,
    data_root: str | None = None,
    callback: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Train ``workload``'s network linearised, with ``method.solver``; see the module. The
    phases: set up the flow, integrate it (scoring every solver step), test the best point,
    write the record."""
    if method.solver is None:
        raise ValueError(f"method {method.name!r} has no solver: it is trained, not solved; "
                         "run it through plp_bench.run")
    wall_start = time.perf_counter()
    solved = _SolvedRun(workload, method, seed, resolve_device(device), dataset, data_root,
                        callback)
    solved.integrate()
    best_test, network_metrics = solved.test_best()
    return solved.finish(best_test, network_metrics, wall_start)


class _SolvedRun:
    """One linearised run's state: set up in ``__init__``, scored at each solver step by
    :meth:`observe`, closed by :meth:`test_best` and :meth:`finish`."""

    def __init__(self, workload: Workload, method: MethodConfig, seed: int,
                 requested: torch.device, dataset: Dataset | None, data_root: str | None,
                 callback: Callable[[Progress], None] | None):
        self.workload, self.method, self.seed = workload, method, seed
        self.requested, self.callback = requested, callback
        if dataset is None:
            dataset = data_module.load(workload.dataset, root=data_root, device=CPU, seed=seed,
                                       val_fraction=workload.val_fraction)
        self.dataset = dataset
        self.x_val, self.y_val = dataset.x_val.to(CPU), dataset.y_val.to(CPU)
        self.y_train = dataset.y_train.to(CPU)
        self.settings = SOLVERS.get(method.solver.name)(**method.solver.options)
        self.hyperparameters, self.tuned = resolve_hyperparameters(method, workload.optimizers)
        self.lr = float(self.hyperparameters["lr"])
        self.budget = step_budget(workload, len(dataset.y_train))
        self.network, self.theta0, self.linear, self.build_seconds = linearize(
            workload, dataset, seed, self.lr, self.settings)
        self.val_outputs, val_jacobian = network_jacobian(self.network, self.x_val)
        self.val_jacobian = val_jacobian.reshape(-1, self.linear.p)
        self.curves = Curves()
        self.targets = [TargetResult(t) for t in workload.targets]
        self.best: dict = {"loss": math.inf, "displacement": None, "step": None}
        self.steps = 0
        self.diverged_at: int | None = None
        self.solve = None

    def integrate(self) -> None:
        """Score the initial point, then integrate up to the budget, scoring every step."""
        def on_step(ode, _accuracy: float, seconds: float) -> bool:
            self.steps += 1
            return self.observe(self.steps, float(ode.t), seconds, ode.y)

        self.observe(0, 0.0, 0.0, self.linear.initial_state())
        self.solve = integrate(self.linear, float(self.budget.total_steps),
                               solver=self.settings.method, rtol=self.settings.rtol,
                               atol=self.settings.atol, stop_at_thresholds=False,
                               on_step=on_step)

    def observe(self, step: int, ode_time: float, seconds: float, solution) -> bool:
        """Score the linearised model at ``solution`` on the validation split: the curves, the
        best point, the targets, the progress; False stops the solver (diverged, or every
        target reached on a workload that stops there)."""
        linear, curves, clock = self.linear, self.curves, self.build_seconds + seconds
        displacement = linear.displacement(solution)
        logits = (self.val_outputs.reshape(-1) + self.val_jacobian @ displacement).reshape(
            len(self.y_val), -1)
        scores = score_logits(logits, self.y_val)
        train_logits = linear.logits(solution)
        train_loss = linear.loss_value(train_logits)
        on_training_rows = score_logits(train_logits, self.y_train)
        curves.step.append(step)
        curves.epoch.append(ode_time)
        curves.train_seconds.append(clock)
        curves.train_loss.append(train_loss if step else None)
        curves.val_loss.append(scores.loss if math.isfinite(scores.loss) else None)
        curves.val_error.append(scores.error)
        curves.val_top5_error.append(scores.top5_error)
        curves.train_error.append(on_training_rows.error)
        curves.train_scored_loss.append(
            on_training_rows.loss if math.isfinite(on_training_rows.loss) else None)
        if math.isfinite(scores.loss) and scores.loss < self.best["loss"]:
            self.best.update(loss=scores.loss, displacement=displacement, step=step,
                             solution=solution.copy())
        for t in self.targets:
            if t.steps is None and scores.error <= t.target:
                t.steps, t.seconds, t.epoch = step, clock, ode_time
        if self.callback is not None:
            total = self.budget.total_steps
            self.callback(Progress(min(int(ode_time), total), total, ode_time, clock,
                                   scores.error))
        if not math.isfinite(scores.loss):
            self.diverged_at = step
            return False
        return not (self.workload.stop_at_targets and all(t.reached for t in self.targets))

    def test_best(self) -> tuple[TestMetrics | None, dict]:
        """The best-validation-loss point's test metrics, and the real network's train and test
        accuracy at the parameters it stands for."""
        displacement = self.best["displacement"]
        if displacement is None:
            return None, {}
        dataset, network = self.dataset, self.network
        x_train, y_train = dataset.x_train.to(CPU), dataset.y_train.to(CPU)
        x_test, y_test = dataset.x_test.to(CPU), dataset.y_test.to(CPU)
        test_outputs, test_jacobian = network_jacobian(network, x_test)
        logits = (test_outputs.reshape(-1) + test_jacobian.reshape(-1, self.linear.p)
                  @ displacement).reshape(len(y_test), -1)
        scores = score_logits(logits, y_test)
        best_test = TestMetrics(1.0 - scores.error, scores.error, scores.top5_error, scores.loss)
        load_flat_parameters(network, self.theta0 + displacement)
        eval_batch = self.workload.eval_batch_size
        return best_test, {
            "network_train_accuracy": 1.0 - evaluate(network, x_train, y_train, eval_batch).error,
            "network_test_accuracy": 1.0 - evaluate(network, x_test, y_test, eval_batch).error,
            "linearized_train_accuracy": self.linear.accuracy(self.best["solution"]),
        }

    def finish(self, best_test: TestMetrics | None, network_metrics: dict,
               wall_start: float) -> RunResult:
        """The run's record: its config (with what was resolved), the solver's counters and
        the clock."""
        linear, settings, solve, best = self.linear, self.settings, self.solve, self.best
        identity = run_identity(self.workload, self.method, self.seed, str(self.requested))
        config = dict(identity)
        config["resolved"] = {"hyperparameters": to_plain(self.hyperparameters),
                              "tuned": self.tuned, "batch_size": len(self.dataset.y_train),
                              "train_rows_scored": len(self.dataset.y_train),
                              "steps_per_epoch": 1, "total_steps": self.budget.total_steps,
                              "eval_every": 1, "solver": to_plain(settings),
                              "dataset": self.dataset.describe()}
        details = {
            "solver": settings.method, "space": linear.space, "samples": linear.n,
            "outputs": linear.c, "parameters": linear.p, "lr": self.lr,
            "jacobian_seconds": self.build_seconds, "integration_seconds": solve.seconds,
            "solver_steps": solve.steps, "ode_time": solve.time, "rhs_calls": solve.rhs_calls,
            "jacobian_calls": solve.jac_calls, "lu_decompositions": solve.lu_decompositions,
            "solver_status": solve.status, "solver_message": solve.message,
            "ran_on": "cpu",  # SciPy integrates on the CPU whatever device was asked for
            **network_metrics,
        }
        return RunResult(
            workload=self.workload.name, method=self.method.name, seed=self.seed,
            device=str(self.requested), config=config, config_hash=config_hash(identity),
            environment=environment.describe(CPU), curves=self.curves, targets=self.targets,
            steps_run=self.steps, train_seconds=self.build_seconds + solve.seconds,
            wall_seconds=time.perf_counter() - wall_start,
            diverged=self.diverged_at is not None, diverged_at_step=self.diverged_at,
            best_epoch=None if best["step"] is None else self.curves.epoch[best["step"]],
            best_step=best["step"], best_val_loss=None if best["step"] is None else best["loss"],
            best_test=best_test, details=details,
        )
