"""How a run's model executes on its device: numeric precision, memory format, compilation and
the cuDNN autotuner. None of these change what is trained (workload, method, seed); all of them
can change the numbers, so a record stores the settings it ran with and a non-default setting
is part of the run's identity (its config hash).

* ``precision``: ``fp32`` (float32 arithmetic throughout: on CUDA, TensorFloat-32 is turned
  off for convolutions too, where PyTorch would allow it), ``tf32`` (CUDA only: TensorFloat-32
  matrix multiplies and convolutions, ``torch.backends.cuda.matmul.allow_tf32`` and
  ``torch.backends.cudnn.allow_tf32``), or ``bf16``: the forward pass and the loss under
  ``torch.autocast(dtype=torch.bfloat16)``, evaluation too, with the weights, the gradients and
  every method's state kept in float32 (mixed precision; no loss scaling is needed for
  bfloat16, which has float32's exponent range).
* ``channels_last``: convolutional models (those with 4-d inputs) and their input batches in
  NHWC memory order, which the tensor-core convolution kernels read without transposing.
  Models without 4-d inputs are left as they are and the record says "not applicable".
* ``compile``: ``off``, or ``torch.compile`` of the training forward pass with an Inductor mode
  (``default``, ``reduce-overhead``, ``max-autotune``, ``max-autotune-no-cudagraphs``) or the
  ``aot_eager`` backend (traces and runs the same kernels as eager: a check of the tracing).
  YAML's ``true`` means ``default`` and ``false`` (or an unquoted ``off``) means ``off``.
  Evaluation runs the uncompiled module, so switching between training and evaluation and the
  evaluation batch sizes never trigger a recompilation. Compilation is not training time: a
  step in which a graph was compiled (the first, and the first of each new batch size, such as
  an epoch's smaller last batch) has its host time taken off the training clock and reported
  as ``compile_seconds`` with the number of ``compilations``. Without that, seconds to target
  would depend on which run of a sweep met Inductor's on-disk cache cold. (On CUDA the
  compiled step's own kernels are queued, not waited for, so what is taken off is the
  compilation; on the CPU it is compilation plus that one step.) Each run starts from a reset
  compiler.
* ``cudnn_benchmark`` (default on): on CUDA, let cuDNN time its convolution algorithms for each
  input shape and keep the fastest (``torch.backends.cudnn.benchmark``). Not deterministic.

The global backend flags are set for the duration of a run and restored after it.
"""

from __future__ import annotations

import contextlib
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from .config import ConfigError, to_plain

Precision = Literal["fp32", "tf32", "bf16"]
Compile = Literal["off", "default", "reduce-overhead", "max-autotune",
                  "max-autotune-no-cudagraphs", "aot_eager"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
COMPILE_CHOICES: tuple[str, ...] = typing.get_args(Compile)


@dataclass(frozen=True)
class ExecutionSettings:
    """See the module docstring. The defaults are plain eager float32."""

    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool | Compile = "off"  # YAML's true / false: "default" / "off"
    cudnn_benchmark: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool):
            object.__setattr__(self, "compile", "default" if self.compile else "off")
        # the same checks for settings built in Python as for those read from YAML
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}; allowed: {', '.join(PRECISIONS)}")
        if self.compile not in COMPILE_CHOICES:
            raise ValueError(f"compile {self.compile!r}; allowed: {', '.join(COMPILE_CHOICES)}")

    @property
    def is_default(self) -> bool:
        return self == ExecutionSettings()

    def tags(self) -> list[str]:
        """The settings that differ from the defaults, as short words for labels (``bf16``,
        ``channels_last``, ``compile-default``, ``no-cudnn-benchmark``)."""
        default = ExecutionSettings()
        tags = [self.precision] if self.precision != default.precision else []
        if self.channels_last:
            tags.append("channels_last")
        if self.compile != default.compile:
            tags.append(f"compile-{self.compile}")
        if not self.cudnn_benchmark:
            tags.append("no-cudnn-benchmark")
        return tags

    def identity(self) -> dict[str, Any] | None:
        """What enters a run's config hash: nothing for the defaults, so records made before
        these settings existed keep their names."""
        return None if self.is_default else to_plain(self)


