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


class DemonMomentum:
    """Sets every param group's momentum to :math:`\\beta_t` for the next update.

    Use like a learning-rate scheduler: construct it (momentum becomes :math:`\\beta_0 =`
    ``beta_init``), then call ``step()`` after each ``optimizer.step()``. The value each group
    had before is kept in the group as ``initial_momentum``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, total_steps: int, beta_init: float = 0.9):
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"DemonMomentum: total_steps must be an integer >= 1, "
                             f"got {total_steps!r}")
        if isinstance(beta_init, bool) or not isinstance(beta_init, (int, float)) or not (
                0.0 <= beta_init < 1.0):
            raise ValueError(f"DemonMomentum: beta_init must be in [0, 1), got {beta_init!r}")
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.beta_init = float(beta_init)
        self.last_step = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_momentum", get_momentum(group))
        self._apply()

    def momentum(self, step: int | None = None) -> float:
        """:math:`\\beta_t` at ``step`` (default: the update about to run)."""
        return demon_momentum(self.beta_init, self.last_step if step is None else step,
                              self.total_steps)

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def _apply(self) -> None:
        value = self.momentum()
        for group in self.optimizer.param_groups:
            set_momentum(group, value)

    def get_last_momentum(self) -> list[float]:
        return [get_momentum(group) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "total_steps": self.total_steps,
                "beta_init": self.beta_init}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_step = int(state_dict["last_step"])
        self.total_steps = int(state_dict["total_steps"])
        self.beta_init = float(state_dict["beta_init"])
        self._apply()
