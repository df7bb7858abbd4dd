r"""Training the linearised network as an initial value problem (NTK dynamics, SciPy solvers).

Liu et al., "Adopting Linear Model to Accelerate Neural Network Training". Around its initial
parameters :math:`\theta_0` the network is replaced by its first-order Taylor expansion

.. math::  f_{lin}(x; \theta) = f_0(x) + J_0(x) (\theta - \theta_0),

and gradient descent with learning rate :math:`\eta` by its gradient flow, integrated with an
implicit ODE solver instead of iterated:

* parameter space (their eq. 1, state size P): :math:`\dot\theta = -\eta J_0^T \, \partial L/\partial f`
* function space (their eq. 2, state size N C): :math:`\dot f = -\eta \Theta_0 \, \partial L/\partial f`
  with the empirical NTK :math:`\Theta_0 = J_0 J_0^T`.

One unit of ODE time is one step of full-batch gradient descent (an explicit Euler step of size
1 is exactly a GD step), so solver time and GD iterations are on the same axis.

The loss is the mean over the N training samples of softmax cross-entropy (or of
:math:`\frac12 \lVert f - y\rVert^2` with one-hot targets, for which the function-space flow has
the closed form :math:`f_t = y + e^{-\eta \Theta_0 t / N}(f_0 - y)`). Its gradient is
:math:`(p - y)/N` per sample and its Hessian is block-diagonal, :math:`(\mathrm{diag}(p) - p p^T)/N`
per sample (:math:`I/N` for the squared error), so the right-hand side has an analytic Jacobian:
:math:`-\eta J^T H J` in parameter space, :math:`-\eta \Theta_0 H` in function space. The
implicit solvers get it and never difference the right-hand side numerically.

Solvers are driven one step at a time through SciPy's ``OdeSolver`` interface, so the wall time
at which each training-accuracy threshold is first reached is read right after the step that
reaches it. :func:`gradient_descent` is the reference: full-batch GD on the real (nonlinear)
network with the same learning rate and loss, timed the same way.

Needs NumPy and SciPy (the ``[harness]`` extra), unlike the update rules.

How this differs from the paper: the Jacobian is built with ``torch.func`` (reverse mode when
the network has fewer outputs than parameters, else forward mode), in float64; the state space
is chosen by size unless forced; memory is estimated before anything large is allocated.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

try:
    import numpy as np
except ModuleNotFoundError as missing:  # the update rules need torch alone; this does not
    raise ModuleNotFoundError(
        "plp_baselines.linearized (the ODE baseline) needs NumPy and SciPy: "
        "pip install 'plp-bench[harness]'", name=missing.name) from missing
import torch.nn.functional as F

SOLVERS = ("BDF", "LSODA", "Radau", "RK45")  # scipy.integrate's OdeSolver classes
IMPLICIT = ("BDF", "LSODA", "Radau")  # the ones that use the Jacobian
LOSSES = ("cross_entropy", "mse")
SPACES = ("auto", "parameter", "function")


def network_jacobian(model: torch.nn.Module, x: torch.Tensor, *, mode: str = "auto",
                     chunk_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs ``(N, C)`` and Jacobian ``(N, C, P)`` of ``model`` at its current parameters,
    in float64, parameters in ``model.parameters()`` order. ``mode``: ``rev``, ``fwd`` or
    ``auto`` (reverse mode when C <= P)."""
    # imported here: torch.func loads torch._dynamo, seconds that every importer of this module
    # (the harness's method registry among them) would pay without computing a Jacobian
    from torch.func import functional_call, jacfwd, jacrev, vmap

    if mode not in ("auto", "rev", "fwd"):
        raise ValueError(f"mode must be auto, rev or fwd, got {mode!r}")
    net = copy.deepcopy(model).double().eval()
    names = [name for name, _ in net.named_parameters()]
    params = {name: p.detach() for name, p in net.named_parameters()}
    buffers = {name: b.detach() for name, b in net.named_buffers()}
    x = x.double()

    def output(p: dict[str, torch.Tensor], sample: torch.Tensor) -> torch.Tensor:
        return functional_call(net, (p, buffers), (sample.unsqueeze(0),)).squeeze(0)

    with torch.no_grad():
        outputs = net(x)
    classes, count = outputs.shape[1], sum(p.numel() for p in params.values())
    use_reverse = mode == "rev" or (mode == "auto" and classes <= count)
    differentiate = jacrev if use_reverse else jacfwd
    per_sample = vmap(differentiate(output), in_dims=(None, 0), chunk_size=chunk_size)(params, x)
    n = x.shape[0]
    jacobian = torch.cat([per_sample[name].reshape(n, classes, -1) for name in names], dim=2)
    return outputs, jacobian


