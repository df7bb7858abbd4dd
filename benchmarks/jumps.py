"""Cost of one weight jump (Introspection and the paper's fit and noise baselines).

A jump runs the method's predictor over every weight of a backbone's parameter set (one
batched pass over the flattened weights, in blocks). ``JumpTime.time_jump`` is its wall time;
``track_jump_cost_in_steps`` is that time over one step of the bare base optimizer on the same
parameters: how many optimizer steps a jump is worth in time. Its samples pair one jump with
``REFERENCE_STEPS`` optimizer steps (a single step of the MLP lasts microseconds, too short to
time against a jump), timed in alternation on one thread (:mod:`benchmarks.sampling`). The
memory the jumps hold (copies of the weights at the steps later jumps read) is in each run
record's ``details``.
"""

import torch

from .common import current_size, harness
from .costs import StepBench, bare, named_method, parameter_set
from .sampling import interleaved_ratios, one_thread, sampled

SIZE = current_size()
JUMP_STEP = 5000
REFERENCE_STEPS = 10
# a ResNet18 jump lasts about a second: one call per side in each of 8 samples
JUMP_SAMPLES = 8


class _Jump:
    """A jump method's predictor over a parameter set, and a step of its bare optimizer."""

    param_names = ["parameters", "method"]
    timeout = 600
    version = 1

    def setup(self, parameters, method):
        one_thread()
        with harness():
            from baselines.introspection.jumps import WeightJumps, history_steps, predict_flat
            from plp_bench.methods import build_method
        config = named_method(method)
        params = parameter_set(parameters)
        jumps = build_method(config, params, tuned={}).optimizer
        while not isinstance(jumps, WeightJumps):
            jumps = jumps.optimizer
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        generator = torch.Generator().manual_seed(0)
        drift = torch.randn(flat.shape, generator=generator) * 1e-3
        columns = [flat + k * drift for k in (0.0, 0.4, 0.7, 1.0)]
        steps = history_steps(JUMP_STEP)
        self.jump = lambda: predict_flat(jumps.predictor, columns, steps, jumps.chunk_size)
        self.reference = StepBench.build(bare(config), parameters)
        self.reference.steps(1)


class JumpTime(_Jump):
    """The wall time of one jump; CI times it on the MLP (JumpCost watches ResNet18 too)."""

    params = [SIZE.secondary_sets, SIZE.jump_methods]
    # two processes of 3 to 5 samples: asv's test needs samples on both sides
    rounds = 2
    repeat = (3, 5, 10.0)

    def time_jump(self, parameters, method):
        self.jump()


class JumpCost(_Jump):
    params = [SIZE.parameter_sets, SIZE.jump_methods]

    def track_jump_cost_in_steps(self, parameters, method):
        """A jump's cost in optimizer steps: the time of one jump over the time of one step of
        the bare optimizer on the same parameters, with samples."""
        ratios = interleaved_ratios(self.jump, lambda: self.reference.steps(REFERENCE_STEPS),
                                    samples=JUMP_SAMPLES, calls=1)
        return sampled([REFERENCE_STEPS * r for r in ratios])

    track_jump_cost_in_steps.unit = "steps"
