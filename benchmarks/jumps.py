"""Cost of one weight jump (Introspection and the paper's fit and noise baselines).

A jump runs the method's predictor over every weight of a backbone's parameter set (one
batched pass over the flattened weights, in chunks of the wrapper's ``chunk_size`` rows).
``JumpTime.track_jump_seconds`` is its wall time; ``track_jump_cost_in_steps`` is that time
over one step of the bare base optimizer on the same parameters: how many optimizer steps a
jump is worth in time. It is timed in up to ``benchmarks.costs.GROUPS`` groups of whole
chunks, each group (the package's ``predict_flat`` on that group's rows, with the wrapper's
chunk size) followed by a reference call of the bare optimizer, on one thread
(:func:`benchmarks.sampling.blockwise_ratios`): ResNet18's groups alternate with one step
each, the MLP's single group with ``REFERENCE_STEPS`` steps (one step of it lasts
microseconds). Each sample is on fresh copies of the weights. The memory the jumps hold
(copies of the weights at the steps later jumps read) is in each run record's ``details``.
"""

from .common import current_size, require_absolute_times
from .costs import jump_parts
from .instructions import CountedSuite
from .rounds import TIMING_ROUNDS
from .sampling import BUDGET_SECONDS, blockwise_ratios, call_seconds, prepare_timing, sampled

SIZE = current_size()
REFERENCE_STEPS = 10
# as many passes over the blocks as fit twice the usual budget: one for a ResNet18 jump (about
# a second), MAX_CALLS (40) for the MLP's (a fifth of a millisecond)
JUMP_SAMPLES = 4  # each round


class _Jump:
    """A jump method's predictor over a parameter set, and a step of its bare optimizer."""

    param_names = ["parameters", "method"]
    timeout = 600
    version = 3
    rounds = TIMING_ROUNDS

    def setup(self, parameters, method):
        prepare_timing()
        parts = jump_parts(parameters, method)
        self.fresh_jump, self.fresh_blocks = parts.fresh_jump, parts.fresh_blocks
        self.groups, self.reference = parts.groups, parts.reference


class JumpTime(_Jump):
    params = [SIZE.secondary_sets, SIZE.jump_methods]

    def setup(self, parameters, method):
        require_absolute_times()
        super().setup(parameters, method)

    def track_jump_seconds(self, parameters, method):
        """Wall seconds of one jump, each sample the lower quartile of a fresh copy's jumps,
        spread over the measurement (:func:`benchmarks.sampling.call_seconds`); an absolute
        time (``JumpCost`` is the load-robust view; the ``ci`` size skips this one)."""
        return sampled(call_seconds(self.fresh_jump, budget=1.0))

    track_jump_seconds.unit = "seconds"


class JumpCost(_Jump):
    params = [SIZE.parameter_sets, SIZE.jump_methods]
    version = 4  # 4: each block over the reference calls beside it

    def track_jump_cost_in_steps(self, parameters, method):
        """A jump's cost in optimizer steps: the time of one jump over the time of one step of
        the bare optimizer on the same parameters, with samples (timed block by block, see
        the module)."""
        reference_steps = max(1, round(REFERENCE_STEPS / self.groups))

        def blocks_and_steps():
            reference = self.reference.fresh_copy()
            return self.fresh_blocks(), lambda: reference.steps(reference_steps)

        ratios = blockwise_ratios(blocks_and_steps, samples=JUMP_SAMPLES, least=1,
                                  budget=2 * BUDGET_SECONDS)
        return sampled([reference_steps * r for r in ratios])

    track_jump_cost_in_steps.unit = "steps"


class JumpInstructions(CountedSuite):
    """A jump's cost in optimizer steps, counted in instructions executed: those of one jump
    (the package's ``predict_flat`` over every weight, as ``JumpCost`` runs it) over those of
    one step of the bare optimizer on the same parameters, counted by Valgrind's callgrind
    (:mod:`benchmarks.instructions`). What ``JumpCost``'s time ratio measures, without the
    load and the clock, and without each instruction's cost. Counted on the MLP (counting one jump over
    ResNet18's 11 million weights took 4.5 minutes under Valgrind); skipped where Valgrind is
    missing."""

    params = [SIZE.parameter_sets, SIZE.jump_methods]
    kind = "jump"

    def track_jump_cost_in_instruction_steps(self, counts, parameters, method):
        return self.count(counts, parameters, method)

    track_jump_cost_in_instruction_steps.unit = "steps"
