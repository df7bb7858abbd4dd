"""Backbones: output shapes, documented parameter counts, determinism, option checking."""

import math

import pytest
import torch

from plp_bench import models

SHAPES = {"mlp": (4,), "cnn": (1, 8, 8), "n0": (1, 28, 28), "mnist1": (1, 28, 28),
          "mnist2": (1, 28, 28),
          "mnist3": (1, 28, 28), "mnist4": (1, 28, 28), "cifar1": (3, 32, 32),
          "vgg16": (3, 32, 32), "resnet18": (3, 32, 32), "googlenet": (3, 32, 32)}

# (10 classes, 100 classes), as stated in each model's docstring
PARAMETERS = {
    "cnn": {10: 151_306}, "n0": {10: 551_818}, "mnist1": {10: 3_274_634}, "mnist2": {10: 431_080},
    "mnist3": {10: 269_322}, "mnist4": {10: 82_186}, "cifar1": {10: 1_068_554},
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


# The Introspection paper's networks as the paper writes them: convolutions [kh, kw, in, out],
# fully connected [in, out] (section 4; MNIST_1's first filter read as 32, see the model).
PAPER_LAYERS = {
    "mnist1": [("conv", [5, 5, 1, 32]), ("conv", [5, 5, 32, 64]), ("fc", [3136, 1024]),
               ("fc", [1024, 10])],
    "mnist2": [("conv", [5, 5, 1, 20]), ("conv", [5, 5, 20, 50]), ("fc", [800, 500]),
               ("fc", [500, 10])],
    "mnist3": [("fc", [784, 256]), ("fc", [256, 256]), ("fc", [256, 10])],
    "cifar1": [("conv", [5, 5, 3, 64]), ("norm", [64]), ("conv", [5, 5, 64, 64]), ("norm", [64]),
               ("fc", [2304, 384]), ("fc", [384, 192]), ("fc", [192, 10])],
}
PAPER_INPUTS = {"mnist1": (1, 28, 28), "mnist2": (1, 28, 28), "mnist3": (1, 28, 28),
                "cifar1": (3, 32, 32)}


@pytest.mark.parametrize("name", sorted(PAPER_LAYERS))
def test_the_introspection_networks_have_the_papers_layers_and_parameter_count(name):
    model = models.create(name, num_classes=10, input_shape=PAPER_INPUTS[name])
    layers = [m for m in model.modules()
              if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d))]
    expected_count = 0
    assert len(layers) == len(PAPER_LAYERS[name])
    for layer, (kind, shape) in zip(layers, PAPER_LAYERS[name], strict=True):
        if kind == "norm":  # a scale and a shift per channel
            assert isinstance(layer, torch.nn.BatchNorm2d) and layer.num_features == shape[0]
            expected_count += 2 * shape[0]
            continue
        if kind == "conv":
            kh, kw, c_in, c_out = shape
            assert isinstance(layer, torch.nn.Conv2d)
            assert tuple(layer.weight.shape) == (c_out, c_in, kh, kw)
        else:
            c_in, c_out = shape
            assert isinstance(layer, torch.nn.Linear)
            assert tuple(layer.weight.shape) == (c_out, c_in)
        expected_count += math.prod(shape) + shape[-1]  # weights and one bias per output
    assert count(model) == expected_count


def moments_within_sampling_error(values, mean, variance, fourth_moment):
    """The sample mean and variance of ``values`` within 5 standard errors of the
    distribution's (the variance's standard error from its fourth central moment)."""
    n = values.numel()
    values = values.double()
    assert abs(values.mean().item() - mean) < 5 * math.sqrt(variance / n)
    variance_error = math.sqrt((fourth_moment - variance ** 2) / n)
    assert abs(values.var().item() - variance) < 5 * variance_error


def test_mnist1_weights_are_a_truncated_normal_of_std_0_01_and_biases_0_1():
    torch.manual_seed(0)
    model = models.create("mnist1", num_classes=10, input_shape=(1, 28, 28))
    weights = torch.cat([m.weight.detach().flatten() for m in model.modules()
                         if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))])
    assert weights.abs().max().item() <= 0.02  # truncated at two standard deviations
    moments_within_sampling_error(weights, 0.0, *truncated_normal_moments(0.01))
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            assert torch.all(module.bias == 0.1)


def test_mnist2_weights_follow_caffes_xavier_filler():
    torch.manual_seed(0)
    model = models.create("mnist2", num_classes=10, input_shape=(1, 28, 28))
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = module.weight[0].numel()  # Caffe: inputs per output unit
            bound = math.sqrt(3 / fan_in)
            w = module.weight.detach().flatten()
            assert w.abs().max().item() <= bound
            moments_within_sampling_error(w, 0.0, bound ** 2 / 3, bound ** 4 / 5)
            assert torch.all(module.bias == 0)


def test_mnist3_weights_are_standard_normal():
    torch.manual_seed(0)
    model = models.create("mnist3", num_classes=10, input_shape=(1, 28, 28))
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            moments_within_sampling_error(module.weight.detach().flatten(), 0.0, 1.0, 3.0)
            assert torch.all(module.bias == 0)


def truncated_normal_moments(std):
    """Variance and fourth moment of N(0, std^2) truncated at two standard deviations: with
    phi the standard normal density and Z = 2 Phi(2) - 1 the mass kept,
    E[x^2] = std^2 (1 - 4 phi(2) / Z) and E[x^4] = std^4 (3 - (2 * 2^3 + 6 * 2) phi(2) / Z)."""
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    return std ** 2 * (1 - 4 * phi2 / mass), std ** 4 * (3 - 28 * phi2 / mass)


def test_cifar1_weights_follow_the_papers_standard_deviations_and_it_sees_24x24():
    torch.manual_seed(0)
    model = models.create("cifar1", num_classes=10, input_shape=(3, 32, 32))
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for layer, std, bias in zip(layers, (1e-4, 1e-4, 0.04, 0.04, 1 / 192),
                                (0.0, 0.1, 0.1, 0.1, 0.0), strict=True):
        w = layer.weight.detach().flatten()
        assert w.abs().max().item() <= 2 * std
        moments_within_sampling_error(w, 0.0, *truncated_normal_moments(std))
        assert torch.all(layer.bias == bias)
    x = torch.randn(2, 3, 32, 32)
    inner = x.clone()
    inner[..., :4, :] = inner[..., -4:, :] = 0  # the border outside the central 24x24
    inner[..., :, :4] = inner[..., :, -4:] = 0
    model.eval()
    assert torch.equal(model(x), model(inner))
