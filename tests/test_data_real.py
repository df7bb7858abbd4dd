"""The real files from the data root (CI: ../shared/data): shapes and class counts."""

import numpy as np

from plp_bench import data
from plp_bench.data.readers import read_banknote, read_magic, read_mnist


def test_banknote_rows(shared_data):
    raw = read_banknote(shared_data)
    assert raw.x.shape == (1372, 4)
    assert set(np.unique(raw.y)) == {0, 1}
    ds = data.load("banknote", root=shared_data)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1372
    assert ds.splits["test"] == "seeded split"


def test_magic_rows_and_classes(shared_data):
    raw = read_magic(shared_data)
    assert raw.x.shape == (19020, 10)
    assert int((raw.y == 0).sum()) == 12332 and int((raw.y == 1).sum()) == 6688


def test_mnist_sizes(shared_data):
    raw = read_mnist(shared_data)
    assert raw.x.shape == (60000, 1, 28, 28) and raw.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(raw.y).tolist()[:2] == [5923, 6742]  # the well-known class counts
    assert raw.x.min() == 0.0 and raw.x.max() == 1.0
    ds = data.load("mnist", root=shared_data)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (48000, 12000, 10000)
