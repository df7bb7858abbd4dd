"""The asv suites: sizes, the on-disk run cache (one training per commit, workload, method and
seed), the medians they track, and the asv configuration itself."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plp_bench import benchmarking, sweeps
from plp_bench.results import RunResult, TargetResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def asv_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PLP_BENCH_ASV_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PLP_BENCH_SIZE", "ci")
    return tmp_path / "runs"


def test_each_point_trains_once_however_many_tracks_read_it(asv_runs, monkeypatch):
    import benchmarks.convergence as convergence

    calls = []
    real_run = sweeps.run

    def counting_run(workload, method, seed, *args, **kwargs):
        calls.append((workload.name, method.name, seed))
        return real_run(workload.replace(steps=8, eval_every=4, epochs=None), method, seed,
                        *args, **kwargs)

    monkeypatch.setattr(sweeps, "run", counting_run)
    values = []
    for target in ("1", "2", "3"):
        tracks = convergence.TargetTracks()  # asv makes a fresh instance per benchmark
        tracks.setup("breast_cancer-mlp", "sgd", target)
        values += [tracks.track_steps_to_target("breast_cancer-mlp", "sgd", target),
                   tracks.track_seconds_to_target("breast_cancer-mlp", "sgd", target),
                   tracks.track_runs_that_missed("breast_cancer-mlp", "sgd", target)]
    tests = convergence.TestTracks()
    tests.setup("breast_cancer-mlp", "sgd")
    values.append(tests.track_test_error("breast_cancer-mlp", "sgd"))
    assert sorted(calls) == [("breast_cancer-mlp", "sgd", s) for s in range(3)]
    assert all(isinstance(v, float) and v >= 0 for v in values)
    folder = benchmarking.runs_dir()
    assert folder.parent.parent == asv_runs and folder.name == "ci"
    assert len(list(folder.rglob("seed-*.json"))) == 3


def test_a_new_commit_trains_again(asv_runs, monkeypatch):
    monkeypatch.setenv("PLP_BENCH_COMMIT", "a" * 40)
    first = benchmarking.runs_dir()
    monkeypatch.setenv("PLP_BENCH_COMMIT", "b" * 40)
    benchmarking.git_commit.cache_clear()
    try:
        assert benchmarking.runs_dir() != first
    finally:
        benchmarking.git_commit.cache_clear()


def record(reached_steps, budget=100, seconds=10.0):
    targets = [TargetResult(0.1, steps, None if steps is None else steps / budget * seconds)
               for steps in reached_steps]
    return RunResult(workload="w", method="m", seed=0, device="cpu", config={},
                     config_hash="x", environment={}, curves=None, targets=targets,
                     steps_run=budget, train_seconds=seconds, wall_seconds=seconds)


def test_a_missed_target_counts_as_the_whole_budget_in_the_median():
    runs = [record([20]), record([40]), record([None])]
    assert benchmarking.censored(runs, 0, "steps") == 40.0
    assert benchmarking.censored([record([None]), record([None]), record([30])], 0,
                                 "steps") == 100.0
    assert benchmarking.censored(runs, 0, "seconds") == 4.0


def test_sizes_and_skips(asv_runs, monkeypatch, empty_root):
    ci = benchmarking.current_size()
    assert ci.seeds == 3 and "vgg16" not in ci.parameter_sets
    capped = benchmarking.benchmark_workload("digits-mlp")
    assert capped.steps == benchmarking.CI_STEP_CAP and capped.epochs is None
    with pytest.raises(NotImplementedError, match="data not available"):
        benchmarking.benchmark_workload("banknote-mlp")  # empty data root
    monkeypatch.setenv("PLP_BENCH_SIZE", "full")
    full = benchmarking.current_size()
    assert full.seeds == 5 and "vgg16" in full.parameter_sets
    assert benchmarking.benchmark_workload("digits-mlp").epochs == 15
    monkeypatch.setenv("PLP_BENCH_SIZE", "huge")
    with pytest.raises(ValueError, match="PLP_BENCH_SIZE='huge'; allowed: ci, full"):
        benchmarking.current_size()


def test_cifar_workloads_need_a_cuda_device(asv_runs, monkeypatch):
    monkeypatch.setattr(benchmarking, "device", lambda: "cpu")
    monkeypatch.setattr(benchmarking.data, "check_available", lambda name: None)
    with pytest.raises(NotImplementedError, match="needs a CUDA device"):
        benchmarking.benchmark_workload("cifar100-resnet18")


def test_memo_computes_once_per_commit(asv_runs):
    calls = []
    for _ in range(2):
        value = benchmarking.memo("thing", lambda: calls.append(1) or {"x": 1.5})
        assert value == {"x": 1.5}
    assert len(calls) == 1


def test_asv_config_is_valid_and_pins_the_requirements():
    text = (ROOT / "asv.conf.json").read_text()
    body = json.loads("\n".join(line for line in text.splitlines()
                                if not line.strip().startswith("//")))
    pins = dict(line.strip().split("==") for line in (ROOT / "requirements.txt").read_text()
                .splitlines() if "==" in line)
    assert body["matrix"]["req"] == pins
    assert body["benchmark_dir"] == "benchmarks" and body["html_dir"] == "reports/asv"
    out = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout
