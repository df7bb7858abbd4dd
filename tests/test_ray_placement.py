"""The Ray executor's decisions that need no cluster: the placement of runs on given nodes,
the run config's executor keys, the report variant of records placed by Ray, and the progress
display of several runs in flight."""

import io

import pytest
from helpers import tiny
from rich.console import Console

from plp_bench.core.config import ConfigError
from plp_bench.core.record import RunResult, variant_label
from plp_bench.methods.catalogue import get_method
from plp_bench.sweeps.config_file import load_run_config, resolve
from plp_bench.sweeps.grid import RunError, RunTask
from plp_bench.sweeps.progress import RichSweepProgress
from plp_bench.sweeps.ray import Placement, RaySettings, plan_placement


def node(cpus, gpus=0):
    return {"Alive": True, "Resources": {"CPU": float(cpus), "GPU": float(gpus)}}


@pytest.mark.parametrize("settings, device, nodes, expected", [
    (RaySettings(), "cpu", [node(2)], Placement(2, 1, 0.0)),  # a 1-thread run per core
    (RaySettings(workers=2), "cpu", [node(16)], Placement(2, 8, 0.0)),  # cores split evenly
    (RaySettings(workers=3), "cpu", [node(8), node(8)], Placement(3, 5, 0.0)),
    (RaySettings(), "cuda", [node(16, 4), node(16, 4)], Placement(8, 4, 1.0)),  # a run per GPU
    (RaySettings(gpus_per_run=0.5), "cuda", [node(8, 2)], Placement(4, 2, 0.5)),
    (RaySettings(workers=1, cpus_per_run=3), "cpu", [node(4)], Placement(1, 3, 0.0)),
    (RaySettings(), "cuda", [node(64), node(8, 1)], Placement(1, 8, 1.0)),  # the GPU node only
])
def test_defaults_fill_the_cluster_and_split_its_cores(settings, device, nodes, expected):
    assert plan_placement(settings, device, nodes) == expected


@pytest.mark.parametrize("settings, device, nodes, flag, words", [
    (RaySettings(), "cuda", [node(8)], "--gpus-per-run", "no node of the cluster has"),
    (RaySettings(gpus_per_run=2), "cuda", [node(8, 1), node(8, 1)], "--gpus-per-run",
     "GPUs per node: 1, 1"),
    (RaySettings(gpus_per_run=1), "cpu", [node(8, 1)], "--gpus-per-run", "use --device cuda"),
    (RaySettings(gpus_per_run=0), "cuda", [node(8, 1)], "--gpus-per-run", "needs a GPU"),
    (RaySettings(cpus_per_run=9), "cpu", [node(8), node(8)], "--cpus-per-run", "CPUs per node"),
    (RaySettings(cpus_per_run=8, gpus_per_run=1), "cuda", [node(4, 1), node(16)],
     "--cpus-per-run", "beside the GPUs"),
])
def test_requests_no_node_can_meet_name_their_flag(settings, device, nodes, flag, words):
    with pytest.raises(ConfigError) as caught:
        plan_placement(settings, device, nodes)
    assert caught.value.path == (flag,) and words in str(caught.value)


@pytest.mark.parametrize("field, value", [("workers", 0), ("cpus_per_run", 1.5),
                                          ("retries", -1), ("gpus_per_run", -0.5),
                                          ("workers", True)])
def test_settings_built_in_python_are_checked_too(field, value):
    with pytest.raises(ConfigError, match=field.replace("_", "-")):
        RaySettings(**{field: value})


def test_the_run_config_takes_the_executor_keys(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("executor: ray\naddress: 10.0.0.1:6379\nworkers: 4\ngpus_per_run: 0.5\n"
                    "device: cuda\n")
    config, source = load_run_config(str(path))
    assert resolve(config, source=source).ray == RaySettings("10.0.0.1:6379", 4, None, 0.5, 3)
    path.write_text("cpus_per_run: 2\n")
    config, source = load_run_config(str(path))
    with pytest.raises(ConfigError, match=r"sweep.yaml: cpus_per_run: applies to --executor"):
        resolve(config, source=source)
    path.write_text("executor: dask\n")
    with pytest.raises(ConfigError, match="'dask' is not allowed"):
        load_run_config(str(path))


def record(environment):
    return RunResult(workload="digits-cnn", method="sgd", seed=0, device="cpu", config={},
                     config_hash="x", environment=environment, curves=None, targets=[],
                     steps_run=1, train_seconds=1.0, wall_seconds=1.0)


def test_records_placed_by_ray_are_their_own_report_variant():
    assert variant_label(record({"threads": 2})) == "digits-cnn"  # in-process, as before
    ray = {"name": "ray", "workers": 2, "cpus_per_run": 1, "gpus_per_run": 0.0}
    assert variant_label(record({"threads": 1, "executor": ray})) == \
        "digits-cnn+ray+workers-2+threads-1"
    shared = {**ray, "gpus_per_run": 0.5}
    assert variant_label(record({"threads": 1, "executor": shared})).endswith("+gpus-0.5")


def test_the_progress_display_shows_every_run_in_flight():
    from plp_bench.runs.protocol import Progress

    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    tasks = [RunTask(tiny(), get_method(m), 0, "cpu", tmp) for m, tmp in
             (("sgd", "a.json"), ("plp", "b.json"), ("adam", "c.json"))]
    with RichSweepProgress(console) as display:
        display.sweep_started(total=5, skipped=1)
        for task in tasks:
            display.run_started(task)
        display.run_progress(tasks[1], Progress(12, 24, 0.5, 0.1, 0.25))
        assert display._grid_status() == "3 running, 1 already done"
        shown = display.bars.make_tasks_table(display.bars.tasks)
        text = Console(file=io.StringIO(), width=200)
        text.print(shown)
        rendered = text.file.getvalue()
        assert all(t.label in rendered for t in tasks) and "val err 0.2500" in rendered
        display.run_finished(tasks[0], None, RunError("WorkerCrashedError: gone"))
        display.run_finished(tasks[1], record({}), None)
        assert display._grid_status() == "1 running, 1 failed, 1 already done"
        assert [t.description for t in display.bars.tasks] == ["runs", tasks[2].label]
    assert "failed breast_cancer-mlp / sgd / seed 0: WorkerCrashedError: gone" in out.getvalue()
