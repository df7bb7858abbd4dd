import os
from pathlib import Path

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device (deselected where none is)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are deselected, not skipped, on machines without CUDA."""
    if torch.cuda.is_available():
        return
    keep = [item for item in items if "cuda" not in item.keywords]
    dropped = [item for item in items if "cuda" in item.keywords]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def shared_data() -> Path:
    """The real data root (``PLP_BENCH_DATA``), which CI points at the shared copies."""
    root = os.environ.get("PLP_BENCH_DATA")
    if not root or not (Path(root) / "uci").is_dir():
        pytest.skip("PLP_BENCH_DATA does not point at the real datasets")
    return Path(root)


@pytest.fixture
def empty_root(tmp_path, monkeypatch) -> Path:
    """A data root with nothing in it, also set as PLP_BENCH_DATA."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("PLP_BENCH_DATA", str(root))
    return root
