"""Datasets as tensors on a device: ``load(name)`` and ``list_datasets()``.

See :mod:`plp_bench.data.dataset` for the split and standardisation protocol and
:mod:`plp_bench.data.files` for the data root and the files each dataset needs.
"""

from __future__ import annotations

import os

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
    return READERS.get(name)(data_root(root))


def check_available(name: str, root: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`DataError` now if dataset ``name``'s files are not under the data root."""
    _check_available(name, data_root(root))
