"""Sweeps: the grid, resuming after an interruption, failed runs, records on disk."""

import pytest
from helpers import tiny

from plp_bench import results, sweep
from plp_bench.methods import MethodConfig, get_method
from plp_bench.sweeps import SequentialExecutor


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
    assert task.method.name == "broken" and "Invalid learning rate" in str(error)
    assert len(list(tmp_path.rglob("seed-*.json"))) == 1
    assert [p.name for p in tmp_path.rglob("failed-*.json")] == [f"failed-{task.path.name}"]
