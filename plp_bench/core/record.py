"""The run record: plain data, JSON on disk, written atomically.

A record holds the config it was produced from (and its hash, which names the file and lets a
sweep skip finished work), the environment, the curves, the steps and seconds to each target
(``None`` when not reached), the best-validation-loss model's test metrics and the divergence
flag. Every number a benchmark tracks from it is lower-is-better.

On disk (schema 3) a record also carries ``checksum``: the SHA-256 of its canonical JSON (sorted
keys, no whitespace) without that field. Reading recomputes it, so a truncated, corrupted or
hand-edited file is refused by name instead of being averaged in. Schema 2 is schema 3 without
the curves scored on the training split (``Curves.train_error``, ``train_scored_loss``): it is
read, with those curves empty, and a claim that needs them says so. Schema 1 (no checksum) is
refused by name: nothing in such a file proves it was written by a run rather than by hand,
so it is rerun rather than believed. Any other version is refused.

A record whose checksum holds is then validated field by field, as a run config is: every
field of its type and in its range (a seed is an integer >= 0, an error rate lies in [0, 1],
the curves have one entry per evaluation, names are plain names, a commit is a plain token),
the environment and config fields the harness reads likewise, the file at most
``MAX_RECORD_BYTES`` and nested at most ``MAX_DEPTH`` deep. So a record that reaches a report,
a path, a thread count or a seed has been checked; one that fails names its file and field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, field, parse, shown

SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)  # see the module
MAX_RECORD_BYTES = 64 * 2**20  # a long run's record is well under 1 MB
MAX_DEPTH = 32  # nesting of a record's JSON (the harness writes at most about 8)
MAX_SEED = 2**63 - 1
MAX_THREADS = 4096
# workload and method names (letters, digits, _ . + -), a commit (a hash, or a token such as
# a branch name: never a path), a device, a config hash
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}")
COMMIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEVICE = re.compile(r"cpu|cuda(:[0-9]{1,3})?")
HASH = re.compile(r"[0-9a-f]{16}")


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


# training rows scored at each evaluation: the whole training split up to this many rows, else
# this many drawn once per run (seeded); what a record scored is in its config's ``resolved``
TRAIN_SCORED_MAX_ROWS = 10_000


@dataclass
class Curves:
    """One entry per evaluation (the first at step 0, before any update); ``None`` for a loss
    that was not finite (or, at step 0, a training loss not yet measured).

    ``train_loss`` is the mean of the mini-batch losses since the last evaluation (what the
    training saw, at the weights of each step). ``train_error`` and ``train_scored_loss`` score
    the model at the evaluation on the training split (whole up to
    ``TRAIN_SCORED_MAX_ROWS`` rows, else a fixed seeded subset of that many): the training
    accuracy papers report. Records written before they existed hold them empty."""

    step: list[int] = field(default_factory=list, minimum=0)
    epoch: list[float] = field(default_factory=list, minimum=0)
    train_seconds: list[float] = field(default_factory=list, minimum=0)
    train_loss: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list, minimum=0, maximum=1)
    val_top5_error: list[float] = field(default_factory=list, minimum=0, maximum=1)
    train_error: list[float] = field(default_factory=list, minimum=0, maximum=1)
    train_scored_loss: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        lengths = {f.name: len(getattr(self, f.name)) for f in dataclasses.fields(self)
                   if f.name not in TRAINING_SPLIT_CURVES or getattr(self, f.name)}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the curves have one entry per evaluation; their lengths "
                             f"differ: {lengths}")


# scored on the training split, absent (empty) from records of schema 2
TRAINING_SPLIT_CURVES = ("train_error", "train_scored_loss")


@dataclass
class TargetResult:
    target: float = field(minimum=0, maximum=1)
    steps: int | None = field(default=None, minimum=0)
    seconds: float | None = field(default=None, minimum=0)
    epoch: float | None = field(default=None, minimum=0)

    @property
    def reached(self) -> bool:
        return self.steps is not None


@dataclass
class TestMetrics:
    accuracy: float = field(minimum=0, maximum=1)
    error: float = field(minimum=0, maximum=1)
    top5_error: float = field(minimum=0, maximum=1)
    loss: float = field()


@dataclass
class RunResult:
    workload: str
    method: str
    seed: int = field(minimum=0, maximum=MAX_SEED)
    device: str = field()
    config: dict[str, Any] = field()
    config_hash: str = field()
    environment: dict[str, Any] = field()
    curves: Curves = field()
    targets: list[TargetResult] = field()
    steps_run: int = field(minimum=0)
    train_seconds: float = field(minimum=0)
    wall_seconds: float = field(minimum=0)
    diverged: bool = False
    diverged_at_step: int | None = field(default=None, minimum=0)
    best_epoch: float | None = field(default=None, minimum=0)
    best_step: int | None = field(default=None, minimum=0)
    best_val_loss: float | None = None
    best_test: TestMetrics | None = None
    test_accuracy_at_epochs: dict[str, float] = field(default_factory=dict, minimum=0,
                                                      maximum=1)
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
        """Rebuild a record: its checksum verified (schema 2 or 3), then every
        field validated (see the module); a :class:`ResultError` naming the field otherwise."""
        if not isinstance(data, Mapping) or "schema_version" not in data:
            raise ResultError("not a run record (no schema_version)")
        _check_depth(data)
        version = data["schema_version"]
        if version == 1:
            raise ResultError("schema version 1 (no checksum): nothing in the file proves a "
                              "run wrote it, so it is not read; rerun its cell")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise ResultError(f"schema version {shown(version)}; this harness reads "
                              f"{' and '.join(map(str, READABLE_VERSIONS))}"
                              + (" (written by a newer plp-bench?)"
                                                     if isinstance(version, int)
                                                     and not isinstance(version, bool)
                                                     and version > SCHEMA_VERSION else ""))
        stored = data.get("checksum")
        if stored is None:
            raise ResultError(f"no checksum: not a complete record of schema {version}")
        try:
            actual = checksum(data)
        except (TypeError, ValueError, RecursionError) as err:
            raise ResultError(f"not a run record ({type(err).__name__})") from None
        if stored != actual:
            raise ResultError("checksum mismatch: the file was edited or corrupted after it "
                              "was written")
        body = {k: v for k, v in data.items() if k != "checksum"}
        try:
            record = parse(cls, body)
            _check_fields(record)
            if version == 2 and any(getattr(record.curves, name)
                                    for name in TRAINING_SPLIT_CURVES):
                raise ConfigError("a schema 2 record has no curves scored on the training "
                                  "split", path=("curves",))
            return record
        except ConfigError as err:
            where = ".".join(str(p) for p in err.path) or "(top level)"
            raise ResultError(f"{where}: {err.problem}") from None


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


def workload_identity(record: RunResult) -> str:
    """Six hex digits naming the workload configuration a record ran (its budget, targets,
    batch size, ...), the same for every method and seed of it."""
    workload = record.config.get("workload")
    return config_hash({"workload": workload})[:6]


def _identities(records: list[RunResult]) -> dict[str, set[str]]:
    """``label -> the workload configurations`` among ``records`` (:func:`variant_label`,
    :func:`workload_identity`)."""
    identities: dict[str, set[str]] = {}
    for r in records:
        identities.setdefault(variant_label(r), set()).add(workload_identity(r))
    return identities


def group_runs(records: Iterable[RunResult]) -> dict[str, dict[str, list[RunResult]]]:
    """``grouped[label][method]``: the records of each point, in the order given, by
    :func:`variant_label`. Records under one label that ran different workload
    configurations (a name reused with other steps or targets) are never pooled: each
    configuration's label gets ``#`` and its :func:`workload_identity`."""
    records = list(records)
    shared = {label for label, ids in _identities(records).items() if len(ids) > 1}
    grouped: dict[str, dict[str, list[RunResult]]] = {}
    for r in records:
        label = variant_label(r)
        if label in shared:
            label = f"{label}#{workload_identity(r)}"
        grouped.setdefault(label, {}).setdefault(r.method, []).append(r)
    return grouped


