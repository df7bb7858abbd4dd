"""The ODE comparison's work counted in instructions, in the counting child of
:mod:`benchmarks.instructions` (kind ``"ode"``): what ``ode.OdeInstructions`` tracks.

Per workload of ``ode_settings.SETTINGS``, on the seed-0 network the timed comparison builds
(``plp_bench.studies.ode_comparison.compare`` times the same three pieces):

* **the Jacobian build**: ``linearize``'s two reads of the package's clock (``time.perf_counter``
  around the network's Jacobian and the linearised flow) are where counting starts and where it
  is dumped, so it is exactly the phase the comparison's ``jacobian_seconds`` times;
* **the integration to each threshold**: ``integrate`` (SciPy's BDF at the solver settings
  the comparison uses), counted from the call; its ``on_step`` hook, called after every
  solver step, dumps the count at the first step whose training accuracy reaches each
  threshold (the comparison's own rule for a hit; the dump's own requests are outside the
  count, the hook's few Python instructions a step are in it), and stops it once the highest
  threshold asked for is reached. The ODE's instructions to a threshold are the build's plus
  the integration's up to there;
* **one step of full-batch gradient descent**: ``gradient_descent`` reads the clock once a
  step, so counting starts at one read and is dumped :data:`GD_STEPS` reads later, after
  :data:`GD_WARM_STEPS` steps: the instructions of that many whole steps (forward with the
  accuracy check, backward, update), reported per step. Every step of a full-batch descent
  does the same work, so its instructions to a threshold are its steps there (exact, tracked by
  ``ode.OdeVersusGradientDescent``) times this: the counted twin of the timed
  ``track_gd_seconds``, which is steps times seconds per step. Counting 1226 steps under
  Valgrind would take over a minute a commit.

Before the counts, one Jacobian build and :data:`ODE_WARM_STEPS` solver steps run uncounted:
the first build loads ``torch.func``'s machinery (1.5 s natively, against 0.01 s after), and the
first steps translate SciPy's code. The counted calls follow in the same order in every commit,
so what Python's specialisation does to them is the same on both sides of a comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# Solver steps of the uncounted warm-up integration, and gradient-descent steps before and in
# the count of one step.
ODE_WARM_STEPS = 10
GD_WARM_STEPS = 10
GD_STEPS = 20
# The point of a workload that holds one gradient-descent step's instructions; the others are
# thresholds, "0.80" .. "0.95" as ``ode.OdeVersusGradientDescent`` names them.
GD_STEP = "gd-step"


class _Dumps:
    """Labels for the child's dumps (``o1``, ``o2``, ...) and the client requests
    (:class:`benchmarks.instructions.ClientRequests`) that start, dump and stop counting."""

    def __init__(self, requests: Any) -> None:
        self.issued = 0
        self.start = requests.start_counting
        self.dump = requests.dump
        self.stop = requests.stop_counting

    def label(self) -> str:
        self.issued += 1
        return f"o{self.issued}"


@contextmanager
def _clock_counting(dumps: _Dumps, start_read: int, dump_read: int, label: str
                    ) -> Iterator[None]:
    """While inside, the package's clock starts counting at its ``start_read``-th read and
    dumps under ``label``, then stops, at its ``dump_read``-th (reads numbered from 1)."""
    from .sampling import package_clock_reads

    reads = 0

    def clock() -> float:
        nonlocal reads
        reads += 1
        if reads == start_read:
            dumps.start()
        elif reads == dump_read:
            dumps.dump(label)
            dumps.stop()
        return float(reads)

    with package_clock_reads(clock):
        yield
    if not start_read <= dump_read <= reads:
        raise RuntimeError(f"the package read its clock {reads} times; counting needed "
                           f"reads {start_read} and {dump_read}")


def _hits_dumped(dumps: _Dumps, thresholds: Sequence[float], labels: dict[float, str],
                 last: float) -> Callable[[Any, float, float], bool]:
    """``integrate``'s ``on_step`` hook: at the first step whose accuracy reaches a threshold,
    dump under a new label (recorded in ``labels``); stop the integration once ``last`` is
    reached (the prefix counted is the same as a whole integration's)."""
    pending = sorted(thresholds)

    def on_step(solver: Any, accuracy: float, seconds: float) -> bool:
        while pending and accuracy >= pending[0]:
            threshold = pending.pop(0)
            labels[threshold] = dumps.label()
            dumps.dump(labels[threshold])
        return last not in labels

    return on_step


def count_ode(points: Sequence[tuple[str, str, str]], requests: Any) -> list[list[str]]:
    """The child's work for the ``"ode"`` points (``("ode", workload, threshold or
    GD_STEP)``): report rows ``[kind, workload, point, work labels, units]`` (see
    :func:`benchmarks.instructions.ratios_from`). A workload whose data or interface the
    commit lacks is left out, as is a threshold the ODE does not reach within the budget."""
    dumps = _Dumps(requests)
    rows = []
    for name in sorted({workload for _, workload, _ in points}):
        asked = {point for _, workload, point in points if workload == name}
        try:
            rows += _count_workload(name, asked, dumps)
        except NotImplementedError:
            continue
    return rows


def _count_workload(name: str, asked: set[str], dumps: _Dumps) -> list[list[str]]:
    """One workload's rows (see :func:`count_ode` and the module); ``NotImplementedError``
    where the commit lacks its data or the interface."""
    import torch

    from .common import benchmark_workload, harness, interface_name
    from .ode_settings import SETTINGS, budget
    from .sampling import collector_off

    benchmark_workload(name)  # skipped where the data is absent
    with harness():
        load = interface_name("plp_bench.data", "load")
        named_workload = interface_name("plp_bench.workloads", "get")
        linearize = interface_name("plp_bench.runs.solving", "linearize")
        integrate = interface_name("plp_baselines.linearized", "integrate")
        descend = interface_name("plp_baselines.linearized", "gradient_descent")
        solvers = interface_name("plp_bench.methods.solvers", "SOLVERS")
    lr, thresholds, _ = SETTINGS[name]
    steps = budget(name)
    solver = solvers.get("bdf")()
    workload = named_workload(name)  # uncapped, as the timed comparison takes it
    dataset = load(workload.dataset, device=torch.device("cpu"), seed=0,
                   val_fraction=workload.val_fraction)

    def solve(model: Any, on_step: Callable[..., Any], hits: Sequence[float]) -> Any:
        return integrate(model, float(steps), solver=solver.method, rtol=solver.rtol,
                         atol=solver.atol, thresholds=tuple(hits), on_step=on_step)

    with collector_off():
        _, _, model, _ = linearize(workload, dataset, 0, lr, solver)  # warm-up
        warm = iter(range(ODE_WARM_STEPS - 1))
        solve(model, lambda *_: next(warm, None) is not None, ())

        build = dumps.label()
        with _clock_counting(dumps, 1, 2, build):
            network, _, model, _ = linearize(workload, dataset, 0, lr, solver)
        labels: dict[float, str] = {}
        last = max([t for t in thresholds if f"{t:.2f}" in asked], default=min(thresholds))
        dumps.start()
        solve(model, _hits_dumped(dumps, thresholds, labels, last), thresholds)
        dumps.stop()

        step = dumps.label()
        with _clock_counting(dumps, GD_WARM_STEPS + 1, GD_WARM_STEPS + 1 + GD_STEPS, step):
            descend(network, dataset.x_train, dataset.y_train, lr,
                    GD_WARM_STEPS + GD_STEPS + 1)
    rows = [["ode", name, GD_STEP, step, str(GD_STEPS)]] if GD_STEP in asked else []
    reached = sorted(labels)
    for index, threshold in enumerate(reached):
        key = f"{threshold:.2f}"
        if key in asked:
            work = [build, *(labels[t] for t in reached[:index + 1])]
            rows.append(["ode", name, key, "+".join(work), "1"])
    return rows
