"""Backbones by name: ``create(name, num_classes=..., input_shape=...)`` and ``list_models()``.

All models use PyTorch's default initialisation (as the PLP paper did) and take ``(B, *input_shape)``
batches to ``(B, num_classes)`` logits. torchvision's ImageNet architectures are offered as
``tv_*`` only when torchvision imports; it is imported when first asked for, never at import time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..core.registry import UnknownNameError
from . import cifar, introspection, small  # noqa: F401  (importing registers the models)
from .registry import MODELS

LAYER = 2

Factory = Callable[..., nn.Module]
_TORCHVISION = {"tv_vgg16": "vgg16", "tv_resnet18": "resnet18", "tv_googlenet": "googlenet"}

__all__ = ["MODELS", "create", "list_models", "model_options"]


@functools.cache
def _torchvision_models():
    try:
        import torchvision.models as tv_models  # heavy and optional: imported only when asked
    except Exception:
        return None
    return tv_models


def _torchvision_factory(name: str) -> Factory:
    def build(*, num_classes: int, input_shape: Sequence[int]) -> nn.Module:
        tv_models = _torchvision_models()
        if tv_models is None:
            raise RuntimeError(f"{name} needs torchvision, which does not import here")
        arch = _TORCHVISION[name]
        if arch == "googlenet":
            return tv_models.googlenet(num_classes=num_classes, aux_logits=False,
                                       init_weights=True)
        return getattr(tv_models, arch)(num_classes=num_classes)

    return build


def list_models() -> list[str]:
    names = MODELS.names()
    if _torchvision_models() is not None:
        names = sorted(names + list(_TORCHVISION))
    return names


def _factory(name: str) -> Factory:
    if name in _TORCHVISION and _torchvision_models() is not None:
        return _torchvision_factory(name)
    if name in MODELS:
        return MODELS.get(name)
    raise UnknownNameError("model", name, list_models())


def model_options(name: str) -> dict[str, Any]:
    """The keyword options a model accepts beyond ``num_classes`` and ``input_shape``."""
    params = inspect.signature(_factory(name)).parameters
    return {
        key: p.default for key, p in params.items() if key not in ("num_classes", "input_shape")
    }


def create(name: str, *, num_classes: int, input_shape: Sequence[int], **options: Any) -> nn.Module:
    """Build backbone ``name``; unknown options raise ``ValueError`` naming the allowed ones."""
    factory = _factory(name)
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed) or '(none)'}"
        )
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return factory(num_classes=num_classes, input_shape=tuple(input_shape), **options)
