"""The linear-model ODE paper's table: wall time to training-accuracy thresholds, full-batch
gradient descent on the network against the linearised network's flow solved by an ODE solver.

Liu et al., "Adopting Linear Model to Accelerate Neural Network Training", report
``accuracy | time for NN | time for ODE | speedup`` for two-layer networks on UCI banknote and
MAGIC. Here both sides start from the same seeded initial network on the workload's training
split (full batch, the same learning rate and mean cross-entropy): gradient descent runs in the
network's float32, as the harness trains; the ODE side is float64 (SciPy) and its time includes
building the Jacobian. The speedup depends on the learning rate, so the table is made for
several: an adaptive solver gains most when the rate is small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from plp_baselines.linearized import (
    gradient_descent,
    integrate,
    load_flat_parameters,
    network_jacobian,
)

from .. import data as data_module
from ..core.tables import Column, TableData
from ..methods.solvers import SolverSettings
from ..runs.protocol import step_budget
from ..runs.scoring import evaluate
from ..runs.solving import linearize
from ..workloads import Workload

PAPER_THRESHOLDS = (0.80, 0.85, 0.90, 0.95)


@dataclass
class Row:
    threshold: float
    gd_seconds: float | None
    gd_steps: int | None
    ode_seconds: float | None       # Jacobian build + integration
    ode_steps: int | None
    ode_time: float | None          # in GD-step equivalents
    ode_rhs_calls: int | None = None
    ode_jacobian_calls: int | None = None

    @property
    def speedup(self) -> float | None:
        if self.gd_seconds is None or self.ode_seconds is None or self.ode_seconds == 0:
            return None
        return self.gd_seconds / self.ode_seconds


@dataclass
class Comparison:
    workload: str
    lr: float
    hidden: list[int]
    parameters: int
    samples: int
    solver: str
    space: str
    max_steps: int
    jacobian_seconds: float
    rows: list[Row] = field(default_factory=list)
    gd_test_accuracy: float = 0.0
    ode_network_test_accuracy: float = 0.0
    ode_linear_test_accuracy: float = 0.0
    gd_seconds_total: float = 0.0
    ode_seconds_total: float = 0.0
    ode_rhs_calls: int = 0
    ode_jacobian_calls: int = 0


def compare(workload: Workload, lr: float, *, seed: int = 0, solver: SolverSettings,
            thresholds: tuple[float, ...] = PAPER_THRESHOLDS, max_steps: int | None = None,
            data_root: str | None = None) -> Comparison:
    """Time both sides to each training-accuracy threshold (see the module)."""
    cpu = torch.device("cpu")
    dataset = data_module.load(workload.dataset, root=data_root, device=cpu, seed=seed,
                               val_fraction=workload.val_fraction)
    x, y = dataset.x_train, dataset.y_train
    budget = max_steps if max_steps is not None else step_budget(workload, len(y)).total_steps
    network, theta0, linear, jacobian_seconds = linearize(workload, dataset, seed, lr, solver)
    solve = integrate(linear, float(budget), solver=solver.method, rtol=solver.rtol,
                      atol=solver.atol, thresholds=thresholds)

    descent = gradient_descent(network, x, y, lr, budget, thresholds=thresholds)
    gd_test = 1.0 - evaluate(network, dataset.x_test, dataset.y_test, 4096).error

    displacement = linear.displacement(solve.state)
    load_flat_parameters(network, theta0)  # the linearisation point, for the test Jacobian
    test_outputs, test_jacobian = network_jacobian(network, dataset.x_test)
    test_logits = test_outputs + (test_jacobian.reshape(-1, linear.p) @ displacement).reshape(
        test_outputs.shape)
    linear_test = (test_logits.argmax(dim=1) == dataset.y_test).double().mean().item()
    load_flat_parameters(network, theta0 + displacement)
    network_test = 1.0 - evaluate(network, dataset.x_test, dataset.y_test, 4096).error

    rows = []
    for threshold in sorted(thresholds):
        gd_hit, ode_hit = descent.hits[threshold], solve.hits[threshold]
        rows.append(Row(
            threshold,
            gd_hit.seconds if gd_hit else None, gd_hit.steps if gd_hit else None,
            jacobian_seconds + ode_hit.seconds if ode_hit else None,
            ode_hit.steps if ode_hit else None, ode_hit.time if ode_hit else None,
            ode_hit.rhs_calls if ode_hit else None, ode_hit.jac_calls if ode_hit else None))
    return Comparison(
        workload=workload.name, lr=lr, hidden=list(workload.model_options.get("hidden", [])),
        parameters=linear.p, samples=linear.n, solver=solver.method, space=linear.space,
        max_steps=budget, jacobian_seconds=jacobian_seconds, rows=rows,
        gd_test_accuracy=gd_test, ode_network_test_accuracy=network_test,
        ode_linear_test_accuracy=linear_test, gd_seconds_total=descent.seconds,
        ode_seconds_total=jacobian_seconds + solve.seconds, ode_rhs_calls=solve.rhs_calls,
        ode_jacobian_calls=solve.jac_calls)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(comparison: Comparison) -> TableData:
    """The paper's table for one workload and learning rate."""
    c = comparison
    title = (f"{c.workload}: eta = {c.lr:g}, hidden width {c.hidden}, P = {c.parameters} "
             f"parameters, N = {c.samples} training rows, full batch, up to {c.max_steps} steps")
    caption = (
        f"NN: gradient descent on the network (float32). ODE: {c.solver} on the linearised "
        f"network in {c.space} space (float64); its times include the Jacobian build "
        f"({c.jacobian_seconds:.3f} s). Test accuracy: NN {c.gd_test_accuracy:.4f}, "
        f"network at the ODE's parameters {c.ode_network_test_accuracy:.4f}, linearised "
        f"model {c.ode_linear_test_accuracy:.4f}. '—': not reached within the budget.")
    out = TableData(title, [Column(name) for name in (
        "train accuracy", "time for NN (s)", "GD steps", "time for ODE (s)", "solver steps",
        "RHS / Jacobian evals", "ODE time", "speedup")], caption=caption)
    for row in c.rows:
        speedup = row.speedup
        out.add_row(f"{row.threshold:.2f}", _seconds(row.gd_seconds),
                    "—" if row.gd_steps is None else str(row.gd_steps),
                    _seconds(row.ode_seconds),
                    "—" if row.ode_steps is None else str(row.ode_steps),
                    "—" if row.ode_rhs_calls is None
                    else f"{row.ode_rhs_calls} / {row.ode_jacobian_calls}",
                    "—" if row.ode_time is None else f"{row.ode_time:.1f}",
                    "—" if speedup is None else f"{speedup:.2f}x")
    return out


