"""The Ray executor through the command line, on real local Ray clusters (no stand-ins): the
driver terminated and resumed, a two-node cluster joined by address, and the mistakes that must
stop a sweep before any Ray starts. (``test_ray_api.py``: the same records as in-process, a
worker killed mid-run, the asv suite's grid, on one Ray shared by its tests.)"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from helpers import records, running_ray_tasks

from plp_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
RAY_BIN = Path(sys.executable).parent / "ray"


def run_cli(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "plp_bench.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def grid(tmp_path) -> list[str]:
    """A sweep of 2 methods x 2 seeds on 2 Ray workers, each run about a second."""
    config = tmp_path / "grid.yaml"
    config.write_text("workloads: [{name: breast_cancer-mlp, steps: 800, eval_every: 200}]\n"
                      "methods: [sgd, plp]\nseeds: 2\nexecutor: ray\nworkers: 2\n")
    return ["run", str(config)]


def test_a_terminated_driver_keeps_every_finished_record_and_resumes(tmp_path, grid):
    """SIGTERM (which Ray's own handler would take over; Ctrl-C takes the same path): exit
    143, the runs in flight cancelled, and the same command recomputes nothing finished."""
    results = tmp_path / "results"
    args = [*grid, "--seeds", "3", "--results", str(results)]
    driver = run_cli(args)
    wait_for(lambda: len(records(results)) >= 1, 180, "a finished record")
    driver.send_signal(signal.SIGTERM)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 143, out
    assert "terminated" in out and "every finished run is saved" in out
    done = records(results)
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    assert 1 <= len(done) < 6
    assert not running_ray_tasks()  # the runs in flight were cancelled

    resumed = run_cli(args)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"{6 - len(done)} runs done, {len(done)} skipped" in out  # 0 recomputed
    assert len(records(results)) == 6
    for path, mtime in mtimes.items():
        assert path.stat().st_mtime_ns == mtime  # 0 lost, 0 rewritten


@pytest.fixture
def two_node_cluster(tmp_path):
    """``ray start --head`` and a second ``ray start --address`` with its own resource, on this
    machine; stopped afterwards."""
    # workers at normal priority, as the embedded Ray's: Ray's default niceness (15) starves
    # them behind any other work on the machine
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_worker_niceness": "0"}
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = subprocess.run([str(RAY_BIN), "start", "--head", "--port=0",
                           "--include-dashboard=false", "--resources={\"head_node\": 1}",
                           *common], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert head.returncode == 0, head.stdout + head.stderr
        address = next(line.split("--address=")[1].strip().strip("'")
                       for line in head.stdout.splitlines() + head.stderr.splitlines()
                       if "ray start --address=" in line)
        second = subprocess.run([str(RAY_BIN), "start", f"--address={address}",
                                 "--resources={\"second_node\": 1}", *common], env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        yield address, env
    finally:
        subprocess.run([str(RAY_BIN), "stop", "--force"], env=env, capture_output=True,
                       timeout=120)


def test_a_sweep_through_an_address_uses_both_nodes(tmp_path, grid, two_node_cluster):
    address, env = two_node_cluster

    count = (f"import ray, time; ray.init(address={address!r}, logging_level='error')\n"
             "while sum(n['Alive'] for n in ray.nodes()) < 2: time.sleep(0.2)")
    subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=120)
    results = tmp_path / "results"
    driver = run_cli([*grid, "--address", address, "--results", str(results)], env=env)
    out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, out
    assert f"Ray at {address}, 2 node(s): 2 runs in flight" in out
    placed = {body["environment"]["executor"]["node_id"] for body in records(results).values()}
    assert len(records(results)) == 4 and len(placed) == 2


@pytest.mark.parametrize("args, flag", [
    (["--executor", "ray", "--address", "127.0.0.1:9"], "--address: no Ray cluster answers"),
    (["--executor", "ray", "--address", "no-port"], "--address: 'no-port' is not a Ray"),
    (["--executor", "ray", "--workers", "0"], "workers: 0 is below the minimum 1"),
    (["--workers", "2"], "workers: applies to --executor ray"),
    (["--executor", "ray", "--device", "cuda:1"], "--device: with --executor ray"),
])
def test_mistakes_exit_2_naming_the_flag_before_any_run(tmp_path, capsys, args, flag):
    results = tmp_path / "results"
    code = main(["run", "--workload", "breast_cancer-mlp", "--method", "sgd", "--seeds", "1",
                 "--results", str(results), *args])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err
    assert not results.exists()  # no run was started
    assert not ray.is_initialized()


def test_ray_missing_is_one_message_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as where the package is not installed
    code = main(["run", "--workload", "breast_cancer-mlp", "--method", "sgd", "--seeds", "1",
                 "--results", str(tmp_path), "--executor", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and "--executor: ray needs the ray package" in err
    assert "pip install 'plp-bench[ray]'" in err
