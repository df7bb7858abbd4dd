r"""DEMON: decaying momentum, as a momentum schedule for any momentum optimizer.

Chen, Wolfe and Kyrillidis, "Demon: Improved Neural Network Training with Momentum Decay",
ICASSP 2022. With :math:`T` the total number of steps, the momentum of update :math:`t` is

.. math::

    \beta_t = \beta_{init} \cdot \frac{1 - t/T}{(1 - \beta_{init}) + \beta_{init} (1 - t/T)}

so it falls from :math:`\beta_{init}` at :math:`t = 0` to 0 at :math:`t = T` (and stays 0 after).
With SGD the update is :math:`v_{t+1} = \beta_t v_t - \eta g_t`,
:math:`\theta_{t+1} = \theta_t + v_{t+1}`; ``torch.optim.SGD`` keeps :math:`-v / \eta`, which is
the same update while the learning rate is constant. For Adam and AdamW the schedule drives
:math:`\beta_1` (``betas[0]``); :math:`\beta_2` is left alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler


def demon_momentum(beta_init: float, step: int, total_steps: int) -> float:
    """:math:`\\beta_t` of the module's formula (steps past ``total_steps`` give 0)."""
    remaining = 1.0 - min(step, total_steps) / total_steps
    return beta_init * remaining / ((1.0 - beta_init) + beta_init * remaining)


def get_momentum(group: dict[str, Any]) -> float:
    """The momentum of a param group: ``momentum`` (SGD) or ``betas[0]`` (Adam, AdamW)."""
    if "momentum" in group:
        return group["momentum"]
    if "betas" in group:
        return group["betas"][0]
    raise ValueError(f"this param group has no momentum to schedule: it has neither 'momentum' "
                     f"nor 'betas' (keys: {', '.join(sorted(k for k in group if k != 'params'))})")


def set_momentum(group: dict[str, Any], value: float) -> None:
    if "momentum" in group:
        group["momentum"] = value
    elif "betas" in group:
        group["betas"] = (value, *tuple(group["betas"])[1:])
    else:
        get_momentum(group)  # raises with the keys the group has


class DemonMomentum(LRScheduler):
    r"""DEMON (Chen, Wolfe and Kyrillidis, ICASSP 2022, eq. 5): decaying momentum, as a
    scheduler. Before update :math:`t` (counted from 0) every param group's momentum is

    .. math::

        \beta_t = \beta_{init} \cdot \frac{1 - t/T}{(1 - \beta_{init}) + \beta_{init} (1 - t/T)}

    (0 from :math:`t = T` on): ``momentum`` for SGD, :math:`\beta_1` (``betas[0]``) for Adam and
    AdamW, :math:`\beta_2` untouched.

    Args:
        optimizer: any optimizer whose groups have ``momentum`` or ``betas`` (a wrapper of one:
            the groups are shared).
        total_steps: :math:`T`, the updates over which momentum decays to 0 (>= 1).
        beta_init: :math:`\beta_{init}` in [0, 1) (the paper: 0.9).
        last_epoch: the last update made, for resuming (-1: a fresh start).

    A ``torch.optim.lr_scheduler.LRScheduler`` that schedules momentum: it leaves the learning
    rate as it finds it (``get_lr`` returns the groups' current rates, so another scheduler on
    the same optimizer keeps control of them), and works wherever a scheduler is expected
    (Lightning's ``lr_scheduler`` entry with ``"interval": "step"``, ``SequentialLR``,
    ``ChainedScheduler``). Construct it (momentum becomes :math:`\beta_0 =` ``beta_init``),
    then call ``step()`` after each ``optimizer.step()``. The value each group had before is
    kept in the group as ``initial_momentum``. ``last_step`` is ``last_epoch``: here an epoch
    is one update.

    Differences from the paper: none in the schedule; with SGD, torch keeps the velocity
    divided by the learning rate, which is the paper's update while the rate is constant.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, total_steps: int,
                 beta_init: float = 0.9, last_epoch: int = -1) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"DemonMomentum: total_steps must be an integer >= 1, "
                             f"got {total_steps!r}")
        if isinstance(beta_init, bool) or not isinstance(beta_init, (int, float)) or not (
                0.0 <= beta_init < 1.0):
            raise ValueError(f"DemonMomentum: beta_init must be in [0, 1), got {beta_init!r}")
        self.total_steps = total_steps
        self.beta_init = float(beta_init)
        for group in optimizer.param_groups:
            group.setdefault("initial_momentum", get_momentum(group))
        super().__init__(optimizer, last_epoch)  # its first step() sets beta_0

    @property
    def last_step(self) -> int:
        """Updates made so far (``last_epoch``)."""
        return self.last_epoch

    def momentum(self, step: int | None = None) -> float:
        """:math:`\beta_t` at ``step`` (default: the update about to run)."""
        return demon_momentum(self.beta_init, self.last_epoch if step is None else step,
                              self.total_steps)

    def get_lr(self) -> list[float]:
        """The groups' learning rates as they are: DEMON schedules momentum only."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        self._apply()

    def _apply(self) -> None:
        value = self.momentum()
        for group in self.optimizer.param_groups:
            set_momentum(group, value)

    def get_last_momentum(self) -> list[float]:
        return [get_momentum(group) for group in self.optimizer.param_groups]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s output (or the ``last_step`` form of earlier versions)
        and set the momentum of the update about to run."""
        state_dict = dict(state_dict)
        if "last_step" in state_dict and "last_epoch" not in state_dict:
            state_dict["last_epoch"] = state_dict.pop("last_step")
        unknown = set(state_dict) - (set(self.__dict__) - {"optimizer"})
        if unknown:
            raise ValueError(f"DemonMomentum.load_state_dict: unknown keys "
                             f"{', '.join(sorted(map(repr, unknown)))}")
        super().load_state_dict(state_dict)
        self.last_epoch = int(self.last_epoch)
        self.total_steps = int(self.total_steps)
        self.beta_init = float(self.beta_init)
        self._apply()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(total_steps={self.total_steps}, "
                f"beta_init={self.beta_init:g}, last_step={self.last_epoch}, "
                f"momentum={self.momentum():.6g})")
