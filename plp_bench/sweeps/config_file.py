"""The ``plp-bench run`` configuration: which workloads, methods and seeds, where, from YAML.

A config is a small diff on the shipped definitions::

    workloads:
      - digits-mlp                          # a registered workload as it ships
      - {name: digits-cnn, epochs: 3}       # ... or with fields overridden
    methods:
      - sgd
      - {name: sgd-nesterov, optimizer: sgd, hyperparameters: {nesterov: true}}
    seeds: 3                                # or an explicit list: [0, 1, 2]
    device: cpu
    results: results
    precision: fp32                         # fp32, tf32 (CUDA) or bf16 (autocast)
    channels_last: false                    # NHWC convolutions (image models)
    compile: off                            # or a torch.compile mode: default, max-autotune, ...
    cudnn_benchmark: true                   # cuDNN autotuning on CUDA
    executor: in-process                    # or ray (plp_bench.sweeps.ray)
    address: null                           # ray: a running cluster's HOST:PORT (default: embedded)
    workers: null                           # ray: runs in flight (default: fill the cluster)
    cpus_per_run: null                      # ray: CPUs (torch threads) of each run
    gpus_per_run: null                      # ray: GPUs of each run (default 1 on cuda)
    retries: 3                              # ray: retries of a run whose worker died

``precision`` to ``cudnn_benchmark`` are :class:`~plp_bench.core.execution_settings.ExecutionSettings`; the
last five apply to ``executor: ray`` only (:class:`~plp_bench.sweeps.ray.RaySettings`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .. import workloads as workloads_module
from ..core.config import MAX_SEEDS, ConfigError, closest, field, parse, read_yaml
from ..core.execution_settings import Compile, ExecutionSettings, Precision
from ..core.record import MAX_SEED
from ..core.registry import Registry
from ..methods import catalogue as methods_module
from ..methods.catalogue import MethodConfig, check_method
from ..workloads import Workload
from .ray import RaySettings


@dataclass(frozen=True)
class RunConfig:
    workloads: list[str | dict[str, Any]] = field(default_factory=list)
    methods: list[str | dict[str, Any]] = field(default_factory=list)
    seeds: int | list[int] = 3
    device: str = "cpu"
    results: str = "results"
    data_dir: str | None = None
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool | Compile = "off"
    cudnn_benchmark: bool = True
    executor: Literal["in-process", "ray"] = "in-process"
    address: str | None = None
    workers: int | None = field(default=None, minimum=1)
    cpus_per_run: int | None = field(default=None, minimum=1)
    gpus_per_run: float | None = field(default=None, minimum=0)
    retries: int = field(default=3, minimum=0)

    def execution(self) -> ExecutionSettings:
        """The four keys above as :class:`ExecutionSettings` (flat in the file, for brevity)."""
        return ExecutionSettings(**{f.name: getattr(self, f.name)
                                    for f in dataclasses.fields(ExecutionSettings)})


@dataclass(frozen=True)
class Plan:
    workloads: list[Workload]
    methods: list[MethodConfig]
    seeds: list[int]
    device: str
    results: str
    data_dir: str | None
    settings: ExecutionSettings = ExecutionSettings()
    ray: RaySettings | None = None  # None: the runs happen in this process


def _registered(registry: Registry, name: str, *, source: str | None, path: tuple):
    """``registry.get(name)``, with an unknown name reported as a :class:`ConfigError`."""
    if name not in registry:
        raise ConfigError(f"unknown {registry.kind} {name!r}{closest(name, registry.names())}",
                          source=source, path=path)
    return registry.get(name)


def resolve_workload(entry: str | dict, *, source: str | None = None, path: tuple = ()) -> Workload:
    """A workload entry of a config: a registered name, or a mapping of changes to one
    (``base`` names the one changed when ``name`` is new)."""
    if isinstance(entry, str):
        return _registered(workloads_module.WORKLOADS, entry, source=source, path=path)
    if "name" not in entry:
        raise ConfigError("a workload mapping needs a 'name'", source=source, path=path)
    name = entry["name"]
    base = entry.get("base", name)
    changes = {k: v for k, v in entry.items() if k not in ("base",)}
    if base in workloads_module.WORKLOADS:
        return workloads_module.override(workloads_module.get(base), changes, source=source,
                                         path=path)
    if "base" in entry:
        _registered(workloads_module.WORKLOADS, base, source=source, path=(*path, "base"))
    return workloads_module.parse_workload({k: v for k, v in changes.items() if k != "name"},
                                           name=name, source=source, path=path)


def resolve_method(entry: str | dict, *, source: str | None = None, path: tuple = ()) -> MethodConfig:
    """A method entry of a config: a registered name, or a whole method definition."""
    if isinstance(entry, str):
        return _registered(methods_module.METHODS, entry, source=source, path=path)
    method = parse(MethodConfig, entry, source=source, path=path)
    return check_method(method, source=source, path=path)


def resolve(config: RunConfig, *, source: str | None = None) -> Plan:
    """Turn names and diffs into validated workloads and methods. No workloads means the
    offline ones (the embedded default); no methods means every method registered for the
    default run."""
    workload_entries = config.workloads or workloads_module.offline_workloads()
    method_entries = config.methods or methods_module.default_methods()
    workloads = [resolve_workload(e, source=source, path=("workloads", i))
                 for i, e in enumerate(workload_entries)]
    methods = [resolve_method(e, source=source, path=("methods", i))
               for i, e in enumerate(method_entries)]
    for kind, items in (("workloads", workloads), ("methods", methods)):
        names = [x.name for x in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"listed twice: {', '.join(duplicates)}", source=source,
                              path=(kind,))
    if isinstance(config.seeds, int):
        if config.seeds < 1:
            raise ConfigError(f"{config.seeds} is below the minimum 1", source=source,
                              path=("seeds",))
        if config.seeds > MAX_SEEDS:
            raise ConfigError(f"{config.seeds} is above the maximum {MAX_SEEDS}", source=source,
                              path=("seeds",))
        seeds = list(range(config.seeds))
    else:
        seeds = list(config.seeds)
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ConfigError("give distinct non-negative seeds", source=source, path=("seeds",))
        if len(seeds) > MAX_SEEDS or max(seeds) > MAX_SEED:
            raise ConfigError(f"at most {MAX_SEEDS} seeds, each at most {MAX_SEED}",
                              source=source, path=("seeds",))
    return Plan(workloads, methods, seeds, config.device, config.results, config.data_dir,
                config.execution(), ray_settings(config, source))


RAY_KEYS = ("address", "workers", "cpus_per_run", "gpus_per_run", "retries")
# run-config keys whose command-line flag is not --<key>
FLAGS = {"workloads": "--workload", "methods": "--method", "cudnn_benchmark": "--no-cudnn-benchmark"}


def ray_settings(config: RunConfig, source: str | None = None) -> RaySettings | None:
    """The Ray settings of ``executor: ray``; a Ray key given with the in-process executor is
    refused (it would silently do nothing)."""
    if config.executor == "ray":
        return RaySettings(**{key: getattr(config, key) for key in RAY_KEYS})
    default = RunConfig()
    for key in RAY_KEYS:
        if getattr(config, key) != getattr(default, key):
            raise ConfigError("applies to --executor ray (executor: ray) only; the in-process "
                              "executor runs one run at a time in this process",
                              source=source, path=(key,))
    return None


def load_run_config(path: str | None, **overrides: Any) -> tuple[RunConfig, str | None]:
    """Read a run config file (or start empty) and apply the command-line ``overrides``."""
    body: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(path)
        if data is None or data == {}:
            # a wrong path or an unsaved buffer, far more often than a wish for the default
            raise ConfigError("is empty: it sets nothing (run without a file for the default "
                              "job, or give workloads, methods or other run settings)",
                              source=path)
        if not isinstance(data, dict):
            raise ConfigError("expected a mapping of run settings", source=path)
        body = data
        parse(RunConfig, body, source=path)  # the file alone: its mistakes are its own
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return parse(RunConfig, {**body, **given}, source=path), path
    except ConfigError as error:
        key = error.path[0] if error.path else None
        if key not in given:
            raise
        # the file alone was valid: the value came from the command line, so name its flag
        raise ConfigError(error.problem, path=(FLAGS.get(key, f"--{key.replace('_', '-')}"),
                                               *error.path[1:])) from None
