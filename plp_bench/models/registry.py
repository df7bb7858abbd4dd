"""The model registry, separate so that model modules can register without import cycles."""

from collections.abc import Callable

from torch import nn

from ..core.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def expect_shape(name: str, input_shape: tuple[int, ...], *allowed: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``input_shape`` is one of ``allowed`` (``-1`` = any size)."""
    for shape in allowed:
        if len(shape) == len(input_shape) and all(
            a in (-1, b) for a, b in zip(shape, input_shape, strict=True)
        ):
            return
    raise ValueError(
        f"model {name!r} takes inputs of shape {' or '.join(map(str, allowed))}, "
        f"got {input_shape}"
    )
