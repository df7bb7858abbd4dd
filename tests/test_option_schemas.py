"""Hyperparameters and options are checked against what receives them, key by key: the schema
covers each receiver's signature, every value a receiver refuses is refused first with the full
key path, and a value a receiver accepts is refused only where the schema is deliberately
stricter (a type the receiver reads loosely, or a range it states why it narrows)."""

import inspect
import math

import pytest
import yaml
from helpers import yaml_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import run_cli

from plp_bench.core.config import ConfigError
from plp_bench.methods.build_context import PROBE_CONTEXT
from plp_bench.methods.catalogue import OPTIMIZERS, WRAPPERS, _options_of
from plp_bench.methods.option_schemas import (
    ANY,
    FLAG,
    INTEGER,
    NUMBER,
    SCHEDULE_OPTIONS,
    SOLVER_OPTIONS,
    TEXT,
    WRAPPER_OPTIONS,
    Option,
)
from plp_bench.methods.schedules import SCHEDULES
from plp_bench.methods.solvers import SOLVERS
from plp_bench.sweeps.config_file import resolve_method


def receivers():
    """(section, name, schema, build(settings) -> the receiver), for every receiver."""
    import torch

    def probe():
        return [torch.nn.Parameter(torch.zeros(1))]

    found = []
    for name in OPTIMIZERS.names():
        spec = OPTIMIZERS.get(name)
        found.append(("hyperparameters", name, spec.hyperparameters,
                      lambda s, spec=spec: spec.factory(probe(), **{**spec.defaults, **s})))
    for name in WRAPPERS.names():
        factory = WRAPPERS.get(name)
        extra = {"context": PROBE_CONTEXT} if "context" in inspect.signature(factory).parameters \
            else {}
        found.append(("wrappers", name, WRAPPER_OPTIONS[name], lambda s, f=factory, e=extra: f(
            torch.optim.SGD(probe(), lr=0.1, momentum=0.9), **s, **e)))
    for name in SCHEDULES.names():
        found.append(("schedules", name, SCHEDULE_OPTIONS[name],
                      lambda s, n=name: SCHEDULES.get(n)(**s)))
    for name in SOLVERS.names():
        found.append(("solver", name, SOLVER_OPTIONS[name], lambda s, n=name: SOLVERS.get(n)(**s)))
    return found


RECEIVERS = receivers()
KEYS = [(section, name, key) for section, name, schema, _ in RECEIVERS for key in schema]


def test_each_schema_covers_exactly_its_receivers_signature():
    for section, name, schema, _ in RECEIVERS:
        if section == "hyperparameters":
            signature = _options_of(OPTIMIZERS.get(name).factory, 1)
        elif section == "wrappers":
            signature = _options_of(WRAPPERS.get(name), 1)
        else:
            registry = SCHEDULES if section == "schedules" else SOLVERS
            signature = _options_of(registry.get(name), 0)
        assert sorted(schema) == sorted(signature), (section, name)
        assert all(option.kind != ANY for option in schema.values())


def method_entry(section, name, settings_):
    if section == "hyperparameters":
        return {"name": "m", "optimizer": name, "hyperparameters": settings_}
    if section == "solver":
        return {"name": "m", "optimizer": "gd", "models": ["mlp"],
                "solver": {"name": name, "options": settings_}}
    return {"name": "m", "optimizer": "sgd", section: [{"name": name, "options": settings_}]}


def key_path(section, key):
    return {"hyperparameters": f"methods.0.hyperparameters.{key}",
            "wrappers": f"methods.0.wrappers.0.options.{key}",
            "schedules": f"methods.0.schedules.0.options.{key}",
            "solver": f"methods.0.solver.options.{key}"}[section]


def as_passed(option: Option, value):
    """The value as the harness hands it on: text spelling a number becomes that number."""
    if option.kind == NUMBER and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def of_the_declared_type(option: Option, value) -> bool:
    """The structure the schema asks for, ranges aside."""
    if value is None:
        return option.nullable
    if option.length is not None or option.items:
        single = Option(option.kind)
        return isinstance(value, list) and all(of_the_declared_type(single, v) for v in value) \
            and (option.length is None or len(value) == option.length)
    if option.kind == NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if option.kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if option.kind == FLAG:
        return isinstance(value, bool)
    return option.kind == TEXT and isinstance(value, str)


