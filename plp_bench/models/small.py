"""Small backbones for the tabular and 8x8 workloads: a multilayer perceptron and a small CNN."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import nn

from .registry import MODELS, expect_shape

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


@MODELS.register("mlp")
def mlp(
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    hidden: Sequence[int] = (100,),
    activation: str = "relu",
) -> nn.Module:
    """Fully connected network: flatten, then ``Linear -> activation`` per hidden width, then a
    linear classifier. One hidden layer is the two-layer network of Liu et al.'s linear-model ODE
    paper. Parameters: sum over layers of ``(fan_in + 1) * fan_out``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    widths = [math.prod(input_shape), *[int(w) for w in hidden]]
    if any(w <= 0 for w in widths):
        raise ValueError(f"hidden widths must be positive, got {list(hidden)}")
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*layers)


@MODELS.register("cnn")
def cnn(
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    channels: Sequence[int] = (32, 64),
    hidden: int = 128,
) -> nn.Module:
    """Small CNN for small images: per entry of ``channels`` a 3x3 same-padded convolution and
    ReLU, with 2x2 max pooling after every second convolution; then ``Linear(hidden)``, ReLU and
    the classifier. With the defaults on 8x8 digits: 3x3x1x32, 3x3x32x64, pool to 4x4, 1024->128->10
    (151,306 parameters).
    """
    expect_shape("cnn", input_shape, (-1, -1, -1))
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for i, out in enumerate(channels):
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
        c = out
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"input {input_shape} is too small for {len(channels)} convolutions")
    layers += [nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)
