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
  the third step (transient memory N; the persistent state stays 1N).

``step_size`` (``plp_step``) and ``min_cosine`` (``plp_min_cosine``) are per-group settings in
``param_groups``, so a schedule can change them; ``cycle`` and ``warmup`` are global because the
position in the cycle is. The update runs with ``torch._foreach_*`` multi-tensor ops by default;
``foreach=False`` selects the per-tensor loop, kept as the reference the fast path is tested
against.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from baselines.wrapper import OptimizerWrapper

_BUFFER = "prediction_buffer"
_TRACKED = "in_cycle"


class PLP(OptimizerWrapper):
    """Parameter linear prediction every ``cycle`` steps of ``optimizer`` (see the module)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, step: float = 1.0, cycle: int = 3,
                 warmup: int = 0, min_cosine: float | None = None, foreach: bool = True):
        super().__init__(optimizer)
        _check_step(step)
        if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 3:
            raise ValueError(f"PLP: cycle must be an integer >= 3 (three points per "
                             f"prediction), got {cycle!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"PLP: warmup must be an integer >= 0, got {warmup!r}")
        _check_min_cosine(min_cosine)
        self.cycle = cycle
        self.warmup = warmup
        self.foreach = bool(foreach)
        self.steps = 0
        self._guard_skips: torch.Tensor | int = 0  # counted on the device, read on demand
        self._group_defaults = {"plp_step": float(step), "plp_min_cosine": min_cosine}
        for group in self.param_groups:
            self._fill_defaults(group)

    def _fill_defaults(self, group: dict[str, Any]) -> None:
        for key, value in self._group_defaults.items():
            group.setdefault(key, value)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._fill_defaults(self.param_groups[-1])

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

    @torch.no_grad()
    def step(self, closure=None):
        """One step of the wrapped optimizer, then PLP's bookkeeping for this position."""
        position = self.position()
        first, second, last = self.cycle - 2, self.cycle - 1, self.cycle
        snapshots = self._before_last_step() if position == last else None
        loss = self.optimizer.step(closure)
        for group in self.param_groups:
            self._fill_defaults(group)
            if position == first:
                params = [p for p in group["params"] if p.grad is not None]
                for p in group["params"]:
                    self.state[p][_TRACKED] = p.grad is not None
                buffers = [self._buffer(p) for p in params]
                _apply(_start, params, buffers, foreach=self.foreach)
            elif position == second:
                params, buffers = self._tracked(group)
                _apply(_difference, params, buffers, foreach=self.foreach)
            elif position == last:
                params, buffers = self._tracked(group)
                step_size = group["plp_step"]
                if group["plp_min_cosine"] is None:
                    _apply(_predict, params, buffers, step_size, foreach=self.foreach)
                else:
                    self._guard_skips = self._guard_skips + _guarded_predict(
                        params, buffers, snapshots[id(group)], step_size,
                        group["plp_min_cosine"], foreach=self.foreach)
        self.steps += 1
        return loss

    def _before_last_step(self) -> dict[int, list[torch.Tensor]]:
        """Work on ``w2`` that must happen before the optimizer overwrites it."""
        snapshots = {}
        for group in self.param_groups:
            self._fill_defaults(group)
            _check_step(group["plp_step"])
            _check_min_cosine(group["plp_min_cosine"])
            params, buffers = self._tracked(group)
            if group["plp_min_cosine"] is not None:
                snapshots[id(group)] = [p.detach().clone() for p in params]
            else:
                _apply(_prepare, params, buffers, group["plp_step"], foreach=self.foreach)
        return snapshots

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if _BUFFER not in state:
            state[_BUFFER] = torch.empty_like(p, memory_format=torch.preserve_format)
        return state[_BUFFER]

    def _tracked(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params = [p for p in group["params"] if self.state.get(p, {}).get(_TRACKED)]
        return params, [self.state[p][_BUFFER] for p in params]

    def _extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps, "cycle": self.cycle, "warmup": self.warmup,
                "guard_skips": self.guard_skips}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """The position in the cycle comes back with the buffers; ``cycle`` and ``warmup``
        are taken from the checkpoint (they define what the buffers hold)."""
        self.steps = int(extra["steps"])
        self.cycle = int(extra["cycle"])
        self.warmup = int(extra["warmup"])
        self._guard_skips = int(extra.get("guard_skips", 0))


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
    dots = torch.stack([torch.sum(b.double() * s.double()) for b, s in zip(buffers, snapshots,
                                                                            strict=True)])
    norms = torch.stack([torch.linalg.vector_norm(b.double()) * torch.linalg.vector_norm(s.double())
                         for b, s in zip(buffers, snapshots, strict=True)])
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
