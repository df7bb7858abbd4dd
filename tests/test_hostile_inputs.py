"""What a hostile read found: messages that hold paths or values are printed verbatim (no rich
markup or emoji codes read from them), a non-canonical CIFAR archive is refused before any run,
and the cosine guard's transient memory is what its docstring says."""

import os
import pickle
import tarfile

import pytest
import torch
from live_memory import LiveMemory

from plp_bench import PLP
from plp_bench.cli import main
from plp_bench.methods.plp import GUARD_CHUNK


def test_a_path_with_emoji_codes_and_brackets_is_printed_verbatim(tmp_path, capsys):
    folder = tmp_path / "runs:train:[red]x"
    folder.mkdir()
    config = folder / "a:smile:[bold].yaml"
    code = main(["run", str(config)])
    said = capsys.readouterr().err
    assert code == 2
    assert f"{config}: (top level): cannot read the file" in " ".join(said.split())


def test_a_results_folder_with_emoji_codes_is_named_verbatim(tmp_path, capsys):
    results = tmp_path / "out:train:[dim]"
    code = main(["run", "--workload", "breast_cancer-mlp", "--method", "sgd", "--seeds", "1",
                 "--results", str(results)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0 and f"(already in {results})" in out


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_non_canonical_cifar_archive_is_refused_before_any_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    folder = tmp_path / "data" / "cifar100"
    folder.mkdir(parents=True)
    archive = folder / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for member in ("train", "test"):
            payload = tmp_path / member
            payload.write_bytes(pickle.dumps({b"data": _Exploit(marker),
                                              b"fine_labels": [0]}, protocol=2))
            tar.add(payload, arcname=f"cifar-100-python/{member}")
    code = main(["run", "--workload", "cifar100-resnet18", "--method", "sgd",
                 "--data-dir", str(tmp_path / "data"), "--results", str(tmp_path / "out")])
    said = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in said
    assert f"{archive}: md5" in said and "does not match the canonical file's" in said
    assert "plp-bench data fetch cifar100" in said
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_the_tracker_sees_a_float64_copy():
    x = torch.zeros(1000)
    with LiveMemory() as memory:
        y = x.double()
    assert memory.peak == 8000 and y.numel() == 1000


@pytest.mark.parametrize("path", ["buffer", "sgd-momentum"])
def test_the_guards_transient_memory_is_one_copy_of_the_weights_and_fixed_chunks(path):
    """The prediction step with the guard on a 1M-parameter tensor: the w2 copy (N) and the
    float64 chunks of its sums; no float64 copy of whole tensors (that was about 7N)."""
    n = 1_000_000
    generator = torch.Generator().manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(n, generator=generator))]
    plp = PLP(torch.optim.SGD(weights, lr=0.01, momentum=0.9), min_cosine=0.0, path=path)
    for _ in range(2):
        weights[0].grad = torch.randn(n, generator=generator)
        plp.step()
    weights[0].grad = torch.randn(n, generator=generator)
    with LiveMemory() as memory:
        plp.step()
    parameter_bytes = 4 * n
    chunks = 3 * GUARD_CHUNK * 8
    assert memory.peak <= parameter_bytes + chunks + 4096, memory.peak / parameter_bytes
