"""Every reader on tiny files written in the real formats; every value read back is checked."""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from plp_bench import data
from plp_bench.data import DataError
from plp_bench.data.cifar import read_cifar
from plp_bench.data.idx import read_idx
from plp_bench.data.tabular import read_delimited

BANKNOTE_ROWS = [(3.6216, 8.6661, -2.8073, -0.44699, 0), (-1.3971, 3.3191, -1.3927, -1.9948, 1),
                 (0.5, -0.25, 1.0, 2.0, 1)]


def write_banknote(path, *, header=False, crlf=True):
    lines = ["variance,skewness,curtosis,entropy,class"] if header else []
    lines += [",".join(str(v) for v in row) for row in BANKNOTE_ROWS]
    end = "\r\n" if crlf else "\n"
    path.write_bytes((end.join(lines) + end).encode())


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("crlf", [False, True])
def test_uci_csv_values(tmp_path, header, crlf):
    path = tmp_path / "bank.txt"
    write_banknote(path, header=header, crlf=crlf)
    x, y = read_delimited(path, n_features=4, labels={"0": 0, "1": 1})
    np.testing.assert_array_equal(x, np.array([r[:4] for r in BANKNOTE_ROWS]))
    np.testing.assert_array_equal(y, [0, 1, 1])


def test_magic_labels(tmp_path):
    path = tmp_path / "magic04.data"
    path.write_text("1,2,3,4,5,6,7,8,9,10,g\n10,9,8,7,6,5,4,3,2,1.5,h\n")
    x, y = read_delimited(path, n_features=10, labels={"g": 0, "h": 1})
    assert x[1, 9] == 1.5 and list(y) == [0, 1]


@pytest.mark.parametrize("content, message", [
    ("1,2,3,4,0\n1,2,3\n", ":2: expected 5 comma-separated fields, found 3"),
    ("1,2,3,4,2\n", "class '2' is not one of '0', '1'"),
    ("1,2,3,4,0\n1,x,3,4,0\n", ":2: a feature is not a number"),
    ("\n\n", "no data rows"),
])
def test_uci_csv_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        read_delimited(path, n_features=4, labels={"0": 0, "1": 1})
    assert str(path) in str(err.value)


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(images, 0x08)
    path = tmp_path / ("img.gz" if compress else "img")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    np.testing.assert_array_equal(read_idx(path), images)


def test_idx_other_types(tmp_path):
    values = np.array([[1.5, -2.25], [3.0, 4.0]], dtype=np.float32)
    path = tmp_path / "f.idx"
    path.write_bytes(idx_bytes(values, 0x0D))
    np.testing.assert_array_equal(read_idx(path), values)


def test_idx_truncated(tmp_path):
    raw = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8), 0x08)
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        read_idx(path)
    path.write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04junk")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def write_mnist(folder, n_train=6, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), 8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train, dtype=np.uint8) % 10, 8),
        "t10k-images-idx3-ubyte.gz": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), 8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test, dtype=np.uint8)[::-1] % 10, 8),
    }
    for name, (array, code) in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array, code)))
    return {k: v[0] for k, v in arrays.items()}


