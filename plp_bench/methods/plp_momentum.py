r"""PLP's prediction folded into SGD-momentum's own update: no buffer at all.

Over ``torch.optim.SGD`` with momentum :math:`\mu`, dampening :math:`d`, weight decay
:math:`\lambda` (no Nesterov, not maximising), update :math:`t` moves the weights by
:math:`-\eta_t m_t`, with :math:`g'_t = g_t + \lambda w_{t-1}` and
:math:`m_t = \mu_t m_{t-1} + (1 - d) g'_t` (:math:`m_t = g'_t` where the buffer is created).
PLP's prediction after a cycle's three tracked updates (:mod:`plp_bench.methods.plp`) is
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
1N path for that cycle (:mod:`plp_bench.methods.plp` decides).

Memory traffic per cycle, in parameter-sized reads and writes, without weight decay: SGD's
multi-tensor update is 8N a step (buffer scale 2N, buffer add 3N, weight add 3N), 24N a cycle.
Here the third update adds one pass (:math:`w \mathrel{-}= \frac{s}{2}\eta_2 m_2`, 3N): 27N,
a bound of 1.125x SGD's update time. The compiled kernel reads :math:`w, m, g` and writes
:math:`w, m` once (5N), so the cycle is 21N, 0.875x. The 1N path costs 8N more a cycle
(copy 2N, difference 3N, prediction 3N): 32N, 1.33x.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.optim.sgd import sgd as functional_sgd

MOMENTUM_PATH = "sgd-momentum"
# keys of PLP's own per-tensor state: in the cycle under way; had a gradient at its second update
IN_CYCLE = "in_cycle"
MOVED_AT_SECOND = "moved_at_second"


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
    device = params[0].device
    scalars = torch.tensor([weight_decay, momentum, 1 - dampening, first, second],
                           dtype=torch.float64)
    if device.type == "cuda":
        # from pageable memory the copy would make the host wait for the device's queue;
        # from pinned memory it is queued like a kernel
        scalars = scalars.pin_memory().to(device, non_blocking=True)
    else:
        scalars = scalars.to(device)
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


def fused_last_update(optimizer: torch.optim.SGD, group: dict, plp_state: dict[torch.Tensor, Any],
                      second_lr: float | None, *, compiled: bool, foreach: bool) -> None:
    r"""The cycle's last update and the prediction in one update of :math:`(w, m)` for the
    tensors of ``group`` (see the module), sorted by what happened to each in the cycle:
    plain SGD for those that sat it out (or whose second move is lost), the update alone at
    :math:`\frac{s+1}{2}\\eta` for those that did not move at the second update, the fused
    update for those that did, and only the :math:`m_2` term for those without a gradient
    now. ``plp_state`` is PLP's per-tensor state (``IN_CYCLE``, ``MOVED_AT_SECOND``)."""
    reason = group_refusal({**group, "momentum": 1})  # momentum 0 now is handled
    if reason:
        raise ValueError(f"PLP on the {MOMENTUM_PATH} path: a param group now has "
                         f"{reason}; construct PLP with path='buffer' for such groups")
    step_size, lr = group["plp_step"], float(group["lr"])
    buffers = optimizer.state
    plain, moved, still, idle = [], [], [], []
    for p in group["params"]:
        own = plp_state.get(p, {})
        tracked = own.get(IN_CYCLE, False)
        was_moved = own.pop(MOVED_AT_SECOND, False) and second_lr is not None
        has_buffer = buffers.get(p, {}).get("momentum_buffer") is not None
        if p.grad is None:
            if tracked and was_moved and has_buffer:
                idle.append(p)
        elif not tracked or (was_moved and not has_buffer):
            plain.append(p)  # sits the cycle out (or its second move is lost)
        elif was_moved:
            moved.append(p)
        else:
            still.append(p)
    sgd_update(optimizer, group, plain, lr)
    # no second move: the update alone, at ((s + 1) / 2) lr (a new buffer as SGD makes it)
    sgd_update(optimizer, group, still, (step_size + 1) / 2 * lr)
    if moved:
        settings = {"weight_decay": group["weight_decay"], "momentum": group["momentum"],
                    "dampening": group["dampening"], "first": step_size / 2 * second_lr,
                    "second": (step_size + 1) / 2 * lr}
        grads = [_dense(p) for p in moved]
        momenta = [buffers[p]["momentum_buffer"] for p in moved]
        if compiled and group["momentum"] != 0:
            compiled_last_update(moved, grads, momenta, **settings)
        else:
            last_update(moved, grads, momenta, **settings, foreach=foreach)
    if idle:
        torch._foreach_add_(idle, [buffers[p]["momentum_buffer"] for p in idle],
                            alpha=-step_size / 2 * second_lr)


def _dense(p: torch.Tensor) -> torch.Tensor:
    if p.grad.is_sparse:
        raise ValueError(f"PLP on the {MOMENTUM_PATH} path needs dense gradients; construct it "
                         f"with path='buffer' for sparse ones")
    return p.grad
