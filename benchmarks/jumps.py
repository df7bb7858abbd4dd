"""Cost of one weight jump (Introspection and the paper's fit and noise baselines).

A jump runs the method's predictor over every weight of a backbone's parameter set (one
batched pass over the flattened weights, in blocks). ``JumpTime.time_jump`` is its wall time;
``track_jump_cost_in_steps`` is that time over one step of the bare base optimizer on the same
parameters (median of interleaved repeats in one process): how many optimizer steps a jump is
worth in time. The memory the jumps hold (copies of the weights at the steps later jumps read)
is in each run record's ``details``.
"""

import torch

from .common import current_size, harness
from .costs import StepBench, bare, median_time_ratio, named_method, parameter_set

SIZE = current_size()
JUMP_STEP = 5000


class _Jump:
    """A jump method's predictor over a parameter set, and a step of its bare optimizer."""

    param_names = ["parameters", "method"]
    timeout = 600
    version = 1

    def setup(self, parameters, method):
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
    # one round of at most 3 samples: a ResNet18 jump takes up to a second
    rounds = 1
    repeat = (1, 3, 10.0)

    def time_jump(self, parameters, method):
        self.jump()


class JumpCost(_Jump):
    params = [SIZE.parameter_sets, SIZE.jump_methods]

    def track_jump_cost_in_steps(self, parameters, method):
        return median_time_ratio(self.jump, lambda: self.reference.steps(1), 5)

    track_jump_cost_in_steps.unit = "steps"
