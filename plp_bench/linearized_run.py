"""The linearised-model baseline as a harness run: same workload, seed, initial weights and
record as every other method, trained by an ODE solver instead of an optimizer.

The network with the seed's initial weights is linearised on the training split
(:mod:`baselines.linearized`); the learning rate is the method's base optimizer's (``gd`` on
the workloads tuned for it); the flow is integrated up to ODE time = the workload's budget in
steps (one unit of ODE time is one full-batch GD step). The record's curves have one entry per
solver step: ``step`` counts solver steps and ``epoch`` is ODE time (full-batch epochs). What is
scored is the linearised model (the thing trained): the validation error for the targets, the
best-validation-loss point's test metrics in ``best_test``. The training clock covers the
Jacobian build and the integration, not the evaluations. ``details`` holds the solver's
counters, the build and integration seconds, and the real (nonlinear) network's train and test
accuracy at the parameters the flow reached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from baselines.linearized import (
    LinearizedModel,
    flat_parameters,
    integrate,
    load_flat_parameters,
    network_jacobian,
)

from . import data as data_module
from . import environment
from .config import to_plain
from .data import Dataset
from .methods import MethodConfig, resolve_hyperparameters
from .results import Curves, RunResult, TargetResult, TestMetrics, config_hash
from .run_protocol import Progress, initial_model, resolve_device, run_identity, step_budget
from .scoring import evaluate, score_logits
from .solvers import SOLVERS, SolverSettings
from .workloads import Workload

CPU = torch.device("cpu")


def linearize(workload: Workload, dataset: Dataset, seed: int, lr: float,
              settings: SolverSettings
              ) -> tuple[torch.nn.Module, torch.Tensor, LinearizedModel, float]:
    """The seed's initial network (on the CPU), its flat parameters, the linearised flow on
    the training split, and the seconds the Jacobian and the flow took to build."""
    network = initial_model(workload, dataset, seed, CPU)
    theta0 = flat_parameters(network)
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
    """Train ``workload``'s network linearised, with ``method.solver``; see the module."""
    if method.solver is None:
        raise ValueError(f"method {method.name!r} has no solver: it is trained, not solved; "
                         "run it through plp_bench.run")
    wall_start = time.perf_counter()
    requested = resolve_device(device)
    if dataset is None:
        dataset = data_module.load(workload.dataset, root=data_root, device=CPU, seed=seed,
                                   val_fraction=workload.val_fraction)
    x_train, y_train = dataset.x_train.to(CPU), dataset.y_train.to(CPU)
    x_val, y_val = dataset.x_val.to(CPU), dataset.y_val.to(CPU)
    x_test, y_test = dataset.x_test.to(CPU), dataset.y_test.to(CPU)
    settings = SOLVERS.get(method.solver.name)(**method.solver.options)
    hyperparameters, tuned = resolve_hyperparameters(method, workload.optimizers)
    lr = float(hyperparameters["lr"])
    budget = step_budget(workload, len(y_train))
    t_end = float(budget.total_steps)
    network, theta0, linear, build_seconds = linearize(workload, dataset, seed, lr, settings)
    val_outputs, val_jacobian = network_jacobian(network, x_val)
    val_jacobian = val_jacobian.reshape(-1, linear.p)

    curves = Curves()
    targets = [TargetResult(t) for t in workload.targets]
    best: dict = {"loss": math.inf, "displacement": None, "step": None}
    state = {"steps": 0, "diverged_at": None}

    def record(step: int, ode_time: float, seconds: float, solution) -> bool:
        displacement = linear.displacement(solution)
        logits = (val_outputs.reshape(-1) + val_jacobian @ displacement).reshape(len(y_val), -1)
        scores = score_logits(logits, y_val)
        train_loss = linear.loss_value(linear.logits(solution))
        curves.step.append(step)
        curves.epoch.append(ode_time)
        curves.train_seconds.append(build_seconds + seconds)
        curves.train_loss.append(train_loss if step else None)
        curves.val_loss.append(scores.loss if math.isfinite(scores.loss) else None)
        curves.val_error.append(scores.error)
        curves.val_top5_error.append(scores.top5_error)
        if math.isfinite(scores.loss) and scores.loss < best["loss"]:
            best.update(loss=scores.loss, displacement=displacement, step=step,
                        solution=solution.copy())
        for t in targets:
            if t.steps is None and scores.error <= t.target:
                t.steps, t.seconds, t.epoch = step, build_seconds + seconds, ode_time
        if callback is not None:
            callback(Progress(min(int(ode_time), budget.total_steps), budget.total_steps,
                              ode_time, build_seconds + seconds, scores.error))
        if not math.isfinite(scores.loss):
            state["diverged_at"] = step
            return False
        return not (workload.stop_at_targets and all(t.reached for t in targets))

    def on_step(ode, _accuracy: float, seconds: float) -> bool:
        state["steps"] += 1
        return record(state["steps"], float(ode.t), seconds, ode.y)

    record(0, 0.0, 0.0, linear.initial_state())
    solve = integrate(linear, t_end, solver=settings.method, rtol=settings.rtol,
                      atol=settings.atol, stop_at_thresholds=False, on_step=on_step)
    train_seconds = build_seconds + solve.seconds

    best_test = None
    network_metrics = {}
    if best["displacement"] is not None:
        test_outputs, test_jacobian = network_jacobian(network, x_test)
        logits = (test_outputs.reshape(-1) + test_jacobian.reshape(-1, linear.p)
                  @ best["displacement"]).reshape(len(y_test), -1)
        scores = score_logits(logits, y_test)
        best_test = TestMetrics(1.0 - scores.error, scores.error, scores.top5_error, scores.loss)
        load_flat_parameters(network, theta0 + best["displacement"])
        eval_batch = workload.eval_batch_size
        network_metrics = {
            "network_train_accuracy": 1.0 - evaluate(network, x_train, y_train, eval_batch).error,
            "network_test_accuracy": 1.0 - evaluate(network, x_test, y_test, eval_batch).error,
            "linearized_train_accuracy": linear.accuracy(best["solution"]),
        }
    identity = run_identity(workload, method, seed, str(requested))
    config = dict(identity)
    config["resolved"] = {"hyperparameters": to_plain(hyperparameters), "tuned": tuned,
                          "batch_size": len(y_train), "steps_per_epoch": 1,
                          "total_steps": budget.total_steps, "eval_every": 1,
                          "solver": to_plain(settings), "dataset": dataset.describe()}
    details = {
        "solver": settings.method, "space": linear.space, "samples": linear.n,
        "outputs": linear.c, "parameters": linear.p, "lr": lr,
        "jacobian_seconds": build_seconds, "integration_seconds": solve.seconds,
        "solver_steps": solve.steps, "ode_time": solve.time, "rhs_calls": solve.rhs_calls,
        "jacobian_calls": solve.jac_calls, "lu_decompositions": solve.lu_decompositions,
        "solver_status": solve.status, "solver_message": solve.message,
        "ran_on": "cpu",  # SciPy integrates on the CPU whatever device was asked for
        **network_metrics,
    }
    return RunResult(
        workload=workload.name, method=method.name, seed=seed, device=str(requested),
        config=config, config_hash=config_hash(identity),
        environment=environment.describe(CPU), curves=curves, targets=targets,
        steps_run=state["steps"], train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - wall_start,
        diverged=state["diverged_at"] is not None, diverged_at_step=state["diverged_at"],
        best_epoch=None if best["step"] is None else curves.epoch[best["step"]],
        best_step=best["step"], best_val_loss=None if best["step"] is None else best["loss"],
        best_test=best_test, details=details,
    )
