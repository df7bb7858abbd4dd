"""The networks of Sinha et al., "Introspection: Accelerating Neural Network Training by
Learning Weight Evolution" (ICLR 2017), section 4, as the harness builds them.

Layer shapes are written ``[kh, kw, in, out]`` as in the paper. Convolutions are 'same'-padded
unless noted, max pooling is 2x2 with stride 2 (ceil mode, as TensorFlow's 'SAME' pooling).

* ``mnist1``: the network the introspection network learns from (N0): conv [5,5,1,8],
  [5,5,8,16], [5,5,16,32], each followed by ReLU and pooling (28 -> 14 -> 7 -> 4), then
  fc 512 -> 1024 (ReLU, dropout 0.5) -> 10. 551,818 parameters.
* ``mnist2``: conv [5,5,1,20] and [5,5,20,50], 'valid', each with pooling (28 -> 24 -> 12 -> 8
  -> 4), fc 800 -> 500 (ReLU) -> 10. 431,080 parameters.
* ``mnist3``: fully connected 784 -> 800 -> 800 -> 10 with ReLU. 1,276,810 parameters.
* ``mnist4``: an LSTM that reads the image row by row (28 steps of 28 pixels), 128 hidden
  units, and a linear classifier on the last hidden state. 82,186 parameters.
* ``cifar1``: conv [5,5,3,32], [5,5,32,32], [5,5,32,64], each with ReLU and pooling
  (32 -> 16 -> 8 -> 4), fc 1024 -> 64 (ReLU) -> 10. 145,578 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS, expect_shape


def _conv_pool(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]


@MODELS.register("mnist1")
def mnist1(*, num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.5) -> nn.Module:
    expect_shape("mnist1", input_shape, (1, 28, 28))
    return nn.Sequential(
        *_conv_pool(1, 8, 2), *_conv_pool(8, 16, 2), *_conv_pool(16, 32, 2),
        nn.Flatten(), nn.Linear(512, 1024), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(1024, num_classes),
    )


@MODELS.register("mnist2")
def mnist2(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("mnist2", input_shape, (1, 28, 28))
    return nn.Sequential(
        *_conv_pool(1, 20, 0), *_conv_pool(20, 50, 0),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, num_classes),
    )


@MODELS.register("mnist3")
def mnist3(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("mnist3", input_shape, (1, 28, 28))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(),
        nn.Linear(800, num_classes),
    )


class RowLSTM(nn.Module):
    """Reads a ``(B, 1, H, W)`` image as ``H`` steps of ``W`` features; classifies the last state."""

    def __init__(self, width: int, hidden: int, num_classes: int):
        super().__init__()
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(x.flatten(1, 2))
        return self.classifier(h_n[-1])


@MODELS.register("mnist4")
def mnist4(*, num_classes: int, input_shape: tuple[int, ...], hidden: int = 128) -> nn.Module:
    expect_shape("mnist4", input_shape, (1, 28, 28))
    return RowLSTM(28, hidden, num_classes)


@MODELS.register("cifar1")
def cifar1(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("cifar1", input_shape, (3, 32, 32))
    return nn.Sequential(
        *_conv_pool(3, 32, 2), *_conv_pool(32, 32, 2), *_conv_pool(32, 64, 2),
        nn.Flatten(), nn.Linear(1024, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )
