"""What each receiver of a method's settings accepts, key by key: the base optimizers'
hyperparameters (``torch.optim.SGD``, ``Adam``, ``AdamW``) and the options of each wrapper,
schedule and solver. Every key of a receiver's signature has an entry (a test holds the two
together); each entry states the type and the range, so a bad value is reported with its full
key path, the value and what is allowed before anything is built.

Types are strict where the receiver is lax: a boolean is never a number, a flag is ``true`` or
``false`` (not any value with a truth), an integer option takes integers. Where a range here is
narrower than the receiver's own check, ``narrower`` says why (e.g. torch's SGD takes
``momentum >= 1``, which makes the velocity grow without bound). Numbers written as text (YAML
1.1 reads ``1e-4`` as a string) are converted, as everywhere in a config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plp_baselines.introspection.net import SHIPPED
from plp_baselines.linearized import SPACES

from ..core.config import ConfigError, check_value, closest, did_you_mean
from .plp import PATHS

NUMBER, INTEGER, FLAG, TEXT, ANY = "number", "integer", "flag", "text", "any"


@dataclass(frozen=True)
class Option:
    """One key: its ``kind`` (``number``, ``integer``, ``flag``, ``text``, or ``any`` for a
    registered extension that declares no schema), whether ``null``
    is allowed, the range, the allowed texts, a fixed list length (``length``: a list of that
    many ``kind`` values; ``items``: a list of any length), and why a range is narrower than
    the receiver's."""

    kind: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None   # exclusive minimum
    below: float | None = None   # exclusive maximum
    choices: tuple[Any, ...] = ()
    length: int | None = None
    items: bool = False
    narrower: str = ""

    def allowed(self) -> str:
        """What is allowed, in words ("a number > 0", "null or a list of integers >= 1")."""
        if self.choices:
            what = f"one of {', '.join(map(str, self.choices))}"
        else:
            what = {NUMBER: "a number", INTEGER: "an integer", FLAG: "true or false",
                    TEXT: "a text", ANY: "any value"}[self.kind]
            bounds = self._bounds()
            what = f"{what} {bounds}" if bounds else what
        if self.length is not None:
            what = f"a list of {self.length} values, each {what}"
        elif self.items:
            what = f"a list, each {what}"
        return f"null or {what}" if self.nullable else what

    def _bounds(self) -> str:
        low = (f"[{self.minimum:g}" if self.minimum is not None
               else f"({self.above:g}" if self.above is not None else None)
        high = (f"{self.maximum:g}]" if self.maximum is not None
                else f"{self.below:g})" if self.below is not None else None)
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f">= {self.minimum:g}" if self.minimum is not None else f"> {self.above:g}"
        if high:
            return f"<= {self.maximum:g}" if self.maximum is not None else f"< {self.below:g}"
        return ""

    def check(self, value: Any, *, source: str | None, path: tuple) -> Any:
        """The value, converted where text spells a number; a :class:`ConfigError` naming
        ``path``, the value and :meth:`allowed` otherwise."""
        try:
            return self._check(value, source=source, path=path)
        except ConfigError as error:
            raise ConfigError(f"{error.problem}; allowed: {self.allowed()}", source=source,
                              path=error.path) from None

    def _check(self, value: Any, *, source: str | None, path: tuple) -> Any:
        if self.kind == ANY or (value is None and self.nullable):
            return value
        if self.length is not None or self.items:
            if not isinstance(value, list | tuple):
                raise ConfigError(f"expected a list, got {value!r}", source=source, path=path)
            if self.length is not None and len(value) != self.length:
                raise ConfigError(f"expected {self.length} values, got {len(value)}: {value!r}",
                                  source=source, path=path)
            single = Option(self.kind, minimum=self.minimum, maximum=self.maximum,
                            above=self.above, below=self.below, choices=self.choices)
            checked = [single._check(v, source=source, path=(*path, i))
                       for i, v in enumerate(value)]
            return tuple(checked) if isinstance(value, tuple) or self.length else checked
        tp = {NUMBER: float, INTEGER: int, FLAG: bool, TEXT: str}[self.kind]
        checked = check_value(value, tp, source=source, path=path, meta={})
        if self.kind == NUMBER and isinstance(value, int):
            checked = value  # keep 1 as 1: records and their hashes stay as written
        if self.choices and checked not in self.choices:
            hint = did_you_mean(value, list(map(str, self.choices)))  # check() adds the rest
            raise ConfigError(f"{value!r} is not allowed{hint}", source=source, path=path)
        if self.kind in (NUMBER, INTEGER):
            self._check_range(checked, source=source, path=path)
        return checked

    def _check_range(self, value: float, *, source: str | None, path: tuple) -> None:
        bad = ((self.minimum is not None and value < self.minimum)
               or (self.maximum is not None and value > self.maximum)
               or (self.above is not None and value <= self.above)
               or (self.below is not None and value >= self.below)
               or not math.isfinite(value))
        if bad:
            raise ConfigError(f"{value!r} is out of range", source=source, path=path)


