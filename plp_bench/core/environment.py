"""What a run record says about where it ran: versions, device, threads, commit, and when."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .config import ConfigError
from .record import COMMIT


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def checked_commit(variable: str) -> str:
    """The commit an environment variable names, refused by name unless it is a plain token
    (it names a report's folder and the asv run cache's: never a path)."""
    value = os.environ[variable]
    if not COMMIT.fullmatch(value):
        raise ConfigError(f"${variable}={value[:80]!r} is not a commit: letters, digits, _ . - "
                          "(64 at most, starting with a letter or digit)", path=(variable,))
    return value


def check_commit_variables() -> None:
    """Refuse, before any work, a ``$PLP_BENCH_COMMIT`` or ``$ASV_COMMIT`` that is not a commit."""
    for var in ("PLP_BENCH_COMMIT", "ASV_COMMIT"):
        if os.environ.get(var):
            checked_commit(var)


@cache
def git_commit() -> str | None:
    """The commit under test: ``$PLP_BENCH_COMMIT`` or ``$ASV_COMMIT`` when set (benchmark
    runners install a copy without ``.git``), else ``git rev-parse HEAD`` beside the package."""
    for var in ("PLP_BENCH_COMMIT", "ASV_COMMIT"):
        if os.environ.get(var):
            return checked_commit(var)
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def describe(device: torch.device) -> dict[str, Any]:
    return {
        "plp_bench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
