"""The device a run is given, checked in one place: the name parsed (``cpu``, ``cuda[:N]``),
present on this machine, and able to run the execution settings asked for. Executors that
place runs elsewhere (Ray) parse the name here and add their own rule.
"""

from __future__ import annotations

import torch

from ..core.config import ConfigError
from ..core.execution_settings import ExecutionSettings

SUPPORTED = ("cpu", "cuda")


class DeviceError(ValueError):
    """A device that is not available here, or a name that is not a device."""


def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` of a supported type, or a :class:`DeviceError`
    saying what is allowed; whether this machine has it is not checked."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r}; use cpu or cuda[:N]") from None
    if parsed.type not in SUPPORTED:
        raise DeviceError(f"device {device!r} is not supported; use cpu or cuda[:N]")
    return parsed


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` parsed and present on this machine (``cuda`` needs a CUDA device)."""
    resolved = parse_device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device cuda was asked for, but this machine has no CUDA device "
                          "(torch.cuda.is_available() is False); use --device cpu")
    return resolved


def check_settings_on_device(settings: ExecutionSettings, device: torch.device) -> None:
    """An execution setting that cannot work on ``device`` is a :class:`ConfigError` naming
    both (TensorFloat-32 exists only on CUDA)."""
    if settings.precision == "tf32" and device.type != "cuda":
        raise ConfigError(f"tf32 is a CUDA number format and the device is {device}; "
                          "use fp32 or bf16", path=("precision",))
