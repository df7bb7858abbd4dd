import os
from pathlib import Path

import pytest


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
