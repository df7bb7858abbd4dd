"""Steps and seconds to each target, and the best model's test errors, for every workload and
method of the size (:mod:`benchmarks.common`). Every tracked value is lower-is-better.

Each point is several seeds combined by the median; "runs that missed" counts the seeds that
never reached the target (a miss counts as the run's whole budget in the medians). Each
(commit, workload, method, seed) trains once: the records are cached on disk by commit and
config hash, and every ``track_`` below reads them.
"""

import statistics

from .common import censored_median, convergence_records, current_size

SIZE = current_size()
TARGETS = ["1", "2", "3", "4"]  # loosest first; the workload's last target is its primary


class TargetTracks:
    params = [SIZE.workloads, SIZE.methods, TARGETS]
    param_names = ["workload", "method", "target"]
    timeout = 3600
    version = 1

    def setup(self, workload, method, target):
        self.records = convergence_records(workload, method)
        self.index = int(target) - 1
        if self.index >= len(self.records[0].targets):
            raise NotImplementedError(f"{workload} has {len(self.records[0].targets)} targets")

    def track_steps_to_target(self, workload, method, target):
        return censored_median(self.records, self.index, "steps")

    track_steps_to_target.unit = "steps"

    def track_seconds_to_target(self, workload, method, target):
        return censored_median(self.records, self.index, "seconds")

    track_seconds_to_target.unit = "seconds"

    def track_runs_that_missed(self, workload, method, target):
        return float(sum(r.targets[self.index].steps is None for r in self.records))

    track_runs_that_missed.unit = "runs"


class TestTracks:
    params = [SIZE.workloads, SIZE.methods]
    param_names = ["workload", "method"]
    timeout = 3600
    version = 1

    def setup(self, workload, method):
        self.records = convergence_records(workload, method)
        self.tested = [r.best_test for r in self.records if r.best_test is not None]
        if not self.tested:
            raise NotImplementedError("no run produced a model to test")

    def track_test_error(self, workload, method):
        return float(statistics.median(t.error for t in self.tested))

    track_test_error.unit = "error"

    def track_test_top5_error(self, workload, method):
        return float(statistics.median(t.top5_error for t in self.tested))

    track_test_top5_error.unit = "error"
