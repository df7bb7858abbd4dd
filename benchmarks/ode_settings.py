"""What the ODE comparison runs on each workload, which ``ode.OdeVersusGradientDescent`` times
and ``ode.OdeInstructions`` counts (:mod:`benchmarks.ode_counting`): the learning rate (where
GD needs about a thousand steps for the top threshold), the training-accuracy thresholds and
the budget in gradient-descent steps."""

from .common import current_size

SETTINGS = {  # learning rate, thresholds, budget in GD steps
    "banknote-mlp": (0.005, [0.80, 0.85, 0.90, 0.95], 5000),
    # the paper's four levels as on banknote, and 0.75: a two-layer network of 32 units may
    # not reach 0.90 or 0.95 on MAGIC within the budget (then n/a, which a change would lift)
    "magic-mlp": (0.03, [0.75, 0.80, 0.85, 0.90, 0.95], 20000),
}
SMOKE_BUDGET = 1000  # GD steps at the smoke size (0.80 to 0.90 are reached): that it runs


def budget(name: str) -> int:
    """Workload ``name``'s budget in GD steps at the current size (``PLP_BENCH_SIZE``)."""
    return SMOKE_BUDGET if current_size().name == "smoke" else SETTINGS[name][2]