def shared_names(records: Iterable[RunResult]) -> dict[str, int]:
    """Labels that hold records of more than one workload configuration, with how many."""
    return {label: len(ids) for label, ids in sorted(_identities(list(records)).items())
            if len(ids) > 1}


def save(result: RunResult, path: str | os.PathLike[str]) -> Path:
    return write_json_atomic(path, result.to_dict())


def load(path: str | os.PathLike[str]) -> RunResult:
    """Read a record; a :class:`ResultError` naming the file when it cannot be used."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise ResultError(f"{path}: {size} bytes; a run record is at most "
                              f"{MAX_RECORD_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad JSON or bytes that are not UTF-8
        raise ResultError(f"{path}: unreadable run record ({err})") from None
    except RecursionError:
        raise ResultError(f"{path}: unreadable run record (nested deeper than "
                          f"{MAX_DEPTH})") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: not a run record")
    try:
        return RunResult.from_dict(data)
    except ResultError as err:
        raise ResultError(f"{path}: {err}") from None


def _check_fields(record: RunResult) -> None:
    """What types alone do not say of a record read from disk: plain names, a device, its
    hash's form, at least one target and the same targets as its workload, and the
    environment and config fields the harness reads (a :class:`ConfigError` at the field)."""
    for key, pattern, what in (("workload", NAME, "a workload name"),
                               ("method", NAME, "a method name"),
                               ("device", DEVICE, "cpu or cuda[:N]"),
                               ("config_hash", HASH, "16 hexadecimal digits")):
        value = getattr(record, key)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(f"{shown(value)} is not {what}", path=(key,))
    if not record.targets:
        raise ConfigError("a record has at least one target", path=("targets",))
    workload = record.config.get("workload")
    declared = workload.get("targets") if isinstance(workload, dict) else None
    if declared is not None and [t.target for t in record.targets] != declared:
        raise ConfigError(f"the targets {[t.target for t in record.targets]} are not those "
                          f"of the record's workload ({shown(declared)})", path=("targets",))
    _check_environment(record.environment)
    _check_config(record.config)


def _check_depth(data: Any) -> None:
    """A :class:`ResultError` when ``data`` nests deeper than ``MAX_DEPTH`` (checked without
    recursion, so any depth is refused by name)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ResultError(f"nested deeper than {MAX_DEPTH}: not a run record")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _check_environment(environment: dict[str, Any]) -> None:
    """The environment fields the harness reads: a commit that is a plain token (it names a
    report's folder), a thread count a rerun may set, a placement a report may label."""
    def bad(key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{shown(value)} is not allowed; allowed: {allowed}",
                           path=("environment", key))

    commit = environment.get("commit")
    if commit is not None and (not isinstance(commit, str) or not COMMIT.fullmatch(commit)):
        raise bad("commit", commit, "null or a commit: letters, digits, _ . - (64 at most)")
    for key, top in (("threads", MAX_THREADS), ("cpu_count", 1 << 20)):
        value = environment.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 1 <= value <= top):
            raise bad(key, value, f"null or an integer in [1, {top}]")
    for key in ("date", "device", "device_name", "plp_bench", "torch", "python", "platform"):
        value = environment.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            raise bad(key, value, "null or a text of 200 characters at most")
    executor = environment.get("executor")
    if executor is not None:
        if not isinstance(executor, dict):
            raise bad("executor", executor, "null or a mapping")
        workers = executor.get("workers")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                    or not 1 <= workers <= 1 << 20):
            raise ConfigError(f"{shown(workers)} is not a number of workers >= 1",
                              path=("environment", "executor", "workers"))
        gpus = executor.get("gpus_per_run")
        if gpus is not None and (not isinstance(gpus, int | float) or isinstance(gpus, bool)
                                 or not 0 <= gpus <= 1024):
            raise ConfigError(f"{shown(gpus)} is not a share of GPUs in [0, 1024]",
                              path=("environment", "executor", "gpus_per_run"))
        name = executor.get("name")
        if name is not None and (not isinstance(name, str) or not NAME.fullmatch(name)):
            raise ConfigError(f"{shown(name)} is not an executor name",
                              path=("environment", "executor", "name"))


def _check_config(config: dict[str, Any]) -> None:
    """The config fields a report reads without rebuilding the run: the execution settings
    (they label the record's group) and the workload's name and seed."""
    from .execution_settings import ExecutionSettings

    settings = config.get("settings")
    if settings is not None:
        parse(ExecutionSettings, settings, path=("config", "settings"))
    for key in ("workload", "method"):
        part = config.get(key)
        if part is not None and not isinstance(part, dict):
            raise ConfigError(f"{shown(part)} is not a mapping", path=("config", key))
    seed = config.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)
                             or not 0 <= seed <= MAX_SEED):
        raise ConfigError(f"{shown(seed)} is not a seed in [0, 2**63 - 1]",
                          path=("config", "seed"))


def record_path(results_dir: str | os.PathLike[str], workload: str, method: str, seed: int,
                digest: str) -> Path:
    return Path(results_dir) / workload / method / f"seed-{seed}-{digest}.json"
