"""Execution settings (bf16 autocast, channels_last, torch.compile) against literal training
loops, the records and hashes they give, and the device path of the loop (no host reads in a
training step, deferred loss reads), all on the CPU."""

import json

import pytest
import torch
import torch.nn.functional as F
from helpers import FakeTime, tiny
from host_reads import HostReads, step_counters

from plp_bench import data, models, run
from plp_bench.cli import main
from plp_bench.core.config import ConfigError
from plp_bench.core.execution_settings import ExecutionSettings
from plp_bench.core.record import config_hash, save
from plp_bench.data.batches import EpochSampler
from plp_bench.methods.catalogue import METHODS, ComponentConfig, MethodConfig, get_method, list_methods
from plp_bench.runs import training
from plp_bench.runs.protocol import run_identity, stream_seed
from plp_bench.sweeps.config_file import load_run_config, resolve
from plp_bench.sweeps.grid import plan
from plp_bench.sweeps.reproduce import deterministic_fields, rerun_record

BF16 = ExecutionSettings(precision="bf16")
CHANNELS_LAST = ExecutionSettings(channels_last=True)


def literal_losses(workload, dataset, seed, steps, *, autocast=False, channels_last=False):
    """The step losses of a hand-written loop with the harness's seed streams: SGD at the
    workload's hyperparameters, optionally under bf16 autocast and in channels_last order."""
    torch.manual_seed(stream_seed(seed, "init"))
    model = models.create(workload.model, num_classes=dataset.num_classes,
                          input_shape=dataset.input_shape)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), **workload.optimizers["sgd"])
    batches = iter(EpochSampler(len(dataset.y_train), workload.batch_size,
                                seed=stream_seed(seed, "batches")))
    torch.manual_seed(stream_seed(seed, "dropout"))
    model.train()
    losses = []
    for _ in range(steps):
        _, index = next(batches)
        x, y = dataset.x_train[index], dataset.y_train[index]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def mean_in_order(values):
    total = 0.0
    for v in values:
        total += v
    return total / len(values)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


def short_cnn(steps=6):
    return tiny("digits-cnn", steps=steps, eval_every=steps)


def test_bf16_autocast_is_the_literal_autocast_loop(digits):
    workload = short_cnn()
    record = run(workload, get_method("sgd"), seed=0, dataset=digits, settings=BF16)
    plain = run(workload, get_method("sgd"), seed=0, dataset=digits)
    assert record.curves.train_loss[-1] == mean_in_order(
        literal_losses(workload, digits, 0, 6, autocast=True))
    assert plain.curves.train_loss[-1] == mean_in_order(literal_losses(workload, digits, 0, 6))
    assert record.curves.train_loss[-1] != plain.curves.train_loss[-1]
    applied = record.config["resolved"]["execution"]
    assert applied["precision"] == "bf16" and applied["autocast"] == "bfloat16"
    assert record.config["settings"]["precision"] == "bf16"


def test_channels_last_is_the_literal_nhwc_loop_and_the_weights_are_nhwc(digits):
    workload = short_cnn()
    formats = []

    def conv_weights_nhwc(optimizer):
        formats.extend(p.is_contiguous(memory_format=torch.channels_last)
                       for group in optimizer.param_groups for p in group["params"]
                       if p.dim() == 4)

    record = run(workload, get_method("sgd"), seed=0, dataset=digits, settings=CHANNELS_LAST,
                 method_built=conv_weights_nhwc)
    assert formats and all(formats)
    assert record.config["resolved"]["execution"]["channels_last"] is True
    assert record.curves.train_loss[-1] == mean_in_order(
        literal_losses(workload, digits, 0, 6, channels_last=True))
    plain = run(workload, get_method("sgd"), seed=0, dataset=digits)
    assert record.curves.val_error == pytest.approx(plain.curves.val_error, abs=0.02)
    assert record.curves.train_loss[-1] == pytest.approx(plain.curves.train_loss[-1], rel=1e-4)


def test_channels_last_on_a_model_without_images_is_left_alone():
    record = run(tiny(), get_method("sgd"), seed=0, settings=CHANNELS_LAST)
    assert record.config["resolved"]["execution"]["channels_last"].startswith("not applicable")
    plain = run(tiny(), get_method("sgd"), seed=0)
    assert deterministic_fields(record)["curves.val_loss"] == \
        deterministic_fields(plain)["curves.val_loss"]


