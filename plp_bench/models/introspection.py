"""The networks of Sinha et al., "Introspection: Accelerating Neural Network Training by
Learning Weight Evolution" (ICLR 2017), as the harness builds them, with the paper's
initialisations.

Layer shapes are written ``[kh, kw, in, out]`` (convolutions) and ``[in, out]`` (fully
connected) as in the paper. Convolutions are 'same'-padded unless noted; max pooling is 2x2
with stride 2 (ceil mode, as TensorFlow's 'SAME' pooling).

* ``n0``: the network the introspection network I was trained on (its weight histories;
  section 3.1): conv [5,5,1,8], [5,5,8,16], [5,5,16,32], each followed by ReLU and pooling
  (28 -> 14 -> 7 -> 4), then fc [512, 1024] (ReLU, dropout 0.5) -> [1024, 10]; torch's default
  initialisation. 551,818 parameters. Testing I on N0 would be testing it on its own
  training data: the paper's experiments use the networks below.
* ``mnist1``: the paper's MNIST_1 (section 4.1): conv [5,5,1,32] and [5,5,32,64], each with
  ReLU and pooling (28 -> 14 -> 7), fc [3136, 1024] (ReLU, then dropout 0.5) and [1024, 10].
  Weights from a normal of standard deviation 0.01 truncated at two standard deviations,
  biases 0.1. 3,274,634 parameters. Assumptions: the paper writes the first filter as
  [5,5,1,8], but the second takes 32 channels and the fc layer 3136 = 7 x 7 x 64 inputs, so the
  first has 32 filters (the network is TensorFlow's "deep MNIST" tutorial network, whose
  truncated normal and bias 0.1 are taken; the paper gives only the standard deviation).
* ``mnist2``: MNIST_2 (section 4.2), Caffe's LeNet: conv [5,5,1,20] and [5,5,20,50], 'valid',
  each with pooling (28 -> 24 -> 12 -> 8 -> 4), fc [800, 500] (ReLU) and [500, 10]. Caffe's
  "xavier" filler, :math:`U(-\\sqrt{3/n_{in}}, \\sqrt{3/n_{in}})`, for every weight; biases 0
  (Caffe's LeNet: constant fillers). 431,080 parameters.
* ``mnist3``: MNIST_3 (section 4.3): fully connected [784, 256], [256, 256], [256, 10] with
  ReLU; weights from :math:`N(0, 1)` as the paper states; biases 0 (the paper is silent).
  269,322 parameters.
* ``mnist4``: MNIST_4 (section 4.4), an LSTM that reads the image row by row (28 steps of 28
  pixels), 128 hidden units, and a linear classifier on the last hidden state; torch's
  default initialisation. Assumptions: the paper names an LSTM on MNIST without its size or
  initialisation; the row-by-row reading and 128 units are the common setting. 82,186
  parameters.
* ``cifar1``: CIFAR_1 (section 4.5), TensorFlow's CIFAR-10 tutorial network with batch norm:
  the central 24x24 of the 32x32 image, conv [5,5,3,64] and [5,5,64,64], each followed by
  ReLU, 3x3 max pooling with stride 2 ('SAME': 24 -> 12 -> 6) and batch norm, then fc
  [2304, 384], [384, 192] (ReLU) and [192, 10]. Weights from normals truncated at two standard
  deviations: 1e-4 (convolutions), 0.04 (the first two fc layers), 1/192 (the last), as the
  paper gives them; biases as the tutorial's (0, 0.1, 0.1, 0.1, 0). 1,068,554 parameters.
  Assumptions: 2304 = 6 x 6 x 64 inputs to the first fc layer fix the input at 24x24 (the
  tutorial's crops); the central crop sits in the model so that the workload's pad-4 random
  crop and flip of the 32x32 image give, after it, the tutorial's random 24x24 crop and flip
  in training and its central crop in evaluation. The tutorial's brightness and contrast
  distortions and per-image standardisation are not applied.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import MODELS, expect_shape

MNIST1_STD = 0.01  # the paper's standard deviation of MNIST_1's initial weights
MNIST1_BIAS = 0.1  # TensorFlow's deep-MNIST tutorial network's initial biases (assumed)


def _conv_pool(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]


def _layers_with_weights(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def truncated_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """TensorFlow's ``truncated_normal``: :math:`N(0, \\sigma^2)` redrawn outside two standard
    deviations (``torch.nn.init.trunc_normal_`` with bounds at :math:`\\pm 2\\sigma`)."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


