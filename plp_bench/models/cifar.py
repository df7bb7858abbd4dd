"""CIFAR-style VGG16, ResNet18 and GoogLeNet for 32x32 inputs, the backbones of the PLP paper.

These are the widely used CIFAR adaptations popularised by the ``pytorch-cifar`` training
recipes (Kuang Liu): the ImageNet stems are replaced by a single 3x3 convolution so that 32x32
inputs keep their resolution, and a global average pool feeds one linear classifier.

Parameter counts (CIFAR-10 / CIFAR-100 heads):

* ``vgg16``: 13 3x3 conv + batch norm layers (64,64,M,128,128,M,256x3,M,512x3,M,512x3,M),
  Linear(512, classes): 14,728,266 / 14,774,436.
* ``resnet18``: 3x3 stem (64), four stages of two basic blocks (64, 128, 256, 512 channels,
  strides 1, 2, 2, 2, projection shortcuts when the shape changes), Linear(512, classes):
  11,173,962 / 11,220,132.
* ``googlenet``: 3x3 stem (192), inception blocks 3a-3b, pool, 4a-4e, pool, 5a-5b with the 5x5
  branch as two 3x3 convolutions, Linear(1024, classes): 6,166,250 / 6,258,500.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS, expect_shape

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _conv_bn(
    c_in: int, c_out: int, kernel: int = 3, stride: int = 1, *, bias: bool = False
) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=bias),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


@MODELS.register("vgg16")
def vgg16(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("vgg16", input_shape, (-1, 32, 32))
    layers: list[nn.Module] = []
    c = input_shape[0]
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            # VGG's convolutions keep their bias (unlike ResNet's) in the CIFAR adaptation.
            layers += [nn.Conv2d(c, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            c = item
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, num_classes))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(c_in, c_out, 3, stride),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


@MODELS.register("resnet18")
def resnet18(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("resnet18", input_shape, (-1, 32, 32))
    layers: list[nn.Module] = _conv_bn(input_shape[0], 64)
    c = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(c, width, stride), BasicBlock(width, width, 1)]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))


class Inception(nn.Module):
    """Four parallel branches concatenated on channels (Szegedy et al., 2015): 1x1; 1x1 -> 3x3;
    1x1 -> 3x3 -> 3x3 (standing in for 5x5); 3x3 max pool -> 1x1."""

    def __init__(self, c_in: int, n1: int, n3_reduce: int, n3: int, n5_reduce: int, n5: int,
                 pool_proj: int):
        super().__init__()
        # The CIFAR adaptation keeps the convolution biases in front of batch norm.
        self.b1 = nn.Sequential(*_conv_bn(c_in, n1, 1, bias=True))
        self.b2 = nn.Sequential(*_conv_bn(c_in, n3_reduce, 1, bias=True),
                                *_conv_bn(n3_reduce, n3, bias=True))
        self.b3 = nn.Sequential(*_conv_bn(c_in, n5_reduce, 1, bias=True),
                                *_conv_bn(n5_reduce, n5, bias=True), *_conv_bn(n5, n5, bias=True))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                *_conv_bn(c_in, pool_proj, 1, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


@MODELS.register("googlenet")
def googlenet(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    expect_shape("googlenet", input_shape, (-1, 32, 32))
    return nn.Sequential(
        *_conv_bn(input_shape[0], 192, bias=True),
        Inception(192, 64, 96, 128, 16, 32, 32),
        Inception(256, 128, 128, 192, 32, 96, 64),
        nn.MaxPool2d(3, stride=2, padding=1),
        Inception(480, 192, 96, 208, 16, 48, 64),
        Inception(512, 160, 112, 224, 24, 64, 64),
        Inception(512, 128, 128, 256, 24, 64, 64),
        Inception(512, 112, 144, 288, 32, 64, 64),
        Inception(528, 256, 160, 320, 32, 128, 128),
        nn.MaxPool2d(3, stride=2, padding=1),
        Inception(832, 256, 160, 320, 32, 128, 128),
        Inception(832, 384, 192, 384, 48, 128, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(1024, num_classes),
    )
