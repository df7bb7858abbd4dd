"""Cost of the harness's training loop against a minimal hand-written PyTorch loop.

Both train the same workload's model with SGD for the same steps over the same seeded batches
(the harness additionally runs its schedules, clock, divergence check and two evaluations).
The goal is a per-step overhead within 5% (``track_overhead_ratio`` <= 1.05: the median over
steps of the harness's time per step over the plain loop's, the two loops' steps taken in
turns of ten steps in one process); ``LoopTimes`` gives the whole-run times including the fixed
costs (not at the ``ci`` size). Everything runs on one thread and every time is that thread's
CPU time (:func:`benchmarks.sampling.clock_for`: the time it waited for a core a neighbour held
is not in it; :mod:`benchmarks.sampling`).
"""

import statistics

import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .common import current_size, harness, require_absolute_times, stream_seed
from .rounds import TIMING_ROUNDS
from .sampling import SAMPLES, clock_for, prepare_timing, repeated, sampled

STEPS = 30 if current_size().name == "smoke" else 300  # smoke: that it runs


class PlainLoop:
    """The reference: the loop a person would write by hand, with the harness's seed streams
    so it sees the same initial weights and batches, one :meth:`step` at a time. The
    optimizer is the workload's SGD unless ``make_optimizer(params)`` builds another."""

    def __init__(self, workload, dataset, seed: int, make_optimizer=None) -> None:
        with harness():
            from plp_bench import data, models
        torch.manual_seed(stream_seed(seed, "init"))
        self.model = models.create(workload.model, num_classes=dataset.num_classes,
                                   input_shape=dataset.input_shape, **workload.model_options)
        params = self.model.parameters()
        if make_optimizer is None:
            self.optimizer = torch.optim.SGD(params, **workload.optimizers["sgd"])
        else:
            self.optimizer = make_optimizer(params)
        self.dataset = dataset
        self.sampler = iter(data.EpochSampler(len(dataset.y_train), workload.batch_size,
                                              seed=stream_seed(seed, "batches")))
        self.model.train()

    def step(self) -> None:
        """One training step: the next batch, forward, backward and the optimizer's step."""
        _, index = next(self.sampler)
        model, optimizer, dataset = self.model, self.optimizer, self.dataset

        def closure():
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(dataset.x_train[index]), dataset.y_train[index])
            loss.backward()
            return loss

        optimizer.step(closure)


def plain_loop(workload, dataset, seed: int, steps: int, make_optimizer=None) -> torch.nn.Module:
    """``steps`` steps of :class:`PlainLoop` (returns the trained model); the tests also check
    the harness's results against it."""
    loop = PlainLoop(workload, dataset, seed, make_optimizer)
    for _ in range(steps):
        loop.step()
    return loop.model


BLOCK = 10  # steps of each loop between two switches