def test_compiled_training_matches_eager_and_compilation_is_off_the_clock(monkeypatch):
    """breast_cancer's 364 training rows in batches of 32 end each epoch with a batch of 12:
    two compilations (32, then 12), both taken off the clock. A fake clock makes this a count,
    not a timing: every reading of it takes 1 ms, and each compilation 100 s."""
    from plp_bench.runs import clock, execution

    fake = FakeTime()
    real_graphs = execution.compiled_graphs
    seen = [real_graphs()]

    def graphs_with_slow_compilation():
        count = real_graphs()
        if count != seen[0]:  # a graph was compiled since the last look: 100 s went by
            fake.advance(100.0)
            seen[0] = count
        return count

    workload = tiny(steps=12, eval_every=6)
    eager = run(workload, get_method("sgd"), seed=0)
    for module in (clock, execution, training):
        monkeypatch.setattr(module, "time", fake)
    monkeypatch.setattr(execution, "compiled_graphs", graphs_with_slow_compilation)
    compiled = run(workload, get_method("sgd"), seed=0,
                   settings=ExecutionSettings(compile="aot_eager"))
    assert compiled.curves.val_loss == pytest.approx(eager.curves.val_loss, rel=1e-6)
    execution_record = compiled.config["resolved"]["execution"]
    assert execution_record["compile"] == "aot_eager" and execution_record["compilations"] == 2
    assert execution_record["compile_seconds"] > 200  # both compilations were timed
    assert compiled.wall_seconds > 200
    # on the clock: twelve steps of a few readings each, not the 200 s of compiling
    assert 0 < compiled.train_seconds < 1.0


def test_default_settings_keep_the_record_names_and_others_change_them():
    workload, sgd = tiny(), get_method("sgd")
    bare = run_identity(workload, sgd, 0, "cpu")
    assert "settings" not in bare
    assert run_identity(workload, sgd, 0, "cpu", ExecutionSettings()) == bare
    hashes = {config_hash(run_identity(workload, sgd, 0, "cpu", s)) for s in (
        ExecutionSettings(), BF16, CHANNELS_LAST, ExecutionSettings(compile="default"),
        ExecutionSettings(cudnn_benchmark=False))}
    assert len(hashes) == 5
    ode = get_method("linearized-bdf")
    assert run_identity(workload, ode, 0, "cpu", BF16) == run_identity(workload, ode, 0, "cpu")
    paths = {t.path for s in (None, BF16) for t in plan([workload], [sgd], [0], "cpu", "r", s)}
    assert len(paths) == 2


def test_a_bf16_record_reruns_identically_with_its_settings(tmp_path):
    record = run(tiny(), get_method("plp"), seed=1, settings=BF16)
    path = save(record, tmp_path / "seed-1.json")
    recorded, fresh = rerun_record(path)
    assert fresh.config["settings"] == recorded.config["settings"]
    assert json.dumps(deterministic_fields(fresh)) == json.dumps(deterministic_fields(recorded))


@pytest.mark.parametrize(("yaml_value", "expected"), [
    ("off", "off"), ("false", "off"), ("true", "default"), ("max-autotune", "max-autotune")])
def test_compile_in_yaml(tmp_path, yaml_value, expected):
    path = tmp_path / "run.yaml"
    path.write_text(f"compile: {yaml_value}\nprecision: bf16\nchannels_last: true\n")
    config, source = load_run_config(str(path))
    settings = resolve(config, source=source).settings
    assert settings == ExecutionSettings(precision="bf16", channels_last=True, compile=expected)


