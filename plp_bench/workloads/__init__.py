"""Named workloads: everything but the update rule.

A workload is a dataset, a backbone, a loss, the batch size, the evaluation period, a budget
(epochs or steps), target thresholds as validation error (lower is better; the last is the
primary target that speedups are measured at), and the hyperparameters it was tuned with for
each base optimizer. Each lives in a YAML file of this folder, named after the workload; YAML
configs may override any field (a small diff) and are validated the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .. import data, models
from ..core.config import (
    MAX_EPOCHS,
    MAX_STEPS,
    ConfigError,
    closest,
    field,
    parse,
    read_yaml,
    to_plain,
)
from ..core.registry import Registry
from ..methods.catalogue import OPTIMIZERS, ComponentConfig
from ..methods.schedules import SCHEDULES, Schedule

LAYER = 4


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str = field(choices=data.list_datasets)
    model: str = field(choices=models.list_models)
    batch_size: int = field(minimum=1, maximum=1 << 20)
    targets: list[float] = field(doc="validation-error thresholds, loosest first")
    optimizers: dict[str, dict[str, Any]] = field(
        doc="tuned hyperparameters per base optimizer")
    epochs: int | None = field(default=None, minimum=1, maximum=MAX_EPOCHS)
    steps: int | None = field(default=None, minimum=1, maximum=MAX_STEPS)
    eval_every: int = field(default=0, minimum=0, maximum=MAX_STEPS,
                            doc="steps between evaluations; 0 = each epoch")
    model_options: dict[str, Any] = field(default_factory=dict)
    loss: str = field(default="cross_entropy", choices=lambda: ["cross_entropy"])
    lr_schedule: ComponentConfig = field(default_factory=lambda: ComponentConfig("constant"))
    augment: bool = field(default=False, doc="pad-4 random crop + horizontal flip (CIFAR)")
    val_fraction: float = field(default=0.2, exclusive_minimum=0.0, maximum=0.9)
    test_at_epochs: list[int] = field(default_factory=list)
    eval_batch_size: int = field(default=2048, minimum=1, maximum=1 << 20)
    stop_at_targets: bool = field(default=False, doc="end the run once every target is reached")
    jump_steps: list[int] = field(
        default_factory=list, doc="steps at which weight-jump methods jump; empty: a fixed "
        "fraction of the budget (plp_bench.methods.weight_jumps)")
    description: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("give exactly one budget: epochs or steps")
        if not self.targets:
            raise ValueError("targets: give at least one validation-error threshold")
        for t in self.targets:
            if not 0.0 < t < 1.0:
                raise ValueError(f"targets: {t!r} is not an error rate in (0, 1)")
        if list(self.targets) != sorted(self.targets, reverse=True):
            raise ValueError(f"targets must go from loosest to strictest, got {self.targets}")
        for name, settings in self.optimizers.items():
            if name not in OPTIMIZERS:
                raise ValueError(f"optimizers: unknown optimizer {name!r}"
                                 f"{closest(name, OPTIMIZERS.names())}")
            if not isinstance(settings, dict):
                raise ValueError(f"optimizers.{name}: expected a mapping of hyperparameters")
        if any(isinstance(s, bool) or s < 1 for s in self.jump_steps) or \
                list(self.jump_steps) != sorted(set(self.jump_steps)):
            raise ValueError(f"jump_steps must be increasing positive steps, got {self.jump_steps}")
        if self.lr_schedule.name not in SCHEDULES:
            raise ValueError(f"lr_schedule: unknown schedule {self.lr_schedule.name!r}"
                             f"{closest(self.lr_schedule.name, SCHEDULES.names())}")
        if self.model_options:
            _check_model_options(self.model, self.dataset, self.model_options)

    @property
    def primary_target(self) -> float:
        return self.targets[-1]

    def total_steps(self, batches_per_epoch: int) -> int:
        return self.steps if self.steps is not None else self.epochs * batches_per_epoch

    def evaluation_period(self, batches_per_epoch: int) -> int:
        return self.eval_every or batches_per_epoch

    def schedules(self) -> list[Schedule]:
        return [SCHEDULES.get(self.lr_schedule.name)(**self.lr_schedule.options)]

    def replace(self, **changes: Any) -> Workload:
        return dataclasses.replace(self, **changes)


WORKLOADS: Registry[Workload] = Registry("workload")



def _check_model_options(model: str, dataset: str, options: dict[str, Any]) -> None:
    """``model_options`` checked against the model before any run, as the optimizer options
    are: each key among the options its factory takes (with the close ones named), and the
    values accepted by building the model for the dataset's inputs on the ``meta`` device
    (no memory, no file read). A ``ValueError`` naming the key or the value otherwise."""
    import torch

    allowed = list(models.model_options(model))
    for key in options:
        if key not in allowed:
            raise ValueError(f"model_options.{key}: model {model!r} has no option {key!r}"
                             f"{closest(key, allowed)}")
    shape, classes = data.SHAPES.get(dataset, (None, None))
    if shape is None:
        return
    try:
        with torch.device("meta"):
            models.create(model, num_classes=classes, input_shape=shape, **options)
    except (ValueError, TypeError, RuntimeError) as error:
        raise ValueError(f"model_options: not a {model} for {dataset}'s inputs {shape}: "
                         f"{str(error)[:200]}") from None

def parse_workload(body: Any, *, name: str, source: str | None = None,
                   path: tuple = ()) -> Workload:
    if not isinstance(body, dict):
        raise ConfigError("expected a mapping", source=source, path=path)
    workload = parse(Workload, {"name": name, **body}, source=source, path=path)
    schedule = workload.lr_schedule
    try:
        SCHEDULES.get(schedule.name)(**schedule.options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{err}", source=source, path=(*path, "lr_schedule")) from None
    return workload


def override(workload: Workload, changes: dict[str, Any], *, source: str | None = None,
             path: tuple = ()) -> Workload:
    """``workload`` with ``changes`` applied, validated as a whole (a budget given as ``steps``
    replaces one given as ``epochs`` and vice versa)."""
    body = {k: v for k, v in to_plain(workload).items() if k != "name"}
    if "steps" in changes:
        body["epochs"] = None
    if "epochs" in changes:
        body["steps"] = None
    body.update(changes)
    return parse_workload(body, name=changes.get("name", workload.name), source=source, path=path)


def _load_shipped() -> None:
    folder = resources.files(__name__)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            name = entry.name.removesuffix(".yaml")
            WORKLOADS.add(name, parse_workload(read_yaml(Path(str(entry))), name=name,
                                               source=str(entry)))


def get(name: str) -> Workload:
    return WORKLOADS.get(name)


def list_workloads() -> list[str]:
    return WORKLOADS.names()


def offline_workloads() -> list[str]:
    """Workloads whose data ships with a dependency (scikit-learn): the embedded default."""
    from ..data.fetch import BUNDLED

    return [n for n in WORKLOADS.names() if WORKLOADS.get(n).dataset in BUNDLED]


_load_shipped()
