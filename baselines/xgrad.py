r"""XGrad weight prediction: gradients taken at the weights a few steps ahead.

Guan et al., "XGrad: Boosting Gradient-Based Optimizers With Weight Prediction" (IEEE TPAMI,
2024), Algorithm 1. Before each mini-batch the weights :math:`s` (``horizon``) steps ahead are
predicted with the wrapped optimizer's own update rule and current state; forward and backward
run at the predicted weights :math:`\hat\theta`; the current weights come back and the
optimizer applies its update with those gradients:

* SGD with momentum (``torch.optim.SGD`` keeps the velocity :math:`v` as ``momentum_buffer``):
  :math:`\hat\theta = \theta - s \, \eta \, v`.
* Adam: :math:`\hat\theta = \theta - s \, \eta \, \hat m / (\sqrt{\hat v} + \epsilon)` with the
  bias-corrected moments :math:`\hat m = m / (1 - \beta_1^t)`,
  :math:`\hat v = v / (1 - \beta_2^t)` (with ``amsgrad``, the running maximum of :math:`v`).
* AdamW (decoupled weight decay :math:`\lambda`):
  :math:`\hat\theta = \theta - s \, \eta \, (\hat m / (\sqrt{\hat v} + \epsilon) + \lambda \theta)`.
* AdaBelief and AdaM3 (:mod:`plp_baselines.adaptive`): Adam's form with their own second
  moment :math:`s` in place of :math:`v` (the paper's fourth and fifth optimizers), and the
  decoupled decay term where they use it.

Before the first update there is no state and :math:`\hat\theta = \theta`. Beyond the paper:
SGD without momentum has no velocity buffer; its velocity is then the last step's direction
:math:`g + \lambda \theta`, which this class keeps (1N) so that weight prediction also applies
to plain gradient descent. The current weights are held in a scratch copy while the weights
are predicted (1N).

Two ways to drive it (see :class:`WeightPrediction`): the closure of ``torch.optim``'s protocol,
or two phases, :meth:`~WeightPrediction.predict_weights` before the forward pass and ``step()``
after the backward pass, for loops where someone else calls ``step()`` (a ``GradScaler``,
gradient accumulation, Lightning, accelerate, timm). Gradients that a backward pass
accumulated at the current weights instead of the prediction are refused at ``step()``: they
would train a different method without a sign.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any, overload

import torch

from .adaptive import AdaptiveMoments
from .optimizer_wrapper import OptimizerWrapper

_LAST_DIRECTION = "last_direction"
_MAX_CHAIN = 16  # optimizers wrapping one another, at most


class _Prediction:
    """The prediction's mutable state, in one object that every view of the wrapper shares.

    Lightning hands ``training_step`` a view of the optimizer whose ``__dict__`` is a copy of
    the optimizer's; an attribute set through the view would not reach the optimizer that
    ``step()`` runs on, whereas this object's fields do."""

    def __init__(self, owner: WeightPrediction):
        self.owner = weakref.ref(owner)
        self.active = False  # the parameters hold the prediction; `saved` the current weights
        self.settings: tuple = ()  # the group settings the active prediction was made with
        self.saved: dict[torch.Tensor, torch.Tensor] = {}
        # ids of the watched parameters whose .grad holds a backward pass made at the current
        # weights (WeightPrediction._watch_gradients)
        self.unpredicted: set[int] = set()


