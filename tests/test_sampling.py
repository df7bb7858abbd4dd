"""The suites' load-robust timing (benchmarks.sampling) on a fake clock: what each sample is
made of, not how fast anything runs."""

from __future__ import annotations

import gc
import os

import pytest

from benchmarks import common, sampling


class SteppedClock:
    """``perf_counter`` that moves only when a timed call says how long it took."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_each_sample_is_a_ratio_of_median_calls_in_alternation(monkeypatch):
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    order, calls = [], {"work": 0}

    def work():
        calls["work"] += 1
        order.append("w")
        # every third call is preempted by a neighbour: 25x its cost
        clock.now += 0.050 if calls["work"] % 3 == 0 else 0.002

    def reference():
        order.append("r")
        clock.now += 0.001

    ratios = sampling.interleaved_ratios(work, reference, samples=5, calls=7)
    assert ratios == [pytest.approx(2.0)] * 5
    assert order == ["w", "r"] * 36  # a discarded probing pair, then 5 samples of 7 pairs


def test_the_collector_is_off_while_timing_and_restored_after():
    seen = []
    assert gc.isenabled()
    sampling.interleaved_ratios(lambda: seen.append(gc.isenabled()), lambda: None,
                                samples=2, calls=2)
    assert seen == [False] * 5 and gc.isenabled()


def test_sampled_values_are_what_asv_stores_as_a_timing():
    from asv_runner.statistics import compute_stats

    value = sampling.sampled([1.0, 3.0, 2.0])
    assert value == {"samples": [1.0, 3.0, 2.0], "number": 1}
    median, stats = compute_stats(value["samples"], value["number"])
    assert median == 2.0 and stats["repeat"] == 3
    assert sampling.sample_values(value) == [1.0, 3.0, 2.0]
    assert sampling.sample_values(4.0) == [4.0]
    with pytest.raises(ValueError):
        sampling.sampled([])


def test_timings_are_kept_within_one_asv_run_and_measured_again_by_the_next(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PLP_BENCH_ASV_RUNS", str(tmp_path))
    monkeypatch.setenv("PLP_BENCH_COMMIT", "a" * 40)
    measured = []

    def measure():
        measured.append(1)
        return [float(len(measured))]

    token = common.measurement_token()
    assert token == common.measurement_token() and token.startswith(f"{os.getppid()}-")
    assert common.memo_per_run("cost", measure) == [1.0]
    assert common.memo_per_run("cost", measure) == [1.0]  # the same run: kept
    monkeypatch.setattr(common, "measurement_token", lambda: "another-run")
    assert common.memo_per_run("cost", measure) == [2.0]  # the next run: measured again


def test_calls_per_side_fit_the_budget_within_bounds(monkeypatch):
    assert sampling.calls_within(3.0, 12, 0.0002) == sampling.MAX_CALLS  # an MLP's steps
    assert sampling.calls_within(3.0, 12, 0.1) == sampling.MIN_CALLS  # a ResNet18's
    assert sampling.calls_within(3.0, 12, 0.04) == 6  # 3 / (12 * 0.04) = 6.25
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    count = {"work": 0}

    def work():
        count["work"] += 1
        clock.now += 0.05

    def reference():
        clock.now += 0.01

    sampling.interleaved_ratios(work, reference, samples=12)
    assert count["work"] == 1 + 12 * sampling.calls_within(sampling.BUDGET_SECONDS, 12, 0.06)
