"""Per-step cost and held memory of every registered method's update.

Parameters are those of a small MLP, a CIFAR ResNet18 and a CIFAR VGG16. Each timed call is
one PLP cycle (3 steps), so PLP's amortised cost is what is timed. Two views of the time:

* the update alone, on synthetic gradients (``track_update_seconds``,
  ``track_update_time_ratio``): what the method itself costs;
* whole training steps, forward and backward on a fixed random batch included
  (``track_training_step_ratio``): what the method costs a training run.

Goals for PLP over SGD with momentum (``plp``, the buffer-free path): extra memory exactly 0
(``HeldMemory.track_extra_memory_ratio``), update time at most 1.10x SGD's on the ResNet18 and
VGG16 parameters with the compiled kernel (``plp-compiled``; the multi-tensor path's bound is
1.125x, see :mod:`plp_bench.methods.plp_momentum`), whole training steps at most 1.03x on the MLP.
``plp-1n`` (one buffer per parameter, the path over other optimizers) is measured beside them.
Every ratio is the method over its bare base optimizer (same hyperparameters, no wrappers or
schedules), timed call by call in alternation on one thread in one process and returned with
its samples, each on fresh copies of the two (:mod:`benchmarks.sampling`), so the machine's
load cancels out of it and asv decides a change on the samples. A jump method is measured
past its jumps (:meth:`benchmarks.costs.StepBench.past_jumps`): its steps between jumps are
what it costs a step; a jump's own cost is the ``jumps`` suite's.

The ``...Cuda`` classes measure the same on a CUDA device, over the CIFAR backbones (ResNet18,
VGG16, GoogLeNet) and, for whole steps, batches of 128; they are skipped where there is none.
"""

from .common import CIFAR_PARAMETER_SETS, current_size, require_absolute_times, require_device
from .costs import (
    TRAINING_BATCH,
    StepBench,
    bare,
    fresh_pair,
    held_bytes,
    named_method,
    parameter_bytes,
)
from .instructions import CountedSuite
from .rounds import TIMING_ROUNDS
from .sampling import call_seconds, interleaved_ratios, prepare_timing, sampled

CUDA_TRAINING_BATCH = 128
SIZE = current_size()


def warmed_pair(method: str, parameters: str, batch_size=None, device: str = "cpu",
                steady: bool = True) -> tuple[StepBench, StepBench]:
    """The method and its bare optimizer over the same parameter set, each stepped once so
    that state is allocated before anything is timed; ``steady``: the method past its jumps
    too."""
    config = named_method(method)
    pair = (StepBench.build(config, parameters, batch_size=batch_size, device=device),
            StepBench.build(bare(config), parameters, batch_size=batch_size, device=device))
    for bench in pair:
        bench.steps()
    if steady:
        pair[0].past_jumps()
    return pair


class UpdateTime:
    params = [SIZE.secondary_sets, SIZE.stepped_methods]
    param_names = ["parameters", "method"]
    timeout = 300
    version = 2
    rounds = TIMING_ROUNDS
    device = "cpu"

    def setup(self, parameters, method):
        require_device(self.device)
        require_absolute_times()
        prepare_timing()
        self.bench = StepBench.build(named_method(method), parameters, device=self.device)
        self.bench.steps()  # allocate state outside the timing
        self.bench.past_jumps()

    def track_update_seconds(self, parameters, method):
        """Seconds of one PLP cycle's worth of the method's update (3 steps) on synthetic
        gradients, one thread (its CPU time; the wall clock on a GPU): each sample the lower
        quartile of a fresh copy's calls, spread over the measurement
        (:func:`benchmarks.sampling.call_seconds`). An absolute time, so the machine's speed
        is in it; ``UpdateOverhead``'s ratios cancel it."""
        return sampled(call_seconds(lambda: self.bench.fresh_copy().steps, budget=1.0,
                                    device=self.device))

    track_update_seconds.unit = "seconds"


class _WarmedPair:
    """Setup shared by the suites that compare a method with its bare optimizer (no
    benchmark of its own, so asv collects nothing from it)."""

    param_names = ["parameters", "method"]
    timeout = 600
    version = 2
    device = "cpu"
    steady = True

    def setup(self, parameters, method):
        require_device(self.device)
        prepare_timing()
        self.method, self.reference = warmed_pair(method, parameters, device=self.device,
                                                  steady=self.steady)


