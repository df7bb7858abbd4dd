r"""PLP: parameter linear prediction around any ``torch.optim`` optimizer.

Ying et al., "Enhancing Deep Neural Network Training Efficiency and Performance through Linear
Prediction", Algorithm 1. Training runs with the wrapped optimizer in cycles of three
iterations. With :math:`w_1, w_2, w_3` the parameters after iterations 1, 2, 3 of a cycle,

.. math::

    m_{12} = \frac{w_1 + w_2}{2}, \quad m_{23} = \frac{w_2 + w_3}{2}, \quad
    \mathrm{slope} = m_{23} - m_{12}, \quad w \leftarrow m_{23} + s \cdot \mathrm{slope}

and the next cycle starts from the predicted :math:`w`. The paper applies it to the weights and
biases of every layer, over SGD with momentum 0.9, with step size :math:`s = 1`.

How this implementation differs from the paper:

* **Memory.** The paper keeps :math:`w_1, w_2, w_3`, the midpoints and the slope (7N, "can be
  optimised to 4N"). The prediction is linear in the three points; with the deltas
  :math:`d_1 = w_2 - w_1` and :math:`d_2 = w_3 - w_2` it is
  :math:`w_3 + \frac{s}{2} d_1 + \frac{s - 1}{2} d_2`, so one running buffer per parameter
  suffices (1N):

  - after iteration 1: ``buf = w1``
  - after iteration 2: ``buf = w1 - w2`` (that is :math:`-d_1`)
  - before iteration 3, only when :math:`s \ne 1`: ``buf = w2 + s / (s - 1) * buf``
  - after iteration 3: :math:`s = 1`: ``w = w3 - buf / 2``; otherwise
    ``w = lerp(w3, buf, (1 - s) / 2)``, i.e. :math:`\frac{1+s}{2} w_3 + \frac{1-s}{2} buf`.

  A parameter that did not move in the cycle is left bit-for-bit unchanged.
* **No memory at all over SGD with momentum** (``path``: ``auto`` picks it where it applies,
  ``buffer`` forces the 1N path, ``sgd-momentum`` insists on it). Over ``torch.optim.SGD``
  with momentum, no Nesterov, not maximising, :math:`d_1` and :math:`d_2` are
  :math:`-\eta m` moves that SGD's own momentum buffer still holds at the third iteration, so
  PLP makes that iteration's update itself, prediction included, from SGD's state
  (:mod:`plp_bench.methods.plp_momentum`): no buffer, about one extra pass over the weights a cycle.
  ``compiled=True`` does that update in one ``torch.compile`` kernel. A group whose momentum
  is 0 at a cycle's second iteration (SGD then moves without the buffer), or with the cosine
  guard set (it compares whole moves), keeps :math:`w_1` for that cycle's last two
  iterations and predicts as the 1N path does. Hooks registered on the wrapped SGD see the
  iterations it makes (two of three); hooks on PLP see every step.
* **Cycle length.** ``cycle`` (default 3, the paper's) may be longer: the first
  ``cycle - 3`` iterations of a cycle are plain optimizer steps and the prediction uses the
  last three.
* **Which parameters.** Those with a gradient at the cycle's first tracked iteration take
  part in that cycle; a parameter without one (frozen, or unused by the batch) is left alone.
* **Inner state.** The wrapped optimizer's state (momentum buffers, Adam moments) is left as
  the paper leaves it: untouched by the jump.
* **Options beyond the paper, off by default.** ``warmup``: no prediction during the first
  ``warmup`` steps (cycles start counting after them). ``min_cosine``: the paper names the
  failure case of a sudden change of gradient, where the three-point extrapolation overshoots;
  with a threshold set, a tensor whose two deltas have cosine similarity below it keeps
  :math:`w_3` instead of being predicted. The guard copies :math:`w_2` for the duration of
  the third step (transient memory N, plus float64 chunks of a fixed 1.5 MB for its sums; the
  persistent state stays 1N, or 0 on the momentum path).

``step_size`` (``plp_step``) and ``min_cosine`` (``plp_min_cosine``) are per-group settings in
``param_groups``, so a schedule can change them; ``cycle`` and ``warmup`` are global because the
position in the cycle is. The update runs with ``torch._foreach_*`` multi-tensor ops by default;
``foreach=False`` selects the per-tensor loop, kept as the reference the fast path is tested
against. ``run_details()`` (a record's ``details``) names the path and kernel that ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, overload

import torch

from plp_baselines.optimizer_wrapper import OptimizerWrapper

from .plp_momentum import (
    IN_CYCLE,
    MOMENTUM_PATH,
    MOVED_AT_SECOND,
    fused_last_update,
    group_refusal,
    momentum_path_refusal,
    sgd_update,
)

_BUFFER = "prediction_buffer"
_TRACKED = IN_CYCLE
_MOVED = MOVED_AT_SECOND
BUFFER_PATH = "buffer"
PATHS = ("auto", BUFFER_PATH, MOMENTUM_PATH)


class PLP(OptimizerWrapper):
    r"""PLP, parameter linear prediction (Ying et al., "Enhancing Deep Neural Network Training
    Efficiency and Performance through Linear Prediction", Algorithm 1), around any
    ``torch.optim`` optimizer.

    Training runs with the wrapped optimizer in cycles of three steps. With
    :math:`w_1, w_2, w_3` the parameters after the cycle's steps 1, 2 and 3, the third step ends
    with the prediction

    .. math::

        m_{12} = \frac{w_1 + w_2}{2}, \quad m_{23} = \frac{w_2 + w_3}{2}, \quad
        w \leftarrow m_{23} + s \, (m_{23} - m_{12})
          = w_3 + \frac{s}{2} (w_2 - w_1) + \frac{s - 1}{2} (w_3 - w_2)

    and the next cycle starts from :math:`w`. The wrapped optimizer's state (momentum, Adam's
    moments) is left untouched by the prediction, as in the paper.

    Args:
        optimizer: the optimizer to wrap (the paper: SGD, momentum 0.9, cyclic learning rate).
            Its param groups are this optimizer's (shared).
        step: :math:`s`, the prediction's step size (the paper: 1). Per group as ``plp_step``.
        cycle: steps per cycle (>= 3; the paper: 3); the first ``cycle - 3`` are plain steps.
        warmup: steps before the first cycle, without prediction (beyond the paper; 0).
        min_cosine: if set, a tensor whose two moves have cosine similarity below it keeps
            :math:`w_3` (the paper's failure case of a sudden gradient change; beyond the
            paper; off). Per group as ``plp_min_cosine``.
        foreach: multi-tensor ops (default) or the per-tensor reference loop.
        path: ``"auto"`` (default), ``"sgd-momentum"`` or ``"buffer"``: over
            ``torch.optim.SGD`` with momentum (no Nesterov, not maximising) the two moves are
            :math:`-\eta \cdot` SGD's momentum buffer, so PLP keeps no memory at all and makes
            the cycle's third update itself; elsewhere it keeps one buffer per parameter (1N).
        compiled: on the ``sgd-momentum`` path, the third update as one ``torch.compile``
            kernel.

    How it differs from the paper: memory 0 or 1N instead of the paper's 7N (the prediction
    is linear in the three points, so one running buffer, or SGD's own momentum buffer,
    carries it); the optional ``cycle``, ``warmup`` and ``min_cosine``; a parameter without
    a gradient at a cycle's first step sits that cycle out. Steps a ``GradScaler`` skips are
    not counted. The module's docstring gives the buffer algebra; ``run_details()`` names the
    path and kernel that ran.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, step: float = 1.0, cycle: int = 3,
                 warmup: int = 0, min_cosine: float | None = None, foreach: bool = True,
                 path: str = "auto", compiled: bool = False) -> None:
        super().__init__(optimizer)
        _check_step(step)
        if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 3:
            raise ValueError(f"PLP: cycle must be an integer >= 3 (three points per "
                             f"prediction), got {cycle!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"PLP: warmup must be an integer >= 0, got {warmup!r}")
        _check_min_cosine(min_cosine)
        self.path = _resolve_path(path, compiled, optimizer)
        self.compiled = bool(compiled)
        self.cycle = cycle
        self.warmup = warmup
        self.foreach = bool(foreach)
        self.steps = 0
        self._guard_skips: torch.Tensor | int = 0  # counted on the device, read on demand
        self._group_defaults = {"plp_step": float(step), "plp_min_cosine": min_cosine}
        # momentum path, per group index, for the cycle under way: the second update's rate,
        # and the groups taking the 1N route this cycle
        self._second_lr: dict[int, float] = {}
        self._buffered_groups: set[int] = set()
        for group in self.param_groups:
            self._fill_defaults(group)

    def _fill_defaults(self, group: dict[str, Any]) -> None:
        for key, value in self._group_defaults.items():
            group.setdefault(key, value)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._fill_defaults(self.param_groups[-1])
        if self.path == MOMENTUM_PATH:
            reason = group_refusal(self.param_groups[-1])
            if reason:
                self.optimizer.param_groups.pop()
                raise ValueError(f"PLP on the {MOMENTUM_PATH} path: the new group has {reason}")

    @property
    def guard_skips(self) -> int:
        """Tensors the cosine guard kept at ``w3``, over the whole run (reading it waits for
        the device)."""
        return int(self._guard_skips)

    def position(self) -> int:
        """Where the next step falls: 0 during warm-up, else 1 .. ``cycle``."""
        if self.steps < self.warmup:
            return 0
        return (self.steps - self.warmup) % self.cycle + 1

    def run_details(self) -> dict[str, Any]:
        """What a record keeps: the path that ran, its kernel, the guard's skips."""
        kernel = "compiled" if self.compiled else "foreach" if self.foreach else "per-tensor"
        details = {"path": self.path, "kernel": kernel}
        if any(g["plp_min_cosine"] is not None for g in self.param_groups):
            details["guard_skips"] = self.guard_skips
        return details

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One step of the wrapped optimizer with PLP's bookkeeping for this position (on the
        momentum path, the cycle's last update is PLP's own). Returns the closure's loss."""
        position = self.position()
        if self.path == MOMENTUM_PATH:
            loss = self._momentum_step(position, closure)
        else:
            loss = self._buffer_step(position, closure)
        self.steps += 1
        return loss

    # -- the 1N path ----------------------------------------------------------------------
    def _buffer_step(self, position: int, closure):
        first, second, last = self.cycle - 2, self.cycle - 1, self.cycle
        snapshots = self._before_last_step() if position == last else None
        loss = self.optimizer.step(closure)
        for group in self.param_groups:
            self._fill_defaults(group)
            if position == first:
                self._track(group)
                params, buffers = self._tracked(group, allocate=True)
                _apply(_start, params, buffers, foreach=self.foreach)
            elif position == second:
                params, buffers = self._tracked(group)
                _apply(_difference, params, buffers, foreach=self.foreach)
            elif position == last:
                self._predict_group(group, snapshots.get(id(group)))
        return loss

    def _before_last_step(self, groups=None) -> dict[int, list[torch.Tensor]]:
        """Work on ``w2`` that must happen before the optimizer overwrites it."""
        snapshots = {}
        for group in self.param_groups if groups is None else groups:
            self._fill_defaults(group)
            _check_step(group["plp_step"])
            _check_min_cosine(group["plp_min_cosine"])
            params, buffers = self._tracked(group)
            if group["plp_min_cosine"] is not None:
                snapshots[id(group)] = [p.detach().clone() for p in params]
            else:
                _apply(_prepare, params, buffers, group["plp_step"], foreach=self.foreach)
        return snapshots

    def _predict_group(self, group: dict[str, Any], snapshot) -> None:
        params, buffers = self._tracked(group)
        step_size = group["plp_step"]
        if group["plp_min_cosine"] is None:
            _apply(_predict, params, buffers, step_size, foreach=self.foreach)
        else:
            self._guard_skips = self._guard_skips + _guarded_predict(
                params, buffers, snapshot, step_size, group["plp_min_cosine"],
                foreach=self.foreach)

    def _track(self, group: dict[str, Any]) -> None:
        """The cycle's first tracked step: the tensors with a gradient take part."""
        for p in group["params"]:
            self.state[p][_TRACKED] = p.grad is not None

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if _BUFFER not in state:
            state[_BUFFER] = torch.empty_like(p, memory_format=torch.preserve_format)
        return state[_BUFFER]

    def _tracked(self, group: dict[str, Any], allocate: bool = False
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params = [p for p in group["params"] if self.state.get(p, {}).get(_TRACKED)]
        if allocate:
            return params, [self._buffer(p) for p in params]
        return params, [self.state[p][_BUFFER] for p in params]

    # -- the momentum path (plp_bench.methods.plp_momentum) -------------------------------------------
    def _momentum_step(self, position: int, closure):
        first, second, last = self.cycle - 2, self.cycle - 1, self.cycle
        if position == last:
            return self._last_momentum_step(closure)
        if position == second:
            self._second_lr, self._buffered_groups = {}, set()
            for i, group in enumerate(self.param_groups):
                self._fill_defaults(group)
                self._second_lr[i] = float(group["lr"])
                # the second move is -lr * buffer only if SGD uses the buffer; the guard
                # compares whole moves: either way this group keeps w1 for this cycle
                if group["momentum"] == 0 or group["plp_min_cosine"] is not None:
                    self._buffered_groups.add(i)
                    params, buffers = self._tracked(group, allocate=True)
                    _apply(_start, params, buffers, foreach=self.foreach)
        loss = self.optimizer.step(closure)
        for i, group in enumerate(self.param_groups):
            if position == first:
                self._track(group)
            elif position == second and i in self._buffered_groups:
                params, buffers = self._tracked(group)
                _apply(_difference, params, buffers, foreach=self.foreach)
            elif position == second:
                for p in group["params"]:
                    if self.state.get(p, {}).get(_TRACKED):
                        self.state[p][_MOVED] = p.grad is not None
        return loss

    def _last_momentum_step(self, closure):
        groups = list(enumerate(self.param_groups))
        buffered = [g for i, g in groups if i in self._buffered_groups]
        snapshots = self._before_last_step(buffered)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for i, group in groups:
            self._fill_defaults(group)
            if i in self._buffered_groups:
                sgd_update(self.optimizer, group, _with_gradients(group["params"]),
                           float(group["lr"]))
                self._predict_group(group, snapshots.get(id(group)))
                for p in group["params"]:
                    self.state.get(p, {}).pop(_BUFFER, None)
            else:
                _check_step(group["plp_step"])
                fused_last_update(self.optimizer, group, self.state, self._second_lr.get(i),
                                  compiled=self.compiled, foreach=self.foreach)
        self._second_lr, self._buffered_groups = {}, set()
        return loss

    def _settings_repr(self) -> str:
        steps = sorted({g.get("plp_step", self._group_defaults["plp_step"])
                        for g in self.param_groups})
        cosines = sorted({str(g.get("plp_min_cosine")) for g in self.param_groups})
        return (f"step={', '.join(f'{v:g}' for v in steps)}, cycle={self.cycle}, "
                f"warmup={self.warmup}, min_cosine={', '.join(cosines)}, path={self.path!r}, "
                f"compiled={self.compiled}, steps_taken={self.steps}, "
                f"next_position={self.position()}")

    # -- checkpoints --------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps, "cycle": self.cycle, "warmup": self.warmup,
                "guard_skips": self.guard_skips, "path": self.path,
                "second_lr": dict(self._second_lr),
                "buffered_groups": sorted(self._buffered_groups)}

    def _check_loadable(self, extra: dict[str, Any]) -> None:
        if extra.get("path") == MOMENTUM_PATH and type(self.optimizer) is not torch.optim.SGD:
            raise ValueError(f"PLP.load_state_dict: the checkpoint was taken on the "
                             f"{MOMENTUM_PATH!r} path, which this PLP cannot run: the wrapped "
                             f"optimizer is {type(self.optimizer).__name__}, not "
                             f"torch.optim.SGD")

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """The position in the cycle comes back with the buffers; ``cycle``, ``warmup`` and
        the path are taken from the checkpoint (they define what the state holds)."""
        saved_path = extra.get("path", BUFFER_PATH)
        # the wrapped optimizer is loaded by now, with the checkpoint's groups
        refusal = momentum_path_refusal(self.optimizer)
        if saved_path == MOMENTUM_PATH and refusal:
            raise ValueError(f"PLP.load_state_dict: the checkpoint was taken on the "
                             f"{MOMENTUM_PATH!r} path, which this PLP cannot run: {refusal}")
        if saved_path == BUFFER_PATH and self.compiled:
            raise ValueError(f"PLP.load_state_dict: the checkpoint was taken on the "
                             f"{BUFFER_PATH!r} path; compiled=true is the {MOMENTUM_PATH!r} "
                             f"path's kernel")
        self.path = saved_path
        self.steps = int(extra["steps"])
        self.cycle = int(extra["cycle"])
        self.warmup = int(extra["warmup"])
        self._guard_skips = int(extra.get("guard_skips", 0))
        self._second_lr = {int(i): float(lr) for i, lr in extra.get("second_lr", {}).items()}
        self._buffered_groups = {int(i) for i in extra.get("buffered_groups", [])}


