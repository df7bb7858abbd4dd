"""The GPU path against the CPU: every method's update on CUDA against the same update on the
CPU, state on the parameters' device, the multi-tensor kernels, no host synchronisation inside
an update, whole runs, and the execution settings. Every test here needs a CUDA device and is
deselected where there is none (tests/conftest.py)."""

import pytest
import torch
from helpers import tiny
from wrapper_cases import scaled_steps

from benchmarks.costs import StepBench
from plp_baselines.optimizer_wrapper import innermost
from plp_bench import run
from plp_bench.core.execution_settings import ExecutionSettings
from plp_bench.methods.catalogue import METHODS, ComponentConfig, MethodConfig, get_method, list_methods
from plp_bench.studies.image_throughput import ThroughputBench

pytestmark = pytest.mark.cuda

STEPPED = [n for n in list_methods() if METHODS.get(n).solver is None]
# noise jumps draw their noise from the device's own generator: not comparable across devices
COMPARABLE = [n for n in STEPPED if n != "jump-noise"]


def tensors_held(obj, seen=None):
    """Every tensor reachable from an optimizer (its state, wrappers and buffers), less those
    of networks it holds (the introspection predictor's fixed weights, kept on the host with
    a cached copy per device)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, torch.nn.Module):
        return []
    seen.add(id(obj))
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors_held(v, seen)]
    if isinstance(obj, (list, tuple, set)):
        return [t for v in obj for t in tensors_held(v, seen)]
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return [t for v in vars(obj).values() for t in tensors_held(v, seen)]
    return []


def host_step_counters(optimizer):
    inner = innermost(optimizer)
    return {id(s["step"]) for s in inner.state.values() if "step" in s}


@pytest.mark.parametrize("name", COMPARABLE)
def test_each_update_on_cuda_matches_the_cpu(name):
    """60 whole training steps (past the weight jumps at 30, 40, 50) from the same weights
    and batch on both devices."""
    benches = [StepBench.build(get_method(name), "mlp", batch_size=16, device=device)
               for device in ("cpu", "cuda")]
    for bench in benches:
        bench.steps(60)
    for cpu, cuda in zip(benches[0].params, benches[1].params, strict=True):
        torch.testing.assert_close(cuda.detach().cpu(), cpu.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", STEPPED)
def test_method_state_lives_on_the_parameters_device(name):
    bench = StepBench.build(get_method(name), "resnet18", device="cuda")
    bench.steps(60)
    counters = host_step_counters(bench.optimizer)
    misplaced = [tuple(t.shape) for t in tensors_held(bench.optimizer)
                 if t.device.type != "cuda" and id(t) not in counters]
    assert not misplaced


@pytest.mark.parametrize("name", ["sgd", "adam", "plp", "plp-demon", "xgrad-sgd", "xgrad-adam"])
def test_updates_use_the_multi_tensor_kernels(name):
    bench = StepBench.build(get_method(name), "resnet18", device="cuda")
    bench.steps(3)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        bench.steps(3)
    assert any("_foreach_" in event.key for event in profile.key_averages())


GUARDED_PLP = MethodConfig(name="plp-guarded", optimizer="sgd",
                           wrappers=[ComponentConfig("plp", {"min_cosine": 0.0})])


@pytest.mark.parametrize("method", [get_method(n) for n in STEPPED] + [GUARDED_PLP],
                         ids=[*STEPPED, "plp-guarded"])
def test_an_update_never_waits_for_the_device(method):
    bench = StepBench.build(method, "resnet18", batch_size=8, device="cuda")
    bench.steps(3)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(6):  # jumps (steps 30, 40, 50) are not among these
            bench.schedules.apply(bench.step_count)
            bench.optimizer.step(bench.closure)
            bench.step_count += 1
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@pytest.mark.parametrize("name", ["sgd", "plp", "demon"])
def test_a_run_on_cuda_matches_the_cpu(name):
    workload = tiny("digits-mlp", steps=60, eval_every=20)
    cpu = run(workload, get_method(name), seed=0, device="cpu")
    cuda = run(workload, get_method(name), seed=0, device="cuda")
    assert cuda.device.startswith("cuda") and cuda.environment["cuda"]
    assert cuda.curves.step == cpu.curves.step
    assert cuda.curves.val_loss == pytest.approx(cpu.curves.val_loss, rel=1e-3)
    assert cuda.curves.val_error == pytest.approx(cpu.curves.val_error, abs=0.01)


def test_fast_settings_run_and_are_recorded_and_flags_are_restored():
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
              torch.backends.cuda.matmul.allow_tf32)
    settings = ExecutionSettings(precision="bf16", channels_last=True, compile="default")
    record = run(tiny("digits-cnn", steps=20, eval_every=10), get_method("plp"), seed=0,
                 device="cuda", settings=settings)
    execution = record.config["resolved"]["execution"]
    assert execution["autocast"] == "bfloat16" and execution["channels_last"] is True
    assert execution["compile"] == "default" and execution["cudnn_benchmark"] is True
    assert execution["compilations"] >= 1 and execution["compile_seconds"] > 0
    assert all(v is not None for v in record.curves.val_loss)
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32) == before


def test_the_throughput_bench_runs_on_cuda():
    bench = ThroughputBench.build("resnet18", batch_size=32, device="cuda",
                                  settings=ExecutionSettings(precision="bf16",
                                                             channels_last=True))
    try:
        result = bench.measure(steps=3, repeats=2, warmup=2)
    finally:
        bench.close()
    assert result.images_per_second > 0
    assert all(p.device.type == "cuda" for p in bench.prepared.module.parameters())


def scaled_xgrad_on_cuda(poison_at=None, skip_at=None):
    """XGrad's two phases under fp16 autocast and a CUDA GradScaler, as Lightning's
    '16-mixed' plugin drives an optimizer (the closure runs first, then ``scaler.step``)."""
    from plp_baselines.xgrad import WeightPrediction
    from plp_bench import PLP

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4)).cuda()
    optimizer = PLP(WeightPrediction(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)))
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 10)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 16, generator=g), torch.randint(0, 4, (8,), generator=g))
               for _ in range(10)]
    scaled_steps(model, optimizer, scaler, batches, predict=True, skip_at=skip_at,
                 poison_at=poison_at, autocast_dtype=torch.float16)
    return model, scaler


def test_xgrad_two_phases_under_a_cuda_grad_scaler_skip_the_poisoned_step():
    poisoned, scaler = scaled_xgrad_on_cuda(poison_at=4)
    clean, _ = scaled_xgrad_on_cuda(skip_at=4)
    assert scaler.get_scale() == 2.0 ** 9
    for a, b in zip(poisoned.parameters(), clean.parameters(), strict=True):
        assert torch.equal(a, b)


def test_xgrad_two_phases_never_wait_for_the_device():
    from plp_baselines.xgrad import weight_prediction

    bench = StepBench.build(get_method("xgrad-sgd"), "resnet18", batch_size=8, device="cuda")
    bench.steps(3)
    wrapper = weight_prediction(bench.optimizer)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):  # the prediction, the gradient hooks, the restore and the update
            wrapper.predict_weights()
            bench.optimizer.step(bench.closure)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
