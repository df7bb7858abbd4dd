r"""AdaBelief and AdaM3: Adam's update with a different second moment.

Both keep Adam's first moment and bias corrections and change what the second moment averages.
With gradient :math:`g_t`, rate :math:`\alpha`, decay rates :math:`\beta_1, \beta_2` and
:math:`\epsilon`:

.. math::

    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    s_t = \beta_2 s_{t-1} + (1 - \beta_2) \, d_t^2 + \epsilon, \\
    \hat m_t = m_t / (1 - \beta_1^t), \qquad \hat s_t = s_t / (1 - \beta_2^t), \qquad
    \theta_t = \theta_{t-1} - \alpha \, \hat m_t / (\sqrt{\hat s_t} + \epsilon)

* **AdaBelief** (Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
  Observed Gradients", NeurIPS 2020, Algorithm 2): :math:`d_t = g_t - m_t`, the gradient's
  deviation from its prediction (the "belief"). The projection :math:`\Pi_{\mathcal F}` of the
  algorithm is the identity here (unconstrained weights).
* **AdaM3** (Wang et al., 2021, arXiv:2106.11514, "Rethinking Adam: a twofold exponential
  moving average approach", there named AdaMomentum; XGrad's paper calls it AdaM3):
  :math:`d_t = m_t`, the second moment of the momentum instead of the gradient.

Both add :math:`\epsilon` inside the second moment at every step and again to its square root,
as the two papers' algorithms write it. Defaults are the papers' (:math:`\alpha = 10^{-3}`,
:math:`\beta = (0.9, 0.999)`, :math:`\epsilon = 10^{-8}`).

How they differ from the reference implementations: the ``adabelief-pytorch`` package defaults
to :math:`\epsilon = 10^{-16}` with decoupled weight decay and offers rectification (RAdam's)
and AMSGrad; here weight decay is Adam's :math:`L_2` term added to the gradient unless
``decoupled_weight_decay`` (then :math:`\theta \leftarrow \theta (1 - \alpha \lambda)` before
the update, as AdamW), and there is no rectification or AMSGrad. ``maximize`` ascends.

``foreach`` (default: on where torch's multi-tensor kernels apply) runs each update as a few
multi-tensor operations per group; the per-parameter loop runs the same operations in the same
order, so on the CPU the two agree bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, overload

import torch

# the state key of the second moment s_t of each optimizer
SECOND_MOMENT = "exp_avg_sq"


class AdaptiveMoments(torch.optim.Optimizer):
    """The shared update of :class:`AdaBelief` and :class:`AdaM3` (see the module); a subclass
    says what the second moment averages (:meth:`deviation`)."""

    second_moment_key = SECOND_MOMENT

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *,
                 decoupled_weight_decay: bool = False, maximize: bool = False,
                 foreach: bool | None = None) -> None:
        name = type(self).__name__
        if not lr >= 0.0:
            raise ValueError(f"{name}: invalid learning rate {lr!r} (>= 0)")
        if not eps >= 0.0:
            raise ValueError(f"{name}: invalid eps {eps!r} (>= 0)")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{name}: invalid betas {betas!r} (two values in [0, 1))")
        if not weight_decay >= 0.0:
            raise ValueError(f"{name}: invalid weight_decay {weight_decay!r} (>= 0)")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize,
                    "foreach": foreach}
        super().__init__(params, defaults)

    @staticmethod
    def deviation(grads: list[torch.Tensor], exp_avgs: list[torch.Tensor]
                  ) -> list[torch.Tensor]:
        """:math:`d_t` of each parameter, from its gradient and its updated first moment."""
        raise NotImplementedError

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; the closure, if given,
        recomputes the loss first and its value is returned."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # the multi-tensor operations take tensors of one device and dtype at one step
            batches: dict[tuple, tuple[list, list, list, list]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state[self.second_moment_key] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                state["step"] += 1
                lists = batches.setdefault((float(state["step"]), p.device, p.dtype),
                                           ([], [], [], []))
                for values, value in zip(lists, (p, p.grad, state["exp_avg"],
                                                 state[self.second_moment_key]), strict=True):
                    values.append(value)
            for (t, _, _), (params, grads, exp_avgs, second) in batches.items():
                if _use_foreach(group["foreach"], params):
                    self._update(params, grads, exp_avgs, second, group, t)
                else:
                    for one in zip(params, grads, exp_avgs, second, strict=True):
                        self._update_one(*one, group, t)
        return loss

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor],
                exp_avgs: list[torch.Tensor], second: list[torch.Tensor],
                group: dict[str, Any], t: float) -> None:
        """The module's equations for parameters at step ``t``, as multi-tensor operations."""
        beta1, beta2 = group["betas"]
        lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        if decay != 0:
            if group["decoupled_weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=decay)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        deviation = self.deviation(grads, exp_avgs)
        torch._foreach_mul_(second, beta2)
        torch._foreach_addcmul_(second, deviation, deviation, value=1 - beta2)
        torch._foreach_add_(second, eps)
        denominator = torch._foreach_sqrt(second)
        torch._foreach_div_(denominator, math.sqrt(1 - beta2 ** t))
        torch._foreach_add_(denominator, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denominator, value=-lr / (1 - beta1 ** t))

    def _update_one(self, param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor,
                    second: torch.Tensor, group: dict[str, Any], t: float) -> None:
        """:meth:`_update` for one parameter, with the same operations in the same order."""
        beta1, beta2 = group["betas"]
        lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        if decay != 0:
            if group["decoupled_weight_decay"]:
                param.mul_(1 - lr * decay)
            else:
                grad = grad.add(param, alpha=decay)
        exp_avg.lerp_(grad, 1 - beta1)
        deviation = self.deviation([grad], [exp_avg])[0]
        second.mul_(beta2).addcmul_(deviation, deviation, value=1 - beta2).add_(eps)
        denominator = second.sqrt().div_(math.sqrt(1 - beta2 ** t)).add_(eps)
        param.addcdiv_(exp_avg, denominator, value=-lr / (1 - beta1 ** t))

    def __repr__(self) -> str:
        group = self.defaults
        return (f"{type(self).__name__}(lr={group['lr']}, betas={group['betas']}, "
                f"eps={group['eps']}, weight_decay={group['weight_decay']}, "
                f"decoupled_weight_decay={group['decoupled_weight_decay']})")


class AdaBelief(AdaptiveMoments):
    r"""AdaBelief (Zhuang et al., NeurIPS 2020, Algorithm 2): Adam whose second moment is the
    variance of the gradient around its moving average, :math:`d_t = g_t - m_t` (see the
    module for the equations and the differences from ``adabelief-pytorch``).

    Args:
        params: parameters or parameter groups.
        lr: :math:`\alpha` (1e-3).
        betas: :math:`(\beta_1, \beta_2)` ((0.9, 0.999)).
        eps: :math:`\epsilon`, added inside the second moment and to its root (1e-8).
        weight_decay: :math:`\lambda` (0): an :math:`L_2` term added to the gradient, or with
            ``decoupled_weight_decay`` the weights shrunk by :math:`\alpha\lambda` (AdamW).
        maximize: ascend instead of descend.
        foreach: the multi-tensor path (``None``: wherever torch's kernels apply).
    """

    @staticmethod
    def deviation(grads: list[torch.Tensor], exp_avgs: list[torch.Tensor]
                  ) -> list[torch.Tensor]:
        return torch._foreach_sub(grads, exp_avgs)


class AdaM3(AdaptiveMoments):
    r"""AdaM3 (Wang et al., 2021, arXiv:2106.11514; AdaMomentum there): Adam whose second
    moment averages the squared momentum, :math:`d_t = m_t` (see the module for the
    equations).

    Args: as :class:`AdaBelief`.
    """

    @staticmethod
    def deviation(grads: list[torch.Tensor], exp_avgs: list[torch.Tensor]
                  ) -> list[torch.Tensor]:
        return exp_avgs


def _use_foreach(foreach: bool | None, params: list[torch.Tensor]) -> bool:
    """``foreach`` as given, else torch's own default: the multi-tensor path for dense tensors
    on a device with the kernels (torch uses it on CUDA; on the CPU it loops in C++ over the
    same per-tensor kernels, which still saves the Python loop)."""
    if foreach is not None:
        return bool(foreach)
    return not torch.jit.is_scripting() and all(
        p.device.type in ("cpu", "cuda", "xpu", "mps") for p in params)
