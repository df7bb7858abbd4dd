"""A base for update rules that wrap a ``torch.optim.Optimizer``.

A wrapper holds the optimizer it wraps and forwards ``param_groups``, ``defaults``,
``zero_grad`` and ``add_param_group`` to it, so learning-rate and momentum schedules written
for the inner optimizer see the same groups. Its own per-parameter state lives in
``self.state[p]``; ``state_dict()`` nests the inner optimizer's state dict next to its own, with
parameters named by their position in ``param_groups`` (as ``torch.optim`` does), so a
checkpoint loads into a fresh wrapper over fresh parameters.

``torch.optim.lr_scheduler`` classes insist on a real ``Optimizer``: give them
``wrapper.optimizer``; the groups are shared, so the schedule reaches the wrapped update.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch


class OptimizerWrapper:
    """Holds ``optimizer`` and forwards its groups; subclasses implement ``step``."""

    def __init__(self, optimizer: Any):
        if not hasattr(optimizer, "param_groups") or not callable(getattr(optimizer, "step", None)):
            raise ValueError(f"{type(self).__name__} wraps a torch.optim.Optimizer (or a wrapper "
                             f"of one); got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.state: defaultdict[torch.Tensor, dict[str, Any]] = defaultdict(dict)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    def innermost(self) -> torch.optim.Optimizer:
        """The optimizer at the bottom of a chain of wrappers."""
        inner = self.optimizer
        while isinstance(inner, OptimizerWrapper):
            inner = inner.optimizer
        return inner

    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)

    def step(self, closure=None):
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        """Plain values (counters, settings) to checkpoint besides the per-parameter state."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        index = {p: i for i, p in enumerate(self.parameters())}
        own = {index[p]: dict(s) for p, s in self.state.items() if p in index and s}
        return {"optimizer": self.optimizer.state_dict(),
                "wrapper": {"state": own, **self._extra_state()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"optimizer", "wrapper"}:
            raise ValueError(f"{type(self).__name__}.load_state_dict expects the keys "
                             f"'optimizer' and 'wrapper', got {sorted(state_dict)}")
        self.optimizer.load_state_dict(state_dict["optimizer"])
        params = self.parameters()
        wrapper = dict(state_dict["wrapper"])
        own = wrapper.pop("state")
        self.state = defaultdict(dict)
        for i, saved in own.items():
            if not 0 <= int(i) < len(params):
                raise ValueError(f"checkpoint names parameter {i}, but this optimizer has "
                                 f"{len(params)} parameters")
            p = params[int(i)]
            self.state[p] = {k: _like(v, p) if torch.is_tensor(v) else v
                             for k, v in saved.items()}
        self._load_extra_state(wrapper)

    def __repr__(self) -> str:
        inner = "\n".join("    " + line for line in repr(self.optimizer).splitlines())
        return f"{type(self).__name__}(\n{inner}\n)"


def _like(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A private copy of checkpointed ``value`` on the parameter's device (and, for floating
    point state, in its dtype), so that training on does not write into the checkpoint."""
    dtype = param.dtype if value.is_floating_point() else value.dtype
    return value.to(device=param.device, dtype=dtype, copy=True)