class WeightPrediction(OptimizerWrapper):
    r"""XGrad (Guan et al., TPAMI 2024): the wrapped optimizer's update, with each gradient
    taken at the weights ``horizon`` steps ahead.

    .. math::

        \hat\theta_t = \theta_t - s \, \eta \, u_t, \qquad
        g_t = \nabla L(\hat\theta_t), \qquad
        \theta_{t+1} = \mathrm{update}(\theta_t, g_t)

    where :math:`u_t` is the wrapped optimizer's own step direction from its current state:
    SGD's velocity :math:`v` (``momentum_buffer``; without momentum the last step's
    :math:`g + \lambda\theta`), Adam's :math:`\hat m / (\sqrt{\hat v} + \epsilon)` with
    bias-corrected moments (``amsgrad``: the running maximum of :math:`v`), AdamW's the same
    plus :math:`\lambda \theta`, AdaBelief's and AdaM3's the same with their second moment
    :math:`s` for :math:`v`. Before the first update :math:`\hat\theta = \theta`.

    Args:
        optimizer: ``torch.optim.SGD``, ``Adam``, ``AdamW``, ``plp_baselines.adaptive.AdaBelief`` or
            ``AdaM3`` (or a wrapper of one), whose
            update rule makes the prediction and whose ``step`` applies the update. Its param
            groups are this optimizer's (shared, so schedulers and ``GradScaler`` reach them).
        horizon: :math:`s`, the steps ahead (> 0; the paper uses 1). Per group as
            ``prediction_horizon``.

    Two forms, equal on a plain loop:

    * closure (``torch.optim``'s protocol)::

          def closure():
              optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); return loss
          optimizer.step(closure)

    * two phases, for loops where someone else calls ``step()``::

          optimizer.zero_grad()
          optimizer.predict_weights()        # before the forward pass
          loss_fn(model(x), y).backward()    # or scaler.scale(loss).backward()
          optimizer.step()                   # or scaler.step(optimizer)

      ``predict_weights()`` is made once per optimizer step: called again before the step it
      does nothing (gradient accumulation: every micro-batch runs at the same prediction),
      unless a group's settings changed since (a scheduler ran after a ``GradScaler`` skipped
      the step, which left the state and the prediction in place). ``restore_weights()``
      puts the current weights back without stepping (to evaluate between a skipped step and
      the next prediction).

    ``step()`` refuses (``RuntimeError``) gradients a backward pass accumulated at the
    current weights rather than at the prediction: ``step()`` without a closure and no
    ``predict_weights()`` before the backward pass, or micro-batches accumulated outside the
    closure (Lightning's accumulation with the closure form). The first and the last trained
    parameter of each group are watched (a backward pass that reaches neither goes unseen).
    Gradients count as cleared when this optimizer's ``zero_grad()`` runs or a watched
    parameter's ``.grad`` is ``None``.

    Under a ``GradScaler`` use the two phases (torch refuses a keyword closure there, and a
    positional one would run after the scaler unscaled). A step the scaler skips leaves the
    weights at the prediction, which is the prediction of the unchanged state. Under
    accelerate's ``accumulate`` use the two phases too: accelerate drops the closure of the
    micro-batches that do not step.

    A checkpoint taken while the weights are predicted holds the current weights, so that it
    resumes at the same point; one taken after ``step()`` holds nothing extra.

    How it differs from the paper: SGD without momentum predicts with the last step's
    direction (the paper's SGD has momentum); the current weights are kept in one scratch
    copy (1N) while the parameters hold the prediction; the prediction of the Adam family
    uses torch's folding of the bias corrections (the same values in exact arithmetic).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, horizon: float = 1) -> None:
        super().__init__(optimizer)
        _check_horizon(horizon)
        inner = self.innermost()
        if not isinstance(inner, (torch.optim.SGD, torch.optim.Adam, AdaptiveMoments)):
            raise ValueError(f"WeightPrediction predicts with the update rule of SGD, Adam, "
                             f"AdamW, AdaBelief or AdaM3; got {type(inner).__name__}")
        self._is_sgd = isinstance(inner, torch.optim.SGD)
        self._horizon = float(horizon)
        self._prediction = _Prediction(self)
        for group in self.param_groups:
            group.setdefault("prediction_horizon", self._horizon)
        self._watch_gradients()

    # -- the two phases ------------------------------------------------------------------------

    @property
    def predicted(self) -> bool:
        """Whether the parameters hold the prediction (between ``predict_weights`` and
        ``step``)."""
        return self._prediction.active

    @torch.no_grad()
    def predict_weights(self) -> None:
        """Phase one: keep the current weights and move the parameters to the prediction
        :math:`\\hat\\theta`. Once per optimizer step (see the class)."""
        owner = self._owner()
        prediction = owner._prediction
        settings = owner._settings()
        if prediction.active:
            if settings == prediction.settings:
                return
            owner.restore_weights()
        params = owner._trained()
        saved = [owner._scratch(p) for p in params]
        if params:
            torch._foreach_copy_(saved, params)
        for group in owner.param_groups:
            owner.predict(group)
        prediction.active = True
        prediction.settings = settings

    @torch.no_grad()
    def restore_weights(self) -> None:
        """Put the current weights back in the parameters (nothing if none are predicted)."""
        owner = self._owner()
        prediction = owner._prediction
        if not prediction.active:
            return
        params = owner._trained()
        if params:
            torch._foreach_copy_(params, [prediction.saved[p] for p in params])
        prediction.active = False

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """With a closure: predict, run the closure there (it zeroes the gradients, runs
        forward and backward and returns the loss), restore, update. Without one: restore
        the weights :meth:`predict_weights` moved and update with the gradients taken there.
        Returns the closure's loss (at the predicted weights), else ``None``."""
        loss = None
        if closure is not None:
            self.predict_weights()
            with torch.enable_grad():
                loss = closure()
        self._refuse_unpredicted_gradients(closure is not None)
        self.restore_weights()
        if self._is_sgd:
            self._remember_plain_sgd_direction()
        self.optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        self._prediction.unpredicted.clear()

    # -- the prediction ------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, group: dict[str, Any]) -> None:
        """Move the group's parameters to :math:`\\hat\\theta` in place (multi-tensor ops)."""
        _check_horizon(group.setdefault("prediction_horizon", self._horizon))
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
        inner = self.innermost()
        if isinstance(inner, AdaptiveMoments):
            second = inner.second_moment_key
        else:
            second = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
        for t, same_step in by_step.items():
            _predict_adam(same_step, [state[p] for p in same_step], group, horizon, t, second)

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

    # -- where the gradients were taken --------------------------------------------------------

    def _watch_gradients(self) -> None:
        """Gradient hooks on the first and the last trained parameter of each group (the
        sentinels: a backward pass of the network reaches them) note whether the pass ran at
        the prediction. Two Python calls per group and pass: a hook on every parameter cost
        5-8% of a ResNet18 training step on a GPU, where the backward pass is bound by its
        launches. The hooks hold neither the wrapper nor the parameters, and are removed with
        the wrapper."""
        prediction = self._prediction
        sentinels: dict[int, torch.Tensor] = {}
        for group in self.param_groups:
            trained = [p for p in group["params"] if p.requires_grad]
            for p in trained[:1] + trained[-1:]:
                sentinels[id(p)] = p
        handles = [p.register_hook(_gradient_watcher(prediction, p)) for p in sentinels.values()]
        weakref.finalize(self, _remove_all, handles)

    def _refuse_unpredicted_gradients(self, closure_given: bool) -> None:
        prediction = self._prediction
        if not prediction.unpredicted:
            return
        self.restore_weights()
        how = ("micro-batches accumulated outside the closure (call predict_weights() before "
               "each forward pass, or zero the gradients in the closure)" if closure_given else
               "call predict_weights() before the forward pass, or pass a closure to step()")
        raise RuntimeError(
            f"WeightPrediction.step: gradients were computed at the current weights, not at "
            f"XGrad's predicted weights: {how}. Gradients count as cleared by this "
            f"optimizer's zero_grad() or a .grad of None.")

    # -- plumbing ------------------------------------------------------------------------------

    def _owner(self) -> WeightPrediction:
        """The optimizer itself, also when called through a view that copied its attributes
        (see :class:`_Prediction`)."""
        owner = self._prediction.owner()
        return self if owner is None else owner

    def _trained(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    def _settings(self) -> tuple:
        """What the prediction reads from the groups besides the state (a change asks for a
        new prediction)."""
        return tuple((_plain(g["lr"]), g.get("prediction_horizon"), g.get("momentum"),
                      tuple(g.get("betas", ())), g.get("weight_decay"), g.get("eps"))
                     for g in self.param_groups)

    def _scratch(self, p: torch.Tensor) -> torch.Tensor:
        saved = self._prediction.saved
        buffer = saved.get(p)
        if buffer is None or buffer.shape != p.shape or buffer.device != p.device:
            buffer = saved[p] = torch.empty_like(p)
        return buffer

    def _extra_state(self) -> dict[str, Any]:
        prediction = self._prediction
        if not prediction.active:
            return {}
        return {"weights_before_prediction": [prediction.saved[p].clone()
                                              for p in self._trained()]}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        prediction = self._prediction
        prediction.active = False
        saved = extra.get("weights_before_prediction")
        if saved is None:
            return
        params = self._trained()
        if not isinstance(saved, list) or len(saved) != len(params) or any(
                not torch.is_tensor(s) or s.shape != p.shape
                for s, p in zip(saved, params, strict=True)):
            raise ValueError("WeightPrediction.load_state_dict: the checkpoint's weights before "
                             "the prediction do not match this optimizer's parameters")
        with torch.no_grad():
            for s, p in zip(saved, params, strict=True):
                self._scratch(p).copy_(s)
        prediction.active = True
        prediction.settings = self._settings()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_prediction", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._prediction = _Prediction(self)
        self._watch_gradients()

    def _settings_repr(self) -> str:
        horizons = sorted({g.get("prediction_horizon", self._horizon) for g in self.param_groups})
        return f"horizon={', '.join(f'{h:g}' for h in horizons)}, predicted={self.predicted}"


def weight_prediction(optimizer: Any) -> WeightPrediction:
    """The :class:`WeightPrediction` in a chain of optimizers that wrap one another through an
    ``optimizer`` attribute (``PLP(WeightPrediction(SGD))``, or one a client wrapped again:
    accelerate's ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``), so that a loop
    can call ``weight_prediction(optimizer).predict_weights()`` on the optimizer it holds.
    ``ValueError`` if the chain has none."""
    chain = []
    current = optimizer
    for _ in range(_MAX_CHAIN):
        if isinstance(current, WeightPrediction):
            return current
        if current is None:
            break
        chain.append(type(current).__name__)
        # LightningOptimizer keeps the optimizer it wraps as _optimizer
        current = getattr(current, "optimizer", None) or getattr(current, "_optimizer", None)
    raise ValueError(f"no WeightPrediction (XGrad) in this optimizer's chain: "
                     f"{' -> '.join(chain)}")


def _gradient_watcher(prediction: _Prediction, param: torch.Tensor):
    """The gradient hook of ``param``: called before the incoming gradient is accumulated,
    while ``param.grad`` still holds what earlier backward passes left (``None`` if they were
    cleared). Holds no strong reference to the parameter or the wrapper."""
    key = id(param)
    param_ref = weakref.ref(param)

    def watch(grad: torch.Tensor) -> None:
        p = param_ref()
        if p is not None and p.grad is None:
            prediction.unpredicted.discard(key)
        if not prediction.active:
            prediction.unpredicted.add(key)

    return watch


def _remove_all(handles: list) -> None:
    for handle in handles:
        handle.remove()


def _plain(value: Any) -> Any:
    """A group value comparable across calls: a tensor (a capturable learning rate) by
    identity and version, without reading it from the device."""
    if torch.is_tensor(value):
        return ("tensor", id(value), value._version)
    return value


def _predict_adam(params: list[torch.Tensor], states: list[dict[str, Any]],
                  group: dict[str, Any], horizon: float, t: float, second: str) -> None:
    """``theta -= s lr (m_hat / (sqrt(v_hat) + eps) [+ wd theta])`` for parameters at step t,
    ``v`` the state's ``second`` moment, with the bias corrections folded in as torch's Adam
    does: ``m_hat / (sqrt(v_hat) + eps) = (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)``."""
    beta1, beta2 = group["betas"]
    lr = group["lr"]
    if group.get("decoupled_weight_decay", False) and group["weight_decay"] != 0:
        torch._foreach_mul_(params, 1 - horizon * lr * group["weight_decay"])
    denom = torch._foreach_sqrt([s[second] for s in states])
    torch._foreach_div_(denom, math.sqrt(1 - beta2 ** t))
    torch._foreach_add_(denom, group["eps"])
    torch._foreach_addcdiv_(params, [s["exp_avg"] for s in states], denom,
                            value=-horizon * lr / (1 - beta1 ** t))


def _check_horizon(horizon: float) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or not (
            math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"WeightPrediction: horizon must be a finite number > 0 (steps "
                         f"ahead), got {horizon!r}")
