"""The linearised network's ODE (BDF) against full-batch gradient descent: wall seconds to each
training-accuracy threshold, and their ratio (ODE / GD: below 1 means the ODE is faster). The
learning rate is where GD needs about a thousand steps for the top threshold."""

import math

from .common import benchmark_workload, current_size, harness, interface_name, memo

SIZE = current_size()
SETTINGS = {  # learning rate, thresholds, budget in GD steps
    "banknote-mlp": (0.005, [0.80, 0.85, 0.90, 0.95], 5000),
    "magic-mlp": (0.03, [0.75, 0.80, 0.85], 20000),
}
SMOKE_BUDGET = 1000  # GD steps at the smoke size (0.80 to 0.90 are reached): that it runs


def comparison(name: str) -> dict:
    with harness():
        compare = interface_name("plp_bench.studies.ode_comparison", "compare")
        SOLVERS = interface_name("plp_bench.methods.solvers", "SOLVERS")

        from plp_bench import workloads
    lr, thresholds, budget = SETTINGS[name]
    if SIZE.name == "smoke":
        budget = SMOKE_BUDGET
    benchmark_workload(name)  # skipped where the data is absent

    def run() -> dict:
        result = compare(workloads.get(name), lr, solver=SOLVERS.get("bdf")(),
                         thresholds=tuple(thresholds), max_steps=budget)
        return {f"{row.threshold:.2f}": {"gd": row.gd_seconds, "ode": row.ode_seconds}
                for row in result.rows}

    return memo(f"ode-{name}", run)


class OdeVersusGradientDescent:
    params = [SIZE.ode_workloads, ["0.75", "0.80", "0.85", "0.90", "0.95"]]
    param_names = ["workload", "train_accuracy"]
    timeout = 1800
    version = 1

    def setup(self, workload, accuracy):
        rows = comparison(workload)
        if accuracy not in rows:
            raise NotImplementedError(f"{workload} is not tracked at {accuracy}")
        self.row = rows[accuracy]

    def _value(self, key):
        """Seconds to the threshold; NaN (asv: n/a, a skipped value) when it was not reached
        within the budget. (A ``NotImplementedError`` outside ``setup`` is a failure to asv.)"""
        value = self.row[key]
        return math.nan if value is None else value

    def track_gd_seconds(self, workload, accuracy):
        return self._value("gd")

    track_gd_seconds.unit = "seconds"

    def track_ode_seconds(self, workload, accuracy):
        return self._value("ode")

    track_ode_seconds.unit = "seconds"

    def track_ode_over_gd(self, workload, accuracy):
        return self._value("ode") / self._value("gd")

    track_ode_over_gd.unit = "ratio"
