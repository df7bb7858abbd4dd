"""Training throughput of a backbone: seconds per step and images per second of the harness's
own training step (batch drawn by index on the device, CIFAR augmentation, forward, backward,
the method's update) at a given batch size and :class:`~plp_bench.core.execution_settings.ExecutionSettings`.

Inputs are CIFAR-shaped, ``(3, 32, 32)`` with 100 classes: the real CIFAR-100 training split
(``cifar100``) or, where it is absent, seeded standard-normal tensors and uniform labels
(``synthetic``; a throughput measured on it says so). The content of the images does not change
the work of a step; it changes what is learnt, so convergence is never measured on synthetic
data. The optimizer is the method's, with the hyperparameters tuned for the backbone's
CIFAR-100 workload.

The time of ``steps`` includes a device synchronisation at the end, so every step measured has
finished on the GPU. :func:`measure` takes the median over repeats of a block of steps after a
warm-up (which also absorbs cuDNN autotuning and compilation).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field

import torch

from .. import data, models, workloads
from ..core.execution_settings import ExecutionSettings
from ..data.batches import EpochSampler, random_crop_flip
from ..methods import catalogue as methods
from ..methods.schedules import ScheduleRunner
from ..runs.device import resolve_device
from ..runs.execution import PreparedModel, backend_flags, prepare

THROUGHPUT_MODELS = ("vgg16", "resnet18", "googlenet")
INPUTS = ("synthetic", "cifar100")
IMAGE_SHAPE = (3, 32, 32)
CLASSES = 100
SYNTHETIC_IMAGES = 10_000


def synthetic_images(count: int, seed: int, device: torch.device | str
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` CIFAR-shaped standard-normal images and uniform labels, drawn on the host
    from ``seed`` (the same on every device)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((count, *IMAGE_SHAPE), generator=generator)
    y = torch.randint(0, CLASSES, (count,), generator=generator)
    return x.to(device), y.to(device)


@dataclass(frozen=True)
class Throughput:
    step_seconds: float  # median over repeats
    batch_size: int

    @property
    def images_per_second(self) -> float:
        return self.batch_size / self.step_seconds

    @property
    def microseconds_per_image(self) -> float:
        return 1e6 * self.step_seconds / self.batch_size


@dataclass
class ThroughputBench:
    """One backbone, its optimizer and its inputs, ready to be stepped (see the module)."""

    prepared: PreparedModel
    optimizer: object
    schedules: ScheduleRunner
    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    fill: list[float] | None
    _batches: object = None
    _generator: torch.Generator = field(default_factory=torch.Generator)
    _flags: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _step_count: int = 0

    @classmethod
    def build(cls, model: str = "resnet18", *, method: str = "sgd", inputs: str = "synthetic",
              batch_size: int = 128, device: str | torch.device = "cuda",
              settings: ExecutionSettings | None = None, seed: int = 0,
              data_root: str | None = None) -> ThroughputBench:
        if model not in THROUGHPUT_MODELS:
            raise ValueError(f"model {model!r}; allowed: {', '.join(THROUGHPUT_MODELS)}")
        if inputs not in INPUTS:
            raise ValueError(f"inputs {inputs!r}; allowed: {', '.join(INPUTS)}")
        if batch_size < 1:
            raise ValueError(f"batch size {batch_size} is below the minimum 1")
        device = resolve_device(device)
        settings = ExecutionSettings() if settings is None else settings
        method_config = methods.get_method(method)
        if method_config.solver is not None:
            raise ValueError(f"{method} integrates an ODE; it has no training step to time")
        if inputs == "cifar100":
            dataset = data.load("cifar100", root=data_root, device=device, seed=seed)
            x, y = dataset.x_train, dataset.y_train
            fill = [-m / s for m, s in zip(dataset.normalization["mean"],
                                           dataset.normalization["std"], strict=True)]
        else:
            x, y = synthetic_images(SYNTHETIC_IMAGES, seed, device)
            fill = [0.0] * IMAGE_SHAPE[0]  # the mean of standardised pixels
        flags = contextlib.ExitStack()
        flags.enter_context(backend_flags(settings, device))
        torch.manual_seed(seed)
        module = models.create(model, num_classes=CLASSES, input_shape=IMAGE_SHAPE).to(device)
        prepared = prepare(module, settings, device, IMAGE_SHAPE)
        tuned = workloads.get(f"cifar100-{model}").optimizers
        built = methods.build_method(method_config, module.parameters(), tuned=tuned)
        bench = cls(prepared, built.optimizer, ScheduleRunner(built.optimizer, built.schedules,
                                                              10_000_000),
                    x, y, batch_size, fill, _flags=flags)
        bench._generator.manual_seed(seed)
        bench._batches = iter(EpochSampler(len(y), batch_size, seed=seed, drop_last=True,
                                           device=device))
        module.train()
        return bench

    @property
    def device(self) -> torch.device:
        return self.prepared.device

    def close(self) -> None:
        """Restore the backend flags the bench set."""
        self._flags.close()

    def steps(self, count: int = 1) -> None:
        """``count`` training steps, then wait for the device to finish them."""
        prepared, optimizer = self.prepared, self.optimizer
        for _ in range(count):
            _, index = next(self._batches)
            self.schedules.apply(self._step_count)
            x = random_crop_flip(self.x[index], self._generator, fill=self.fill,
                                 memory_format=prepared.memory_format)
            optimizer.step(prepared.training_closure(optimizer, x, self.y[index]))
            self._step_count += 1
        synchronize(self.device)

    def measure(self, *, steps: int = 20, repeats: int = 5, warmup: int = 10) -> Throughput:
        """Median over ``repeats`` of the time of ``steps`` steps, per step, after ``warmup``
        steps."""
        if warmup:
            self.steps(warmup)
        per_step = []
        for _ in range(repeats):
            started = time.perf_counter()
            self.steps(steps)  # ends with a device synchronisation
            per_step.append((time.perf_counter() - started) / steps)
        return Throughput(statistics.median(per_step), self.batch_size)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
