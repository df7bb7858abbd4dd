"""Where dataset files live, where they come from, and the error raised when one is missing.

The data root is, in order: the explicit ``root`` argument (``--data-dir`` on the CLI), the
``PLP_BENCH_DATA`` environment variable, then ``~/.cache/plp-bench``. Each dataset keeps its
files in a sub-folder of the root (``uci/``, ``mnist/``, ``cifar10/``, ``cifar100/``), the
layout ``plp-bench data fetch`` writes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "PLP_BENCH_DATA"
DEFAULT_ROOT = Path("~/.cache/plp-bench")


class DataError(Exception):
    """A dataset file is missing, truncated or not in the expected format."""


class NotCanonicalError(DataError):
    """A file under a canonical file's name whose checksum is another: refused before it is
    read (a user-supplied file that is not allowed, like a bad config value)."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name on disk, its canonical address and its checksum."""

    filename: str
    url: str
    algorithm: str  # "sha256" or "md5"
    digest: str


@dataclass(frozen=True)
class DatasetFiles:
    """The files one dataset needs, in which sub-folder of the data root; ``also_known``:
    canonical files of another layout the readers take too (not fetched, but checked)."""

    dataset: str
    subdir: str
    files: tuple[RemoteFile, ...]
    also_known: tuple[RemoteFile, ...] = ()

    def known(self) -> tuple[RemoteFile, ...]:
        return self.files + self.also_known


_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist"
_CIFAR = "https://www.cs.toronto.edu/~kriz"

# Checksums of the canonical files (UCI: sha256; MNIST and CIFAR: the md5 torchvision lists).
CATALOG: dict[str, DatasetFiles] = {
    "banknote": DatasetFiles("banknote", "uci", (
        RemoteFile("data_banknote_authentication.txt",
                   f"{_UCI}/00267/data_banknote_authentication.txt", "sha256",
                   "63cb547740b3d71fc4a7fa05a6f5005ba63e86a64d2dfb11251398611fb7b19c"),
    )),
    "magic": DatasetFiles("magic", "uci", (
        RemoteFile("magic04.data", f"{_UCI}/magic/magic04.data", "sha256",
                   "e9314b7ebd4b4b59a3b3d65f7316663963777b16a46786877651dbbaa640b36a"),
    )),
    "mnist": DatasetFiles("mnist", "mnist", (
        RemoteFile("train-images-idx3-ubyte.gz", f"{_MNIST}/train-images-idx3-ubyte.gz", "md5",
                   "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        RemoteFile("train-labels-idx1-ubyte.gz", f"{_MNIST}/train-labels-idx1-ubyte.gz", "md5",
                   "d53e105ee54ea40749a09fcbcd1e9432"),
        RemoteFile("t10k-images-idx3-ubyte.gz", f"{_MNIST}/t10k-images-idx3-ubyte.gz", "md5",
                   "9fb629c4189551a2d022fa330f9573f3"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", f"{_MNIST}/t10k-labels-idx1-ubyte.gz", "md5",
                   "ec29112dd5afa0611ce80d1b7f02629c"),
    )),
    # The binary layout is fetched: it is preferred when both are present (no pickle involved).
    "cifar10": DatasetFiles("cifar10", "cifar10", (
        RemoteFile("cifar-10-binary.tar.gz", f"{_CIFAR}/cifar-10-binary.tar.gz", "md5",
                   "c32a1d4ab5d03f1284b67883e8d87530"),
    ), (RemoteFile("cifar-10-python.tar.gz", f"{_CIFAR}/cifar-10-python.tar.gz", "md5",
                   "c58f30108f718f92721af3b95e74349a"),)),
    "cifar100": DatasetFiles("cifar100", "cifar100", (
        RemoteFile("cifar-100-binary.tar.gz", f"{_CIFAR}/cifar-100-binary.tar.gz", "md5",
                   "03b5dce01913d631647c71ecec9e9cb8"),
    ), (RemoteFile("cifar-100-python.tar.gz", f"{_CIFAR}/cifar-100-python.tar.gz", "md5",
                   "eb9058c3a382ffc7106e4002c42a8d85"),)),
}

def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$PLP_BENCH_DATA``, else ``~/.cache/plp-bench``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_ROOT.expanduser()


def missing_file_error(dataset: str, path: Path, problem: str = "is missing") -> DataError:
    """One clear message: the file, the folder searched, where to get it and the fetch command."""
    spec = CATALOG[dataset]
    urls = "\n".join(f"  {f.url}" for f in spec.files)
    return DataError(
        f"{dataset}: {path.name} {problem} (searched {path.parent}).\n"
        f"Download it from:\n{urls}\n"
        f"or run: plp-bench data fetch {dataset} --data-dir {data_root_hint(path, spec)}\n"
        f"The data root is --data-dir, else ${ENV_VAR}, else {DEFAULT_ROOT}."
    )


def data_root_hint(path: Path, spec: DatasetFiles) -> Path:
    folder = path.parent
    return folder.parent if folder.name == spec.subdir else folder


def require_file(dataset: str, path: Path) -> Path:
    """``path`` if it exists and is not empty, else the dataset's missing-file error."""
    if not path.is_file():
        raise missing_file_error(dataset, path)
    if path.stat().st_size == 0:
        raise missing_file_error(dataset, path, "is empty")
    return path


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime) checked in this process


def verify_known_file(dataset: str, path: Path) -> bool:
    """If ``path`` is one of the dataset's canonical files (by name), check its checksum, once
    per process and file version; a mismatch is a :class:`DataError` naming the file, both
    digests and the way out. Files of other layouts (an uncompressed copy) have no known
    checksum and are not checked. True when the file was proven canonical."""
    remote = next((f for f in CATALOG[dataset].known() if f.filename == path.name), None)
    if remote is None or not path.is_file():
        return False
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return True
    actual = file_digest(path, remote.algorithm)
    if actual != remote.digest:
        raise NotCanonicalError(
            f"{path}: {remote.algorithm} {actual} does not match the canonical file's "
            f"{remote.digest}; the file is damaged or another version. Delete it and run "
            f"`plp-bench data fetch {dataset}`.")
    _VERIFIED.add(key)
    return True
