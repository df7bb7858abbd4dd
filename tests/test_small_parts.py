"""Registries, schedules, statistics and records."""

import json
import math

import numpy as np
import pytest
import torch

from plp_bench.core import record as results
from plp_bench.core.registry import Registry, UnknownNameError
from plp_bench.core.stats import bootstrap_median, paired_ratios
from plp_bench.methods.schedules import Constant, Cyclic, Inverse, ScheduleRunner, StepDecay


def test_registry_duplicates_and_suggestions():
    reg = Registry("thing")
    reg.add("alpha", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("alpha", 2)
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        reg.get("alpah")
    assert reg.names() == ["alpha"] and "alpha" in reg


def cyclic_reference(initial, low, s, t):
    """Smith (2017), triangular policy, written out literally."""
    base_lr, max_lr = low * initial, initial
    cycle = np.floor(1 + t / (2 * s))
    x = np.abs(t / s - 2 * cycle + 1)
    return base_lr + (max_lr - base_lr) * np.maximum(0, 1 - x)


def test_cyclic_matches_the_paper_formula():
    sched = Cyclic(low=0.5, step_size_up=7)
    for t in range(60):
        assert sched(0.002, t, 60) == pytest.approx(cyclic_reference(0.002, 0.5, 7, t), abs=1e-15)
    assert sched(0.002, 0, 60) == 0.001 and sched(0.002, 7, 60) == 0.002


def test_inv_and_step_match_caffes_policies():
    """Caffe's sgd_solver.cpp: "inv" is base_lr * (1 + gamma * iter) ^ (- power); "step" is
    base_lr * gamma ^ (floor(iter / stepsize)). Written out in float64 by hand."""
    inv = Inverse(gamma=1e-4, power=0.75)
    for t in (0, 1, 2500, 3000, 10000):
        assert inv(0.01, t, 10000) == pytest.approx(0.01 * math.pow(1.0 + 1e-4 * t, -0.75),
                                                    rel=1e-15)
    assert inv(0.01, 10000, 10000) == pytest.approx(0.01 / 2 ** 0.75)
    step = StepDecay(step_size=350, gamma=0.1)
    for t, expected in ((0, 0.1), (349, 0.1), (350, 0.01), (700, 0.001), (1049, 0.001)):
        assert step(0.1, t, 2000) == pytest.approx(expected, rel=1e-15)
    for bad in ({"gamma": -1.0}, {"power": math.nan}):
        with pytest.raises(ValueError, match="inv: "):
            Inverse(**bad)
    for bad in ({"step_size": 0}, {"step_size": True}, {"gamma": 0.0}, {"gamma": 1.5}):
        with pytest.raises(ValueError, match="step: "):
            StepDecay(**bad)


def test_schedules_drive_param_groups_and_compose():
    params = [torch.zeros(1, requires_grad=True)]
    opt = torch.optim.SGD([{"params": params, "lr": 0.1}, {"params": [torch.zeros(1)], "lr": 1.0}])
    runner = ScheduleRunner(opt, [Constant(), Cyclic(low=0.0, step_size_up=2),
                                  Cyclic(low=0.5, step_size_up=4)], total_steps=10)
    runner.apply(2)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1 * 0.75, 1.0 * 0.75])
    runner.apply(0)
    assert opt.param_groups[0]["lr"] == 0.0
    with pytest.raises(ValueError, match="not a hyperparameter"):
        ScheduleRunner(opt, [Cyclic(field="gamma")], 10)


def test_bootstrap_is_seeded_and_sane():
    values = [1.2, 1.5, 1.3, 1.4, 1.6]
    a, b = bootstrap_median(values), bootstrap_median(values)
    assert a == b and a.estimate == 1.4 and a.low <= 1.4 <= a.high and a.excludes_one
    assert not bootstrap_median([0.9, 1.1, 1.0]).excludes_one
    assert not bootstrap_median([2.0]).excludes_one  # one pair proves nothing
    assert bootstrap_median([]) is None


def test_paired_ratios_skip_misses():
    assert paired_ratios({0: 100, 1: 50, 2: None}, {0: 50, 1: None, 2: 10}) == [2.0]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "r.json"
    results.write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        results.write_json_atomic(path, {"a": math.nan})  # NaN is not JSON
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_records_of_another_schema_are_refused(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(results.ResultError, match=r"r\.json: schema version 99"):
        results.load(path)
    path.write_text("{not json")
    with pytest.raises(results.ResultError, match="unreadable run record"):
        results.load(path)
