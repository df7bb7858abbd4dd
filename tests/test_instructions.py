"""Instruction counts under Valgrind (benchmarks.instructions): the dumps are read as callgrind
writes them and nothing else, the client requests do nothing outside Valgrind, and, where
Valgrind is installed, a count is exact: the same in two processes (the ODE's, of NumPy and
SciPy code whose vector loops start where their arrays lie, within 0.1%)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import data_available

from benchmarks import instructions
from benchmarks import ode as ode_suite
from benchmarks.common import current_size
from benchmarks.costs import StepBench, named_method, parameter_set, ramp_parameter_set
from benchmarks.jumps import JumpInstructions
from benchmarks.ode import OdeInstructions
from benchmarks.ode_counting import GD_STEP
from benchmarks.step_cost import TrainingStepInstructions, UpdateInstructions


def _dump(folder: Path, number: int, label: str | None, total: int) -> None:
    trigger = ("Program termination" if label is None else f"Client Request: {label}")
    (folder / f"callgrind.out.{number}").write_text(
        f"# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 42\ncmd: python\n"
        f"part: {number}\n\ndesc: I1 cache: \ndesc: Timerange: Basic block 0 - 10\n"
        f"desc: Trigger: {trigger}\n\npositions: line\nevents: Ir\nsummary: {total}\n\n"
        f"fn=(1) main\n0 {total}\n\ntotals: {total}\n")


def test_the_dumps_are_read_by_label(tmp_path):
    _dump(tmp_path, 1, "r0", 1000)
    _dump(tmp_path, 2, "w1", 1250)
    _dump(tmp_path, 3, None, 0)  # the program's end: nothing collected, left out
    assert instructions.read_dumps(tmp_path) == {"r0": 1000, "w1": 1250}


@pytest.mark.parametrize("label, error", [("../w1", "label '../w1'"), ("W1", "label 'W1'")])
def test_a_dump_not_as_callgrind_writes_it_is_refused(tmp_path, label, error):
    _dump(tmp_path, 1, label, 10)
    with pytest.raises(ValueError, match=error):
        instructions.read_dumps(tmp_path)


def test_a_label_dumped_twice_or_too_many_dumps_are_refused(tmp_path, monkeypatch):
    _dump(tmp_path, 1, "w0", 10)
    _dump(tmp_path, 2, "w0", 11)
    with pytest.raises(ValueError, match="label 'w0' dumped twice"):
        instructions.read_dumps(tmp_path)
    monkeypatch.setattr(instructions, "MAX_DUMPS", 1)
    with pytest.raises(ValueError, match="2 callgrind dumps; at most 1"):
        instructions.read_dumps(tmp_path)


def test_ratios_pair_each_method_with_its_reference():
    counts = {"r0": 1000, "w0": 1100, "w1": 1600, "r1": 50, "w2": 400}
    report = {"labels": [["update", "mlp", "plp", "w0", "r0"],
                         ["update", "mlp", "xgrad-sgd", "w1", "r0"],
                         ["jump", "mlp", "introspection", "w2", "r1"]]}
    points = [("update", "mlp", "plp"), ("update", "mlp", "xgrad-sgd"),
              ("update", "mlp", "gone"), ("jump", "mlp", "introspection")]
    assert instructions.ratios_from(report, counts, points) == {
        ("update", "mlp", "plp"): pytest.approx(1.1),
        ("update", "mlp", "xgrad-sgd"): pytest.approx(1.6),
        ("jump", "mlp", "introspection"): pytest.approx(8.0)}
    with pytest.raises(ValueError, match="reported update mlp/demon, not asked for"):
        instructions.ratios_from({"labels": [["update", "mlp", "demon", "w0", "r0"]]}, counts,
                                 points)
    with pytest.raises(ValueError, match="reported step mlp/plp, not asked for"):
        instructions.ratios_from({"labels": [["step", "mlp", "plp", "w0", "r0"]]}, counts,
                                 points)
    with pytest.raises(ValueError, match="match no callgrind dump"):
        instructions.ratios_from({"labels": [["update", "mlp", "plp", "w9", "r0"]]}, counts,
                                 points)
    with pytest.raises(ValueError, match="is not \\[kind, parameters"):
        instructions.ratios_from({"labels": [["mlp", "plp", "w0", "r0"]]}, counts, points)
    with pytest.raises(ValueError, match="no 'labels' list"):
        instructions.ratios_from({"labels": {"plp": 1}}, counts, points)
    with pytest.raises(ValueError, match="no instructions counted"):
        instructions.ratios_from(report, {**counts, "r0": 0}, points)


def test_the_odes_counts_sum_their_dumps_and_a_step_is_counted_per_step():
    counts = {"o1": 5000, "o2": 300, "o3": 200, "o4": 4000}
    report = {"labels": [["ode", "banknote-mlp", "0.80", "o1+o2", "1"],
                         ["ode", "banknote-mlp", "0.85", "o1+o2+o3", "1"],
                         ["ode", "banknote-mlp", GD_STEP, "o4", "20"]]}
    points = instructions.ode_points(["banknote-mlp"])
    assert instructions.ratios_from(report, counts, points) == {
        ("ode", "banknote-mlp", "0.80"): 5300, ("ode", "banknote-mlp", "0.85"): 5500,
        ("ode", "banknote-mlp", GD_STEP): 200}
    for units in ("0", "-1", "1e3"):  # not a number of units: read as a label, found nowhere
        with pytest.raises(ValueError, match="match no callgrind dump"):
            instructions.ratios_from({"labels": [["ode", "banknote-mlp", "0.80", "o1", units]]},
                                     counts, points)
    with pytest.raises(ValueError, match="match no callgrind dump"):
        instructions.ratios_from({"labels": [["ode", "banknote-mlp", "0.80", "o1+", "1"]]},
                                 counts, points)
    assert {point for _, _, point in points} == {GD_STEP, "0.80", "0.85", "0.90", "0.95"}


def test_client_requests_do_nothing_outside_valgrind():
    requests = instructions.ClientRequests()
    assert not requests.on_valgrind()
    ran = []
    with requests.counted("w0"):
        ran.append(True)
    assert ran == [True]
    with pytest.raises(ValueError, match="label 'w 0'"), requests.counted("w 0"):
        pass
    requests.start_counting()  # the ODE's count: start, dumps at points of its own, stop
    requests.dump("o1")
    requests.stop_counting()
    with pytest.raises(ValueError, match="label 'o 1'"):
        requests.dump("o 1")
    assert instructions.main(["update:mlp:plp"]) == 2  # the child refuses to run unobserved
    with pytest.raises(SystemExit):  # a point not KIND:PARAMETERS:METHOD
        instructions.main(["mlp:plp"])


def test_the_ramp_set_has_the_seeded_sets_shapes_and_gradients():
    ramp, seeded = ramp_parameter_set("mlp"), parameter_set("mlp")
    assert [p.shape for p in ramp] == [p.shape for p in seeded]
    assert all(p.grad is not None and p.grad.shape == p.shape for p in ramp)
    first = ramp[0].detach().flatten()
    assert first[0] == -0.05 and first[-1] == pytest.approx(0.05)
    bench = StepBench.build(named_method("plp"), "mlp", params=ramp)
    assert bench.params is ramp
    with pytest.raises(ValueError, match="params replaces the synthetic set"):
        StepBench.build(named_method("plp"), "mlp", params=ramp, batch_size=8)


def test_which_methods_are_counted_where(monkeypatch):
    assert instructions.counted_on("update", "mlp", "adam", jumps=True)
    assert instructions.counted_on("step", "mlp", "adam", jumps=True)
    assert instructions.counted_on("jump", "mlp", "sgd", jumps=True)
    assert instructions.counted_on("update", "resnet18", "sgd", jumps=False)
    assert not instructions.counted_on("update", "resnet18", "adam", jumps=False)
    assert not instructions.counted_on("update", "resnet18", "sgd", jumps=True)
    assert not instructions.counted_on("step", "resnet18", "sgd", jumps=False)
    assert not instructions.counted_on("jump", "resnet18", "sgd", jumps=True)
    assert instructions.kind_counted_on("update", "resnet18")
    assert not instructions.kind_counted_on("step", "resnet18")
    monkeypatch.setenv("PLP_BENCH_SIZE", "ci")
    asked = instructions.suite_points()
    assert ("update", "resnet18", "plp") in asked and ("step", "mlp", "plp") in asked
    assert ("jump", "mlp", "introspection") in asked
    assert not any(p == "resnet18" for kind, p, _ in asked if kind != "update")
    assert {kind for kind, _, _ in asked} == set(instructions.KINDS)
    monkeypatch.setenv("PLP_BENCH_SIZE", "smoke")  # the ODE's counts are left out there
    assert {kind for kind, _, _ in instructions.suite_points()} == set(instructions.KINDS) - {"ode"}


def test_every_suite_of_counts_shares_one_child():
    """asv runs one ``setup_cache`` per key (its module and line): every suite of counts must
    have the same, or each would start a child of its own."""
    from asv_runner.benchmarks._base import get_setup_cache_key

    suites = [UpdateInstructions, TrainingStepInstructions, JumpInstructions, OdeInstructions]
    assert {suite.kind for suite in suites} == set(instructions.KINDS)
    assert len({get_setup_cache_key(suite().setup_cache) for suite in suites}) == 1


def test_a_count_is_the_same_in_two_processes_or_its_points_are_skipped(monkeypatch):
    monkeypatch.setenv("PLP_BENCH_SIZE", "smoke")
    suite = UpdateInstructions()
    why_not = instructions.available()
    if why_not is not None:  # no Valgrind here: every point is skipped, saying why
        counts = suite.setup_cache()
        assert counts == why_not
        with pytest.raises(NotImplementedError, match="valgrind"):
            suite.setup(counts, "mlp", "plp")
        return
    # the smoke budget's ODE reaches 0.90; it integrates only to the highest threshold asked
    odes = [point for point in instructions.ode_points(["banknote-mlp"])
            if point[2] not in ("0.90", "0.95")]
    points = [("update", "mlp", "plp"), ("update", "mlp", "xgrad-sgd"),
              ("step", "mlp", "plp"), ("jump", "mlp", "introspection"), *odes]
    first, second = instructions.count_ratios(points), instructions.count_ratios(points)
    exact = [point for point in points if point[0] != "ode"]
    assert {p: first[p] for p in exact} == {p: second[p] for p in exact}  # exact, not close
    # XGrad adds a weight prediction to SGD's step; PLP's cycle adds one prediction in three
    assert first[("update", "mlp", "xgrad-sgd")] > first[("update", "mlp", "plp")] > 1.0
    # the same prediction is a smaller share of a whole training step
    assert 1.0 < first[("step", "mlp", "plp")] < first[("update", "mlp", "plp")]
    # a jump runs a network over every weight's history: several plain steps' worth
    assert first[("jump", "mlp", "introspection")] > 2.0
    with pytest.raises(NotImplementedError, match="update of introspection on mlp is not"):
        suite.setup(first, "mlp", "introspection")
    suite.setup(first, "mlp", "plp")
    assert suite.track_update_instruction_ratio(first, "mlp", "plp") \
        == first[("update", "mlp", "plp")]
    jumps = JumpInstructions()
    jumps.setup(first, "mlp", "introspection")
    assert jumps.track_jump_cost_in_instruction_steps(first, "mlp", "introspection") \
        == first[("jump", "mlp", "introspection")]
    if not data_available("banknote"):  # the ODE's workload is skipped, saying why
        assert not set(odes) & set(first)
        return
    assert set(odes) <= set(first) and set(odes) <= set(second)
    for point in odes:
        assert first[point] == pytest.approx(second[point], rel=1e-3)
    # each threshold's count holds the lower ones'
    ode = [first[("ode", "banknote-mlp", t)] for t in ("0.80", "0.85")]
    assert ode == sorted(ode) and ode[0] > 50 * first[("ode", "banknote-mlp", GD_STEP)]
    suite = OdeInstructions()
    monkeypatch.setattr(ode_suite, "SIZE", current_size())  # smoke: left out, saying why
    with pytest.raises(NotImplementedError, match="left out of the smoke size"):
        suite.setup(first, "banknote-mlp", "0.80")
    monkeypatch.setenv("PLP_BENCH_SIZE", "ci")
    monkeypatch.setattr(ode_suite, "SIZE", current_size())
    monkeypatch.setattr(ode_suite, "ODE_SAMPLES", 1)  # the comparison gives GD's exact steps
    suite.setup(first, "banknote-mlp", "0.80")
    gd = suite.track_gd_instructions(first, "banknote-mlp", "0.80")
    assert gd == suite.gd_steps * first[("ode", "banknote-mlp", GD_STEP)] and suite.gd_steps > 100
    assert suite.track_ode_over_gd_instructions(first, "banknote-mlp", "0.80") \
        == pytest.approx(ode[0] / gd)
