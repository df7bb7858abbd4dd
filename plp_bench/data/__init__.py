"""Datasets as tensors on a device: ``load(name)`` and ``list_datasets()``.

See :mod:`plp_bench.data.dataset` for the split and standardisation protocol and
:mod:`plp_bench.data.files` for the data root and the files each dataset needs.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .batches import EpochSampler, random_crop_flip
from .dataset import Dataset, RawData, build_dataset
from .files import DataError, NotCanonicalError, data_root
from .readers import READERS
from .readers import check_available as _check_available

LAYER = 2

DEFAULT_VAL_FRACTION = 0.2  # the PLP paper's protocol: 20% of the training set

__all__ = [
    "DataError",
    "Dataset",
    "EpochSampler",
    "NotCanonicalError",
    "RawData",
    "build_dataset",
    "check_available",
    "data_root",
    "list_datasets",
    "load",
    "random_crop_flip",
    "read_raw",
]


# (input shape, classes) of each dataset, as its files hold it: what a workload's model is
# checked against before any file is read
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((64,), 10), "breast_cancer": ((30,), 2), "banknote": ((4,), 2),
    "magic": ((10,), 2), "mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}


def list_datasets() -> list[str]:
    return READERS.names()


def load(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_split_seed: int = 0,
) -> Dataset:
    """Read dataset ``name`` from the data root and return its splits on ``device``.

    ``seed`` chooses the validation split; ``test_split_seed`` the test split of datasets that
    have no official one. Raises :class:`DataError` for a missing or malformed file and
    :class:`~plp_bench.core.registry.UnknownNameError` for an unknown name.
    """
    return build_dataset(name, read_raw(name, root=root), seed=seed, val_fraction=val_fraction,
                         test_split_seed=test_split_seed, device=device)


def read_raw(name: str, *, root: str | os.PathLike[str] | None = None) -> RawData:
    """Dataset ``name``'s arrays as read from the data root, before any split: what a
    distributed sweep ships to its workers once, each of them splitting it by its run's seed
    (:func:`build_dataset`)."""
    raw = READERS.get(name)(data_root(root))
    check_contents(name, raw)
    return raw


def check_contents(name: str, raw: RawData) -> None:
    """A :class:`DataError` naming the dataset's files when what they hold cannot be trained
    on: a label outside ``[0, classes)``, a feature that is not a finite number, splits of
    different lengths."""
    for split, x, y in (("training", raw.x, raw.y), ("test", raw.x_test, raw.y_test)):
        if x is None:
            continue
        if len(x) != len(y):
            raise DataError(f"{raw.source}: {name}'s {split} split has {len(x)} rows and "
                            f"{len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() >= raw.num_classes):
            raise DataError(f"{raw.source}: {name}'s {split} labels run from {y.min()} to "
                            f"{y.max()}; allowed: 0 to {raw.num_classes - 1}")
        if not np.isfinite(x).all():
            raise DataError(f"{raw.source}: {name}'s {split} features hold values that are "
                            "not finite numbers")


def check_available(name: str, root: str | os.PathLike[str] | None = None, *,
                    contents: bool = False) -> None:
    """Raise :class:`DataError` now if dataset ``name``'s files are not under the data root;
    with ``contents``, also read whatever no checksum proves (every file, labels in range)
    once, so a damaged file is named before the first run instead of failing every run."""
    verified = _check_available(name, data_root(root))
    if contents and not verified:
        read_raw(name, root=root)
