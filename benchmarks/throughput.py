"""Training throughput of the CIFAR backbones on CUDA (skipped without a CUDA device).

The harness's own training step (index batch on the device, pad-and-crop and flip, forward,
backward, SGD with momentum) of ``vgg16``, ``resnet18`` and ``googlenet`` at batch 128 on
CIFAR-shaped inputs: the real CIFAR-100 training split (``cifar100``, skipped where it is
absent) or seeded synthetic tensors of the same shape (``synthetic-cifar-shaped``), under three
execution settings. Tracked, lower is better as everywhere in this suite: the time of one step
(asv's timer; the step ends with a device synchronisation), microseconds per image (throughput
in images/s is 1e6 over it; ``plp-bench throughput`` prints images/s) and the peak GPU memory of
a step.
"""

from .common import harness, interface_name, require_device
from .rounds import TIMING_ROUNDS

# plp_bench.studies.image_throughput.THROUGHPUT_MODELS
MODELS = ["vgg16", "resnet18", "googlenet"]
BATCH = 128
INPUTS = {"synthetic-cifar-shaped": "synthetic", "cifar100": "cifar100"}
EXECUTION = {  # ExecutionSettings fields
    "fp32": {},
    "tf32": {"precision": "tf32"},
    "bf16-channels-last": {"precision": "bf16", "channels_last": True},
}


class TrainingThroughput:
    params = [MODELS, list(INPUTS), list(EXECUTION)]
    param_names = ["model", "inputs", "execution"]
    timeout = 900
    version = 1

    def setup(self, model, inputs, execution):
        require_device("cuda")
        with harness():
            ExecutionSettings = interface_name("plp_bench.core.execution_settings",
                                               "ExecutionSettings")
            ThroughputBench = interface_name("plp_bench.studies.image_throughput",
                                             "ThroughputBench")

            from plp_bench import data
        if INPUTS[inputs] == "cifar100":
            try:
                data.check_available("cifar100")
            except data.DataError as error:
                raise NotImplementedError(f"CIFAR-100 not available ({error})") from None
        self.bench = ThroughputBench.build(model, inputs=INPUTS[inputs], batch_size=BATCH,
                                           device="cuda",
                                           settings=ExecutionSettings(**EXECUTION[execution]))
        self.bench.steps(10)  # cuDNN autotuning and allocator warm-up, outside the timing

    def teardown(self, model, inputs, execution):
        bench = getattr(self, "bench", None)  # absent when setup skipped
        if bench is not None:
            bench.close()

    def time_training_step(self, model, inputs, execution):
        self.bench.steps(1)

    def track_microseconds_per_image(self, model, inputs, execution):
        return self.bench.measure(steps=20, repeats=5, warmup=0).microseconds_per_image

    track_microseconds_per_image.rounds = TIMING_ROUNDS
    track_microseconds_per_image.unit = "us/image"

    def track_peak_memory(self, model, inputs, execution):
        """Peak GPU memory allocated during training steps, in MiB."""
        import torch

        torch.cuda.reset_peak_memory_stats()
        self.bench.steps(3)
        return torch.cuda.max_memory_allocated() / 2**20

    track_peak_memory.unit = "MiB"
