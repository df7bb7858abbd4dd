"""The registry of the papers' claims (``claims.yaml`` in the package), validated like a run
config, and what each claim measures at a size.

A claim (one entry, named by its key) holds:

* ``paper``: the source, with the table or section; ``claim``: the claim in one line;
* ``treatment`` and ``control``: the paper's method and what it claims to beat (registered
  method names; a measurement may pair others);
* ``checks``: what decides it, each a ``metric`` of a run record (:data:`METRICS`), the
  ``effect`` of a pair of seeds (``difference``: treatment - control; ``speedup``: control /
  treatment), the ``direction`` the paper claims (``higher`` or ``lower``), the ``threshold``
  the interval must clear (default: no effect; a margin such as ``-0.01`` for "no harm"),
  ``at`` (the validation-error target of a ``*_to_target`` metric; default: the workload's
  primary target) and ``paper`` (the paper's headline value of the effect, if it gives one);
* ``measurements``: where it is measured, each a ``workload`` (a name, or a mapping of
  changes to one as in a run config: the paper's protocol), the ``sizes`` that run it (``ci``,
  ``full``), ``ci`` (changes that make it affordable at ``--size ci``), ``proxy`` (true when the
  workload stands in for the paper's), ``paper`` (the paper's value of each check on this
  workload, by metric) and optionally its own ``treatment`` and ``control`` (a registered
  name, or a whole method definition as in a run config, under a name of its own: a paper's
  baseline at another setting);
* ``settings`` (the protocol in words), ``assumptions`` (where the paper is silent and what was
  assumed instead) and ``crossover`` (report the learning rate where a speedup crosses 1).

Verdicts are decided by :mod:`plp_bench.claims.verdicts`; :mod:`plp_bench.claims.measurement` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .. import data
from ..core.config import ConfigError, closest, field, parse, read_yaml, to_plain
from ..core.record import RunResult
from ..methods.catalogue import METHODS, MethodConfig
from ..sweeps.config_file import resolve_method, resolve_workload
from ..workloads import Workload
from .verdicts import Direction, EffectKind, no_effect

Size = Literal["ci", "full"]
SIZES = ("ci", "full")


def _at(record: RunResult, at: float | None) -> Any:
    return record.target(at if at is not None else record.targets[-1].target)


def _best_test(record: RunResult, name: str) -> float | None:
    return None if record.best_test is None else getattr(record.best_test, name)


def _val_accuracy(record: RunResult, pick: Callable) -> float | None:
    errors = [e for e in record.curves.val_error if e is not None]
    return 1.0 - pick(errors) if errors else None


def _censored_steps(record: RunResult, at: float | None) -> float:
    target = _at(record, at)
    return float(target.steps if target.reached else record.steps_run)


def _censored_seconds(record: RunResult, at: float | None) -> float:
    target = _at(record, at)
    return float(target.seconds if target.reached else record.train_seconds)


def _first_training_hit(record: RunResult, at: float | None) -> int | None:
    """The first evaluation whose training-split error is at or below ``at``; None if none."""
    if at is None:
        return None
    for index, error in enumerate(record.curves.train_error):
        if error <= at:
            return index
    return None


def _training_target_reached(record: RunResult, at: float | None) -> bool:
    return _first_training_hit(record, at) is not None


def _censored_training(record: RunResult, at: float | None, curve: str,
                       whole: float) -> float | None:
    """``curve`` (``train_seconds`` or ``step``) at the first evaluation at or below the
    training-split error ``at``, ``whole`` (the run's) where none is; None for a record
    without the training-split curves (schema 2), which the claim then leaves out."""
    if not record.curves.train_error:
        return None
    hit = _first_training_hit(record, at)
    return float(whole if hit is None else getattr(record.curves, curve)[hit])


def _censored_training_seconds(record: RunResult, at: float | None) -> float | None:
    return _censored_training(record, at, "train_seconds", record.train_seconds)


def _censored_training_steps(record: RunResult, at: float | None) -> float | None:
    return _censored_training(record, at, "step", record.steps_run)


def _max_training_accuracy(record: RunResult, at: float | None) -> float | None:
    errors = record.curves.train_error
    return 1.0 - min(errors) if errors else None


@dataclass(frozen=True)
class Metric:
    """A number read from a run record; ``censored``: a run may miss the target, and then
    counts its whole budget (a bound, not a value)."""

    read: Callable[[RunResult, float | None], float | None]
    describe: str
    short: str  # for a table's narrow column
    censored: bool = False
    # censored metrics on the training split: any error level is a target (the curves are
    # read), and ``at`` must be given
    training_split: bool = False

    def missed(self, record: RunResult, at: float | None) -> bool:
        if not self.censored:
            return False
        if self.training_split:
            return bool(record.curves.train_error) and not _training_target_reached(record, at)
        return not _at(record, at).reached


METRICS: dict[str, Metric] = {
    "best_test_accuracy": Metric(lambda r, at: _best_test(r, "accuracy"),
                                 "test accuracy of the best-validation-loss model", "test acc"),
    "best_test_error": Metric(lambda r, at: _best_test(r, "error"),
                              "top-1 test error of the best-validation-loss model", "test err"),
    "best_test_top5_error": Metric(lambda r, at: _best_test(r, "top5_error"),
                                   "top-5 test error of the best-validation-loss model",
                                   "test top-5 err"),
    "final_val_accuracy": Metric(lambda r, at: _val_accuracy(r, lambda e: e[-1]),
                                 "validation accuracy at the end of the budget", "final val acc"),
    "max_val_accuracy": Metric(lambda r, at: _val_accuracy(r, min),
                               "highest validation accuracy over the run", "max val acc"),
    "steps_to_target": Metric(_censored_steps, "steps to the validation-error target",
                              "steps to target", True),
    "seconds_to_target": Metric(_censored_seconds, "training seconds to the validation-error "
                                "target", "seconds to target", True),
    "best_epoch": Metric(lambda r, at: r.best_epoch, "epoch of the best-validation-loss model",
                         "optimal epoch"),
    "best_val_loss": Metric(lambda r, at: r.best_val_loss, "validation loss of the "
                            "best-validation-loss model", "best val loss"),
    "max_train_accuracy": Metric(_max_training_accuracy, "highest training-split accuracy over "
                                 "the run", "max train acc"),
    "steps_to_train_target": Metric(_censored_training_steps, "steps to the first evaluation "
                                    "at or below the training-split error", "steps to train "
                                    "target", True, True),
    "seconds_to_train_target": Metric(_censored_training_seconds, "training seconds to the "
                                      "first evaluation at or below the training-split error",
                                      "seconds to train target", True, True),
}


def _metric_names() -> list[str]:
    return list(METRICS)


def _method_names() -> list[str]:
    return METHODS.names()


@dataclass(frozen=True)
class Check:
    metric: str = field(choices=_metric_names)
    effect: EffectKind = "difference"
    direction: Direction = "higher"
    threshold: float | None = None
    at: float | None = field(default=None, exclusive_minimum=0.0, maximum=1.0)
    paper: float | None = None
    # False: measured and shown beside the others, left out of the claim's verdict (a metric
    # the paper did not judge, shown for comparison)
    judged: bool = True

    @property
    def bar(self) -> float:
        """The value the interval must clear: the threshold, or no effect."""
        return no_effect(self.effect) if self.threshold is None else self.threshold

    def __post_init__(self) -> None:
        if self.at is not None and not METRICS[self.metric].censored:
            raise ValueError(f"'at' applies to the *_to_target metrics, not {self.metric}")
        if self.at is None and METRICS[self.metric].training_split:
            raise ValueError(f"at: {self.metric} needs the training-split error to reach "
                             f"(e.g. at: 0.10 for 90% training accuracy)")
        if self.effect == "speedup" and self.threshold is not None and self.threshold <= 0:
            raise ValueError(f"threshold: a speedup threshold is a ratio > 0, got "
                             f"{self.threshold}")


@dataclass(frozen=True)
class Measurement:
    workload: str | dict[str, Any]
    # a registered name, or a whole method definition (a baseline at the paper's other setting)
    treatment: str | dict[str, Any] | None = field(default=None, choices=_method_names)
    control: str | dict[str, Any] | None = field(default=None, choices=_method_names)
    sizes: list[Size] = field(default_factory=lambda: list(SIZES))
    ci: dict[str, Any] = field(default_factory=dict)
    proxy: bool = False
    paper: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("sizes: give at least one of ci, full")


@dataclass(frozen=True)
class Claim:
    name: str
    paper: str
    claim: str
    treatment: str = field(choices=_method_names)
    control: str = field(choices=_method_names)
    checks: list[Check] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    settings: str = ""
    assumptions: list[str] = field(default_factory=list)
    crossover: bool = False

    def __post_init__(self) -> None:
        if not self.checks:
            raise ValueError("checks: give at least one check")
        if not any(c.judged for c in self.checks):
            raise ValueError("checks: at least one check is judged (judged: true)")
        if not self.measurements:
            raise ValueError("measurements: give at least one measurement")
        metrics = [c.metric for c in self.checks]
        for i, m in enumerate(self.measurements):
            unknown = [k for k in m.paper if k not in metrics]
            if unknown:
                raise ConfigError(f"unknown key{closest(unknown[0], metrics)}",
                                  path=("measurements", i, "paper", unknown[0]))


@dataclass(frozen=True)
class Planned:
    """One measurement of one claim at a size, resolved: what runs, or why it cannot here."""

    claim: Claim
    index: int
    workload: Workload
    treatment: MethodConfig
    control: MethodConfig
    measurement: Measurement
    not_testable: str | None = None

    @property
    def label(self) -> str:
        return f"{self.claim.name}[{self.index}]"

    @property
    def learning_rate(self) -> float | None:
        """The control's learning rate on this workload (the crossover's variable)."""
        settings = self.workload.optimizers.get(self.control.optimizer, {})
        value = {**self.control.hyperparameters, **settings}.get("lr")
        return float(value) if isinstance(value, int | float) else None

    def paper_value(self, check: Check) -> float | None:
        return self.measurement.paper.get(check.metric, check.paper)


def registry_path() -> Path:
    return Path(str(resources.files(__package__) / "claims.yaml"))


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Every claim of the registry file (default: the shipped one), validated: a bad entry is
    a :class:`ConfigError` naming the file and the key path. Measurements' workloads and
    methods are resolved here too, so a typo fails before anything runs."""
    source = str(path if path is not None else registry_path())
    body = read_yaml(source)
    if not isinstance(body, dict) or not body:
        raise ConfigError("expected a mapping of claim names to claims", source=source)
    claims, meanings, method_meanings = [], {}, {}
    for name, entry in body.items():
        if not isinstance(entry, dict):
            raise ConfigError("expected a mapping", source=source, path=(name,))
        try:
            claim = parse(Claim, {"name": name, **entry}, source=source, path=(name,))
        except ConfigError as error:
            if error.source is None:
                raise ConfigError(error.problem, source=source, path=(name, *error.path)) \
                    from None
            raise
        for size in SIZES:
            for planned in plan_claim(claim, size, source=source, check_data=False):
                _check_targets(planned, source)
                _check_one_meaning(planned, meanings, source)
                _check_one_method_meaning(planned, method_meanings, source)
        claims.append(claim)
    return claims


