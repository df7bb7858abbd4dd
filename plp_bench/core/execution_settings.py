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

import typing
from dataclasses import dataclass
from typing import Any, Literal

from .config import to_plain

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