def test_mnist_loader_reads_every_value(tmp_path):
    arrays = write_mnist(tmp_path / "mnist", n_train=10, n_test=4)
    ds = data.load("mnist", root=tmp_path, val_fraction=0.2)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.splits["test"] == "official"
    # undo the standardisation and compare pixel by pixel with what was written
    mean, std = ds.normalization["mean"][0], ds.normalization["std"][0]
    restored = np.rint((ds.x_test.numpy().astype(np.float64) * std + mean) * 255)
    np.testing.assert_array_equal(restored[:, 0], arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte.gz"])
    train_labels = sorted(ds.y_train.tolist() + ds.y_val.tolist())
    assert train_labels == sorted(arrays["train-labels-idx1-ubyte.gz"].tolist())


def cifar_arrays(n, num_classes, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            rng.integers(0, num_classes, n).astype(np.int64))


def binary_records(images, labels, cifar100):
    rows = []
    for img, lab in zip(images, labels, strict=True):
        prefix = bytes([lab // 5, lab]) if cifar100 else bytes([lab])
        rows.append(prefix + img.tobytes())
    return b"".join(rows)


def python_batch(images, labels, cifar100):
    key = b"fine_labels" if cifar100 else b"labels"
    batch = {b"batch_label": b"x", b"data": images, key: labels.tolist(),
             b"filenames": [b"a.png"] * len(labels)}
    if cifar100:
        batch[b"coarse_labels"] = [lab // 5 for lab in labels.tolist()]
    return pickle.dumps(batch, protocol=2)


def write_cifar(folder, dataset, layout, *, archive=False):
    """Write a tiny CIFAR set; returns (train images, train labels, test images, test labels)."""
    cifar100 = dataset == "cifar100"
    k = 100 if cifar100 else 10
    if cifar100:
        top = "cifar-100-binary" if layout == "binary" else "cifar-100-python"
        train_names = ["train.bin"] if layout == "binary" else ["train"]
        test_names = ["test.bin"] if layout == "binary" else ["test"]
    else:
        top = "cifar-10-batches-bin" if layout == "binary" else "cifar-10-batches-py"
        suffix = ".bin" if layout == "binary" else ""
        train_names = [f"data_batch_{i}{suffix}" for i in range(1, 6)]
        test_names = [f"test_batch{suffix}"]
    encode = binary_records if layout == "binary" else python_batch
    members, train_parts = {}, []
    for i, name in enumerate(train_names):
        imgs, labs = cifar_arrays(3, k, seed=i)
        train_parts.append((imgs, labs))
        members[f"{top}/{name}"] = encode(imgs, labs, cifar100)
    test_imgs, test_labs = cifar_arrays(4, k, seed=99)
    members[f"{top}/{test_names[0]}"] = encode(test_imgs, test_labs, cifar100)
    folder.mkdir(parents=True, exist_ok=True)
    if archive:
        name = {("cifar10", "binary"): "cifar-10-binary.tar.gz",
                ("cifar10", "python"): "cifar-10-python.tar.gz",
                ("cifar100", "binary"): "cifar-100-binary.tar.gz",
                ("cifar100", "python"): "cifar-100-python.tar.gz"}[dataset, layout]
        with tarfile.open(folder / name, "w:gz") as tar:
            for member, payload in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    else:
        for member, payload in members.items():
            (folder / member).parent.mkdir(parents=True, exist_ok=True)
            (folder / member).write_bytes(payload)
    train_imgs = np.concatenate([p[0] for p in train_parts])
    train_labs = np.concatenate([p[1] for p in train_parts])
    return train_imgs, train_labs, test_imgs, test_labs


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("layout", ["binary", "python"])
@pytest.mark.parametrize("archive", [False, True])
def test_cifar_layouts_read_every_value(tmp_path, dataset, layout, archive):
    expected = write_cifar(tmp_path / dataset, dataset, layout, archive=archive)
    found = read_cifar(dataset, tmp_path / dataset)
    assert found is not None
    x_train, y_train, x_test, y_test, _ = found
    np.testing.assert_array_equal(x_train.reshape(len(x_train), -1), expected[0])
    np.testing.assert_array_equal(y_train, expected[1])
    np.testing.assert_array_equal(x_test.reshape(len(x_test), -1), expected[2])
    np.testing.assert_array_equal(y_test, expected[3])
    assert x_train.shape[1:] == (3, 32, 32)


def test_cifar_load_gives_standardised_tensors(tmp_path):
    write_cifar(tmp_path / "cifar10", "cifar10", "binary")
    ds = data.load("cifar10", root=tmp_path, val_fraction=0.2)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_val) == 15 and len(ds.y_test) == 4
    assert len(ds.normalization["mean"]) == 3


def test_cifar_prefers_binary_when_both_present(tmp_path):
    folder = tmp_path / "cifar10"
    binary = write_cifar(folder, "cifar10", "binary")
    write_cifar(folder, "cifar10", "python", archive=True)
    x_train, *_, source = read_cifar("cifar10", folder)
    assert source.endswith("cifar-10-batches-bin")
    np.testing.assert_array_equal(x_train.reshape(len(x_train), -1), binary[0])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_refuses_a_pickle_that_would_run_code(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(payload)
    with pytest.raises(DataError, match="refusing to load"):
        read_cifar("cifar10", tmp_path / "cifar10")
    assert not marker.exists()


def test_cifar_truncated_binary(tmp_path):
    folder = tmp_path / "cifar10"
    write_cifar(folder, "cifar10", "binary")
    path = folder / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="not a whole number of 3073-byte CIFAR records"):
        read_cifar("cifar10", folder)


def test_cifar_corrupt_archive(tmp_path):
    folder = tmp_path / "cifar100"
    folder.mkdir()
    (folder / "cifar-100-binary.tar.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="truncated or corrupt archive"):
        read_cifar("cifar100", folder)


@pytest.mark.parametrize("name, filename", [
    ("banknote", "data_banknote_authentication.txt"),
    ("magic", "magic04.data"),
    ("mnist", "train-images-idx3-ubyte.gz"),
    ("cifar10", "cifar-10-binary.tar.gz"),
    ("cifar100", "cifar-100-binary.tar.gz"),
])
def test_missing_file_message(empty_root, name, filename):
    with pytest.raises(DataError) as err:
        data.load(name)
    message = str(err.value)
    assert filename in message
    assert str(empty_root) in message  # the folder searched
    assert "https://" in message  # where to get it
    assert f"plp-bench data fetch {name}" in message
    with pytest.raises(DataError):
        data.check_available(name)


def test_empty_file_is_reported(empty_root):
    (empty_root / "uci").mkdir()
    (empty_root / "uci" / "magic04.data").write_bytes(b"")
    with pytest.raises(DataError, match=r"magic04\.data is empty"):
        data.load("magic")


def test_unknown_dataset_suggests():
    from plp_bench.core.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"[Dd]id you mean 'mnist'"):
        data.load("mnsit")