def _one_meaning(name: str, plain: Any, here: tuple, meanings: dict[str, Any], source: str,
                 kind: str, remedy: str) -> None:
    """``name`` stands for one ``plain`` configuration across the registry (records are kept
    and summarised by name): the first place it is defined wins, a different second one is a
    :class:`ConfigError` naming both places."""
    first, where = meanings.setdefault(name, (plain, here))
    if first != plain:
        raise ConfigError(
            f"{name!r} names two different {kind} (the other at "
            f"{'.'.join(map(str, where))}); {remedy}", source=source, path=here)


def _check_one_meaning(planned: Planned, meanings: dict[str, Any], source: str) -> None:
    """A workload name stands for one configuration across the registry, so the records of
    two settings never share a name (and a summary) in a results folder."""
    _one_meaning(planned.workload.name, to_plain(planned.workload),
                 (planned.claim.name, "measurements", planned.index, "workload"), meanings,
                 source, "configurations",
                 "give the changed one its own name (name: NEW, base: THE_REGISTERED_ONE)")


def _check_one_method_meaning(planned: Planned, meanings: dict[str, Any], source: str) -> None:
    """A method name stands for one definition: a measurement's own method may not take a
    registered method's name, nor one another measurement defines differently."""
    for role in ("treatment", "control"):
        method = getattr(planned, role)
        here = (planned.claim.name, "measurements", planned.index, role)
        if isinstance(getattr(planned.measurement, role), dict) \
                and method.name in METHODS.names():
            raise ConfigError(
                f"{method.name!r} is a registered method's name; give this definition a name of "
                "its own", source=source, path=here)
        _one_meaning(method.name, to_plain(method), here, meanings, source, "methods",
                     "give each its own name")