@pytest.mark.parametrize(("body", "key", "allowed"), [
    ("precision: fp16", "precision", "fp32, tf32, bf16"),
    ("compile: fast", "compile", "max-autotune"),
    ("channels_last: 1", "channels_last", "true or false"),
])
def test_bad_settings_in_yaml_name_the_file_and_key(tmp_path, body, key, allowed):
    path = tmp_path / "run.yaml"
    path.write_text(body + "\n")
    with pytest.raises(ConfigError) as error:
        resolve(*load_run_config(str(path)))
    assert str(path) in str(error.value) and key in str(error.value)
    assert allowed in str(error.value)


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--precision", "tf32", "--workload", "digits-mlp"], "tf32 is a CUDA number format"),
    (["throughput", "--device", "cpu", "--model", "alexnet"], "unknown model 'alexnet'"),
    (["throughput", "--device", "cpu", "--precision", "tf32"], "--precision"),
    (["throughput", "--device", "cpu", "--steps", "0"], "--steps: 0 is below the minimum 1"),
])
def test_execution_mistakes_exit_2(capsys, tmp_path, args, message):
    assert main([*args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_tf32_in_a_config_names_the_file(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("precision: tf32\nworkloads: [digits-mlp]\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "precision" in err


# -- the device path of the loop -------------------------------------------------------------

def blowup():
    return MethodConfig(name="sgd-blowup", optimizer="sgd", hyperparameters={"lr": 1e4})


@pytest.mark.parametrize("method", [get_method("sgd"), get_method("plp"), blowup()],
                         ids=["sgd", "plp", "diverging"])
def test_losses_read_in_batches_give_the_record_of_reads_every_step(monkeypatch, method):
    """What CUDA does (read the step losses every N steps) gives the same record as reading
    each step, divergence included."""
    workload = tiny(steps=40, eval_every=8)
    every_step = run(workload, method, seed=2)
    monkeypatch.setattr(training, "loss_read_interval", lambda device: 5)
    batched = run(workload, method, seed=2)  # reads after steps 5, 8 (evaluation), 13, ...
    assert deterministic_fields(batched) == deterministic_fields(every_step)
    if method.name == "sgd-blowup":  # the first non-finite loss is read after step 8
        assert every_step.diverged and every_step.diverged_at_step == 6
        assert batched.steps_run == every_step.steps_run == every_step.diverged_at_step


GUARDED_PLP = MethodConfig(name="plp-guarded", optimizer="sgd", wrappers=[
    ComponentConfig("plp", {"min_cosine": 0.0})])
# plp-compiled is left out: torch.compile does not trace under the dispatch mode that counts
# the reads (its kernel takes its scalars as a device tensor, so it reads nothing back)
TRAINED = [get_method(n) for n in list_methods() if METHODS.get(n).solver is None
           and METHODS.get(n).applies_to("mlp") and n != "plp-compiled"] + [GUARDED_PLP]


@pytest.mark.parametrize("method", TRAINED, ids=[m.name for m in TRAINED])
def test_a_training_step_never_reads_from_the_device(monkeypatch, method):
    """With the losses read only at evaluations (as on CUDA), the whole run reads values back
    only in evaluations (3 for each split scored: validation and training rows at each point of
    the curves, the test split at the end) and once per weight jump: nothing in a step makes the host
    wait for the device. torch.optim's step counters live on the host and are not counted."""
    workload = tiny(steps=40, eval_every=20)
    monkeypatch.setattr(training, "loss_read_interval", lambda device: 1000)
    optimizers = []
    dataset = data.load(workload.dataset, seed=0)
    mode = HostReads(exempt=lambda t: bool(optimizers) and step_counters(optimizers[0])(t))
    with mode:
        record = run(workload, method, seed=0, dataset=dataset, method_built=optimizers.append)
    # the validation and training-row curves, and the final test
    evaluations = 2 * len(record.curves.step) + 1
    jumps = sum(len(d.get("jumps", [])) for d in record.details.values())
    guard_count = int("guard_skips" in record.details.get("PLP", {}))  # read once, for the record
    assert mode.reads.count("aten::_local_scalar_dense") == 3 * evaluations + jumps + guard_count
    assert set(mode.reads) == {"aten::_local_scalar_dense"}


def test_no_method_turns_off_the_multi_tensor_path():
    """torch.optim picks its foreach implementation on CUDA unless told not to, and PLP's
    default is foreach: no shipped method may opt out."""
    for name in list_methods():
        method = METHODS.get(name)
        assert method.hyperparameters.get("foreach") is not False, name
        for wrapper in method.wrappers:
            assert wrapper.options.get("foreach") is not False, name


def test_augmented_batches_can_be_made_channels_last_without_a_copy():
    from plp_bench.data import random_crop_flip

    x = torch.randn(4, 3, 8, 8)
    nchw = random_crop_flip(x, torch.Generator().manual_seed(0), fill=[0.0] * 3)
    nhwc = random_crop_flip(x, torch.Generator().manual_seed(0), fill=[0.0] * 3,
                            memory_format=torch.channels_last)
    assert torch.equal(nchw, nhwc) and nhwc.is_contiguous(memory_format=torch.channels_last)


def test_reports_never_pool_records_of_different_settings():
    from plp_bench.core.record import variant_label
    from plp_bench.report import summary

    workload = tiny()
    records = [run(workload, get_method(m), seed=0, settings=s)
               for m in ("sgd", "plp") for s in (None, BF16)]
    assert [variant_label(r) for r in records] == [
        "breast_cancer-mlp", "breast_cancer-mlp+bf16"] * 2
    summaries = summary.summarize(records)
    assert sorted(s.workload for s in summaries) == ["breast_cancer-mlp",
                                                     "breast_cancer-mlp+bf16"]
    assert all(sorted(r.method for r in s.rows) == ["plp", "sgd"] for s in summaries)
    every = ExecutionSettings(precision="tf32", channels_last=True, compile="max-autotune",
                              cudnn_benchmark=False)
    assert every.tags() == ["tf32", "channels_last", "compile-max-autotune",
                            "no-cudnn-benchmark"]
    assert ExecutionSettings().tags() == []


def test_augmented_channels_last_training_follows_the_contiguous_run(digits):
    workload = tiny("digits-cnn", steps=12, eval_every=6, augment=True)
    nhwc = run(workload, get_method("plp"), seed=1, dataset=digits, settings=CHANNELS_LAST)
    nchw = run(workload, get_method("plp"), seed=1, dataset=digits)
    assert nhwc.curves.val_loss == pytest.approx(nchw.curves.val_loss, rel=1e-4)
