"""The run record: plain data, JSON on disk, written atomically.

A record holds the config it was produced from (and its hash, which names the file and lets a
sweep skip finished work), the environment, the curves, the steps and seconds to each target
(``None`` when not reached), the best-validation-loss model's test metrics and the divergence
flag. Every number a benchmark tracks from it is lower-is-better.

On disk (schema 2) a record also carries ``checksum``: the SHA-256 of its canonical JSON (sorted
keys, no whitespace) without that field. Reading recomputes it, so a truncated, corrupted or
hand-edited file is refused by name instead of being averaged in. Schema 1 files (no checksum)
are migrated on reading: the fields are the same, so they load unchanged and are written as
schema 2 the next time they are saved. Any other version is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
MIGRATABLE_VERSIONS = (1,)  # schemas read by migration (same fields, no checksum)


class ResultError(ValueError):
    """A record file that cannot be used: unreadable, truncated, edited, or of another schema."""


def checksum(data: dict[str, Any]) -> str:
    """SHA-256 of a record's canonical JSON, leaving out its ``checksum`` field."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a config (canonical JSON, sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Curves:
    """One entry per evaluation (the first at step 0, before any update)."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    train_loss: list[float | None] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    val_top5_error: list[float] = field(default_factory=list)


@dataclass
class TargetResult:
    target: float
    steps: int | None = None
    seconds: float | None = None
    epoch: float | None = None

    @property
    def reached(self) -> bool:
        return self.steps is not None


@dataclass
class TestMetrics:
    accuracy: float
    error: float
    top5_error: float
    loss: float


@dataclass
class RunResult:
    workload: str
    method: str
    seed: int
    device: str
    config: dict[str, Any]
    config_hash: str
    environment: dict[str, Any]
    curves: Curves
    targets: list[TargetResult]
    steps_run: int
    train_seconds: float
    wall_seconds: float
    diverged: bool = False
    diverged_at_step: int | None = None
    best_epoch: float | None = None
    best_step: int | None = None
    best_val_loss: float | None = None
    best_test: TestMetrics | None = None
    test_accuracy_at_epochs: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # method-specific, plain JSON
    schema_version: int = SCHEMA_VERSION

    def target(self, threshold: float) -> TargetResult:
        for t in self.targets:
            if t.target == threshold:
                return t
        raise KeyError(threshold)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data, with its ``checksum``."""
        data = dataclasses.asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        data["checksum"] = checksum(data)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Rebuild a record, verifying its checksum (schema 2) or migrating it (schema 1)."""
        if "schema_version" not in data:
            raise ResultError("not a run record (no schema_version)")
        version = data["schema_version"]
        if version == SCHEMA_VERSION:
            stored = data.get("checksum")
            if stored is None:
                raise ResultError("no checksum: not a complete record of schema "
                                  f"{SCHEMA_VERSION}")
            try:
                actual = checksum(data)
            except (TypeError, ValueError) as err:
                raise ResultError(f"not a run record ({err})") from None
            if stored != actual:
                raise ResultError("checksum mismatch: the file was edited or corrupted after "
                                  "it was written")
        elif version not in MIGRATABLE_VERSIONS:
            readable = ", ".join(map(str, (*MIGRATABLE_VERSIONS, SCHEMA_VERSION)))
            raise ResultError(f"schema version {version!r}; this harness reads {readable}"
                              + (" (written by a newer plp-bench?)" if isinstance(version, int)
                                 and version > SCHEMA_VERSION else ""))
        try:
            data = {k: v for k, v in data.items() if k != "checksum"}
            data["schema_version"] = SCHEMA_VERSION
            data["curves"] = Curves(**data["curves"])
            data["targets"] = [TargetResult(**t) for t in data["targets"]]
            if data.get("best_test") is not None:
                data["best_test"] = TestMetrics(**data["best_test"])
            return cls(**data)
        except (KeyError, TypeError) as err:
            raise ResultError(f"not a run record ({err})") from None


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mode: int | None = None
                      ) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder, fsync, rename
    (with permission bits ``mode`` when given).

    A reader sees either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, mode: int | None = None
                      ) -> Path:
    """``data`` as indented JSON (no NaN), written atomically (:func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n", mode=mode)


def variant_label(record: RunResult) -> str:
    """The workload as reports group it: its name, then ``+device`` when that is not the CPU,
    ``+setting`` for each execution setting that differs from the defaults, and how the run was
    placed when that was not this process (``+ray+workers-2+threads-1``: runs in flight beside
    it and its torch threads), e.g. ``cifar100-resnet18+cuda+bf16+channels_last``. Records that
    differ in these are never pooled, and every method of a group shares them, so speedups and
    timings compare like with like."""
    from .execution_settings import ExecutionSettings

    parts = [record.workload]
    if record.device != "cpu":
        parts.append(record.device)
    settings = record.config.get("settings") if isinstance(record.config, dict) else None
    if isinstance(settings, dict):
        parts += ExecutionSettings(**settings).tags()
    executor = record.environment.get("executor") if isinstance(record.environment,
                                                                dict) else None
    if isinstance(executor, dict):
        parts += placement_tags(executor, record.environment.get("threads"))
    return "+".join(parts)


def placement_tags(executor: dict[str, Any], threads: Any) -> list[str]:
    """Short words for where a run ran (a record's ``environment.executor``): the executor, the
    runs in flight beside it, its threads, and a share of a GPU when it had one."""
    tags = [str(executor.get("name", "executor")), f"workers-{executor.get('workers')}",
            f"threads-{threads}"]
    gpus = executor.get("gpus_per_run") or 0
    if gpus not in (0, 1):
        tags.append(f"gpus-{gpus:g}")
    return tags


def group_runs(records: Iterable[RunResult]) -> dict[str, dict[str, list[RunResult]]]:
    """``grouped[label][method]``: the records of each point, in the order given, by
    :func:`variant_label`."""
    grouped: dict[str, dict[str, list[RunResult]]] = {}
    for r in records:
        grouped.setdefault(variant_label(r), {}).setdefault(r.method, []).append(r)
    return grouped


def save(result: RunResult, path: str | os.PathLike[str]) -> Path:
    return write_json_atomic(path, result.to_dict())


def load(path: str | os.PathLike[str]) -> RunResult:
    """Read a record; a :class:`ResultError` naming the file when it cannot be used."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad JSON or bytes that are not UTF-8
        raise ResultError(f"{path}: unreadable run record ({err})") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: not a run record")
    try:
        return RunResult.from_dict(data)
    except ResultError as err:
        raise ResultError(f"{path}: {err}") from None


def record_path(results_dir: str | os.PathLike[str], workload: str, method: str, seed: int,
                digest: str) -> Path:
    return Path(results_dir) / workload / method / f"seed-{seed}-{digest}.json"
