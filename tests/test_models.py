"""Backbones: output shapes, documented parameter counts, determinism, option checking."""

import pytest
import torch

from plp_bench import models

SHAPES = {"mlp": (4,), "cnn": (1, 8, 8), "mnist1": (1, 28, 28), "mnist2": (1, 28, 28),
          "mnist3": (1, 28, 28), "mnist4": (1, 28, 28), "cifar1": (3, 32, 32),
          "vgg16": (3, 32, 32), "resnet18": (3, 32, 32), "googlenet": (3, 32, 32)}

# (10 classes, 100 classes), as stated in each model's docstring
PARAMETERS = {
    "cnn": {10: 151_306}, "mnist1": {10: 551_818}, "mnist2": {10: 431_080},
    "mnist3": {10: 1_276_810}, "mnist4": {10: 82_186}, "cifar1": {10: 145_578},
    "vgg16": {10: 14_728_266, 100: 14_774_436},
    "resnet18": {10: 11_173_962, 100: 11_220_132},
    "googlenet": {10: 6_166_250, 100: 6_258_500},
}


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_every_registered_model_is_covered():
    own = [n for n in models.list_models() if not n.startswith("tv_")]
    assert sorted(own) == sorted(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_forward_shape(name):
    torch.manual_seed(0)
    model = models.create(name, num_classes=7, input_shape=SHAPES[name])
    model.eval()
    out = model(torch.randn(3, *SHAPES[name]))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("name, classes, expected",
                         [(n, k, v) for n, d in PARAMETERS.items() for k, v in d.items()])
def test_parameter_counts(name, classes, expected):
    assert count(models.create(name, num_classes=classes, input_shape=SHAPES[name])) == expected


def test_mlp_parameter_formula():
    model = models.create("mlp", num_classes=2, input_shape=(4,), hidden=[32])
    assert count(model) == (4 + 1) * 32 + (32 + 1) * 2  # the ODE paper's two-layer network


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet18"])
def test_deterministic_for_a_seed(name):
    def build(seed):
        torch.manual_seed(seed)
        return models.create(name, num_classes=10, input_shape=SHAPES[name]).state_dict()

    a, b, c = build(1), build(1), build(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_unknown_option_and_bad_shape():
    with pytest.raises(ValueError, match=r"no option 'width'.*allowed: hidden, activation"):
        models.create("mlp", num_classes=2, input_shape=(4,), width=3)
    with pytest.raises(ValueError, match=r"takes inputs of shape \(1, 28, 28\)"):
        models.create("mnist1", num_classes=10, input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="activation must be one of"):
        models.create("mlp", num_classes=2, input_shape=(4,), activation="swish")


def test_unknown_model_suggests():
    from plp_bench.core.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="resnet18"):
        models.create("resnet19", num_classes=10, input_shape=(3, 32, 32))


def test_torchvision_models_only_listed_when_importable():
    listed = models.list_models()
    if models._torchvision_models() is None:
        assert not any(n.startswith("tv_") for n in listed)
    else:
        assert {"tv_vgg16", "tv_resnet18", "tv_googlenet"} <= set(listed)