def _check_targets(planned: Planned, source: str) -> None:
    for i, check in enumerate(planned.claim.checks):
        if METRICS[check.metric].training_split:
            continue  # read off the training-split curves: any error level is a target
        if check.at is not None and check.at not in planned.workload.targets:
            raise ConfigError(
                f"{check.at} is not a target of {planned.workload.name} (its targets: "
                f"{planned.workload.targets})", source=source,
                path=(planned.claim.name, "checks", i, "at"))


def plan_claim(claim: Claim, size: str, *, source: str | None = None, device: str = "cpu",
               data_root: str | None = None, check_data: bool = True,
               step_cap: int | None = None) -> list[Planned]:
    """Every measurement of ``claim`` at ``size``: the workload with the size's changes (and
    ``step_cap``), its methods, and the reason it is not testable here where it is not."""
    out = []
    for i, m in enumerate(claim.measurements):
        path = (claim.name, "measurements", i)
        entry = m.workload
        if size == "ci" and m.ci:  # a smaller budget: a configuration of its own name
            base = {"name": entry} if isinstance(entry, str) else entry
            entry = {**base, "base": base.get("base", base["name"]),
                     "name": f"{base['name']}-ci", **m.ci}
        workload = resolve_workload(entry, source=source, path=(*path, "workload"))
        treatment = resolve_method(m.treatment or claim.treatment, source=source,
                                   path=(*path, "treatment"))
        control = resolve_method(m.control or claim.control, source=source,
                                 path=(*path, "control"))
        for role, method in (("treatment", treatment), ("control", control)):
            if not method.applies_to(workload.model):
                raise ConfigError(f"{method.name} does not apply to {workload.model}",
                                  source=source, path=(*path, role))
        why = None
        if size not in m.sizes:
            why = f"budget (--size {' or '.join(m.sizes)})"
        elif check_data:
            why = _missing(workload, device, data_root)
        if why is None and step_cap is not None:
            workload = cap_budget(workload, step_cap, data_root)
        out.append(Planned(claim, i, workload, treatment, control, m, why))
    return out


