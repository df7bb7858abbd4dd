"""A base for update rules that wrap a ``torch.optim.Optimizer`` and are one themselves.

The pattern of wrapper optimizers (Lookahead, ``ZeroRedundancyOptimizer``): the wrapper is a
``torch.optim.Optimizer`` subclass whose ``param_groups`` and ``defaults`` *are* the wrapped
optimizer's (the same list and dict objects, read through on every access, so they follow the
wrapped optimizer when its ``load_state_dict`` replaces its groups). Whatever sets a group
field on the wrapper (an ``lr_scheduler`` class, ``GradScaler``'s unscaling, a momentum
schedule) therefore reaches the wrapped update. Everything torch gives an optimizer works on
the wrapper: step pre/post hooks run around the wrapper's own ``step``, the state-dict hooks
around its ``state_dict`` and ``load_state_dict``, and ``isinstance(w, Optimizer)`` holds for
the frameworks that check it.

``state`` holds the wrapper's own per-parameter state. ``state_dict()`` has torch's layout one
level up:

* ``state``: the wrapper's per-parameter state, parameters named by their position in
  ``param_groups`` (as ``torch.optim`` names them);
* ``param_groups``: the shared groups, packed as torch packs them (stored once);
* ``wrapped``: the wrapped optimizer's state dict without its ``param_groups``, which are the
  same (for a chain of wrappers, nested the same way);
* ``extra``: the wrapper's plain values (step counters, settings), from ``_extra_state``.

A checkpoint therefore loads into a fresh wrapper over fresh parameters, at any depth. A
wrapped optimizer whose state dict has another layout (``pytorch_optimizer.Lookahead`` keeps
``lookahead_state`` and ``base_optimizer``) is stored whole under ``wrapped``, with
``param_groups`` ``None``, and given back whole to its own ``load_state_dict``: whatever
round-trips through the wrapped optimizer round-trips through the wrapper.

Each subclass's ``step`` runs the step hooks exactly as torch's ``Optimizer`` runs them
(global and own pre-hooks, which may replace the arguments; then own and global post-hooks),
but opens the profiler range ``Optimizer.step#<class>.step`` only while a profiler records:
torch's wrapper opens it on every call, about 30 microseconds on a 2-core CPU, which is 5% of
a small network's whole training step and would be paid twice (wrapper and wrapped).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from itertools import chain
from typing import Any

import torch
from torch.autograd import profiler
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

_KEYS = ("state", "param_groups", "wrapped")
# Optimizer.__getstate__ leaves these out (hooks are often closures); so does the wrapper.
_HOOK_TABLES = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks",
                "_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks",
                "_optimizer_load_state_dict_pre_hooks", "_optimizer_load_state_dict_post_hooks")


class OptimizerWrapper(torch.optim.Optimizer):
    """Wraps ``optimizer`` and shares its groups; subclasses implement ``step``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _with_step_hooks(cls.__dict__["step"])

    def __init__(self, optimizer: torch.optim.Optimizer):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(self).__name__} wraps a torch.optim.Optimizer (or a wrapper "
                            f"of one); got {type(optimizer).__name__}")
        # Not Optimizer.__init__: it would build groups of its own from parameters. Its
        # __setstate__ is the part that sets up everything else an Optimizer has (the hook
        # tables, the hooked step), whatever this version of torch adds there.
        self.optimizer = optimizer
        torch.optim.Optimizer.__setstate__(self, {"state": defaultdict(dict)})
        self._warned_capturable_if_run_uncaptured = True

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.optimizer.param_groups = groups

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, defaults: dict[str, Any]) -> None:
        self.optimizer.defaults = defaults

    def innermost(self) -> torch.optim.Optimizer:
        """The optimizer at the bottom of a chain of wrappers."""
        return innermost(self)

    def parameters(self) -> list[torch.Tensor]:
        """Every parameter, in ``param_groups`` order (the order checkpoints number them in)."""
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

    def _check_loadable(self, extra: dict[str, Any]) -> None:
        """Refuse a checkpoint this wrapper cannot continue, before anything is loaded."""

    def state_dict(self) -> dict[str, Any]:
        """Both levels in torch's layout (see the module); state-dict hooks run as in torch."""
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        wrapped = dict(self.optimizer.state_dict())
        # torch's layout: the groups are stored once, here; any other layout is kept whole
        param_groups = wrapped.pop("param_groups") if _torch_layout(wrapped) else None
        index = {id(p): i for i, p in enumerate(self.parameters())}
        own = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index and s}
        state_dict = {"state": own, "param_groups": param_groups, "wrapped": wrapped,
                      "extra": self._extra_state()}
        for hook in self._optimizer_state_dict_post_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what :meth:`state_dict` returned: the wrapped optimizer first (with the stored
        groups), then the wrapper's own state, tensors copied onto each parameter's device."""
        state_dict = dict(state_dict)
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        missing = [key for key in _KEYS if key not in state_dict]
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state dict lacks "
                             f"{', '.join(map(repr, missing))}; it has "
                             f"{', '.join(map(repr, sorted(state_dict)))} (expected what "
                             f"{type(self).__name__}.state_dict() returns)")
        self._check_loadable(dict(state_dict.get("extra", {})))
        if state_dict["param_groups"] is None:  # a wrapped optimizer of another layout
            self.optimizer.load_state_dict(state_dict["wrapped"])
        else:
            self.optimizer.load_state_dict({**state_dict["wrapped"],
                                            "param_groups": state_dict["param_groups"]})
        params = self.parameters()
        self.state = defaultdict(dict)
        for i, saved in state_dict["state"].items():
            if not 0 <= int(i) < len(params):
                raise ValueError(f"checkpoint names parameter {i}, but this optimizer has "
                                 f"{len(params)} parameters")
            p = params[int(i)]
            self.state[p] = {k: _like(v, p) if torch.is_tensor(v) else v
                             for k, v in saved.items()}
        self._load_extra_state(dict(state_dict.get("extra", {})))
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _HOOK_TABLES}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        torch.optim.Optimizer.__setstate__(self, {})

    def _settings_repr(self) -> str:
        """The wrapper's own settings, as ``name=value, ...`` for its ``repr``."""
        return ""

    def __repr__(self) -> str:
        inner = "\n".join("    " + line for line in repr(self.optimizer).splitlines())
        return f"{type(self).__name__}({self._settings_repr()}\n{inner}\n)"


