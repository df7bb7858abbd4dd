r"""XGrad weight prediction: gradients taken at the weights a few steps ahead.

Guan et al., "XGrad: Boosting Gradient-Based Optimizers With Weight Prediction" (IEEE TPAMI,
2024). Before each mini-batch the weights :math:`s` (``horizon``) steps ahead are predicted with
the wrapped optimizer's own update rule and current state; forward and backward run at the
predicted weights :math:`\hat\theta`; the current weights come back and the optimizer applies
its update with those gradients:

* SGD with momentum (``torch.optim.SGD`` keeps the velocity :math:`v` as ``momentum_buffer``):
  :math:`\hat\theta = \theta - s \, \eta \, v`.
* Adam: :math:`\hat\theta = \theta - s \, \eta \, \hat m / (\sqrt{\hat v} + \epsilon)` with the
  bias-corrected moments :math:`\hat m = m / (1 - \beta_1^t)`,
  :math:`\hat v = v / (1 - \beta_2^t)` (with ``amsgrad``, the running maximum of :math:`v`).
* AdamW (decoupled weight decay :math:`\lambda`):
  :math:`\hat\theta = \theta - s \, \eta \, (\hat m / (\sqrt{\hat v} + \epsilon) + \lambda \theta)`.

Before the first update there is no state and :math:`\hat\theta = \theta`. Beyond the paper:
SGD without momentum has no velocity buffer; its velocity is then the last step's direction
:math:`g + \lambda \theta`, which this class keeps (1N) so that weight prediction also applies
to plain gradient descent. The current weights are held in a scratch copy during the step (1N).

``step`` follows the closure protocol of ``torch.optim``: the closure zeroes the gradients, runs
forward and backward and returns the loss (here, the loss at the predicted weights).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .optimizer_wrapper import OptimizerWrapper

_LAST_DIRECTION = "last_direction"


class WeightPrediction(OptimizerWrapper):
    """Wraps SGD, Adam or AdamW; see the module for the prediction rules."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, horizon: float = 1):
        super().__init__(optimizer)
        _check_horizon(horizon)
        inner = self.innermost()
        if not isinstance(inner, (torch.optim.SGD, torch.optim.Adam)):
            raise ValueError(f"WeightPrediction predicts with the update rule of SGD, Adam or "
                             f"AdamW; got {type(inner).__name__}")
        self._is_sgd = isinstance(inner, torch.optim.SGD)
        self._horizon = float(horizon)
        self._saved: dict[torch.Tensor, torch.Tensor] = {}
        for group in self.param_groups:
            group.setdefault("prediction_horizon", self._horizon)

    def step(self, closure=None):
        if closure is None:
            raise ValueError("WeightPrediction.step needs a closure that zeroes the gradients, "
                             "runs forward and backward and returns the loss")
        with torch.no_grad():
            params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
            saved = [self._scratch(p) for p in params]
            if params:
                torch._foreach_copy_(saved, params)
            for group in self.param_groups:
                group.setdefault("prediction_horizon", self._horizon)
                _check_horizon(group["prediction_horizon"])
                self.predict(group)
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            if params:
                torch._foreach_copy_(params, saved)
            if self._is_sgd:
                self._remember_plain_sgd_direction()
        self.optimizer.step()
        return loss

    @torch.no_grad()
    def predict(self, group: dict[str, Any]) -> None:
        """Move the group's parameters to :math:`\\hat\\theta` in place (multi-tensor ops)."""
        horizon = group["prediction_horizon"]
        state = self.innermost().state
        params = [p for p in group["params"] if p.requires_grad]
        if self._is_sgd:
            if group["momentum"] != 0:
                moving = [(p, state[p].get("momentum_buffer")) for p in params]
            else:
                moving = [(p, self.state[p].get(_LAST_DIRECTION)) for p in params]
            moving = [(p, v) for p, v in moving if v is not None]
            if moving:
                torch._foreach_add_([p for p, _ in moving], [v for _, v in moving],
                                    alpha=-horizon * group["lr"])
            return
        by_step: dict[float, list[torch.Tensor]] = {}
        for p in params:
            if state[p]:
                by_step.setdefault(float(state[p]["step"]), []).append(p)
        for t, same_step in by_step.items():
            _predict_adam(same_step, [state[p] for p in same_step], group, horizon, t)

    def _remember_plain_sgd_direction(self) -> None:
        """For SGD without momentum: keep ``g + weight_decay * theta`` (``-g`` with
        ``maximize``), the step about to be taken, as the velocity of the next prediction."""
        for group in self.param_groups:
            if group["momentum"] != 0:
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                direction = self.state[p].get(_LAST_DIRECTION)
                if direction is None:
                    direction = self.state[p][_LAST_DIRECTION] = torch.empty_like(p)
                direction.copy_(p.grad)
                if group.get("maximize", False):
                    direction.neg_()
                if group["weight_decay"] != 0:
                    direction.add_(p, alpha=group["weight_decay"])

    def _scratch(self, p: torch.Tensor) -> torch.Tensor:
        buffer = self._saved.get(p)
        if buffer is None or buffer.shape != p.shape or buffer.device != p.device:
            buffer = self._saved[p] = torch.empty_like(p)
        return buffer


def _predict_adam(params: list[torch.Tensor], states: list[dict[str, Any]],
                  group: dict[str, Any], horizon: float, t: float) -> None:
    """``theta -= s lr (m_hat / (sqrt(v_hat) + eps) [+ wd theta])`` for parameters at step t,
    with the bias corrections folded in as torch's Adam does:
    ``m_hat / (sqrt(v_hat) + eps) = (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)``."""
    beta1, beta2 = group["betas"]
    lr = group["lr"]
    if group.get("decoupled_weight_decay", False) and group["weight_decay"] != 0:
        torch._foreach_mul_(params, 1 - horizon * lr * group["weight_decay"])
    key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
    denom = torch._foreach_sqrt([s[key] for s in states])
    torch._foreach_div_(denom, math.sqrt(1 - beta2 ** t))
    torch._foreach_add_(denom, group["eps"])
    torch._foreach_addcdiv_(params, [s["exp_avg"] for s in states], denom,
                            value=-horizon * lr / (1 - beta1 ** t))


def _check_horizon(horizon: float) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or not (
            math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"WeightPrediction: horizon must be a finite number > 0 (steps "
                         f"ahead), got {horizon!r}")
