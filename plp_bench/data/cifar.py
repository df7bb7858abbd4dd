"""Readers for CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) in both published layouts.

* Binary: each record is the label byte(s) then 3072 pixel bytes (1024 red, 1024 green, 1024
  blue, row-major 32x32). CIFAR-10 records carry one label byte; CIFAR-100 records carry the
  coarse then the fine label (the fine one is used: 100 classes).
* Python: pickled dicts with ``b"data"`` (uint8 ``(N, 3072)``) and ``b"labels"`` (CIFAR-10) or
  ``b"fine_labels"`` (CIFAR-100). They are read with :class:`RestrictedUnpickler`, which admits
  only the numpy array reconstruction these files need, so a crafted file cannot run code.

Either layout is read from the extracted folder or straight from the ``.tar.gz`` archive
(members are read in memory, nothing is extracted, so no archive path can escape). The binary
layout is preferred when both are present.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import DataError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

IMAGE_BYTES = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """One published layout: its folder (also the archive's top folder) and member names."""

    folder: str
    archive: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    binary: bool


LAYOUTS: dict[str, tuple[CifarLayout, CifarLayout]] = {
    "cifar10": (
        CifarLayout("cifar-10-batches-bin", "cifar-10-binary.tar.gz",
                    tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",), True),
        CifarLayout("cifar-10-batches-py", "cifar-10-python.tar.gz",
                    tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), False),
    ),
    "cifar100": (
        CifarLayout("cifar-100-binary", "cifar-100-binary.tar.gz", ("train.bin",), ("test.bin",),
                    True),
        CifarLayout("cifar-100-python", "cifar-100-python.tar.gz", ("train",), ("test",), False),
    ),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array reconstruction (and bytes rebuilt from text);
    any other global, such as ``os.system``, is refused before it can be called."""

    _ALLOWED: frozenset[tuple[str, str]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # Protocol-2 pickles written by Python 3 rebuild bytes with _codecs.encode(text,
        # "latin1"): a pure conversion, harmless, and needed by re-pickled copies of the files.
        ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR file needs only numpy arrays"
            )
        if module == "_codecs":
            return codecs.encode
        if name in ("ndarray", "dtype"):
            return getattr(np, name)
        return getattr(_multiarray, name)


def restricted_load(data: bytes, *, source: str) -> object:
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise DataError(f"{source}: {err}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DataError(f"{source}: not a CIFAR python batch ({err})") from None


class _Folder:
    def __init__(self, path: Path):
        self.path = path
        self.name = str(path)

    def has(self, member: str) -> bool:
        return (self.path / member).is_file()

    def read(self, member: str) -> bytes:
        return (self.path / member).read_bytes()


class _Archive:
    """Members of a tar archive, read in memory by name (``folder/member``)."""

    def __init__(self, path: Path, folder: str):
        self.name = str(path)
        self.folder = folder
        try:
            with tarfile.open(path, "r:*") as tar:
                self._members = {
                    m.name.removeprefix("./"): tar.extractfile(m).read()
                    for m in tar.getmembers()
                    if m.isfile()
                }
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise DataError(f"{path}: truncated or corrupt archive ({err})") from None

    def has(self, member: str) -> bool:
        return f"{self.folder}/{member}" in self._members

    def read(self, member: str) -> bytes:
        return self._members[f"{self.folder}/{member}"]


def _parse_binary(data: bytes, *, label_bytes: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + IMAGE_BYTES
    if len(data) == 0 or len(data) % record:
        raise DataError(
            f"{source}: {len(data)} bytes is not a whole number of {record}-byte CIFAR records"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, label_bytes - 1].astype(np.int64)  # CIFAR-100: the fine label is last
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), labels


def _parse_python(data: bytes, *, label_key: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    batch = restricted_load(data, source=source)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{source}: expected a dict with b'data' and {label_key!r}")
    images = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if images.ndim != 2 or images.shape[1] != IMAGE_BYTES or len(images) != len(labels):
        raise DataError(
            f"{source}: data has shape {images.shape} for {len(labels)} labels; "
            f"expected (N, {IMAGE_BYTES})"
        )
    return images.reshape(-1, 3, 32, 32), labels


def _find_sources(directory: Path, layout: CifarLayout):
    folder = directory / layout.folder
    if folder.is_dir():
        yield _Folder(folder)
    archive = directory / layout.archive
    if archive.is_file():
        yield _Archive(archive, layout.folder)


def read_cifar(
    dataset: str, directory: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str] | None:
    """``(x_train, y_train, x_test, y_test, source)`` as uint8 NCHW arrays, or ``None``."""
    num_classes = 10 if dataset == "cifar10" else 100
    for layout in LAYOUTS[dataset]:
        for source in _find_sources(directory, layout):
            if not all(source.has(m) for m in layout.train + layout.test):
                continue

            def read(members: tuple[str, ...], source=source, layout=layout):
                parts = []
                for member in members:
                    where = f"{source.name}:{member}"
                    if layout.binary:
                        label_bytes = 1 if dataset == "cifar10" else 2
                        parts.append(_parse_binary(source.read(member), label_bytes=label_bytes,
                                                   source=where))
                    else:
                        key = b"labels" if dataset == "cifar10" else b"fine_labels"
                        parts.append(_parse_python(source.read(member), label_key=key,
                                                   source=where))
                x = np.concatenate([p[0] for p in parts])
                y = np.concatenate([p[1] for p in parts])
                if y.size and (y.min() < 0 or y.max() >= num_classes):
                    raise DataError(f"{source.name}: labels outside 0..{num_classes - 1}")
                return x, y

            x_train, y_train = read(layout.train)
            x_test, y_test = read(layout.test)
            return x_train, y_train, x_test, y_test, source.name
    return None
