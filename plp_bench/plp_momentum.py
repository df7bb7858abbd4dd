r"""PLP's prediction folded into SGD-momentum's own update: no buffer at all.

Over ``torch.optim.SGD`` with momentum :math:`\mu`, dampening :math:`d`, weight decay
:math:`\lambda` (no Nesterov, not maximising), update :math:`t` moves the weights by
:math:`-\eta_t m_t`, with :math:`g'_t = g_t + \lambda w_{t-1}` and
:math:`m_t = \mu_t m_{t-1} + (1 - d) g'_t` (:math:`m_t = g'_t` where the buffer is created).
PLP's prediction after a cycle's three tracked updates (:mod:`plp_bench.plp`) is
:math:`w = w_3 + \frac{s}{2} d_1 + \frac{s-1}{2} d_2` with :math:`d_1 = w_2 - w_1 = -\eta_2 m_2`
and :math:`d_2 = w_3 - w_2 = -\eta_3 m_3`. At the third update :math:`m_2` is still SGD's
momentum buffer and :math:`g_3` its gradient, so that update and the prediction are one update
of :math:`(w, m)` from :math:`(w_2, m_2, g_3)`:

.. math::

    m_3 = \mu_3 m_2 + (1 - d)(g_3 + \lambda w_2), \qquad
    w = w_2 - \tfrac{s}{2} \eta_2 m_2 - \tfrac{s+1}{2} \eta_3 m_3

which needs only :math:`\eta_2`, one number per group remembered at the second update. With
:math:`\mu_3 = 0` torch's SGD moves by :math:`-\eta_3 g'_3` and leaves the buffer alone; so does
this update (:math:`m_3` replaced by :math:`g'_3`). A tensor that did not move at the second
update has :math:`d_1 = 0` (the :math:`m_2` term is dropped); one without a gradient at the
third has :math:`d_2 = 0` (only the :math:`m_2` term applies). The second move is recoverable
only if SGD used the buffer for it: a group whose momentum is 0 at the second update takes the
1N path for that cycle (:mod:`plp_bench.plp` decides).

Memory traffic per cycle, in parameter-sized reads and writes, without weight decay: SGD's
multi-tensor update is 8N a step (buffer scale 2N, buffer add 3N, weight add 3N), 24N a cycle.
Here the third update adds one pass (:math:`w \mathrel{-}= \frac{s}{2}\eta_2 m_2`, 3N): 27N,
a bound of 1.125x SGD's update time. The compiled kernel reads :math:`w, m, g` and writes
:math:`w, m` once (5N), so the cycle is 21N, 0.875x. The 1N path costs 8N more a cycle
(copy 2N, difference 3N, prediction 3N): 32N, 1.33x.
"""

from __future__ import annotations

import functools

import torch
from torch.optim.sgd import sgd as functional_sgd


def momentum_path_refusal(optimizer: torch.optim.Optimizer) -> str | None:
    """Why PLP over ``optimizer`` cannot fold its prediction into the update (``None``: it
    can): it must be exactly ``torch.optim.SGD``, every group with momentum > 0, no Nesterov,
    not maximising, not differentiable."""
    if type(optimizer) is not torch.optim.SGD:
        return f"the wrapped optimizer is {type(optimizer).__name__}, not torch.optim.SGD"
    for i, group in enumerate(optimizer.param_groups):
        reason = group_refusal(group)
        if reason:
            return f"param group {i}: {reason}"
    return None


def group_refusal(group: dict) -> str | None:
    if group.get("nesterov"):
        return "nesterov=True (the move is not -lr times the buffer)"
    if group.get("maximize"):
        return "maximize=True"
    if group.get("differentiable"):
        return "differentiable=True"
    if not group.get("momentum"):
        return "momentum is 0 (SGD keeps no buffer to recover the second move from)"
    return None


def last_update(params: list[torch.Tensor], grads: list[torch.Tensor],
                buffers: list[torch.Tensor], *, weight_decay: float, momentum: float,
                dampening: float, first: float, second: float, foreach: bool) -> None:
    """In place: ``w -= first * m2 + second * m3`` with ``m3 = momentum * m2 + (1 - dampening)
    * (g + weight_decay * w)`` stored in the buffer; with ``momentum == 0``, ``m3`` is
    ``g + weight_decay * w`` and the buffer is left alone. ``first = (s/2) lr2`` (0 for a tensor
    that did not move at the second update), ``second = ((s+1)/2) lr3``. The operations and
    their order are those of torch's SGD, plus the ``first`` pass before the buffer changes."""
    if not params:
        return
    if foreach:
        if weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if first != 0:
            torch._foreach_add_(params, buffers, alpha=-first)
        if momentum != 0:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads, alpha=1 - dampening)
            torch._foreach_add_(params, buffers, alpha=-second)
        else:
            torch._foreach_add_(params, grads, alpha=-second)
        return
    for p, g, m in zip(params, grads, buffers, strict=True):
        if weight_decay != 0:
            g = g.add(p, alpha=weight_decay)
        if first != 0:
            p.add_(m, alpha=-first)
        if momentum != 0:
            m.mul_(momentum).add_(g, alpha=1 - dampening)
            p.add_(m, alpha=-second)
        else:
            p.add_(g, alpha=-second)


def compiled_last_update(params: list[torch.Tensor], grads: list[torch.Tensor],
                         buffers: list[torch.Tensor], *, weight_decay: float, momentum: float,
                         dampening: float, first: float, second: float) -> None:
    """:func:`last_update` (``momentum != 0``) as one ``torch.compile`` kernel: each element of
    ``w, m, g`` read once, ``w, m`` written once. The scalars travel in a tensor, so a learning
    rate that changes does not recompile; a new set of parameter shapes does (once)."""
    if not params:
        return
    scalars = torch.tensor([weight_decay, momentum, 1 - dampening, first, second],
                           dtype=torch.float64, device=params[0].device)
    _kernel()(params, grads, buffers, scalars)


def _fused(params, grads, buffers, scalars):
    weight_decay, momentum, keep, first, second = scalars.unbind()
    for p, g, m in zip(params, grads, buffers, strict=True):
        m3 = momentum * m + keep * (g + weight_decay * p)
        p.copy_(p - first * m - second * m3)
        m.copy_(m3)


@functools.cache
def _kernel():
    return torch.compile(_fused, fullgraph=True, dynamic=False)


def sgd_update(optimizer: torch.optim.SGD, group: dict, params: list[torch.Tensor],
               lr: float) -> None:
    """torch's SGD update of ``params`` (members of ``group``, each with a gradient) at rate
    ``lr``, through torch's functional SGD with the group's settings and kernel choice
    (``foreach``, ``fused``), so these tensors move bit for bit as ``SGD.step`` moves them; the
    momentum buffers are created and stored as it does."""
    if not params:
        return
    momentum = group["momentum"]
    buffers = ([optimizer.state[p].get("momentum_buffer") for p in params]
               if momentum != 0 else [])
    functional_sgd(params, [p.grad for p in params], buffers,
                   has_sparse_grad=any(p.grad.is_sparse for p in params),
                   foreach=group["foreach"], fused=group["fused"],
                   weight_decay=group["weight_decay"], momentum=momentum, lr=lr,
                   dampening=group["dampening"], nesterov=group["nesterov"],
                   maximize=group["maximize"])
    for p, buffer in zip(params, buffers, strict=False):
        optimizer.state[p]["momentum_buffer"] = buffer