def check_device(settings: ExecutionSettings, device: torch.device) -> None:
    """A setting that cannot work on ``device`` is a :class:`ConfigError` naming both."""
    if settings.precision == "tf32" and device.type != "cuda":
        raise ConfigError(f"tf32 is a CUDA number format and the device is {device}; "
                          "use fp32 or bf16", path=("precision",))


def uses_images(input_shape: tuple[int, ...]) -> bool:
    """Whether a model's inputs are images ``(C, H, W)`` (4-d batches): channels_last applies."""
    return len(input_shape) == 3


@contextlib.contextmanager
def backend_flags(settings: ExecutionSettings, device: torch.device) -> Iterator[None]:
    """Set cuDNN autotuning and TF32 for ``settings`` on CUDA; restore the flags after."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    if settings.precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif settings.precision == "fp32":
        # PyTorch lets cuDNN use TF32 by default; fp32 here means float32 arithmetic throughout
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved


@dataclass
class PreparedModel:
    """A model made ready for ``settings``: ``module`` owns the parameters and the state dict;
    ``train_forward`` is what training calls (compiled or not); ``autocast()`` wraps every
    forward pass; ``batch(x)`` puts an input batch in the model's memory format."""

    module: torch.nn.Module
    train_forward: Callable[[torch.Tensor], torch.Tensor]
    settings: ExecutionSettings
    device: torch.device
    memory_format: torch.memory_format
    applied: dict[str, Any]
    compile_seconds: float = 0.0  # host seconds of the steps that compiled a graph
    compilations: int = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.settings.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_format is torch.contiguous_format:
            return x
        return x.contiguous(memory_format=self.memory_format)

    def training_closure(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
                         ) -> Callable[[], torch.Tensor]:
        """The closure of ``torch.optim``'s protocol for one batch: zero the gradients, forward
        (compiled if so set, under autocast if so set), cross-entropy, backward; returns the
        loss."""
        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                loss = F.cross_entropy(self.train_forward(x), y)
            loss.backward()
            return loss

        if self.settings.compile == "off":
            return closure

        def timed_closure() -> torch.Tensor:
            graphs = compiled_graphs()
            started = time.perf_counter()
            loss = closure()
            if compiled_graphs() != graphs:  # Inductor compiles the backward in the same call
                self.compile_seconds += time.perf_counter() - started
                self.compilations += 1
            return loss

        return timed_closure

    def evaluate_forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.module(self.batch(x))


def compiled_graphs() -> int:
    """Graphs ``torch.compile`` has compiled in this process (since the last reset)."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def prepare(model: torch.nn.Module, settings: ExecutionSettings, device: torch.device,
            input_shape: tuple[int, ...]) -> PreparedModel:
    """Apply ``settings`` to ``model`` (already on ``device``); ``applied`` says what took
    effect, for the record."""
    check_device(settings, device)
    memory_format = torch.contiguous_format
    channels_last: bool | str = False
    if settings.channels_last:
        if uses_images(input_shape):
            model = model.to(memory_format=torch.channels_last)
            memory_format, channels_last = torch.channels_last, True
        else:
            channels_last = "not applicable (inputs are not images)"
    train_forward: Callable[[torch.Tensor], torch.Tensor] = model
    if settings.compile != "off":
        # every run compiles from a clean slate: graphs cached by an earlier run of the process
        # would make later runs of a sweep cheaper, and past the recompile limit silently eager
        torch._dynamo.reset()
        if settings.compile == "aot_eager":
            train_forward = torch.compile(model, backend="aot_eager")
        else:
            train_forward = torch.compile(model, mode=settings.compile)
    applied = {
        "precision": settings.precision,
        "autocast": "bfloat16" if settings.precision == "bf16" else None,
        "channels_last": channels_last,
        "compile": settings.compile,
        "cudnn_benchmark": settings.cudnn_benchmark if device.type == "cuda" else None,
        "tf32": (settings.precision == "tf32") if device.type == "cuda" else None,
    }
    return PreparedModel(model, train_forward, settings, device, memory_format, applied)