def width_table(comparisons: list[Comparison]) -> TableData:
    """Where the linearised model's speed-up and its accuracy cost go as the two-layer network
    widens (the NTK regime is the wide one): one row per (workload, rate, width), the speed-up
    at each threshold and the test accuracy of each side."""
    thresholds = sorted({row.threshold for c in comparisons for row in c.rows})
    out = TableData(
        "the linearised model over hidden widths",
        [Column("workload", numeric=False), Column("eta"), Column("width"), Column("P"),
         *[Column(f"speedup @ {t:.2f}") for t in thresholds], Column("NN test acc"),
         Column("linearised test acc"), Column("accuracy cost")],
        caption=("speedup: gradient descent's seconds over the ODE's to the training accuracy "
                 "('—': one side did not reach it); accuracy cost: the linearised model's test "
                 "accuracy minus gradient descent's network's (negative: the linearisation "
                 "costs accuracy). Seconds are wall time of one process."))
    for c in comparisons:
        by_threshold = {row.threshold: row.speedup for row in c.rows}
        out.add_row(c.workload, f"{c.lr:g}", " x ".join(map(str, c.hidden)), str(c.parameters),
                    *["—" if by_threshold.get(t) is None else f"{by_threshold[t]:.2f}x"
                      for t in thresholds],
                    f"{c.gd_test_accuracy:.4f}", f"{c.ode_linear_test_accuracy:.4f}",
                    f"{c.ode_linear_test_accuracy - c.gd_test_accuracy:+.4f}")
    return out
