"""Steps and seconds to each target, and the best model's test errors, for every workload and
method of the size (:mod:`benchmarks.common`). Every tracked value is lower-is-better.

Each point is the size's seeds combined by the median (one seed at the ci size); "runs that
missed" counts the seeds that never reached the target (a miss counts as the run's whole budget
in the medians). Each (commit, workload, method, seed) trains once: the records are cached on
disk by commit and config hash, and every ``track_`` below reads them. Training runs on one
thread. At the sizes that cap budgets (ci, smoke) a run ends at its last target
(``common.grid_workload``): the test errors are then of the best model up to there.

Time to a target has two tracks:

* ``track_time_to_target``, the one commits are compared on: steps to the target (exact on the
  CPU) times the method's cost of one training step on the workload, in units of one SGD step
  of the same workload (the workload's own SGD, same model and batch; SGD's own cost is 1 by
  definition, so its time to a target is its steps). The cost is a ratio of
  the two training steps timed in alternation on one thread (:mod:`benchmarks.sampling`), so
  the machine's load cancels out of it; it is returned with its samples. One-off costs (a
  weight jump, the evaluations) are not in it: the ``jumps`` suite tracks a jump's cost in
  steps.
* ``track_wall_seconds_to_target``: the training clock's seconds as the record has them, one
  sample per seed. They move with the machine's load; they are kept to show what a run took.
"""

import math
import statistics

from .common import (
    benchmark_workload,
    censored_median,
    convergence_records,
    current_size,
    harness,
    memo_per_run,
)
from .costs import StepBench, fresh_pair, named_method
from .rounds import TIMING_ROUNDS
from .sampling import interleaved_ratios, prepare_timing, sampled

# the step cost is measured for each of the size's (workload, method) pairs (68 at the ci
# size): half a second in each of its two rounds, the minimum of calls per side beyond that
COST_BUDGET_SECONDS = 0.5
UNSTEPPED_METHODS = ("gd-fullbatch", "linearized-bdf", "linearized-lsoda")  # full batch or
# no optimizer step: no per-step cost against minibatch SGD


REFERENCE_METHOD = "sgd"  # the workload's SGD: the unit a step's cost is counted in


def step_cost_in_sgd_steps(workload_name: str, method_name: str) -> list[float]:
    """Samples of the time of one training step of the method on the workload over one step
    of the workload's SGD (whole steps: forward, backward, update), measured once per asv
    run. SGD's own cost is the unit, exactly 1 and not measured: timing its step against an
    identical one adds only noise (while it was timed, SGD's times to target on banknote-mlp
    moved 6.6% between the two sides of an A/A round, more than any other method's)."""
    if method_name == REFERENCE_METHOD:
        return [1.0]

    def measure() -> list[float]:
        with harness():
            from plp_bench import data
        prepare_timing()
        workload = benchmark_workload(workload_name)
        dataset = data.load(workload.dataset, seed=0)
        method = StepBench.on_workload(named_method(method_name), workload, dataset)
        reference = StepBench.on_workload(named_method(REFERENCE_METHOD), workload, dataset)
        for bench in (method, reference):
            bench.steps()  # allocate state outside the timing
        method.past_jumps()
        return interleaved_ratios(fresh_pair(method, reference), budget=COST_BUDGET_SECONDS)

    return memo_per_run(f"step-cost-{workload_name}-{method_name}", measure)

SIZE = current_size()
TARGETS = ["1", "2", "3", "4"]  # loosest first; the workload's last target is its primary


class TargetTracks:
    params = [SIZE.workloads, SIZE.methods, TARGETS]
    param_names = ["workload", "method", "target"]
    timeout = 3600
    version = 3  # 3: the ci size's one seed, not the median of two

    def setup(self, workload, method, target):
        # no prepare_timing() here: the grid's training sets its thread itself, and the step
        # cost's measurement its own; 56 ms a point, and the suite has over a thousand
        self.records = convergence_records(workload, method)
        self.index = int(target) - 1
        if self.index >= len(self.records[0].targets):
            raise NotImplementedError(f"{workload} has {len(self.records[0].targets)} targets")
        self.workload, self.method = workload, method

    def track_steps_to_target(self, workload, method, target):
        """Optimizer steps to the target, median over seeds (exact on the CPU)."""
        return censored_median(self.records, self.index, "steps")

    track_steps_to_target.unit = "steps"

    def track_time_to_target(self, workload, method, target):
        """Time to the target in SGD steps of the workload: steps to the target times the
        method's step cost over SGD's, with the cost's samples (see the module)."""
        if method in UNSTEPPED_METHODS:
            return math.nan
        steps = censored_median(self.records, self.index, "steps")
        return sampled([steps * cost for cost in step_cost_in_sgd_steps(workload, method)])

    track_time_to_target.rounds = TIMING_ROUNDS
    track_time_to_target.unit = "SGD steps"

    def track_wall_seconds_to_target(self, workload, method, target):
        """Training-clock seconds to the target, one sample per seed (a miss counts as the
        run's whole training time); they move with the machine's load."""
        values = []
        for record in self.records:
            hit = record.targets[self.index]
            values.append(hit.seconds if hit.steps is not None else record.train_seconds)
        return sampled(values)

    track_wall_seconds_to_target.unit = "seconds"

    def track_runs_that_missed(self, workload, method, target):
        return float(sum(r.targets[self.index].steps is None for r in self.records))

    track_runs_that_missed.unit = "runs"


class TestTracks:
    params = [SIZE.workloads, SIZE.methods]
    param_names = ["workload", "method"]
    timeout = 3600
    version = 2  # 2: at the capped sizes, the best model up to the last target, on one seed

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