def _resolve_path(path: str, compiled: bool, optimizer: torch.optim.Optimizer) -> str:
    """``auto``: the momentum path where the wrapped optimizer allows it, else the 1N path.
    The compiled kernel is used only when asked for, and only on the momentum path."""
    if path not in PATHS:
        raise ValueError(f"PLP: path must be one of {', '.join(PATHS)}, got {path!r}")
    if not isinstance(compiled, bool):
        raise ValueError(f"PLP: compiled must be true or false, got {compiled!r}")
    refusal = momentum_path_refusal(optimizer)
    if path == MOMENTUM_PATH and refusal:
        raise ValueError(f"PLP: path {MOMENTUM_PATH!r} folds the prediction into SGD-momentum's "
                         f"update, but {refusal}")
    resolved = path if path != "auto" else BUFFER_PATH if refusal else MOMENTUM_PATH
    if compiled and resolved != MOMENTUM_PATH:
        raise ValueError(f"PLP: compiled=true is the {MOMENTUM_PATH} path's kernel, but this "
                         f"PLP runs the {BUFFER_PATH} path ({refusal or 'asked for'})")
    return resolved


def _with_gradients(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p for p in params if p.grad is not None]


def _check_step(step: float) -> None:
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not (
            math.isfinite(step) and step >= 0):
        raise ValueError(f"PLP: step must be a finite number >= 0, got {step!r}")