def _with_step_hooks(step):
    """``step`` with torch's step hooks around it (see the module); marked as hooked, so that
    ``Optimizer`` does not wrap it again."""

    @functools.wraps(step)
    def hooked(*args: Any, **kwargs: Any) -> Any:
        self = args[0]
        for pre_hook in chain(_global_optimizer_pre_hooks.values(),
                              self._optimizer_step_pre_hooks.values()):
            result = pre_hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"{step} must return None or a tuple of (new_args, "
                                       f"new_kwargs), but got {result}.")
                args, kwargs = result
        if profiler._is_profiler_enabled:
            with profiler.record_function(f"Optimizer.step#{type(self).__name__}.step"):
                out = step(*args, **kwargs)
        else:
            out = step(*args, **kwargs)
        self._optimizer_step_code()
        for post_hook in chain(self._optimizer_step_post_hooks.values(),
                               _global_optimizer_post_hooks.values()):
            post_hook(self, args, kwargs)
        return out

    hooked.hooked = True
    return hooked


def innermost(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer at the bottom of a chain of wrappers (``optimizer`` itself if it wraps
    nothing): the one whose ``state`` holds momentum buffers and Adam moments."""
    while isinstance(optimizer, OptimizerWrapper):
        optimizer = optimizer.optimizer
    return optimizer


def wrappers(optimizer: torch.optim.Optimizer) -> list[OptimizerWrapper]:
    """The wrappers of a chain, outermost first."""
    chain = []
    while isinstance(optimizer, OptimizerWrapper):
        chain.append(optimizer)
        optimizer = optimizer.optimizer
    return chain


def _torch_layout(state_dict: dict[str, Any]) -> bool:
    """Whether a state dict is laid out as ``torch.optim.Optimizer.state_dict`` lays it out."""
    return isinstance(state_dict.get("param_groups"), list) and isinstance(
        state_dict.get("state"), dict)


def _like(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A private copy of checkpointed ``value`` on the parameter's device (and, for floating
    point state, in its dtype), so that training on does not write into the checkpoint."""
    dtype = param.dtype if value.is_floating_point() else value.dtype
    return value.to(device=param.device, dtype=dtype, copy=True)