def flat_parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def load_flat_parameters(model: torch.nn.Module, flat: torch.Tensor) -> None:
    """Write a flat float64 vector into ``model``'s parameters (in their dtype)."""
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(flat[offset:offset + p.numel()].reshape(p.shape).to(p.dtype))
            offset += p.numel()


def memory_needed(samples: int, classes: int, parameters: int, space: str) -> int:
    """Bytes the float64 arrays of a solve hold at once: the Jacobian, and for the state
    space the solver's Jacobian, its LU factors and a working copy (plus the NTK and the
    pseudo-inverse of J in function space)."""
    nc, p = samples * classes, parameters
    jacobian = nc * p * 8
    if space == "parameter":
        return jacobian + 3 * p * p * 8
    return jacobian + 4 * nc * nc * 8 + p * nc * 8


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _gib(count: int) -> str:
    return f"{count / 2**30:.2f} GiB"


def choose_space(samples: int, classes: int, parameters: int, space: str = "auto",
                 memory_limit: int | None = None) -> str:
    """``parameter`` or ``function``: the smaller state unless forced; refuses (``MemoryError``
    naming both needs) when the choice would not fit in ``memory_limit`` bytes (default: half
    the machine's memory)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    chosen = space
    if space == "auto":
        chosen = "parameter" if parameters <= samples * classes else "function"
    limit = memory_limit if memory_limit is not None else _physical_memory() // 2
    need = memory_needed(samples, classes, parameters, chosen)
    if need > limit:
        other = "function" if chosen == "parameter" else "parameter"
        raise MemoryError(
            f"the linearised solve in {chosen} space needs {_gib(need)} for N={samples} "
            f"samples, C={classes} outputs, P={parameters} parameters; the limit is "
            f"{_gib(limit)}. The {other} space would need "
            f"{_gib(memory_needed(samples, classes, parameters, other))}.")
    return chosen


def _one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    return F.one_hot(labels.long(), classes).double()


class LinearizedModel:
    r"""The linearised network's gradient flow on one training set (Liu et al., "Adopting
    Linear Model to Accelerate Neural Network Training", eqs. 1 and 2): the right-hand side,
    its analytic Jacobian and the logits of a state, in float64 throughout.

    .. math::

        \dot\theta = -\eta J_0^T \, \partial L/\partial f \quad\text{(parameter space)},
        \qquad \dot f = -\eta J_0 J_0^T \, \partial L/\partial f \quad\text{(function space)}

    Args:
        jacobian: :math:`J_0`, ``(N, C, P)``: the outputs' Jacobian at the initial weights.
        outputs: :math:`f_0`, ``(N, C)``: the outputs at the initial weights.
        labels: ``(N,)`` class indices.
        lr: :math:`\eta`; one unit of ODE time is one full-batch gradient-descent step.
        loss: ``cross_entropy`` or ``mse`` (one-hot targets).
        space: ``parameter``, ``function`` or ``auto`` (the smaller state).
        memory_limit: bytes a solve may need at most (refused with both spaces' needs above it).

    How it differs from the paper: the Jacobian comes from ``torch.func`` in float64, the
    state space is chosen by size unless forced, and memory is checked before anything large
    is allocated (see the module).
    """

    def __init__(self, jacobian: torch.Tensor, outputs: torch.Tensor, labels: torch.Tensor,
                 lr: float, *, loss: str = "cross_entropy", space: str = "auto",
                 memory_limit: int | None = None):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not lr > 0:
            raise ValueError(f"the learning rate must be > 0, got {lr!r}")
        n, c, p = jacobian.shape
        self.space = choose_space(n, c, p, space, memory_limit)
        self.n, self.c, self.p = n, c, p
        self.lr = float(lr)
        self.loss = loss
        self.J = jacobian.reshape(n * c, p).double().contiguous()
        self.f0 = outputs.double().reshape(-1).contiguous()
        self.labels = labels.long()
        self.targets = _one_hot(labels, c).reshape(-1)
        if self.space == "function":
            self.ntk = self.J @ self.J.T
            self.pinv = torch.linalg.pinv(self.J)
        self.rhs_calls = 0
        self.jac_calls = 0

    @property
    def state_size(self) -> int:
        return self.p if self.space == "parameter" else self.n * self.c

    def initial_state(self) -> np.ndarray:
        if self.space == "parameter":
            return np.zeros(self.p)
        return self.f0.numpy().copy()

    def logits(self, state: np.ndarray) -> torch.Tensor:
        """Training-set logits ``(N, C)`` of the linearised model at ``state``."""
        y = torch.from_numpy(np.asarray(state, dtype=np.float64))
        flat = self.f0 + self.J @ y if self.space == "parameter" else y
        return flat.reshape(self.n, self.c)

    def displacement(self, state: np.ndarray) -> torch.Tensor:
        """:math:`\\theta - \\theta_0` (in function space, the minimum-norm solution of
        :math:`J \\delta = f - f_0`, exact because the flow moves only in the row space of J)."""
        y = torch.from_numpy(np.asarray(state, dtype=np.float64))
        return y.clone() if self.space == "parameter" else self.pinv @ (y - self.f0)

    def loss_gradient(self, logits: torch.Tensor) -> torch.Tensor:
        """:math:`\\partial L / \\partial f`, flat ``(N C,)``."""
        if self.loss == "cross_entropy":
            residual = torch.softmax(logits, dim=1).reshape(-1) - self.targets
        else:
            residual = logits.reshape(-1) - self.targets
        return residual / self.n

    def loss_value(self, logits: torch.Tensor) -> float:
        if self.loss == "cross_entropy":
            return F.cross_entropy(logits, self.labels).item()
        return 0.5 * ((logits.reshape(-1) - self.targets) ** 2).sum().item() / self.n

    def accuracy(self, state: np.ndarray) -> float:
        return (self.logits(state).argmax(dim=1) == self.labels).double().mean().item()

    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        self.rhs_calls += 1
        g = self.loss_gradient(self.logits(state))
        velocity = self.J.T @ g if self.space == "parameter" else self.ntk @ g
        return (-self.lr * velocity).numpy()

    def _hessian_times(self, matrix: torch.Tensor, state: np.ndarray) -> torch.Tensor:
        """``H @ matrix`` for the block-diagonal loss Hessian H, ``matrix`` of shape
        ``(N C, K)``: per sample ``(diag(p) - p p^T) M_i / N``."""
        if self.loss == "mse":
            return matrix / self.n
        probabilities = torch.softmax(self.logits(state), dim=1)
        blocks = matrix.reshape(self.n, self.c, -1)
        mixed = torch.einsum("nc,nck->nk", probabilities, blocks)
        product = probabilities[:, :, None] * (blocks - mixed[:, None, :])
        return product.reshape(self.n * self.c, -1) / self.n

    def jac(self, t: float, state: np.ndarray) -> np.ndarray:
        """:math:`-\\eta J^T H J` (parameter space) or :math:`-\\eta \\Theta_0 H` (function
        space; H is symmetric, so :math:`\\Theta_0 H = (H \\Theta_0)^T`)."""
        self.jac_calls += 1
        if self.space == "parameter":
            matrix = self.J.T @ self._hessian_times(self.J, state)
        else:
            matrix = self._hessian_times(self.ntk, state).T
        return (-self.lr * matrix).numpy()


@dataclass
class Hit:
    """When a training-accuracy threshold was first reached."""

    threshold: float
    seconds: float
    steps: int
    time: float          # ODE time (GD-step equivalents) or GD iterations
    rhs_calls: int = 0
    jac_calls: int = 0


@dataclass
class SolveRecord:
    """One integration: per-threshold hits, counters, and the state reached."""

    solver: str
    space: str
    hits: dict[float, Hit | None]
    seconds: float
    steps: int
    time: float
    rhs_calls: int
    jac_calls: int
    lu_decompositions: int
    status: str
    message: str | None
    state: np.ndarray
    accuracy: float
    history: list[tuple[float, float, float]] = field(default_factory=list)


def integrate(model: LinearizedModel, t_end: float, *, solver: str = "BDF",
              thresholds: Sequence[float] = (), rtol: float = 1e-6, atol: float = 1e-9,
              stop_at_thresholds: bool = True,
              on_step: Callable[[Any, float, float], bool | None] | None = None) -> SolveRecord:
    """Integrate from ODE time 0 to ``t_end`` one solver step at a time. After each step the
    training accuracy of the linearised model is checked against ``thresholds``; ``on_step
    (solver, accuracy, seconds)`` may return False to stop. Seconds count from the solver's creation,
    include the accuracy checks and exclude the time spent in ``on_step`` (the Jacobian build
    is the caller's to add)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    options: dict[str, Any] = {"rtol": rtol, "atol": atol}
    if solver in IMPLICIT:
        options["jac"] = model.jac
    start_rhs, start_jac = model.rhs_calls, model.jac_calls
    import scipy.integrate  # here: half a second that importers who never integrate would pay

    started = time.perf_counter()
    ode = getattr(scipy.integrate, solver)(model.rhs, 0.0, model.initial_state(), t_end,
                                          **options)
    pending = sorted(set(thresholds))
    hits: dict[float, Hit | None] = dict.fromkeys(pending)
    steps = 0
    paused = 0.0
    accuracy = model.accuracy(ode.y)
    history = [(0.0, 0.0, accuracy)]
    message = None
    while ode.status == "running":
        message = ode.step()
        if ode.status == "failed":
            break
        steps += 1
        accuracy = model.accuracy(ode.y)
        seconds = time.perf_counter() - started - paused
        history.append((float(ode.t), seconds, accuracy))
        for threshold in [t for t in pending if accuracy >= t]:
            hits[threshold] = Hit(threshold, seconds, steps, float(ode.t),
                                  model.rhs_calls - start_rhs, model.jac_calls - start_jac)
            pending.remove(threshold)
        if on_step is not None:
            pause = time.perf_counter()
            go_on = on_step(ode, accuracy, seconds)
            paused += time.perf_counter() - pause
            if go_on is False:
                break
        if stop_at_thresholds and thresholds and not pending:
            break
    return SolveRecord(
        solver=solver, space=model.space, hits=hits,
        seconds=time.perf_counter() - started - paused,
        steps=steps, time=float(ode.t), rhs_calls=model.rhs_calls - start_rhs,
        jac_calls=model.jac_calls - start_jac, lu_decompositions=int(getattr(ode, "nlu", 0)),
        status=ode.status, message=message, state=np.array(ode.y), accuracy=accuracy,
        history=history)


@dataclass
class DescentRecord:
    hits: dict[float, Hit | None]
    seconds: float
    steps: int
    accuracy: float
    history: list[tuple[float, float, float]] = field(default_factory=list)


def gradient_descent(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, lr: float,
                     max_steps: int, *, thresholds: Sequence[float] = (),
                     loss: str = "cross_entropy", stop_at_thresholds: bool = True
                     ) -> DescentRecord:
    """Full-batch gradient descent on ``model`` in place: ``theta -= lr * grad L(theta)``.

    The forward pass of each iteration also gives the training accuracy of the current
    parameters, so checking the thresholds costs nothing extra; seconds are read right after
    that check. The loss is the one :class:`LinearizedModel` uses."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    pending = sorted(set(thresholds))
    hits: dict[float, Hit | None] = dict.fromkeys(pending)
    history = []
    model.train()
    started = time.perf_counter()
    accuracy = 0.0
    for step in range(max_steps + 1):
        logits = model(x)
        accuracy = (logits.argmax(dim=1) == labels).double().mean().item()
        seconds = time.perf_counter() - started
        history.append((float(step), seconds, accuracy))
        for threshold in [t for t in pending if accuracy >= t]:
            hits[threshold] = Hit(threshold, seconds, step, float(step))
            pending.remove(threshold)
        if step == max_steps or (stop_at_thresholds and thresholds and not pending):
            break
        if loss == "cross_entropy":
            value = F.cross_entropy(logits, labels)
        else:
            targets = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
            value = 0.5 * ((logits - targets) ** 2).sum() / len(labels)
        for p in params:
            p.grad = None
        value.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=lr)
    return DescentRecord(hits, time.perf_counter() - started, step, accuracy, history)