@torch.no_grad()
def caffe_xavier_(tensor: torch.Tensor) -> torch.Tensor:
    """Caffe's ``xavier`` filler (its default ``variance_norm: FAN_IN``):
    :math:`U(-\\sqrt{3 / n_{in}}, \\sqrt{3 / n_{in}})`, :math:`n_{in}` = inputs per output unit."""
    fan_in = tensor[0].numel()
    bound = math.sqrt(3.0 / fan_in)
    return tensor.uniform_(-bound, bound)


@MODELS.register("n0")
def n0(*, num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.5) -> nn.Module:
    expect_shape("n0", input_shape, (1, 28, 28))
    return nn.Sequential(
        *_conv_pool(1, 8, 2), *_conv_pool(8, 16, 2), *_conv_pool(16, 32, 2),
        nn.Flatten(), nn.Linear(512, 1024), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(1024, num_classes),
    )


@MODELS.register("mnist1")
def mnist1(*, num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.5) -> nn.Module:
    expect_shape("mnist1", input_shape, (1, 28, 28))
    model = nn.Sequential(
        *_conv_pool(1, 32, 2), *_conv_pool(32, 64, 2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(1024, num_classes),
    )
    for layer in _layers_with_weights(model):
        truncated_normal_(layer.weight, MNIST1_STD)
        nn.init.constant_(layer.bias, MNIST1_BIAS)
    return model


@MODELS.register("mnist2")
def mnist2(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("mnist2", input_shape, (1, 28, 28))
    model = nn.Sequential(
        *_conv_pool(1, 20, 0), *_conv_pool(20, 50, 0),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, num_classes),
    )
    for layer in _layers_with_weights(model):
        caffe_xavier_(layer.weight)
        nn.init.zeros_(layer.bias)
    return model


@MODELS.register("mnist3")
def mnist3(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("mnist3", input_shape, (1, 28, 28))
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, num_classes),
    )
    for layer in _layers_with_weights(model):
        nn.init.normal_(layer.weight, mean=0.0, std=1.0)
        nn.init.zeros_(layer.bias)
    return model


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


class CenterCrop(nn.Module):
    """The central ``size`` x ``size`` of a ``(B, C, H, W)`` batch."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = (x.shape[-2] - self.size) // 2
        left = (x.shape[-1] - self.size) // 2
        return x[..., top:top + self.size, left:left + self.size]


CIFAR1_STDS = (1e-4, 1e-4, 0.04, 0.04, 1 / 192)  # the paper's, layer by layer
CIFAR1_BIASES = (0.0, 0.1, 0.1, 0.1, 0.0)  # TensorFlow's CIFAR-10 tutorial's (assumed)


def _conv_pool_norm(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
            nn.BatchNorm2d(c_out)]


@MODELS.register("cifar1")
def cifar1(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("cifar1", input_shape, (3, 32, 32))
    model = nn.Sequential(
        CenterCrop(24), *_conv_pool_norm(3, 64), *_conv_pool_norm(64, 64),
        nn.Flatten(), nn.Linear(6 * 6 * 64, 384), nn.ReLU(), nn.Linear(384, 192), nn.ReLU(),
        nn.Linear(192, num_classes),
    )
    for layer, std, bias in zip(_layers_with_weights(model), CIFAR1_STDS, CIFAR1_BIASES,
                                strict=True):
        truncated_normal_(layer.weight, std)
        nn.init.constant_(layer.bias, bias)
    return model
