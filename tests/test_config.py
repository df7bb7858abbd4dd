"""YAML validation: one clear error naming the file, the key path and what is allowed."""

import contextlib
import copy

import pytest
import yaml
from helpers import yaml_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plp_bench import workloads
from plp_bench.core.config import ConfigError, read_yaml, to_plain
from plp_bench.methods import catalogue as methods
from plp_bench.sweeps.config_file import load_run_config, resolve

BASE = {k: v for k, v in to_plain(workloads.get("digits-mlp")).items() if k != "name"}


def check(body):
    return workloads.parse_workload(body, name="w", source="w.yaml")


def test_shipped_workloads():
    names = workloads.list_workloads()
    for required in ["digits-mlp", "digits-cnn", "breast_cancer-mlp", "banknote-mlp",
                     "magic-mlp", "mnist-mnist1", "mnist-mnist2", "mnist-mnist3",
                     "mnist-mnist4", "mnist-n0", "cifar100-vgg16",
                     "cifar100-resnet18", "cifar100-googlenet", "cifar10-cifar1"]:
        assert required in names
    vgg = workloads.get("cifar100-vgg16")
    assert (vgg.batch_size, vgg.epochs, vgg.val_fraction) == (128, 100, 0.2)
    assert vgg.optimizers["sgd"] == {"lr": 0.002, "momentum": 0.9, "weight_decay": 0.0001}
    assert vgg.lr_schedule.name == "cyclic" and vgg.lr_schedule.options["low"] == 0.5
    assert workloads.offline_workloads() == ["breast_cancer-mlp", "digits-cnn", "digits-mlp"]


@pytest.mark.parametrize("change, path, message", [
    ({"batch_sise": 3}, "batch_sise", "unknown key (did you mean 'batch_size'"),
    ({"batch_size": "big"}, "batch_size", "expected an integer, got 'big'"),
    ({"batch_size": 0}, "batch_size", "0 is below the minimum 1"),
    ({"dataset": "mnsit"}, "dataset", "unknown name 'mnsit' (did you mean 'mnist'?); allowed:"),
    ({"model": "resnet"}, "model", "allowed: "),
    ({"targets": [0.05, 0.1]}, "(top level)", "loosest to strictest"),
    ({"targets": [1.5]}, "(top level)", "not an error rate"),
    ({"steps": 10}, "(top level)", "exactly one budget"),
    ({"augment": "yes"}, "augment", "expected true or false"),
    ({"val_fraction": 0.0}, "val_fraction", "must be greater than 0.0"),
    ({"optimizers": {"sdg": {"lr": 1}}}, "(top level)", "unknown optimizer 'sdg'"),
    ({"lr_schedule": {"name": "cyclic", "options": {"low": 3}}}, "lr_schedule",
     "low must be in [0, 1]"),
    ({"lr_schedule": {"name": "cosine"}}, "(top level)", "unknown schedule 'cosine'"),
])
def test_config_errors(change, path, message):
    body = {**BASE, **change}
    with pytest.raises(ConfigError) as err:
        check(body)
    text = str(err.value)
    assert text.startswith(f"w.yaml: {path}: "), text
    assert message in text, text


def test_nested_key_path_in_run_config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"workloads": ["digits-mlp", {"name": "digits-cnn",
                                                                 "epochs": -1}]}))
    config, source = load_run_config(str(path))
    with pytest.raises(ConfigError,
                       match=r"run\.yaml: workloads\.1\.epochs: -1 is below the minimum 1"):
        resolve(config, source=source)


