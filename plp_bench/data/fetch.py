"""``plp-bench data fetch NAME``: download a dataset's files and verify their checksums.

Each file is downloaded to a temporary name beside its destination, its checksum checked, and
only then renamed into place, so an interrupted or corrupt download never looks like data.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .files import CATALOG, DataError, RemoteFile, data_root, file_digest

BUNDLED = {"digits", "breast_cancer"}


class OfflineError(DataError):
    """The download address could not be reached."""


def verify(path: Path, remote: RemoteFile) -> bool:
    return file_digest(path, remote.algorithm) == remote.digest


def download(remote: RemoteFile, folder: Path, *, timeout: float = 30.0,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``remote`` into ``folder`` (verified, atomic); returns the final path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.filename
    partial = folder / f".{remote.filename}.part"
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response, \
                partial.open("wb") as out:
            total = response.headers.get("Content-Length")
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, int(total) if total else None)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        partial.unlink(missing_ok=True)
        raise OfflineError(
            f"could not download {remote.url} ({getattr(err, 'reason', err)}). "
            f"This machine may be offline: copy {remote.filename} into {folder} by hand."
        ) from None
    if not verify(partial, remote):
        partial.unlink(missing_ok=True)
        raise DataError(f"{remote.url}: downloaded file fails its {remote.algorithm} check")
    os.replace(partial, target)
    return target


def fetch(name: str, root: str | os.PathLike[str] | None = None, *,
          progress: Callable[[RemoteFile, int, int | None], None] | None = None) -> list[str]:
    """Make dataset ``name`` present under the data root; returns one line per file."""
    if name in BUNDLED:
        return [f"{name} ships with scikit-learn: nothing to fetch"]
    if name not in CATALOG:
        from ..core.registry import UnknownNameError

        raise UnknownNameError("dataset", name, sorted(set(CATALOG) | BUNDLED))
    spec = CATALOG[name]
    folder = data_root(root) / spec.subdir
    lines = []
    for remote in spec.files:
        target = folder / remote.filename
        if target.is_file() and verify(target, remote):
            lines.append(f"{target}: present, {remote.algorithm} verified")
            continue
        def report(done, total, remote=remote):
            return progress(remote, done, total) if progress else None

        download(remote, folder, progress=report)
        lines.append(f"{target}: downloaded, {remote.algorithm} verified")
    return lines