FLAG_OPTION = Option(FLAG)
NULLABLE_FLAG = Option(FLAG, nullable=True)
RATE = Option(NUMBER, above=0, narrower="torch takes 0, which never moves the weights")
WEIGHT_DECAY = Option(NUMBER, minimum=0)
BETAS = Option(NUMBER, minimum=0, below=1, length=2)
JUMP_STEPS = Option(INTEGER, minimum=1, items=True, nullable=True)

SGD_HYPERPARAMETERS = {
    "lr": RATE,
    "momentum": Option(NUMBER, minimum=0, below=1,
                       narrower="torch takes momentum >= 1, where the velocity grows without "
                                "bound"),
    "dampening": Option(NUMBER, minimum=0, maximum=1,
                        narrower="torch takes any value; outside [0, 1] the gradient's share "
                                 "changes sign or grows"),
    "weight_decay": WEIGHT_DECAY,
    "nesterov": FLAG_OPTION, "maximize": FLAG_OPTION, "foreach": NULLABLE_FLAG,
    "differentiable": FLAG_OPTION, "fused": NULLABLE_FLAG,
}
ADAM_HYPERPARAMETERS = {
    "lr": RATE, "betas": BETAS, "eps": Option(NUMBER, minimum=0),
    "weight_decay": WEIGHT_DECAY, "amsgrad": FLAG_OPTION, "foreach": NULLABLE_FLAG,
    "maximize": FLAG_OPTION, "capturable": FLAG_OPTION, "differentiable": FLAG_OPTION,
    "fused": NULLABLE_FLAG, "decoupled_weight_decay": FLAG_OPTION,
}
ADAMW_HYPERPARAMETERS = {k: v for k, v in ADAM_HYPERPARAMETERS.items()
                         if k != "decoupled_weight_decay"}
# AdaBelief and AdaM3 (plp_baselines.adaptive): Adam's settings without AMSGrad or torch's
# kernel choices
ADAPTIVE_MOMENTS_HYPERPARAMETERS = {
    k: v for k, v in ADAM_HYPERPARAMETERS.items()
    if k in ("lr", "betas", "eps", "weight_decay", "maximize", "foreach",
             "decoupled_weight_decay")}

WRAPPER_OPTIONS = {
    "plp": {
        "step": Option(NUMBER, minimum=0), "cycle": Option(INTEGER, minimum=3),
        "warmup": Option(INTEGER, minimum=0),
        "min_cosine": Option(NUMBER, nullable=True, minimum=-1, maximum=1),
        "foreach": FLAG_OPTION, "path": Option(TEXT, choices=PATHS),
        "compiled": FLAG_OPTION,
    },
    "xgrad": {"horizon": Option(NUMBER, above=0)},
    "introspection": {
        "net": Option(TEXT, choices=tuple(SHIPPED)), "weights": Option(TEXT, nullable=True),
        "jump_steps": JUMP_STEPS, "reset_state": FLAG_OPTION,
    },
    "fit-jumps": {"degree": Option(INTEGER, choices=(1, 2)), "ratio": Option(NUMBER, above=1),
                  "jump_steps": JUMP_STEPS, "reset_state": FLAG_OPTION},
    "noise-jumps": {"std": Option(NUMBER, above=0), "jump_steps": JUMP_STEPS,
                    "reset_state": FLAG_OPTION},
    "record-history": {"pool_size": Option(INTEGER, minimum=1),
                       "every": Option(INTEGER, minimum=1)},
}
FIELD = Option(TEXT)
SCHEDULE_OPTIONS = {
    "constant": {"field": FIELD},
    "cyclic": {"low": Option(NUMBER, minimum=0, maximum=1),
               "step_size_up": Option(INTEGER, minimum=1), "field": FIELD},
    "inv": {"gamma": Option(NUMBER, minimum=0), "power": Option(NUMBER, minimum=0),
            "field": FIELD},
    "step": {"step_size": Option(INTEGER, minimum=1), "gamma": Option(NUMBER, above=0, maximum=1),
             "field": FIELD},
    "demon": {"beta_init": Option(NUMBER, nullable=True, minimum=0, below=1), "field": FIELD},
}
_SOLVER = {"rtol": Option(NUMBER, above=0), "atol": Option(NUMBER, above=0),
           "space": Option(TEXT, choices=tuple(SPACES)),
           "memory_limit_gib": Option(NUMBER, nullable=True, above=0)}
SOLVER_OPTIONS = {name: _SOLVER for name in ("bdf", "lsoda", "radau", "rk45")}


def check_settings(schema: Mapping[str, Option], values: Mapping[str, Any], *, receiver: str,
                   noun: str, source: str | None, path: tuple) -> dict[str, Any]:
    """``values`` checked key by key against ``schema`` (unknown keys named with the closest
    allowed ones); returns them converted."""
    checked = {}
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(f"{receiver} has no {noun} {key!r}{closest(key, list(schema))}",
                              source=source, path=(*path, key))
        checked[key] = schema[key].check(value, source=source, path=(*path, key))
    return checked
