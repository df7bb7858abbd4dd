"""``plp-bench introspection train``: the introspection network trained from real weight
histories, as in section 4.1 of Sinha et al. (ICLR 2017).

1. Train the reference network N0 (``n0``, the paper's section 3.1 network; Adam, learning rate
   1e-4, batch 50) through the harness's own loop (:func:`plp_bench.runs.training.train`) with a
   ``record-history`` wrapper that records a random pool of its scalar weights on a grid of
   steps. MNIST is read from the data root; only when it is absent are scikit-learn's 8x8
   digits used instead, upsampled to 28x28 (bilinear), and the record says so.
2. Split the pool's weights into training and held-out validation weights, and sample
   ``(w at 0, 0.4t, 0.7t, t) -> w at ratio * t`` examples from each
   (:func:`plp_baselines.introspection.histories.sample_examples`).
3. Train ``I`` (40 ReLU units) and its linear variant on the same examples
   (:mod:`plp_baselines.introspection.fitting`) and measure both, and the no-change predictor, on
   both example sets in the paper's units.
4. Write the nets' state dicts with the held-out validation examples (``torch.save``; read back
   with ``weights_only=True``) and, next to it, a JSON record of the command, settings, seed,
   data and metrics. Both files are written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from plp_baselines.introspection.fitting import FitSettings, fit, l1_error, net_error
from plp_baselines.introspection.histories import (
    PAPER_STRATA,
    Examples,
    WeightHistoryRecorder,
    sample_examples,
    split_pool,
)
from plp_baselines.introspection.net import SHIPPED, IntrospectionNet

from .. import data, workloads
from ..core import environment
from ..core.record import write_json_atomic
from ..data import Dataset
from ..data.files import CATALOG
from ..methods.catalogue import ComponentConfig, MethodConfig
from ..runs import training
from ..runs.protocol import Progress

REFERENCE_WORKLOAD = "mnist-n0"


@dataclass(frozen=True)
class PipelineSettings:
    seed: int = 0
    n0_steps: int = 10000  # jumps read t <= n0_steps / ratio: 5000, MNIST_1's last jump
    n0_lr: float = 1e-4  # the paper's N0: Adam, learning rate 1e-4, batch 50
    n0_batch_size: int = 50
    pool_size: int = 20000
    record_every: int = 10
    ratio: float = 2.0
    train_examples: int = 100000
    val_examples: int = 10000
    val_fraction: float = 0.2  # of the pool's weights, held out before sampling
    strata: tuple[tuple[float, float], ...] = PAPER_STRATA
    hidden: int = 40
    fit: FitSettings = field(default_factory=FitSettings)


@dataclass
class PipelineResult:
    nets: dict[str, IntrospectionNet]
    validation: Examples
    record: dict[str, Any]


def upsampled_digits(root: str | None, seed: int) -> Dataset:
    """scikit-learn's 8x8 digits, bilinearly upsampled to MNIST's 28x28 (the fallback N0 data)."""
    digits = data.load("digits", root=root, seed=seed)

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)

    return dataclasses.replace(
        digits, x_train=up(digits.x_train), x_val=up(digits.x_val), x_test=up(digits.x_test),
        input_shape=(1, 28, 28), source=f"{digits.source} (8x8 upsampled to 28x28, bilinear)")


def reference_data(root: str | None, seed: int) -> tuple[str, Dataset]:
    try:
        data.check_available("mnist", root)
    except data.DataError:
        return "digits", upsampled_digits(root, seed)
    return "mnist", data.load("mnist", root=root, seed=seed)


def data_record(name: str, dataset: Dataset, root: str | None) -> dict[str, Any]:
    """What N0 was trained on, independent of where the files lie: the splits and, for
    files read from the data root, each file's md5 (the checksums ``data fetch`` verifies)."""
    described = dataset.describe()
    if name != "mnist":
        return {"name": name, **described}
    folder = data.data_root(root) / CATALOG["mnist"].subdir
    files = {}
    for spec in CATALOG["mnist"].files:
        path = next(p for p in (folder / spec.filename, folder / spec.filename.removesuffix(".gz"))
                    if p.is_file())
        files[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return {"name": name, **described, "source": "MNIST under the data root", "files": files}


def train_pipeline(settings: PipelineSettings, *, data_root: str | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> PipelineResult:
    """Steps 1-3 above; ``progress(stage, done, total)`` is told how far each stage is."""
    dataset_name, dataset = reference_data(data_root, settings.seed)
    workload = workloads.override(workloads.get(REFERENCE_WORKLOAD), {
        "dataset": dataset_name, "steps": settings.n0_steps,
        "batch_size": settings.n0_batch_size, "eval_every": max(1, settings.n0_steps // 10)})
    method = MethodConfig(
        name="n0-adam", optimizer="adam", hyperparameters={"lr": settings.n0_lr},
        wrappers=[ComponentConfig("record-history", {"pool_size": settings.pool_size,
                                                     "every": settings.record_every})])
    recorders: list[WeightHistoryRecorder] = []

    def on_progress(p: Progress) -> None:
        if progress is not None:
            progress("N0", p.step, p.total_steps)

    n0 = training.train(workload, method, settings.seed, "cpu", dataset=dataset,
                        callback=on_progress, method_built=recorders.append)
    steps, values = recorders[0].histories()
    train_cols, val_cols = split_pool(values.shape[1], settings.val_fraction, settings.seed)
    common = {"ratio": settings.ratio, "strata": settings.strata}
    train = sample_examples(steps, values, train_cols, count=settings.train_examples,
                            seed=settings.seed, **common)
    val = sample_examples(steps, values, val_cols, count=settings.val_examples,
                          seed=settings.seed + 1, **common)
    nets, metrics = {}, {}
    for name, linear in SHIPPED.items():
        torch.manual_seed(settings.seed)
        net = IntrospectionNet(hidden=settings.hidden, linear=linear, ratio=settings.ratio)

        def on_fit(step: int, loss: float, name: str = name) -> None:
            if progress is not None:
                progress(name, step, settings.fit.steps)

        curve = fit(net, train, settings.fit, progress=on_fit)
        nets[name] = net
        metrics[name] = {"train_l1": net_error(net, train), "val_l1": net_error(net, val),
                         "curve": curve}
    metrics["no-change"] = {
        "train_l1": l1_error(train.no_change_targets(), train.targets),
        "val_l1": l1_error(val.no_change_targets(), val.targets)}
    record = {
        "settings": _plain(dataclasses.asdict(settings)),
        "data": data_record(dataset_name, dataset, data_root),
        "n0": {"workload": workload.name, "model": workload.model,
               "steps": n0.steps_run, "train_seconds": n0.train_seconds,
               "val_error_curve": list(zip(n0.curves.step, n0.curves.val_error, strict=True)),
               "final_val_error": n0.curves.val_error[-1],
               "recorded_weights": int(values.shape[1]), "records": int(values.shape[0])},
        "examples": {"train": len(train), "val": len(val),
                     "train_weights": len(train_cols), "val_weights": len(val_cols)},
        "metrics_paper_units": metrics,
        "environment": environment.describe(torch.device("cpu")),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return PipelineResult(nets, val, record)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def save(result: PipelineResult, out: str | os.PathLike[str], command: str) -> tuple[Path, Path]:
    """Write ``out`` (state dicts + validation examples) and ``out`` with ``.json`` (the
    record); each atomically, the weights first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    contents = {
        "nets": {name: {"settings": net.settings(), "state_dict": net.state_dict()}
                 for name, net in result.nets.items()},
        "validation": {"inputs": result.validation.inputs.clone(),
                       "targets": result.validation.targets.clone()},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        torch.save(contents, tmp)
        os.chmod(tmp, 0o644)  # package data: readable by everyone, like the sources
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    record_path = out.with_suffix(".json")
    write_json_atomic(record_path, {"command": command, "weights_file": out.name,
                                    **result.record})
    os.chmod(record_path, 0o644)
    return out, record_path