class UpdateOverhead(_WarmedPair):
    params = [SIZE.parameter_sets, SIZE.composed_methods]
    rounds = TIMING_ROUNDS

    def track_update_time_ratio(self, parameters, method):
        """The method's update cost: the time of its update over its bare optimizer's on the
        same parameters and gradients (1.0: costs nothing extra), with samples."""
        return sampled(interleaved_ratios(fresh_pair(self.method, self.reference),
                                          device=self.device))

    track_update_time_ratio.unit = "ratio"


class HeldMemory(_WarmedPair):
    """(Bytes the method holds - bytes its bare optimizer holds) / parameter bytes: a count of
    parameter-sized buffers, the same on every parameter set, so CI measures it on the MLP."""

    params = [SIZE.secondary_sets, SIZE.composed_methods]
    version = 1
    steady = False  # a jump method holds its copies before its jumps, not after

    def track_extra_memory_ratio(self, parameters, method):
        extra = (held_bytes(self.method.optimizer, self.method.params)
                 - held_bytes(self.reference.optimizer, self.reference.params))
        return extra / parameter_bytes(self.method.params)

    track_extra_memory_ratio.unit = "ratio"


class TrainingStepOverhead:
    params = [SIZE.training_step_sets, SIZE.composed_methods]
    param_names = ["parameters", "method"]
    timeout = 900
    version = 2
    rounds = TIMING_ROUNDS
    device = "cpu"
    batch_size = TRAINING_BATCH

    def setup(self, parameters, method):
        require_device(self.device)
        prepare_timing()
        self.method, self.reference = warmed_pair(method, parameters, self.batch_size,
                                                  self.device)

    def track_training_step_ratio(self, parameters, method):
        """The method's cost to a training run: the time of a whole training step (forward,
        backward, update) over the bare optimizer's, with samples."""
        return sampled(interleaved_ratios(fresh_pair(self.method, self.reference),
                                          device=self.device))

    track_training_step_ratio.unit = "ratio"


class UpdateInstructions(CountedSuite):
    """The method's update cost in instructions executed: those of one PLP cycle's worth of
    its update (3 steps) over its bare optimizer's, on the same parameters, counted by
    Valgrind's callgrind on torch's baseline CPU kernels (:mod:`benchmarks.instructions`).
    The machine's load and clock do not enter it: an install counts the same every time, two
    installs of one package within 0.1%. What it leaves out, the cost of each instruction
    (memory traffic above all), ``UpdateOverhead``'s time ratios keep.

    Every method is counted on the MLP; on the other parameter sets only the methods over
    SGD without weight jumps (the others run too slowly under Valgrind; see
    :data:`benchmarks.instructions.EVERY_METHOD_ON`): the points left out are skipped, as
    are all of them where Valgrind is missing. One child counts every point of a commit,
    with the other suites of counts (``setup_cache``: asv runs it once and hands its result
    to each point)."""

    params = [SIZE.parameter_sets, SIZE.composed_methods]
    kind = "update"
    version = 2  # 2: in one child with the training steps' and jumps' counts

    def track_update_instruction_ratio(self, counts, parameters, method):
        return self.count(counts, parameters, method)

    track_update_instruction_ratio.unit = "ratio"


class TrainingStepInstructions(CountedSuite):
    """The method's cost to a training run in instructions executed: those of one PLP cycle
    of whole training steps (forward, backward and update on a fixed batch of
    ``TRAINING_BATCH``, 3 steps) over its bare optimizer's, counted as
    ``UpdateInstructions`` counts (:mod:`benchmarks.instructions`); what
    ``TrainingStepOverhead``'s time ratios measure, without the load and the clock, and
    without each instruction's cost. Counted on the MLP (counting one point of ResNet18's
    training steps ran over 8 minutes under Valgrind); skipped where Valgrind is missing."""

    params = [SIZE.training_step_sets, SIZE.composed_methods]
    kind = "step"

    def track_training_step_instruction_ratio(self, counts, parameters, method):
        return self.count(counts, parameters, method)

    track_training_step_instruction_ratio.unit = "ratio"


class UpdateTimeCuda(UpdateTime):
    params = [CIFAR_PARAMETER_SETS, SIZE.stepped_methods]
    device = "cuda"


class UpdateOverheadCuda(UpdateOverhead):
    params = [CIFAR_PARAMETER_SETS, SIZE.composed_methods]
    device = "cuda"


class HeldMemoryCuda(HeldMemory):
    params = [CIFAR_PARAMETER_SETS, SIZE.composed_methods]
    device = "cuda"


class TrainingStepOverheadCuda(TrainingStepOverhead):
    params = [CIFAR_PARAMETER_SETS, SIZE.composed_methods]
    device = "cuda"
    batch_size = CUDA_TRAINING_BATCH
