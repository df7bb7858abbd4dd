"""Cost of the harness's training loop against a minimal hand-written PyTorch loop.

Both train the same workload's model with SGD for the same steps over the same seeded batches
(the harness additionally runs its schedules, clock, divergence check and two evaluations).
The goal is a per-step overhead within 5% (``track_overhead_ratio`` <= 1.05); ``time_*`` give
the whole-run times including the fixed costs. Everything runs on one thread; the ratio's
samples each pair the two loops back to back (:mod:`benchmarks.sampling`).
"""

import torch
import torch.nn.functional as F

from .common import current_size, harness, stream_seed
from .sampling import SAMPLES, one_thread, repeated, sampled, seconds

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


class LoopOverhead:
    params = [current_size().loop_workloads]
    param_names = ["workload"]
    timeout = 600
    version = 1

    def setup(self, name):
        one_thread()
        with harness():
            from plp_bench import data, run, workloads
            from plp_bench.methods import get_method
        self.run = run
        self.workload = workloads.get(name).replace(steps=STEPS, epochs=None, eval_every=STEPS)
        self.dataset = data.load(self.workload.dataset, seed=0)
        self.method = get_method("sgd")

    def harness_loop(self, workload):
        self.run(workload, self.method, 0, dataset=self.dataset)

    def time_harness_loop(self, name):
        self.harness_loop(self.workload)

    def time_plain_loop(self, name):
        plain_loop(self.workload, self.dataset, 0, STEPS)

    def track_overhead_ratio(self, name):
        """Marginal cost per step, harness over plain loop: each side's time for 2N steps minus
        its time for N steps (fixed costs such as model creation and the final evaluations
        cancel). Each sample times the four runs back to back, harness and plain loop
        alternating."""
        long = self.workload.replace(steps=2 * STEPS, eval_every=2 * STEPS)

        def ratio() -> float:
            plain_long = seconds(lambda: plain_loop(long, self.dataset, 0, 2 * STEPS))
            harness_long = seconds(lambda: self.harness_loop(long))
            plain_short = seconds(lambda: plain_loop(self.workload, self.dataset, 0, STEPS))
            harness_short = seconds(lambda: self.harness_loop(self.workload))
            return (harness_long - harness_short) / (plain_long - plain_short)

        return sampled(repeated(ratio, SAMPLES))

    track_overhead_ratio.unit = "ratio"
