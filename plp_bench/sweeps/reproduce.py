"""Rerun a record: rebuild its workload and method from the config it stores, train again
with its seed, and say whether every deterministic field came out the same.

Compared exactly (bit for bit): the config hash, the curves (steps, epochs, losses, errors),
the steps and epoch at which each target was reached, the divergence, the best model's step,
validation loss and test metrics, the accuracy at fixed epochs and the method's details. Not
compared: anything measured in seconds (the clock is not reproducible) and the environment,
whose differences (versions, commit, device) are listed because they explain a mismatch. On
the CPU the same seed reproduces a record exactly at the same torch thread count (a reduction
split over threads may round differently), so a CPU record is rerun at the thread count it
stores: a record made by a one-thread Ray worker reruns at one thread here. CUDA kernels need
not reproduce.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.config import ConfigError, parse
from ..core.execution_settings import ExecutionSettings
from ..core.record import RunResult, load
from ..methods.catalogue import MethodConfig, check_method
from ..runs.entry import run
from ..workloads import Workload, parse_workload

ENVIRONMENT_FIELDS = ("plp_bench", "commit", "torch", "numpy", "scipy", "python", "device",
                      "device_name", "threads")


@dataclass(frozen=True)
class Difference:
    field: str
    recorded: Any
    rerun: Any


def rebuild(record: RunResult, source: str
            ) -> tuple[Workload, MethodConfig, ExecutionSettings]:
    """The workload, method and execution settings a record was made with, validated like a
    config file (a record without settings ran with the defaults)."""
    config = record.config
    try:
        body = dict(config["workload"])
        name = body.pop("name")
        workload = parse_workload(body, name=name, source=source, path=("config", "workload"))
        method = parse(MethodConfig, config["method"], source=source, path=("config", "method"))
        settings = parse(ExecutionSettings, config.get("settings") or {}, source=source,
                         path=("config", "settings"))
    except (KeyError, TypeError) as error:
        raise ConfigError(f"the record's config is incomplete ({error})", source=source,
                          path=("config",)) from None
    method = check_method(method, source=source, path=("config", "method"))
    return workload, method, settings


def _without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def deterministic_fields(record: RunResult) -> dict[str, Any]:
    """The fields a rerun must reproduce exactly, flattened to one level."""
    data = asdict(record)
    fields = {f"curves.{k}": v for k, v in data["curves"].items() if k != "train_seconds"}
    fields["targets"] = [{"target": t["target"], "steps": t["steps"], "epoch": t["epoch"]}
                         for t in data["targets"]]
    for key in ("config_hash", "steps_run", "diverged", "diverged_at_step", "best_epoch",
                "best_step", "best_val_loss", "best_test", "test_accuracy_at_epochs"):
        fields[key] = data[key]
    fields["details"] = _without_clock(data["details"])
    return fields


def _same(a: Any, b: Any) -> bool:
    """Exact equality as the record stores it: JSON text, where a float is written with every
    digit it has (and NaN equals NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def differences(recorded: RunResult, rerun: RunResult) -> list[Difference]:
    old, new = deterministic_fields(recorded), deterministic_fields(rerun)
    return [Difference(k, old[k], new[k]) for k in old if not _same(old[k], new[k])]


def environment_changes(recorded: RunResult, rerun: RunResult) -> list[Difference]:
    return [Difference(k, recorded.environment.get(k), rerun.environment.get(k))
            for k in ENVIRONMENT_FIELDS
            if recorded.environment.get(k) != rerun.environment.get(k)]


def rerun_record(path: str | Path, *, device: str | None = None, data_root: str | None = None
                 ) -> tuple[RunResult, RunResult]:
    """Load (checksum verified) and rerun the record at ``path``; returns (recorded, rerun)."""
    recorded = load(path)
    workload, method, settings = rebuild(recorded, str(path))
    device = device or recorded.device
    threads = torch.get_num_threads()
    recorded_threads = recorded.environment.get("threads")
    if device == "cpu" and isinstance(recorded_threads, int) and recorded_threads >= 1:
        torch.set_num_threads(recorded_threads)
    try:
        fresh = run(workload, method, recorded.seed, device, settings=settings,
                    data_root=data_root)
    finally:
        torch.set_num_threads(threads)
    return recorded, fresh
