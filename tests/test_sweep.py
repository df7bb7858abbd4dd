"""Sweeps: the grid, resuming after an interruption, failed runs, records on disk."""

import pytest
from helpers import tiny

from plp_bench import sweep
from plp_bench.core import record as results
from plp_bench.methods.catalogue import MethodConfig, get_method
from plp_bench.sweeps.grid import SequentialExecutor


def grid():
    return [tiny(steps=8, eval_every=4)], [get_method("sgd"), get_method("adam")], [0, 1]


def test_sweep_writes_one_record_per_cell(tmp_path):
    workloads, methods, seeds = grid()
    report = sweep(workloads, methods, seeds, results_dir=tmp_path)
    assert (report.ran, report.skipped, len(report.failed)) == (4, 0, 0)
    files = sorted(tmp_path.rglob("*.json"))
    assert len(files) == 4
    loaded = results.load(files[0])
    assert loaded.workload == "breast_cancer-mlp" and files[0].name.startswith(f"seed-{loaded.seed}-")
    assert not list(tmp_path.rglob("*.tmp"))


class InterruptAfter(SequentialExecutor):
    """Behaves like Ctrl-C arriving during the run after ``n`` finished ones."""

    def __init__(self, n):
        self.n = n

    def execute(self, tasks, context):
        for i, item in enumerate(super().execute(tasks, context)):
            if i == self.n:
                raise KeyboardInterrupt
            yield item


def test_interrupted_sweep_resumes_without_redoing_work(tmp_path):
    workloads, methods, seeds = grid()
    with pytest.raises(KeyboardInterrupt):
        sweep(workloads, methods, seeds, results_dir=tmp_path, executor=InterruptAfter(2))
    done = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")}
    assert len(done) == 2  # the run the interrupt arrived in left no file
    report = sweep(workloads, methods, seeds, results_dir=tmp_path)
    assert (report.ran, report.skipped) == (2, 2)
    for path, mtime in done.items():
        assert path.stat().st_mtime_ns == mtime  # finished records were not rewritten
    again = sweep(workloads, methods, seeds, results_dir=tmp_path)
    assert (again.ran, again.skipped) == (0, 4)


def test_changed_config_is_not_skipped(tmp_path):
    workloads, methods, seeds = grid()
    sweep(workloads, methods[:1], seeds[:1], results_dir=tmp_path)
    changed = [workloads[0].replace(batch_size=16)]
    report = sweep(changed, methods[:1], seeds[:1], results_dir=tmp_path)
    assert (report.ran, report.skipped) == (1, 0)


def test_truncated_record_is_rerun(tmp_path):
    workloads, methods, seeds = grid()
    sweep(workloads, methods[:1], seeds[:1], results_dir=tmp_path)
    (path,) = tmp_path.rglob("*.json")
    path.write_text(path.read_text()[:100])
    report = sweep(workloads, methods[:1], seeds[:1], results_dir=tmp_path)
    assert (report.ran, report.skipped) == (1, 0)
    results.load(path)


def test_a_failing_run_is_reported_and_the_sweep_goes_on(tmp_path):
    broken = MethodConfig(name="broken", optimizer="sgd", hyperparameters={"lr": -1.0})
    workloads, _, _ = grid()
    report = sweep(workloads, [broken, get_method("sgd")], [0], results_dir=tmp_path)
    assert report.ran == 1 and len(report.failed) == 1
    task, error = report.failed[0]
    assert task.method.name == "broken" and "lr: -1.0 is out of range" in str(error)
    assert len(list(tmp_path.rglob("seed-*.json"))) == 1
    assert [p.name for p in tmp_path.rglob("failed-*.json")] == [f"failed-{task.path.name}"]


def test_the_dataset_cache_keeps_one_split_per_source(tmp_path):
    """Consecutive runs of one split share it; another seed or another source (a Ray worker
    serves sweeps of several data roots) builds again, and only one is ever kept."""
    from helpers import tiny

    from plp_bench.methods.catalogue import get_method
    from plp_bench.sweeps.grid import DatasetCache, RunTask

    built = []

    def build(name):
        return lambda: built.append(name) or name

    cache = DatasetCache()
    sgd, plp = get_method("sgd"), get_method("plp")
    first = RunTask(tiny(), sgd, 0, "cpu", tmp_path / "a.json")
    assert cache.get(first, build("a"), source="root-1") == "a"
    assert cache.get(RunTask(tiny(), plp, 0, "cpu", tmp_path / "b.json"), build("b"),
                     source="root-1") == "a"  # another method, the same split
    assert cache.get(first, build("c"), source="root-2") == "c"
    assert cache.get(RunTask(tiny(), sgd, 1, "cpu", tmp_path / "d.json"), build("d"),
                     source="root-2") == "d"
    assert cache.get(first, build("e"), source="root-1") == "e"  # only one was kept
    assert built == ["a", "c", "d", "e"]
