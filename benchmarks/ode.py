"""The linearised network's ODE (BDF) against full-batch gradient descent: time to each
training-accuracy threshold, and their ratio (ODE / GD: below 1 means the ODE is faster). The
learning rate is where GD needs about a thousand steps for the top threshold.

Timings are load-robust by construction (:mod:`benchmarks.sampling`): one thread, whose CPU
time every seconds value is (the comparison times its own phases with ``time.perf_counter``,
which reads the thread's CPU clock while it is measured here,
:func:`benchmarks.sampling.package_clock_reads`); the whole
comparison is run ``ODE_SAMPLES`` times a round in one process after one discarded warm-up run
(the first builds the Jacobian machinery: 1.5 s against 0.01 s after it), and every seconds
value is returned with its samples. Each sample of the ratio pairs the ODE and GD of the same
repetition.

Gradient descent's seconds to a threshold are its steps to it (exact on the CPU) times its
seconds per step over the whole descent (which runs to the last threshold it reaches, or to
the budget): the lowest thresholds are reached in tens of steps, a few milliseconds, too short
to time against the machine's load on their own (their direct times spread 8% between two
identical commits and were flagged 1.16x and 1.18x in a round that changed only the ODE), and
every step of a full-batch descent does the same work.

The work each side does to a threshold is tracked exactly: GD's steps and the ODE's
right-hand-side evaluations (a solver tolerance or a step-size rule that changes shows there
first). ``OdeInstructions`` counts the same phases in instructions executed
(:mod:`benchmarks.ode_counting`): the seconds' twins that the host's speed does not move (the
absolute seconds moved up to 15% between two processes of one package when the host slowed
for minutes, README, "Comparing commits").
"""

import math

from .common import benchmark_workload, current_size, harness, interface_name, memo_per_run
from .instructions import SMOKE_WITHOUT_ODE, CountedSuite
from .ode_counting import GD_STEP
from .ode_settings import SETTINGS, budget
from .rounds import TIMING_ROUNDS
from .sampling import clock_for, collector_off, package_clock_reads, prepare_timing, sampled

SIZE = current_size()
# Repetitions of the whole comparison each round. Why 12: with 4, one process's ratio samples
# spread over 0.55-0.83 of their median beside a busy host, and the medians of an A/A pair
# moved 8%; with 12, at most 3.9% in eight rounds (README, "Comparing commits"), for 6 s more
# a round
ODE_SAMPLES = 2 if SIZE.name == "smoke" else 12


def comparison(name: str) -> dict:
    """Per threshold: the samples of GD's and the ODE's seconds (None where not reached),
    GD's steps and the ODE's right-hand-side calls to it. Measured once per asv run."""
    with harness():
        compare = interface_name("plp_bench.studies.ode_comparison", "compare")
        SOLVERS = interface_name("plp_bench.methods.solvers", "SOLVERS")

        from plp_bench import workloads
    lr, thresholds, _ = SETTINGS[name]
    steps = budget(name)
    benchmark_workload(name)  # skipped where the data is absent

    def once():
        return compare(workloads.get(name), lr, solver=SOLVERS.get("bdf")(),
                       thresholds=tuple(thresholds), max_steps=steps)

    def run() -> dict:
        prepare_timing()
        with package_clock_reads(clock_for()):
            once()  # warm-up, discarded
            with collector_off():
                results = [once() for _ in range(ODE_SAMPLES)]
        rows = {}
        for index, row in enumerate(results[0].rows):
            repeats = [result.rows[index] for result in results]
            rows[f"{row.threshold:.2f}"] = {
                "gd": [_descent_seconds(result, r) for result, r in zip(results, repeats,
                                                                        strict=True)],
                "ode": [r.ode_seconds for r in repeats],
                "gd_steps": row.gd_steps, "ode_rhs_calls": getattr(row, "ode_rhs_calls", None)}
        return rows

    return memo_per_run(f"ode-{name}", run)


def _descent_seconds(result, row) -> float | None:
    """Gradient descent's seconds to ``row``'s threshold: its steps there times the descent's
    seconds per step (see the module); None where it did not reach the threshold."""
    if row.gd_steps is None:
        return None
    reached = [r.gd_steps for r in result.rows if r.gd_steps is not None]
    # the descent stops at the last threshold it reaches, else runs the whole budget
    steps_run = max(reached) if len(reached) == len(result.rows) else result.max_steps
    return row.gd_steps * result.gd_seconds_total / max(steps_run, 1)


