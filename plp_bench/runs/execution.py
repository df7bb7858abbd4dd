"""Applying :class:`~plp_bench.core.execution_settings.ExecutionSettings` to a run: the
backend flags for its duration, the model in its memory format, compiled or not, and the
check that the settings can work on the device. What each setting means is stated in
:mod:`plp_bench.core.execution_settings`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..core.execution_settings import ExecutionSettings
from .device import check_settings_on_device


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
    check_settings_on_device(settings, device)
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
