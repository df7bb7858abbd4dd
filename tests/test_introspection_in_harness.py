"""Weight-jump methods inside the harness (jump steps per run, records, configs) and the
``plp-bench introspection`` commands (training I end to end on real data, checking a file)."""

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import tiny

from benchmarks.loop import plain_loop
from plp_baselines.introspection import IntrospectionJumps, load_net
from plp_bench import data, run, workloads
from plp_bench.cli import main
from plp_bench.core.config import ConfigError
from plp_bench.methods.build_context import BuildContext
from plp_bench.methods.catalogue import MethodConfig, get_method
from plp_bench.methods.weight_jumps import resolve_jump_steps
from plp_bench.studies.introspection_net import data_record, reference_data
from plp_bench.sweeps.config_file import load_run_config, resolve


def test_harness_equals_a_hand_written_loop_with_introspection_jumps():
    workload = tiny("digits-mlp", steps=20, eval_every=20)
    result = run(workload, get_method("introspection"), seed=2)
    dataset = data.load(workload.dataset, seed=2, val_fraction=workload.val_fraction)
    hp = workload.optimizers["sgd"]
    model = plain_loop(workload, dataset, 2, 20, lambda ps: IntrospectionJumps(
        torch.optim.SGD(ps, **hp), jump_steps=[6, 8, 10], net=load_net()))
    with torch.no_grad():
        expected = F.cross_entropy(model.eval()(dataset.x_val), dataset.y_val).item()
    assert result.curves.val_loss[-1] == pytest.approx(expected, rel=1e-6, abs=1e-7)
    jumps = result.details["WeightJumps"]
    assert [j["step"] for j in jumps["jumps"]] == [6, 8, 10]
    assert jumps["peak_snapshot_bytes"] > 0 and all(j["seconds"] >= 0 for j in jumps["jumps"])


def test_jump_steps_come_from_the_method_then_the_workload_then_the_budget():
    assert resolve_jump_steps(None, BuildContext(total_steps=10000)) == (3000, 4000, 5000)
    assert resolve_jump_steps(None, BuildContext(100, jump_steps=(7, 9))) == (7, 9)
    assert resolve_jump_steps([5], BuildContext(100, jump_steps=(7, 9))) == (5,)
    assert workloads.get("mnist-mnist1").jump_steps == [3000, 4000, 5000]
    assert workloads.get("mnist-mnist3").jump_steps == [6000, 8000, 10000]


def test_a_workloads_jumps_past_a_shortened_budget_are_not_made():
    workload = tiny("digits-mlp", steps=12, eval_every=12, jump_steps=[4, 30])
    result = run(workload, get_method("jump-linear"), seed=0)
    details = result.details["WeightJumps"]
    assert details["jump_steps"] == [4, 30] and [j["step"] for j in details["jumps"]] == [4]


def test_noise_jumps_are_seeded_by_the_run():
    workload = tiny("breast_cancer-mlp", steps=10, eval_every=10)
    method = get_method("jump-noise")
    a, b, c = (run(workload, method, seed=s) for s in (0, 0, 1))
    sgd = run(workload, get_method("sgd"), seed=0)
    assert a.curves.val_loss == b.curves.val_loss != sgd.curves.val_loss
    assert c.curves.val_loss != a.curves.val_loss


def test_jumps_compose_with_adam_in_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"methods": [{
        "name": "quadratic-adam", "optimizer": "adam",
        "wrappers": [{"name": "fit-jumps", "options": {"degree": 2, "ratio": 1.3,
                                                       "jump_steps": [5, 9]}}]}]}))
    config, source = load_run_config(str(path))
    method = resolve(config, source=source).methods[0]
    result = run(tiny("breast_cancer-mlp", steps=12, eval_every=6), method, seed=0)
    assert [j["step"] for j in result.details["WeightJumps"]["jumps"]] == [5, 9]