class OdeVersusGradientDescent:
    params = [SIZE.ode_workloads, ["0.75", "0.80", "0.85", "0.90", "0.95"]]
    param_names = ["workload", "train_accuracy"]
    timeout = 1800
    version = 3

    def setup(self, workload, accuracy):
        rows = comparison(workload)
        if accuracy not in rows:
            raise NotImplementedError(f"{workload} is not tracked at {accuracy}")
        self.row = rows[accuracy]

    def _samples(self, key):
        """The seconds to the threshold with their samples; NaN (asv: n/a, a skipped value)
        when it was not reached within the budget. (A ``NotImplementedError`` outside
        ``setup`` is a failure to asv.)"""
        values = self.row[key]
        if any(v is None for v in values):
            return math.nan
        return sampled(values)

    def track_gd_seconds(self, workload, accuracy):
        """Seconds of full-batch gradient descent to the threshold: its steps there times its
        CPU seconds per step over the whole descent (see the module)."""
        return self._samples("gd")

    track_gd_seconds.rounds = TIMING_ROUNDS
    track_gd_seconds.unit = "seconds"

    def track_ode_seconds(self, workload, accuracy):
        """Seconds of the ODE to the threshold, Jacobian build and integration (its one
        thread's CPU time)."""
        return self._samples("ode")

    track_ode_seconds.rounds = TIMING_ROUNDS
    track_ode_seconds.unit = "seconds"

    def track_ode_over_gd(self, workload, accuracy):
        """ODE seconds over GD seconds to the threshold, each sample from one repetition."""
        gd, ode = self.row["gd"], self.row["ode"]
        if any(v is None for v in gd + ode):
            return math.nan
        return sampled([o / g for o, g in zip(ode, gd, strict=True)])

    track_ode_over_gd.rounds = TIMING_ROUNDS
    track_ode_over_gd.unit = "ratio"
    # 4: twelve repetitions a round (four before). The ratio's medians had moved with its few
    # samples, so its noise is measured anew; the absolute seconds moved with the host's speed
    # between processes, which more samples do not change, and keep the rounds measured before
    track_ode_over_gd.version = 4

    def track_gd_steps(self, workload, accuracy):
        """Gradient-descent steps to the threshold (exact on the CPU)."""
        value = self.row["gd_steps"]
        return math.nan if value is None else float(value)

    track_gd_steps.unit = "steps"

    def track_ode_rhs_calls(self, workload, accuracy):
        """Right-hand-side evaluations of the ODE solver to the threshold (exact on the CPU)."""
        value = self.row["ode_rhs_calls"]
        return math.nan if value is None else float(value)

    track_ode_rhs_calls.unit = "calls"


class OdeInstructions(CountedSuite):
    """The comparison's work in instructions executed, counted by Valgrind's callgrind
    (:mod:`benchmarks.ode_counting`, in a child beside those that count the updates'): the
    counted twins of ``OdeVersusGradientDescent``'s seconds, which the machine's load and
    speed do not move. An install counts the same every time; a solver tolerance, a
    step-size rule or a slower right-hand side of a commit shows here as a change of a few
    percent. Skipped where Valgrind is missing, where the ODE does not reach the threshold
    within the budget, and at the smoke size (:data:`benchmarks.instructions.SMOKE_WITHOUT_ODE`).
    """

    params = OdeVersusGradientDescent.params
    param_names = OdeVersusGradientDescent.param_names
    kind = "ode"

    def setup(self, counts, workload, accuracy):
        if SIZE.name == SMOKE_WITHOUT_ODE:
            raise NotImplementedError(f"the ODE's counts are left out of the {SIZE.name} size "
                                      f"(benchmarks.instructions.SMOKE_WITHOUT_ODE)")
        super().setup(counts, workload, accuracy)
        self.ode = counts[(self.kind, workload, accuracy)]
        self.gd_step = counts[(self.kind, workload, GD_STEP)]
        self.gd_steps = comparison(workload)[accuracy]["gd_steps"]

    def track_ode_instructions(self, counts, workload, accuracy):
        """Instructions of the ODE to the threshold: the Jacobian build and the integration to
        the first solver step that reaches it."""
        return float(self.ode)

    track_ode_instructions.unit = "instructions"

    def track_gd_instructions(self, counts, workload, accuracy):
        """Instructions of full-batch gradient descent to the threshold: its steps there
        (exact) times one step's instructions (NaN where it did not reach it)."""
        return math.nan if self.gd_steps is None else self.gd_steps * self.gd_step

    track_gd_instructions.unit = "instructions"

    def track_ode_over_gd_instructions(self, counts, workload, accuracy):
        """The ODE's instructions to the threshold over gradient descent's: the counted twin
        of ``track_ode_over_gd``."""
        return self.ode / self.track_gd_instructions(counts, workload, accuracy)

    track_ode_over_gd_instructions.unit = "ratio"