def _check_min_cosine(min_cosine: float | None) -> None:
    if min_cosine is not None and not (isinstance(min_cosine, (int, float))
                                       and -1.0 <= min_cosine <= 1.0):
        raise ValueError(f"PLP: min_cosine must be None (no guard) or in [-1, 1], "
                         f"got {min_cosine!r}")


def _apply(phase, params, buffers, *args, foreach: bool) -> None:
    if params:
        phase(params, buffers, *args, foreach=foreach)


def _start(params, buffers, *, foreach: bool) -> None:
    """``buf = w1``."""
    if foreach:
        torch._foreach_copy_(buffers, params)
    else:
        for p, buf in zip(params, buffers, strict=True):
            buf.copy_(p)


def _difference(params, buffers, *, foreach: bool) -> None:
    """``buf = w1 - w2``."""
    if foreach:
        torch._foreach_sub_(buffers, params)
    else:
        for p, buf in zip(params, buffers, strict=True):
            buf.sub_(p)


def _prepare(params, buffers, step_size: float, *, foreach: bool) -> None:
    """Before iteration 3, for ``s != 1``: ``buf = w2 + s / (s - 1) * buf``."""
    if step_size == 1:
        return
    scale = step_size / (step_size - 1)
    if foreach:
        torch._foreach_mul_(buffers, scale)
        torch._foreach_add_(buffers, params)
    else:
        for p, buf in zip(params, buffers, strict=True):
            buf.mul_(scale).add_(p)


