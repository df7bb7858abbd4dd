"""The command line: listing, runs from a config, and user mistakes without tracebacks."""

import json
import subprocess
import sys

import pytest
import yaml

from plp_bench import __version__
from plp_bench.cli import main
from plp_bench.methods import catalogue as methods


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "plp_bench.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_version_and_list(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    assert main(["list", "workloads"]) == 0
    listed = capsys.readouterr().out.split()
    assert "digits-mlp" in listed and "cifar100-vgg16" in listed
    assert main(["list", "methods"]) == 0
    assert capsys.readouterr().out.split() == methods.list_methods()
    assert {"sgd", "plp", "demon", "xgrad-sgd", "xgrad-adam", "xgrad-adamw"} <= set(
        methods.list_methods())


def test_run_from_config_prints_summary_and_resumes(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "workloads": [{"name": "breast_cancer-mlp", "steps": 12, "eval_every": 4}],
        "methods": ["sgd", "adam"], "seeds": 2, "results": str(tmp_path / "out"),
    }))
    first = run_cli("run", str(config))
    assert first.returncode == 0, first.stderr
    assert "breast_cancer-mlp" in first.stdout and "speedup" in first.stdout
    assert "4 runs done, 0 skipped" in first.stdout
    assert "\x1b[" not in first.stdout  # no colour codes when piped
    records = list((tmp_path / "out").rglob("*.json"))
    assert len(records) == 4 and json.loads(records[0].read_text())["schema_version"] == 3
    second = run_cli("run", str(config), "--seeds", "3")
    assert "2 runs done, 4 skipped" in second.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "--workload", "digits-mpl"], "unknown workload 'digits-mpl' (did you mean 'digits-mlp'"),
    (["run", "--method", "sgdd"], "unknown method 'sgdd'"),
    (["run", "--device", "cuda", "--workload", "digits-mlp"], "no CUDA device"),
    (["run", "--device", "tpu"], "unknown device 'tpu'"),
    (["run", "missing.yaml"], "missing.yaml: (top level): cannot read the file"),
])
def test_user_mistakes_exit_2_without_traceback(tmp_path, args, message):
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_key_in_config_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("workloads: [digits-mlp]\nsedes: 3\n")
    result = run_cli("run", str(config))
    assert result.returncode == 2
    assert "run.yaml: sedes: unknown key (did you mean 'seeds'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_is_one_message(tmp_path):
    result = run_cli("run", "--workload", "mnist-mnist1", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "train-images-idx3-ubyte.gz is missing" in result.stderr
    assert "plp-bench data fetch mnist" in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path):
    result = run_cli("--debug", "run", "--workload", "nope", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_fetch_of_a_bundled_dataset_downloads_nothing(tmp_path):
    result = run_cli("data", "fetch", "digits")
    assert result.returncode == 0 and "ships with scikit-learn" in result.stdout