edge_values = st.sampled_from([
    -1, 0, 1, 2, 3, 0.5, 0.999, 1.5, -0.5, 1e-4, 1e300, True, False, None, "1e-4", "fast", "",
    "auto", "buffer", "introspection", [], [1, 2], [0.9, 0.999], [0.9, 1.0], [3000], [0, 5],
    [2.5], {"a": 1}])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(KEYS), value=edge_values | yaml_values)
def test_a_value_is_refused_exactly_when_its_receiver_refuses_it_or_the_schema_says_why(
        where, value):
    section, name, key = where
    _, _, schema, build = next(r for r in RECEIVERS if r[:2] == (section, name))
    option = schema[key]
    try:
        build({key: as_passed(option, value)})
        accepted_by_receiver = True
    except Exception:  # whatever the receiver raises: it refuses
        accepted_by_receiver = False
    try:
        resolve_method(method_entry(section, name, {key: value}), source="run.yaml",
                       path=("methods", 0))
        refused, message = False, ""
    except ConfigError as error:
        refused, message = True, str(error)
    if not accepted_by_receiver:
        assert refused, f"{section} {name}: {key}={value!r} passes the check but not the receiver"
    if refused:
        assert message.startswith(f"run.yaml: {key_path(section, key)}"), message
        # the value, as converted, or the bad element of a list
        named = [value, as_passed(option, value), *(value if isinstance(value, list) else [])]
        assert any(repr(v) in message or str(v) in message for v in named), message
    if refused and accepted_by_receiver:
        stricter_type = not of_the_declared_type(option, as_passed(option, value))
        assert stricter_type or option.narrower, (
            f"{section} {name}: {key}={value!r} is refused though the receiver takes it, and "
            f"the schema says no reason ({message})")


@pytest.mark.parametrize("entry, message", [
    ({"optimizer": "sgd", "hyperparameters": {"lr": "fast"}},
     "methods.0.hyperparameters.lr: expected a number, got 'fast'; allowed: a number > 0"),
    ({"optimizer": "sgd", "hyperparameters": {"momentum": True}},
     "methods.0.hyperparameters.momentum: expected a number, got True; allowed: a number in "
     "[0, 1)"),
    ({"optimizer": "adam", "hyperparameters": {"betas": [0.9, 1.0]}},
     "methods.0.hyperparameters.betas.1: 1.0 is out of range; allowed: a list of 2 values, "
     "each a number in [0, 1)"),
    ({"optimizer": "sgd", "hyperparameters": {"momentun": 0.9}},
     "methods.0.hyperparameters.momentun: sgd has no hyperparameter 'momentun' (did you mean "
     "'momentum'"),
    ({"optimizer": "sgd", "wrappers": [{"name": "plp", "options": {"cycle": 2.5}}]},
     "methods.0.wrappers.0.options.cycle: expected an integer, got 2.5; allowed: an integer "
     ">= 3"),
    ({"optimizer": "sgd", "schedules": [{"name": "cyclic", "options": {"low": -1}}]},
     "methods.0.schedules.0.options.low: -1 is out of range; allowed: a number in [0, 1]"),
    ({"optimizer": "sgd", "wrappers": [{"name": "introspection",
                                        "options": {"weights": "no/such.pt"}}]},
     "methods.0.wrappers.0.options.weights: "),
])
def test_messages_name_the_key_path_the_value_and_what_is_allowed(entry, message):
    with pytest.raises(ConfigError) as error:
        resolve_method({"name": "m", **entry}, source="run.yaml", path=("methods", 0))
    assert str(error.value).startswith(f"run.yaml: {message}"), str(error.value)


def test_numbers_written_as_text_reach_the_optimizer_as_numbers():
    method = resolve_method({"name": "m", "optimizer": "adam",
                             "hyperparameters": {"lr": "1e-4", "eps": 1}}, source="run.yaml")
    assert method.hyperparameters == {"lr": 1e-4, "eps": 1}


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "{}\n"])
def test_an_empty_run_config_is_refused(tmp_path, text):
    config = tmp_path / "empty.yaml"
    config.write_text(text)
    result = run_cli("run", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{config}: (top level): is empty" in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_bad_hyperparameter_in_a_file_exits_2_naming_it(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"methods": [
        {"name": "x", "optimizer": "sgd", "hyperparameters": {"lr": "fast"}}]}))
    result = run_cli("run", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "run.yaml: methods.0.hyperparameters.lr: expected a number, got 'fast'" \
        in result.stderr
