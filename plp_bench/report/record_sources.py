"""Where run records come from: folders of ``RunResult`` JSON (a sweep's ``results``, or the asv
suite's run cache ``<runs root>/<commit>/<size>``), and the records of a given commit.

A revision (branch, tag, short or full hash) is resolved with git; its records are the run
cache's folders for that commit. A folder may also be named directly.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.config import ConfigError
from ..core.record import ResultError, RunResult, load


@dataclass
class RecordSet:
    """The readable records under some folders, a line for each file that was not, and a line
    for each failed run a sweep recorded (``failed-seed-*.json``)."""

    folders: list[Path]
    records: list[RunResult] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def commit(self) -> str | None:
        """The commit most of the records were made at (``None`` if none says)."""
        commits = Counter(r.environment.get("commit") for r in self.records)
        commits.pop(None, None)
        return commits.most_common(1)[0][0] if commits else None

    @property
    def commits(self) -> list[str]:
        return sorted({r.environment["commit"] for r in self.records
                       if r.environment.get("commit")})

    def only(self, workloads: Iterable[str]) -> RecordSet:
        wanted = set(workloads)
        return RecordSet(self.folders, [r for r in self.records if r.workload in wanted],
                         self.unreadable, self.failures)


def read_folders(folders: Iterable[str | os.PathLike[str]], *, option: str = "folder"
                 ) -> RecordSet:
    """Every ``seed-*.json`` record under the folders, recursively; a missing folder is a
    :class:`ConfigError` naming it."""
    roots = [Path(f) for f in folders]
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"no such folder: {root}", path=(option,))
    found = RecordSet(roots)
    for root in roots:
        for path in sorted(root.rglob("seed-*.json")):
            try:
                found.records.append(load(path))
            except ResultError as error:
                found.unreadable.append(str(error))
        for path in sorted(root.rglob("failed-seed-*.json")):
            found.failures.append(_failure_line(path))
    return found


def _failure_line(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
        return f"{data['failed_run']}: {data['error']} ({path})"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{path} (a failure file that cannot be read)"


def runs_root() -> Path:
    """The asv suite's run cache: ``$PLP_BENCH_ASV_RUNS``, else ``.asv/runs`` here."""
    return Path(os.environ.get("PLP_BENCH_ASV_RUNS") or Path(".asv") / "runs")


def resolve_revision(revision: str, *, option: str = "--compare") -> str:
    """The full hash of a git revision, or a :class:`ConfigError` naming it."""
    try:
        done = subprocess.run(["git", "rev-parse", "--verify", "--quiet",
                               f"{revision}^{{commit}}"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise ConfigError(f"cannot ask git for {revision!r} ({error})", path=(option,)) from None
    if done.returncode != 0 or not done.stdout.strip():
        raise ConfigError(f"{revision!r} is neither a folder nor a git revision here",
                          path=(option,))
    return done.stdout.strip()


def commit_folders(commit: str, root: Path | None = None) -> list[Path]:
    """The run-cache folders of a commit (one per benchmark size)."""
    folder = (root or runs_root()) / commit
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def records_of(revision: str, *, option: str = "--compare") -> tuple[RecordSet, str | None]:
    """The records named by ``revision``: a folder, else a git revision's run-cache folders.
    Returns the records and the commit they belong to (``None`` for a folder of mixed or
    unrecorded commits)."""
    if Path(revision).is_dir():
        found = read_folders([revision], option=option)
        return found, found.commit
    commit = resolve_revision(revision, option=option)
    folders = commit_folders(commit)
    if not folders:
        raise ConfigError(f"no records of {revision} ({commit[:12]}) under {runs_root()}/"
                          f"{commit}; run the asv suite at that commit, or name a folder",
                          path=(option,))
    return read_folders(folders, option=option), commit


def commit_date(commit: str) -> str | None:
    """The committer date (ISO 8601) of a commit, when git knows it."""
    try:
        done = subprocess.run(["git", "show", "-s", "--format=%cI", commit],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
