"""Performance profiles and their score against a direct numerical integration."""

import math

import numpy as np
import pytest

from plp_bench.report.performance_profiles import geometric_mean, performance_ratios, profile, profile_score


def test_ratios_are_to_the_best_method_per_workload_and_missed_is_infinite():
    times = {"sgd": {"a": 100.0, "b": 50.0}, "plp": {"a": 80.0, "b": None},
             "adam": {"a": 160.0, "b": 25.0}}
    r = performance_ratios(times)
    assert r["plp"]["a"] == 1.0 and r["sgd"]["a"] == 1.25 and r["adam"]["a"] == 2.0
    assert r["adam"]["b"] == 1.0 and r["sgd"]["b"] == 2.0 and math.isinf(r["plp"]["b"])


def test_no_method_reaching_a_target_makes_every_ratio_infinite_there():
    r = performance_ratios({"sgd": {"a": None}, "plp": {"a": None}})
    assert all(math.isinf(v["a"]) for v in r.values())


@pytest.mark.parametrize("ratios", [[1.0, 1.0], [1.0, 2.5, math.inf], [3.9, 4.0, 7.0],
                                    [1.2, 1.7, 2.2, 3.3, 1.0]])
def test_the_score_is_the_normalised_area_under_the_profile(ratios):
    taus = np.linspace(1.0, 4.0, 300_001)
    rho = np.array([profile(ratios, tau) for tau in taus[::100]])
    numeric = np.trapezoid(rho, taus[::100]) / 3.0
    assert profile_score(ratios) == pytest.approx(numeric, abs=2e-3)


def test_best_everywhere_scores_one_and_never_close_scores_zero():
    assert profile_score([1.0, 1.0, 1.0]) == 1.0
    assert profile_score([5.0, math.inf]) == 0.0


def test_geometric_mean():
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert geometric_mean([]) is None
