"""Cost of the harness's training loop against a minimal hand-written PyTorch loop.

Both train the same workload's model with SGD for the same steps over the same seeded batches
(the harness additionally runs its schedules, clock, divergence check and two evaluations).
The goal is a per-step overhead within 5% (``track_overhead_ratio`` <= 1.05: the median time
per step of the two loops, each timed from optimizer step to optimizer step); ``LoopTimes``
gives the whole-run times including the fixed costs (not at the ``ci`` size). Everything runs
on one thread and every time is that thread's CPU time (:func:`benchmarks.sampling.clock_for`:
the time it waited for a core a neighbour held is not in it); the ratio's samples each pair
the two loops back to back (:mod:`benchmarks.sampling`).
"""

import itertools
import statistics

import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .common import current_size, harness, require_absolute_times, stream_seed
from .rounds import TIMING_ROUNDS
from .sampling import SAMPLES, clock_for, prepare_timing, repeated, sampled

STEPS = 30 if current_size().name == "smoke" else 300  # smoke: that it runs


def plain_loop(workload, dataset, seed: int, steps: int, make_optimizer=None) -> torch.nn.Module:
    """The reference: the loop a person would write by hand, with the harness's seed streams
    so it sees the same initial weights and batches (returns the trained model). The optimizer
    is the workload's SGD unless ``make_optimizer(params)`` builds another. The tests also
    check the harness's results against it."""
    with harness():
        from plp_bench import data, models
    torch.manual_seed(stream_seed(seed, "init"))
    model = models.create(workload.model, num_classes=dataset.num_classes,
                          input_shape=dataset.input_shape, **workload.model_options)
    params = model.parameters()
    if make_optimizer is None:
        optimizer = torch.optim.SGD(params, **workload.optimizers["sgd"])
    else:
        optimizer = make_optimizer(params)
    sampler = iter(data.EpochSampler(len(dataset.y_train), workload.batch_size,
                                     seed=stream_seed(seed, "batches")))
    model.train()
    for _ in range(steps):
        _, index = next(sampler)

        def closure(index=index):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(dataset.x_train[index]), dataset.y_train[index])
            loss.backward()
            return loss

        optimizer.step(closure)
    return model


class StepIntervals:
    """While active, the thread's CPU time at the start of every optimizer step (a global
    step pre-hook, so the harness is timed as it runs, not instrumented); :meth:`median` is the
    median interval between consecutive starts: a loop's cost per step, robust to the odd
    step a neighbour preempted and to a loop's one-off costs."""

    def __enter__(self) -> "StepIntervals":
        self.starts: list[float] = []
        clock = clock_for()
        self.handle = register_optimizer_step_pre_hook(
            lambda optimizer, args, kwargs: self.starts.append(clock()))
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()

    def median(self) -> float:
        if len(self.starts) < 3:
            raise RuntimeError(f"{len(self.starts)} optimizer steps were seen; a loop of "
                               f"{STEPS} steps was timed")
        return statistics.median(b - a for a, b in itertools.pairwise(self.starts))


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

    def track_overhead_ratio(self, name):
        """Per-step overhead, harness over plain loop: the median time from the start of one
        optimizer step to the start of the next (:class:`StepIntervals`; everything a loop
        does per step, forward and backward included) in a harness run over that in a plain
        loop's run, the two runs back to back in each sample. Costs paid once or at a few
        steps (model creation, the evaluations) are outside the median by construction; the
        whole runs are :class:`LoopTimes`."""

        def ratio() -> float:
            with StepIntervals() as plain:
                plain_loop(self.workload, self.dataset, 0, STEPS)
            with StepIntervals() as harnessed:
                self.harness_loop(self.workload)
            return harnessed.median() / plain.median()

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