def _predict(params, buffers, step_size: float, *, foreach: bool) -> None:
    """After iteration 3: ``w = w3 + (s/2) d1 + ((s-1)/2) d2`` from the buffer."""
    if step_size == 1:
        if foreach:
            torch._foreach_add_(params, buffers, alpha=-0.5)
        else:
            for p, buf in zip(params, buffers, strict=True):
                p.add_(buf, alpha=-0.5)
        return
    weight = (1 - step_size) / 2
    if foreach:
        torch._foreach_lerp_(params, buffers, weight)
    else:
        for p, buf in zip(params, buffers, strict=True):
            p.lerp_(buf, weight)


GUARD_CHUNK = 1 << 16  # elements per float64 chunk of the guard's sums


def _dot_and_norms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[a.b, a.a, b.b]`` accumulated in float64 over chunks of :data:`GUARD_CHUNK` elements:
    float64 sums without float64 copies of the tensors (transient memory: three chunks)."""
    a, b = a.reshape(-1), b.reshape(-1)
    total = torch.zeros(3, dtype=torch.float64, device=a.device)
    for start in range(0, a.numel(), GUARD_CHUNK):
        x = a[start:start + GUARD_CHUNK].double()
        y = b[start:start + GUARD_CHUNK].double()
        total += torch.stack([torch.dot(x, y), torch.dot(x, x), torch.dot(y, y)])
    return total


def _guarded_predict(params, buffers, snapshots, step_size: float, min_cosine: float, *,
                     foreach: bool) -> torch.Tensor | int:
    """The prediction for the tensors whose deltas agree in direction; returns how many were
    skipped (a tensor on the parameters' device). ``buffers`` hold ``-d1``, ``snapshots`` hold
    ``w2`` (turned into ``-d2`` here). The choice stays on the device: a skipped tensor gets
    the prediction's terms scaled by 0, so the host never waits for the cosines."""
    if not params:
        return 0
    for p, snap in zip(params, snapshots, strict=True):
        snap.sub_(p)
    sums = torch.stack([_dot_and_norms(b, s) for b, s in zip(buffers, snapshots, strict=True)])
    dots, norms = sums[:, 0], sums[:, 1].sqrt() * sums[:, 2].sqrt()
    skip = (norms > 0) & (dots < min_cosine * norms)
    kept = (~skip).double()
    first = [c.to(p.dtype) for c, p in zip((kept * (-step_size / 2)).unbind(), params,
                                           strict=True)]
    second = [c.to(p.dtype) for c, p in zip((kept * (-(step_size - 1) / 2)).unbind(), params,
                                            strict=True)]
    if foreach:
        torch._foreach_addcmul_(params, buffers, first)
        torch._foreach_addcmul_(params, snapshots, second)
    else:
        for p, b, s, c1, c2 in zip(params, buffers, snapshots, first, second, strict=True):
            p.addcmul_(b, c1).addcmul_(s, c2)
    return skip.sum()