@pytest.mark.parametrize("wrapper, message", [
    ({"name": "introspection", "options": {"net": "introspection-cubic"}},
     r"net: 'introspection-cubic' is not allowed \(did you mean 'introspection'"),
    ({"name": "fit-jumps", "options": {"degree": 3}}, "degree"),
    ({"name": "noise-jumps", "options": {"std": -1.0}}, "std"),
    ({"name": "fit-jumps", "options": {"jump_steps": [4, 4]}}, "twice"),
    ({"name": "introspection", "options": {"weights": "/nowhere/i.pt"}}, "introspection train"),
    ({"name": "noise-jumps", "options": {"context": 1}}, "no option 'context'"),
])
def test_bad_jump_options_are_config_errors_naming_the_key(tmp_path, wrapper, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"methods": [{"name": "m", "optimizer": "sgd",
                                                 "wrappers": [wrapper]}]}))
    config, source = load_run_config(str(path))
    with pytest.raises(ConfigError, match=message) as error:
        resolve(config, source=source)
    assert "methods.0.wrappers.0" in str(error.value) and "run.yaml" in str(error.value)


def test_bad_workload_jump_steps_are_refused():
    with pytest.raises(ConfigError, match="jump_steps"):
        workloads.override(workloads.get("digits-mlp"), {"jump_steps": [50, 10]})


def test_every_jump_method_is_registered_over_the_right_base():
    for name, base in (("introspection", "sgd"), ("introspection-linear", "sgd"),
                       ("jump-linear", "sgd"), ("jump-quadratic", "sgd"),
                       ("jump-noise", "sgd"), ("introspection-adam", "adam")):
        method = get_method(name)
        assert isinstance(method, MethodConfig) and method.optimizer == base


# -- plp-bench introspection ---------------------------------------------------------------------

def test_train_command_end_to_end_on_the_fallback_data(tmp_path, empty_root, capsys):
    out = tmp_path / "i.pt"
    code = main(["introspection", "train", "--n0-steps", "200", "--fit-steps", "200",
                 "--pool-size", "400", "--train-examples", "1000", "--seed", "3",
                 "--data-dir", str(empty_root), "--out", str(out)])
    assert code == 0
    text = out.with_suffix(".json").read_text()
    record = json.loads(text)
    assert record["command"].startswith("plp-bench introspection train --n0-steps 200")
    assert "--data-dir '<data root>'" in record["command"] and str(empty_root) not in text
    assert record["data"]["name"] == "digits" and "upsampled" in record["data"]["source"]
    assert record["settings"]["seed"] == 3 and record["n0"]["steps"] == 200
    assert set(record["metrics_paper_units"]) == {"introspection", "introspection-linear",
                                                  "no-change"}
    for name in ("introspection", "introspection-linear"):
        load_net(name, out)  # loads with weights_only
    capsys.readouterr()
    assert main(["introspection", "check", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no-change" in printed and "introspection-linear" in printed


@pytest.mark.parametrize("args, message", [
    (["introspection", "train", "--out", "/nowhere/at/all/i.pt"], "existing folder"),
    (["introspection", "train", "--n0-steps", "5"], "below the minimum 100"),
    (["introspection", "train", "--ratio", "1"], "jump ratio"),
    (["introspection", "check", "/nowhere/i.pt"], "introspection train"),
])
def test_introspection_command_mistakes_exit_2_without_traceback(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_non_weights_file_is_named_in_the_error(tmp_path, capsys):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    assert main(["introspection", "check", str(path)]) == 2
    assert "notes.pt" in capsys.readouterr().err


def test_the_pipeline_reads_mnist_when_the_data_root_has_it(shared_data):
    name, dataset = reference_data(str(shared_data), seed=0)
    assert name == "mnist" and dataset.input_shape == (1, 28, 28)
    assert len(dataset.y_train) == 48000
    described = data_record(name, dataset, str(shared_data))
    assert set(described["files"]) and str(shared_data) not in json.dumps(described)
