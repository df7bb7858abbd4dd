"""One reader per dataset name: from the data root to :class:`RawData`.

``digits`` (UCI optdigits, 1797 8x8 images, 10 classes) and ``breast_cancer`` (UCI WDBC, 569
rows, 30 features, 2 classes) ship with scikit-learn and need no download: they are the
offline default. The others are read from their original files under the data root.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.registry import Registry
from .cifar import LAYOUTS, read_cifar
from .dataset import RawData
from .files import CATALOG, DataError, missing_file_error, require_file, verify_known_file
from .idx import read_idx
from .tabular import read_delimited

Reader = Callable[[Path], RawData]
READERS: Registry[Reader] = Registry("dataset")


@READERS.register("digits")
def read_digits(root: Path) -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float64)[:, None, :, :]  # (1797, 1, 8, 8), values 0..16
    return RawData(x, bunch.target.astype(np.int64), 10, "scikit-learn load_digits (UCI optdigits)")


@READERS.register("breast_cancer")
def read_breast_cancer(root: Path) -> RawData:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return RawData(bunch.data.astype(np.float64), bunch.target.astype(np.int64), 2,
                   "scikit-learn load_breast_cancer (UCI WDBC)")


@READERS.register("banknote")
def read_banknote(root: Path) -> RawData:
    path = require_file("banknote", root / "uci" / CATALOG["banknote"].files[0].filename)
    x, y = read_delimited(path, n_features=4, labels={"0": 0, "1": 1})
    return RawData(x, y, 2, str(path))


@READERS.register("magic")
def read_magic(root: Path) -> RawData:
    path = require_file("magic", root / "uci" / CATALOG["magic"].files[0].filename)
    x, y = read_delimited(path, n_features=10, labels={"g": 0, "h": 1})
    return RawData(x, y, 2, str(path))


def _mnist_file(folder: Path, filename: str) -> Path:
    plain = folder / filename.removesuffix(".gz")
    if not (folder / filename).is_file() and plain.is_file():
        return require_file("mnist", plain)
    return require_file("mnist", folder / filename)


@READERS.register("mnist")
def read_mnist(root: Path) -> RawData:
    folder = root / CATALOG["mnist"].subdir
    arrays = [read_idx(_mnist_file(folder, f.filename)) for f in CATALOG["mnist"].files]
    x_train, y_train, x_test, y_test = arrays
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
    return RawData(
        x_train[:, None].astype(np.float64) / 255.0, y_train.astype(np.int64), 10, str(folder),
        x_test[:, None].astype(np.float64) / 255.0, y_test.astype(np.int64),
    )


def _cifar_missing(name: str, folder: Path) -> DataError:
    layouts = ", ".join(f"{lay.folder}/ or {lay.archive}" for lay in LAYOUTS[name])
    return missing_file_error(name, folder / LAYOUTS[name][0].archive,
                              f"was not found, nor any other layout ({layouts})")


def _cifar_reader(name: str, num_classes: int) -> Reader:
    def read(root: Path) -> RawData:
        folder = root / CATALOG[name].subdir
        found = read_cifar(name, folder)
        if found is None:
            raise _cifar_missing(name, folder)
        x_train, y_train, x_test, y_test, source = found
        return RawData(x_train.astype(np.float64) / 255.0, y_train, num_classes, source,
                       x_test.astype(np.float64) / 255.0, y_test)

    read.__doc__ = f"{name}: binary layout preferred, then the python layout."
    return read


READERS.add("cifar10", _cifar_reader("cifar10", 10))
READERS.add("cifar100", _cifar_reader("cifar100", 100))


def check_available(name: str, root: Path) -> bool:
    """Raise the dataset's :class:`DataError` if its files are absent, or if a file with a
    known checksum (the canonical download) does not match it, without parsing them. True
    when every file it would read is proven canonical (or ships with a package), False when
    some file has no checksum to prove it (an uncompressed MNIST, an extracted CIFAR folder)."""
    READERS.get(name)
    if name in ("banknote", "magic"):
        return verify_known_file(name, require_file(name, root / "uci" /
                                                    CATALOG[name].files[0].filename))
    if name == "mnist":
        return all([verify_known_file(name, _mnist_file(root / CATALOG["mnist"].subdir,
                                                        f.filename))
                    for f in CATALOG["mnist"].files])
    if name in LAYOUTS:
        folder = root / CATALOG[name].subdir
        if not any((folder / lay.folder).is_dir() or (folder / lay.archive).is_file()
                   for lay in LAYOUTS[name]):
            raise _cifar_missing(name, folder)
        archives = [folder / remote.filename for remote in CATALOG[name].known()]
        return any([verify_known_file(name, path) for path in archives]) and not any(
            (folder / lay.folder).is_dir() for lay in LAYOUTS[name])
    return True  # bundled with a package