class InterleavedSteps:
    """While active, the loop under test and ``reference`` take turns, ``block`` steps each:
    every ``block``-th optimizer step of the loop under test (a global step pre-hook, so the
    harness is timed as it runs, not instrumented) is preceded by ``block`` steps of
    ``reference``, everything on the thread's CPU clock
    (:func:`benchmarks.sampling.clock_for`). Within a turn, the loop under test's time per
    step is the interval from one of its optimizer steps to the next (everything it does per
    step: its update, schedules and bookkeeping, the next batch, forward and backward), and
    the reference's is each of its steps timed whole. The first step of each turn is left
    out on both sides: it finds the cache holding the other loop's data.

    :meth:`ratio` is the median over turns of the loop under test's median step over the
    reference's median step in the turn before it. The two alternate every few milliseconds,
    so a spell in which the host runs this core slower reaches both sides of a pair alike
    (two whole runs timed one after the other, a second apart, paired different speeds:
    samples of one process ranged over 0.72-1.42 where most lay within 1%)."""

    def __init__(self, reference: PlainLoop, block: int = BLOCK) -> None:
        self.reference = reference
        self.block = block
        self.turns: list[tuple[list[float], list[float]]] = []  # (tested, referenced)
        self._steps = 0
        self._last: float | None = None

    def __enter__(self) -> "InterleavedSteps":
        clock = clock_for()

        def before_step(optimizer, args, kwargs) -> None:
            if optimizer is self.reference.optimizer:
                return  # the reference's own step, inside this hook
            now = clock()
            if self._last is not None:
                self.turns[-1][0].append(now - self._last)
            if self._steps % self.block == 0:
                referenced = []
                for _ in range(self.block):
                    start = clock()
                    self.reference.step()
                    referenced.append(clock() - start)
                self.turns.append(([], referenced[1:]))
                self._last = None  # the interval to the next step is the turn's first
            else:
                self._last = now
            self._steps += 1

        self.handle = register_optimizer_step_pre_hook(before_step)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()

    def ratio(self) -> float:
        pairs = [statistics.median(tested) / statistics.median(referenced)
                 for tested, referenced in self.turns if tested and referenced]
        if len(pairs) < 3:
            raise RuntimeError(f"{len(pairs)} turns were timed; a loop of {STEPS} steps was "
                               f"timed in turns of {self.block}")
        return statistics.median(pairs)


class _Loops:
    """The workload cut to ``STEPS`` steps, and the harness's run of it with SGD."""

    params = [current_size().loop_workloads]
    param_names = ["workload"]
    timeout = 600
    version = 2
    rounds = TIMING_ROUNDS

    def setup(self, name):
        prepare_timing()
        with harness():
            from plp_bench import data, run, workloads
            from plp_bench.methods import get_method
        self.run = run
        self.workload = workloads.get(name).replace(steps=STEPS, epochs=None, eval_every=STEPS)
        self.dataset = data.load(self.workload.dataset, seed=0)
        self.method = get_method("sgd")

    def harness_loop(self, workload):
        self.run(workload, self.method, 0, dataset=self.dataset)


class LoopOverhead(_Loops):
    """The per-step overhead of the harness's loop (what commits are compared on)."""

    version = 3  # 3: the two loops' steps interleaved; 2 timed two whole runs in turn

    def track_overhead_ratio(self, name):
        """Per-step overhead, harness over plain loop: in each sample, a harness run of the
        workload and a fresh plain loop taking turns of ``BLOCK`` steps
        (:class:`InterleavedSteps`), and the median over turns of the harness's median time
        per step (everything from one optimizer step to the next, forward and backward
        included) over the plain loop's median step in the turn before. Costs paid once or at
        a few steps (model creation, the evaluations, the first step of a turn) are outside
        the medians by construction; the whole runs are :class:`LoopTimes`. What taking turns
        itself adds is small: a plain loop under test ran 1.002-1.008 times an identical
        reference (eight samples; 1.045 with turns of one step, which is why they are ten)."""

        def ratio() -> float:
            with InterleavedSteps(PlainLoop(self.workload, self.dataset, 0)) as steps:
                self.harness_loop(self.workload)
            return steps.ratio()

        return sampled(repeated(ratio, SAMPLES))

    track_overhead_ratio.unit = "ratio"


class LoopTimes(_Loops):
    """The two loops' whole runs, fixed costs included: absolute times, which no pairing
    cancels the host's load from (the ``ci`` size leaves them out, as it does the absolute
    update and jump times: between two identical commits they moved by up to 14% and were
    flagged at asv's ``--factor 1.05``; ``track_overhead_ratio`` is what commits are compared
    on)."""

    def setup(self, name):
        require_absolute_times()
        super().setup(name)

    def time_harness_loop(self, name):
        """The harness's whole run of the workload (CPU seconds of its one thread)."""
        self.harness_loop(self.workload)

    time_harness_loop.timer = clock_for()

    def time_plain_loop(self, name):
        """The hand-written loop's whole run (CPU seconds of its one thread)."""
        plain_loop(self.workload, self.dataset, 0, STEPS)

    time_plain_loop.timer = clock_for()
