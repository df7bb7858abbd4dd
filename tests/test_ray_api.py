"""The Ray executor from Python, on one real local Ray that its tests share (started once: a
Ray costs seconds to start and its worker processes stay warm): the same records as in-process,
a worker killed mid-run (failed without retries, retried with them, and the rerun completing the
grid), the asv suite's grid through Ray, and requests no node can meet."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray
import torch
from helpers import records, running_ray_tasks, tiny

from plp_bench import sweep
from plp_bench.cli import main
from plp_bench.methods.catalogue import get_method
from plp_bench.sweeps.ray import RayExecutor, RaySettings
from plp_bench.sweeps.reproduce import deterministic_fields


@pytest.fixture(scope="module", autouse=True)
def shared_ray():
    # as the executor starts its embedded Ray: workers at the driver's priority
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="error", _system_config={"worker_niceness": 0})
    yield
    ray.shutdown()


def test_one_ray_worker_gives_the_in_process_records_bit_for_bit(tmp_path):
    """Every field but seconds and the environment, at the same thread count (1)."""
    workloads = [tiny(steps=16, eval_every=4), tiny("digits-cnn", steps=6, eval_every=3)]
    methods = [get_method("sgd"), get_method("plp"), get_method("xgrad-adam")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = sweep(workloads, methods, [0, 1], results_dir=tmp_path / "here")
    finally:
        torch.set_num_threads(threads)
    with RayExecutor(RaySettings(workers=1, cpus_per_run=1)) as executor:
        there = sweep(workloads, methods, [0, 1], results_dir=tmp_path / "ray",
                      executor=executor)
    assert (here.ran, there.ran, len(there.failed)) == (12, 12, 0)
    mine = {(r.workload, r.method, r.seed): r for r in here.results}
    for record in there.results:
        twin = mine[(record.workload, record.method, record.seed)]
        assert deterministic_fields(record) == deterministic_fields(twin)
        assert record.environment["threads"] == 1
        assert record.environment["executor"]["name"] == "ray"
        assert "executor" not in twin.environment  # in-process records are as before
    assert sorted(p.name for p in records(tmp_path / "here")) == \
        sorted(p.name for p in records(tmp_path / "ray"))
    made_by_ray = next(iter(records(tmp_path / "ray")))
    assert main(["rerun", str(made_by_ray)]) == 0  # at the record's thread count


class Killer(threading.Thread):
    """SIGKILLs the worker process of one run in flight, a tenth of a second into it (the
    runs of :func:`grid` take seconds, more on a busy machine: the kill lands mid-run)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.killed: int | None = None

    def run(self):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = running_ray_tasks()
            if running:
                time.sleep(0.1)
                os.kill(running[0], signal.SIGKILL)
                self.killed = running[0]
                return
            time.sleep(0.05)


def grid():
    return [tiny(steps=2400, eval_every=600)], [get_method("sgd"), get_method("plp")], [0, 1]


def test_a_killed_worker_is_recorded_failed_or_retried_and_the_rerun_completes(tmp_path):
    """Without retries the killed run is a failed-seed record and every other run is written;
    the sweep again reruns that cell alone, and a worker killed during it is retried by Ray:
    the grid completes with one record per cell, the finished ones untouched."""
    results = tmp_path / "results"
    killer = Killer()
    with RayExecutor(RaySettings(workers=2, retries=0)) as executor:
        killer.start()
        first = sweep(*grid(), results_dir=results, executor=executor)
    assert killer.killed is not None
    assert (first.ran, len(first.failed)) == (3, 1)
    kept, failures = records(results), list(results.rglob("failed-seed-*.json"))
    assert len(kept) == 3 and len(failures) == 1
    failure = json.loads(failures[0].read_text())
    assert "WorkerCrashedError" in failure["error"] and "after 0 retries" in failure["error"]
    assert failures[0].name.removeprefix("failed-") not in {p.name for p in kept}

    killer = Killer()
    with RayExecutor(RaySettings(workers=2, retries=1)) as executor:
        killer.start()
        again = sweep(*grid(), results_dir=results, executor=executor)
    assert killer.killed is not None
    assert (again.ran, again.skipped, len(again.failed)) == (1, 3, 0)
    final = records(results)
    assert len(final) == 4 and not list(results.rglob("failed-*.json"))
    for path, body in kept.items():
        assert final[path] == body  # finished records were not redone


@pytest.mark.parametrize("args, flag", [
    (["--device", "cuda", "--gpus-per-run", "1"], "--gpus-per-run: 1 GPU(s) per run, but no"),
    (["--cpus-per-run", "4096"], "--cpus-per-run: 4096 CPU(s) per run"),
])
def test_a_request_no_node_can_meet_exits_2_before_any_run(tmp_path, capsys, args, flag):
    results = tmp_path / "results"
    code = main(["run", "--workload", "breast_cancer-mlp", "--method", "sgd", "--seeds", "1",
                 "--results", str(results), "--executor", "ray", *args])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err
    assert not results.exists()  # no run was started
    assert ray.is_initialized()  # the Ray this process started is left as it was


def test_the_asv_convergence_suite_can_train_its_grid_through_ray(tmp_path, monkeypatch):
    """``PLP_BENCH_EXECUTOR=ray``: the first point trains the size's whole grid on Ray, every
    point then reads it from the run cache."""
    from benchmarks import common
    from benchmarks.convergence import TargetTracks

    monkeypatch.setenv("PLP_BENCH_SIZE", "smoke")
    monkeypatch.setenv("PLP_BENCH_ASV_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PLP_BENCH_EXECUTOR", "ray")
    monkeypatch.setenv("PLP_BENCH_WORKERS", "2")
    track = TargetTracks()
    track.setup("breast_cancer-mlp", "plp", "1")
    assert track.track_steps_to_target("breast_cancer-mlp", "plp", "1") > 0
    grid = records(common.runs_dir())
    assert len(grid) == 7  # 2 workloads x 4 methods x 1 seed, less linearized-bdf on the CNN
    assert {b["environment"]["executor"]["workers"] for b in grid.values()} == {2}
    mtimes = {p: p.stat().st_mtime_ns for p in grid}
    other = TargetTracks()
    other.setup("digits-cnn", "sgd", "2")  # read from the cache, not trained again
    assert {p: p.stat().st_mtime_ns for p in records(common.runs_dir())} == mtimes


def test_the_embedded_rays_workers_run_at_the_drivers_priority():
    """Ray nices its workers to 15 by default: on a machine with any other work they would
    wait behind it, and their runs' seconds would measure the neighbours. (In a process of its
    own: this module's tests share a Ray the executor does not own.)"""
    code = ("import os, ray\n"
            "from plp_bench.sweeps.ray import RayExecutor, RaySettings\n"
            "with RayExecutor(RaySettings(workers=1)) as executor:\n"
            "    executor.start('cpu')\n"
            "    print(ray.get(ray.remote(lambda: os.nice(0)).remote()), os.nice(0))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    worker, driver = done.stdout.split()[-2:]
    assert worker == driver
