"""The throughput bench against a literal training loop, its numbers, the command, and the GPU
benchmark classes, which skip without CUDA."""

import json

import pytest
import torch
import torch.nn.functional as F

from plp_bench import models, workloads
from plp_bench.cli import main
from plp_bench.data import EpochSampler, random_crop_flip
from plp_bench.studies.image_throughput import (
    CLASSES,
    IMAGE_SHAPE,
    SYNTHETIC_IMAGES,
    Throughput,
    ThroughputBench,
    synthetic_images,
)


def test_the_bench_steps_are_the_literal_training_steps():
    bench = ThroughputBench.build("resnet18", batch_size=4, device="cpu", seed=3)
    bench.steps(2)
    x, y = synthetic_images(SYNTHETIC_IMAGES, 3, "cpu")
    torch.manual_seed(3)
    model = models.create("resnet18", num_classes=CLASSES, input_shape=IMAGE_SHAPE)
    sgd = workloads.get("cifar100-resnet18").optimizers["sgd"]
    optimizer = torch.optim.SGD(model.parameters(), **sgd)
    batches = iter(EpochSampler(len(y), 4, seed=3, drop_last=True))
    generator = torch.Generator().manual_seed(3)
    model.train()
    for _ in range(2):
        _, index = next(batches)
        batch = random_crop_flip(x[index], generator, fill=[0.0, 0.0, 0.0])
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch), y[index]).backward()
        optimizer.step()
    for ours, literal in zip(bench.prepared.module.parameters(), model.parameters(),
                             strict=True):
        assert torch.equal(ours, literal)


def test_synthetic_images_are_seeded_and_cifar_shaped():
    x, y = synthetic_images(50, 1, "cpu")
    again, labels = synthetic_images(50, 1, "cpu")
    assert x.shape == (50, 3, 32, 32) and torch.equal(x, again) and torch.equal(y, labels)
    assert int(y.min()) >= 0 and int(y.max()) < CLASSES


def test_throughput_units():
    result = Throughput(step_seconds=0.01, batch_size=128)
    assert result.images_per_second == pytest.approx(12800)
    assert result.microseconds_per_image == pytest.approx(78.125)


def test_the_command_prints_and_writes_images_per_second(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    assert main(["throughput", "--device", "cpu", "--model", "resnet18", "--batch-size", "2",
                 "--steps", "1", "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    assert "images/s" in capsys.readouterr().out
    written = json.loads(out.read_text())
    (row,) = written["results"]
    assert row["model"] == "resnet18" and row["images_per_second"] > 0
    assert row["images_per_second"] == pytest.approx(2 / row["step_seconds"])
    assert written["inputs"] == "synthetic" and written["environment"]["device"] == "cpu"


def test_cifar_inputs_need_the_data(capsys, empty_root):
    assert main(["throughput", "--device", "cpu", "--inputs", "cifar100"]) == 1
    assert "cifar" in capsys.readouterr().err.lower()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip on machines without CUDA")
def test_gpu_benchmarks_skip_without_cuda():
    import benchmarks.step_cost as step_cost
    import benchmarks.throughput as throughput

    suites = [(throughput.TrainingThroughput(), ("resnet18", "synthetic-cifar-shaped", "fp32")),
              (step_cost.UpdateTimeCuda(), ("resnet18", "plp")),
              (step_cost.UpdateOverheadCuda(), ("vgg16", "plp")),
              (step_cost.TrainingStepOverheadCuda(), ("googlenet", "plp"))]
    for suite, params in suites:
        with pytest.raises(NotImplementedError, match="CUDA"):
            suite.setup(*params)
    throughput.TrainingThroughput().teardown("resnet18", "synthetic-cifar-shaped", "fp32")
    assert set(throughput.TrainingThroughput.params[0]) == {"vgg16", "resnet18", "googlenet"}
    assert "synthetic-cifar-shaped" in throughput.TrainingThroughput.params[1]