@pytest.mark.parametrize("body, message", [
    ({"methods": ["sgd", "sdg"]},
     "methods.1: unknown method 'sdg' (did you mean 'sgd'?); allowed: adabelief, adam, adam3, adamw, demon"),
    ({"methods": [{"name": "m", "optimizer": "sgd", "hyperparameters": {"lr_": 1}}]},
     "methods.0.hyperparameters.lr_: sgd has no hyperparameter 'lr_'"),
    ({"methods": [{"name": "m", "optimizer": "sgd", "wrappers": [{"name": "nope"}]}]},
     "methods.0.wrappers.0.name: unknown wrapper 'nope'"),
    ({"methods": [{"name": "m", "optimizer": "sgd", "schedules": [{"name": "cyclic",
                                                                   "options": {"hi": 1}}]}]},
     "schedule 'cyclic' has no option 'hi'"),
    ({"methods": [{"name": "m", "optimizer": "sgd", "wrappers": [{"name": "plp",
                                                                  "options": {"cycle": 2}}]}]},
     "methods.0.wrappers.0.options.cycle: 2 is out of range; allowed: an integer >= 3"),
    ({"methods": [{"name": "m", "optimizer": "adam", "wrappers": [
        {"name": "xgrad"}, {"name": "plp", "options": {"step": -2}}]}]},
     "methods.0.wrappers.1.options.step: -2 is out of range; allowed: a number >= 0"),
    ({"methods": [{"name": "m", "optimizer": "sgd", "schedules": [
        {"name": "demon", "options": {"beta_init": 1.5}}]}]},
     "methods.0.schedules.0.options.beta_init: 1.5 is out of range; allowed: null or a number "
     "in [0, 1)"),
    ({"methods": [{"name": "m", "optimizer": "sgd", "hyperparameters": {"lr": -1}}]},
     "methods.0.hyperparameters.lr: -1 is out of range; allowed: a number > 0"),
    ({"methods": [{"name": "m", "optimizer": "sgd",
                   "hyperparameters": {"nesterov": True, "dampening": 0.5}}]},
     "methods.0.hyperparameters.dampening: sgd: Nesterov momentum requires a momentum and "
     "zero dampening (got 0.5)"),
    ({"seeds": 0}, "seeds: 0 is below the minimum 1"),
    ({"seeds": [1, 1]}, "seeds: give distinct non-negative seeds"),
    ({"workloads": ["digits-mlp", "digits-mlp"]}, "workloads: listed twice: digits-mlp"),
    ({"colour": 1}, "colour: unknown key"),
])
def test_run_config_errors(tmp_path, body, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError, match=r"run\.yaml: ") as err:
        config, source = load_run_config(str(path))
        resolve(config, source=source)
    assert message in str(err.value)


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workloads: [digits-mlp\nseeds: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: .*not valid YAML at line"):
        read_yaml(path)
    with pytest.raises(ConfigError, match="cannot read the file"):
        read_yaml(tmp_path / "missing.yaml")


def test_override_replaces_budget_kind():
    w = workloads.override(workloads.get("digits-mlp"), {"steps": 5})
    assert w.steps == 5 and w.epochs is None


values = yaml_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from([*sorted(BASE), "extra", "model_options"]), value=values,
       drop=st.sampled_from([None, *sorted(BASE)]))
def test_mutated_workloads_raise_only_config_errors(key, value, drop):
    body = copy.deepcopy(BASE)
    body[key] = value
    if drop is not None:
        body.pop(drop, None)
    with contextlib.suppress(ConfigError):
        check(body)


@settings(max_examples=200, deadline=None)
@given(body=st.dictionaries(st.sampled_from(["workloads", "methods", "seeds", "device",
                                             "results", "data_dir", "bogus"]), values,
                            max_size=4))
def test_random_run_configs_raise_only_config_errors(body):
    with contextlib.suppress(ConfigError):
        config, source = load_run_config(None, **body)
        resolve(config, source=source)


def test_empty_run_config_is_the_embedded_default():
    plan = resolve(load_run_config(None)[0])
    assert [w.name for w in plan.workloads] == workloads.offline_workloads()
    assert [m.name for m in plan.methods] == methods.default_methods()
    assert plan.seeds == [0, 1, 2] and plan.device == "cpu"