def _missing(workload: Workload, device: str, data_root: str | None) -> str | None:
    if workload.dataset.startswith("cifar") and not device.startswith("cuda"):
        return "needs CUDA: the paper's CIFAR budget is for a GPU (--device cuda)"
    try:
        data.check_available(workload.dataset, data_root, contents=True)
    except data.DataError as error:
        return f"data missing: {error}"
    return None


def cap_budget(workload: Workload, cap: int, data_root: str | None) -> Workload:
    """``workload`` cut to at most ``cap`` steps (a quick look, not the paper's budget), named
    ``<name>-cap<cap>`` so its records stand apart; jumps scheduled past the cap are dropped."""
    rows = _training_rows(workload.dataset, data_root, workload.val_fraction)
    per_epoch = -(-rows // min(workload.batch_size, rows))  # the last batch may be smaller
    if workload.total_steps(per_epoch) <= cap:
        return workload
    return workload.replace(name=f"{workload.name}-cap{cap}", steps=cap, epochs=None,
                            eval_every=min(workload.evaluation_period(per_epoch), cap),
                            jump_steps=[s for s in workload.jump_steps if s < cap])


@cache
def _training_rows(dataset: str, data_root: str | None, val_fraction: float) -> int:
    return len(data.load(dataset, root=data_root, seed=0, val_fraction=val_fraction).y_train)
