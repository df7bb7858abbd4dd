"""The in-memory dataset every workload trains on, and how raw arrays become one.

Protocol (the PLP paper's): the validation split is ``val_fraction`` (20%) of the training set,
chosen by a permutation seeded with the run's seed. Sets with no official test split (the UCI
sets) first get a test split of ``TEST_FRACTION`` by a permutation seeded with
``test_split_seed`` (fixed by default, so every run is scored on the same held-out rows).
Features are standardised with the mean and standard deviation of the training split only:
per feature for tabular data, per channel for images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

TEST_FRACTION = 0.2


@dataclass(frozen=True)
class RawData:
    """Arrays as read from the files, before splitting and standardising."""

    x: np.ndarray  # training (or all) rows; images NCHW
    y: np.ndarray
    num_classes: int
    source: str
    x_test: np.ndarray | None = None  # official test split, if the dataset has one
    y_test: np.ndarray | None = None


@dataclass
class Dataset:
    """Train / validation / test tensors on one device, plus what is needed to reproduce them."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    splits: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, list[float]] = field(default_factory=dict)
    source: str = ""

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def describe(self) -> dict[str, Any]:
        """Plain-data summary stored in every run record."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "sizes": {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)},
            "splits": dict(self.splits),
            "normalization": dict(self.normalization),
            "source": self.source,
        }


def seeded_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept, held_out)`` with ``round(fraction * n)`` held out, chosen by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).numpy()
    n_held = round(fraction * n)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def _standardise(x_train: np.ndarray, *others: np.ndarray) -> tuple[list[np.ndarray], dict]:
    axes = (0,) if x_train.ndim == 2 else (0, 2, 3)
    mean = x_train.mean(axis=axes, dtype=np.float64)
    std = x_train.std(axis=axes, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)  # constant features stay constant rather than becoming NaN
    shape = (1, -1) if x_train.ndim == 2 else (1, -1, 1, 1)
    m, s = mean.reshape(shape), std.reshape(shape)
    out = [((a - m) / s).astype(np.float32) for a in (x_train, *others)]
    return out, {"mean": mean.tolist(), "std": std.tolist()}


def build_dataset(
    name: str,
    raw: RawData,
    *,
    seed: int,
    val_fraction: float,
    test_split_seed: int,
    device: torch.device | str,
) -> Dataset:
    """Split, standardise and move ``raw`` to ``device`` following the module's protocol."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    splits: dict[str, Any] = {"val_fraction": val_fraction, "val_seed": seed}
    x, y = raw.x, raw.y
    if raw.x_test is None:
        keep, test = seeded_split(len(y), TEST_FRACTION, test_split_seed)
        x_test, y_test = x[test], y[test]
        x, y = x[keep], y[keep]
        splits.update(test="seeded split", test_fraction=TEST_FRACTION,
                      test_split_seed=test_split_seed)
    else:
        x_test, y_test = raw.x_test, raw.y_test
        splits["test"] = "official"
    train, val = seeded_split(len(y), val_fraction, seed)
    (x_train, x_val, x_test), normalization = _standardise(
        x[train].astype(np.float64), x[val].astype(np.float64), x_test.astype(np.float64)
    )

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return Dataset(
        name=name,
        x_train=tensor(x_train),
        y_train=tensor(y[train].astype(np.int64)),
        x_val=tensor(x_val),
        y_val=tensor(y[val].astype(np.int64)),
        x_test=tensor(x_test),
        y_test=tensor(y_test.astype(np.int64)),
        num_classes=raw.num_classes,
        input_shape=tuple(x_train.shape[1:]),
        splits=splits,
        normalization=normalization,
        source=raw.source,
    )
