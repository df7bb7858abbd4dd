"""The linearised network's ODE (BDF) against full-batch gradient descent: wall seconds to each
training-accuracy threshold, and their ratio (ODE / GD: below 1 means the ODE is faster). The
learning rate is where GD needs about a thousand steps for the top threshold."""

from plp_bench import benchmarking, workloads
from plp_bench.ode_table import compare
from plp_bench.solvers import SOLVERS

SIZE = benchmarking.current_size()
SETTINGS = {  # learning rate, thresholds, budget in GD steps
    "banknote-mlp": (0.005, [0.80, 0.85, 0.90, 0.95], 5000),
    "magic-mlp": (0.03, [0.75, 0.80, 0.85], 20000),
}


def comparison(name: str) -> dict:
    lr, thresholds, budget = SETTINGS[name]
    workload = benchmarking.benchmark_workload(name)

    def run() -> dict:
        result = compare(workloads.get(workload.name), lr, solver=SOLVERS.get("bdf")(),
                         thresholds=tuple(thresholds), max_steps=budget)
        return {f"{row.threshold:.2f}": {"gd": row.gd_seconds, "ode": row.ode_seconds}
                for row in result.rows}

    return benchmarking.memo(f"ode-{name}", run)


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
        if self.row[key] is None:
            raise NotImplementedError("not reached within the budget")
        return self.row[key]

    def track_gd_seconds(self, workload, accuracy):
        return self._value("gd")

    track_gd_seconds.unit = "seconds"

    def track_ode_seconds(self, workload, accuracy):
        return self._value("ode")

    track_ode_seconds.unit = "seconds"

    def track_ode_over_gd(self, workload, accuracy):
        return self._value("ode") / self._value("gd")

    track_ode_over_gd.unit = "ratio"
