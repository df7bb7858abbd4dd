"""The rule that decides a change between commits, the noise model that sets its thresholds,
and the commands and files around them, on constructed samples (no timing in the suite)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import random
import re
import subprocess
from pathlib import Path

import pytest
from scipy.stats import mannwhitneyu

from plp_bench.cli import main
from plp_bench.core.config import ConfigError
from plp_bench.report import noise_model
from plp_bench.report.asv_results import AsvValue, Thresholds, commit_values, point_name
from plp_bench.report.comparison import (
    ALPHA,
    ASV_ALPHA,
    Measured,
    decide,
    round_shift,
    samples_differ,
    smallest_p,
    within_own_rounds,
)

ROOT = Path(__file__).resolve().parent.parent


def noisy(center: float, spread: float, count: int, rng: random.Random) -> tuple[float, ...]:
    """``count`` samples of a timing: the center times a positive, right-skewed noise (the
    shape of wall-clock noise: a call is only ever slowed down)."""
    return tuple(center * (1 + spread * rng.expovariate(1.0) / 3) for _ in range(count))


def as_measured(samples: tuple[float, ...]) -> Measured:
    ordered = sorted(samples)
    middle = len(ordered) // 2
    median = (ordered[middle] if len(ordered) % 2
              else (ordered[middle - 1] + ordered[middle]) / 2)
    return Measured(median, samples)


# --- the rule -------------------------------------------------------------------------------

def test_a_a_samples_are_flagged_at_most_at_the_tests_level():
    """Samples of one distribution, medians often beyond the threshold: the test on the samples
    keeps false alarms to its level (p < ALPHA), where the ratio of medians alone would flag a
    third of them."""
    rng = random.Random(0)
    flagged = beyond = 0
    pairs = 1000
    for _ in range(pairs):
        a, b = as_measured(noisy(1.0, 0.1, 12, rng)), as_measured(noisy(1.0, 0.1, 12, rng))
        flagged += decide(a, b, threshold=0.01) is not None
        beyond += abs(b.value / a.value - 1) > 0.01
    assert beyond > pairs / 3
    assert flagged <= 2 * ALPHA * pairs


def test_a_shift_beyond_threshold_and_noise_is_flagged_every_time():
    rng = random.Random(1)
    verdicts = {decide(as_measured(noisy(1.0, 0.03, 12, rng)),
                       as_measured(noisy(1.10, 0.03, 12, rng)), threshold=0.03)
                for _ in range(200)}
    assert verdicts == {"worse"}
    verdicts = {decide(as_measured(noisy(1.10, 0.03, 12, rng)),
                       as_measured(noisy(1.0, 0.03, 12, rng)), threshold=0.03)
                for _ in range(200)}
    assert verdicts == {"better"}


def test_a_shift_within_the_threshold_is_not_flagged_however_significant():
    before = Measured(1.0, tuple(1.0 + 1e-6 * k for k in range(12)))
    now = Measured(1.02, tuple(1.02 + 1e-6 * k for k in range(12)))
    assert samples_differ(before, now)  # the samples differ...
    assert decide(before, now, threshold=0.03) is None  # ...but not beyond the noise
    assert decide(before, now, threshold=0.01) == "worse"


def test_a_median_ratio_alone_never_decides_a_timing():
    """Medians 30% apart whose samples overlap: the samples decide, not the ratio."""
    before = Measured(1.0, (0.6, 0.8, 1.0, 1.2, 1.4, 1.6))
    now = Measured(1.3, (0.7, 0.9, 1.3, 1.5, 1.7, 1.9))
    assert decide(before, now, threshold=0.05) is None


def test_few_samples_fall_back_to_the_intervals():
    """Two seeds a side cannot reach p < ALPHA (smallest p 1/3): the intervals decide."""
    assert smallest_p(2, 2) == pytest.approx(1 / 3)
    apart = decide(Measured(1.0, (0.99, 1.01)), Measured(2.0, (1.98, 2.02)), 0.05)
    overlapping = decide(Measured(1.0, (0.5, 1.5)), Measured(1.4, (0.9, 1.9)), 0.05)
    assert (apart, overlapping) == ("worse", None)
    # asv's own intervals, where only those were recorded
    assert decide(Measured(1.0, interval=(0.9, 1.1)), Measured(1.5, interval=(1.4, 1.6)),
                  0.05) == "worse"
    assert decide(Measured(1.0, interval=(0.9, 1.45)), Measured(1.5, interval=(1.4, 1.6)),
                  0.05) is None


def test_smallest_p_is_the_exact_test_at_its_extreme():
    for n, m in ((3, 3), (4, 5), (6, 6)):
        low = mannwhitneyu(list(range(n)), list(range(100, 100 + m)), method="exact").pvalue
        assert smallest_p(n, m) == pytest.approx(low)


def test_a_deterministic_value_is_exact_at_threshold_zero():
    assert decide(Measured(400.0), Measured(401.0), 0.0) == "worse"
    assert decide(Measured(400.0), Measured(399.0), 0.0) == "better"
    assert decide(Measured(400.0), Measured(400.0), 0.0) is None
    assert decide(Measured(0.0), Measured(1.0), 0.0) == "worse"
    assert decide(None, Measured(1.0), 0.0) is None
    assert decide(Measured(math.nan), Measured(1.0), 0.0) is None


def test_the_rule_agrees_with_asv_where_asv_has_samples():
    """At asv's level the verdict is asv's ``_is_result_better``; at the harness's own (looser)
    level, every change asv calls is called the same way."""
    from asv.commands.compare import _is_result_better
    from asv_runner.statistics import compute_stats

    rng = random.Random(2)
    for shift in (0.9, 0.97, 1.0, 1.04, 1.12, 1.3):
        a, b = noisy(1.0, 0.05, 12, rng), noisy(shift, 0.05, 12, rng)
        (va, sa), (vb, sb) = compute_stats(a, 1), compute_stats(b, 1)
        at_asvs_level = decide(Measured(va, a), Measured(vb, b), 0.05, alpha=ASV_ALPHA)
        ours = decide(Measured(va, a), Measured(vb, b), 0.05)
        asv_worse = _is_result_better(va, vb, (sa, a), (sb, b), 1.05)
        asv_better = _is_result_better(vb, va, (sb, b), (sa, a), 1.05)
        asvs = "worse" if asv_worse else "better" if asv_better else None
        assert at_asvs_level == asvs, shift
        assert asvs is None or ours == asvs, shift


# --- the noise model ------------------------------------------------------------------------

def _value(benchmark: str, params: tuple[str, ...], value: float, samples=None) -> AsvValue:
    return AsvValue(benchmark, params, value, "ratio", "m", samples=samples)


def _rounds(medians_per_round: list[dict[tuple[str, tuple], float]], sampled: set[str]):
    return [[_value(b, p, v, (v,) * 3 if b in sampled else None) for (b, p), v in r.items()]
            for r in medians_per_round]


def test_noise_model_spread_threshold_and_detectable_change():
    rounds = _rounds([
        {("s.A.track_ratio", ("mlp",)): 1.00, ("s.A.track_ratio", ("big",)): 2.00,
         ("s.B.track_steps", ("x",)): 120.0},
        {("s.A.track_ratio", ("mlp",)): 1.02, ("s.A.track_ratio", ("big",)): 2.10,
         ("s.B.track_steps", ("x",)): 120.0},
        {("s.A.track_ratio", ("mlp",)): 1.01, ("s.A.track_ratio", ("big",)): 2.05,
         ("s.B.track_steps", ("x",)): 120.0},
    ], sampled={"s.A.track_ratio"})
    model = noise_model.build(rounds, ["r1", "r2", "r3"])
    timing, exact = model.of("s.A.track_ratio"), model.of("s.B.track_steps")
    assert timing.points == 2 and timing.measurements == 3
    assert timing.spread == pytest.approx(0.05)  # 2.10 / 2.00 - 1
    assert timing.threshold == pytest.approx(0.08)  # ceil(1.5 * 5%) to 1%
    # detectable, by hand: the samples (three equal values a side) cannot reach the test's
    # level and their intervals are points, so the rule is the threshold alone; the smallest
    # change on a 1% grid that moves at least 95% of the A/A pairs, each side in turn, slowed
    # down and sped up, beyond 8%
    medians = [(1.0, 1.02, 1.01), (2.0, 2.1, 2.05)]
    ratios = [b / a for point in medians for a, b in itertools.permutations(point, 2)]

    def share(change: float) -> float:
        worse = [r * (1 + change) > 1.08 for r in ratios]
        better = [r / (1 + change) < 1 / 1.08 for r in ratios]
        return (sum(worse) + sum(better)) / (2 * len(ratios))

    expected = next(k / 100 for k in range(1, 101) if share(k / 100) >= 0.95)
    assert timing.detectable == pytest.approx(expected)
    assert expected > 0.08
    assert exact.deterministic and exact.threshold == 0 and exact.detectable == 0


def _two_workloads():
    """Three A/A rounds of a timing whose points on "mlp" move 1% and on "big" 8%."""
    return _rounds([
        {("s.A.t", ("mlp", "plp")): 1.00, ("s.A.t", ("big", "plp")): 2.00,
         ("s.A.t", ("mlp", "sgd")): 3.00, ("s.B.steps", ("mlp",)): 7.0,
         ("s.B.steps", ("big",)): 9.0},
        {("s.A.t", ("mlp", "plp")): 1.01, ("s.A.t", ("big", "plp")): 2.16,
         ("s.A.t", ("mlp", "sgd")): 3.00, ("s.B.steps", ("mlp",)): 7.0,
         ("s.B.steps", ("big",)): 9.0},
        {("s.A.t", ("mlp", "plp")): 1.00, ("s.A.t", ("big", "plp")): 2.05,
         ("s.A.t", ("mlp", "sgd")): 3.03, ("s.B.steps", ("mlp",)): 7.0,
         ("s.B.steps", ("big",)): 9.0},
    ], sampled={"s.A.t"})


def test_each_workload_of_a_timing_gets_its_own_threshold():
    model = noise_model.build(_two_workloads(), ["r1", "r2", "r3"])
    whole, quiet, loud = (model.of("s.A.t"), model.of("s.A.t", "mlp"), model.of("s.A.t", "big"))
    assert (whole.points, quiet.points, loud.points) == (3, 2, 1)
    assert loud.spread == pytest.approx(0.08) and whole.spread == pytest.approx(0.08)
    assert loud.threshold == whole.threshold == pytest.approx(0.12)  # ceil(1.5 * 8%)
    assert quiet.spread == pytest.approx(0.01)
    assert quiet.threshold == noise_model.FLOOR  # 1.5 * 1% is below the floor
    assert not quiet.deterministic and quiet.detectable < loud.detectable
    # an exact benchmark keeps one row, however many workloads it has
    assert model.of("s.B.steps").deterministic and model.of("s.B.steps", "mlp") is None
    assert "| `s` | `A.t(mlp, ...)` | 2 | 1.0% | 3% |" in noise_model.markdown(model)


def test_a_workloads_threshold_reaches_asv_and_compare_and_a_new_workload_gets_the_whole(
        tmp_path):
    from asv import util

    model = noise_model.build(_two_workloads(), ["r1", "r2", "r3"])
    config = tmp_path / "asv.conf.json"
    config.write_text((ROOT / "asv.conf.json").read_text())
    noise_model.write_config_thresholds(config, model, "model.json")
    patterns = util.load_json(config, js_comments=True)["regressions_thresholds"]

    def asv_threshold(entry: str) -> float:  # asv's rule: the largest matching pattern
        return max(t for p, t in patterns.items() if re.match(p, entry))

    thresholds = Thresholds.load(config)
    cases = {"s.A.t('mlp', 'plp')@main": 0.03, "s.A.t(mlp, plp)": 0.03,
             "s.A.t('big', 'plp')@main": 0.12, "s.A.t(big, sgd)": 0.12,
             "s.A.t('added', 'plp')@main": 0.12, "s.A.t(mlp-wide, plp)": 0.12,
             "s.A.t": 0.12, "s.A.t@main": 0.12, "s.B.steps(mlp)": 0.0}
    for entry, threshold in cases.items():
        assert thresholds.of(entry) == pytest.approx(threshold), entry
        assert asv_threshold(entry) == pytest.approx(threshold), entry


def test_a_model_of_schema_1_is_still_read_and_a_hostile_parameter_is_refused(tmp_path):
    model = noise_model.build(_two_workloads(), ["r1", "r2", "r3"])
    old = model.to_json()
    old["schema"] = 1
    # schema 1 had no rows per first parameter, and a sigma no longer used
    old["benchmarks"] = [{**{k: v for k, v in row.items() if k != "first_parameter"},
                          "sigma": 0.01}
                         for row in old["benchmarks"] if row["first_parameter"] is None]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(old))
    assert noise_model.NoiseModel.load(path).of("s.A.t").threshold == pytest.approx(0.12)
    schema_2_with_sigma = model.to_json()
    schema_2_with_sigma["benchmarks"][0]["sigma"] = 0.01
    path.write_text(json.dumps(schema_2_with_sigma))
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]: expected the fields"):
        noise_model.NoiseModel.load(path)
    # a parameter value a model file could not hold gets no row of its own
    odd = noise_model.build(_rounds([{("s.A.t", ("a b",)): 1.0, ("s.A.t", ("c",)): 1.0},
                                     {("s.A.t", ("a b",)): 1.1, ("s.A.t", ("c",)): 1.0}],
                                    {"s.A.t"}), ["a", "b"])
    assert [row.first_parameter for row in odd.benchmarks] == [None]
    for hostile in ("../x", "a" * 101, "(.*)", 7):
        bad = model.to_json()
        bad["benchmarks"][1]["first_parameter"] = hostile
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=r"benchmarks\[1\]\.first_parameter"):
            noise_model.NoiseModel.load(path)


def test_noise_model_floor_and_a_lone_round_is_refused():
    same = [[_value("s.A.t", (), 1.0, (1.0,))] for _ in range(3)]
    assert noise_model.build(same, ["a", "b", "c"]).of("s.A.t").threshold == noise_model.FLOOR
    with pytest.raises(ConfigError, match="at least two measurements"):
        noise_model.build(same[:1], ["a"])


def test_a_threshold_from_the_model_keeps_a_a_quiet_and_sees_a_larger_shift():
    """The model measured on 30 A/A rounds of a constructed timing whose medians also move
    between processes (1%, which no process's samples show); then fresh A/A pairs are flagged
    at most once in 100 at its threshold, and a shift of the detectable size (measured on the
    rounds' own pairs) 19 times in 20, within the binomial error of 200 fresh pairs (two
    standard errors: 184), and one grid step above it at least 190 times."""
    rng = random.Random(3)

    def measurement(center: float) -> AsvValue:
        samples = noisy(center * rng.lognormvariate(0, 0.01), 0.05, 12, rng)
        return AsvValue("s.A.t", (), as_measured(samples).value, "ratio", "m", samples=samples)

    model = noise_model.build([[measurement(1.0)] for _ in range(30)],
                              [f"r{k}" for k in range(30)])
    noise = model.of("s.A.t")
    pairs = [(measurement(1.0), measurement(1.0)) for _ in range(200)]
    false_alarms = sum(decide(Measured(a.value, a.samples), Measured(b.value, b.samples),
                              noise.threshold) is not None for a, b in pairs)
    assert false_alarms <= 2

    def seen(change: float) -> int:
        shifted = [(measurement(1.0), measurement(1.0 + change)) for _ in range(200)]
        return sum(decide(Measured(a.value, a.samples), Measured(b.value, b.samples),
                          noise.threshold) == "worse" for a, b in shifted)

    assert seen(noise.detectable) >= 184
    assert seen(noise.detectable + 0.01) >= 190
    assert seen(noise.threshold) < 184  # the threshold alone is not what is detected


def test_noise_model_json_round_trip_and_hostile_files(tmp_path):
    model = noise_model.build(_rounds([{("s.A.t", ()): 1.0}, {("s.A.t", ()): 1.1}],
                                      {"s.A.t"}), ["a", "b"])
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model.to_json()))
    assert noise_model.NoiseModel.load(path) == model
    bad = model.to_json()
    bad["benchmarks"][0]["threshold"] = "huge"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]\.threshold"):
        noise_model.NoiseModel.load(path)
    bad = model.to_json()
    bad["benchmarks"][0]["benchmark"] = "../../etc/passwd"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]\.benchmark"):
        noise_model.NoiseModel.load(path)
    path.write_text('{"schema": 99}')
    with pytest.raises(ConfigError, match="schema"):
        noise_model.NoiseModel.load(path)


def test_thresholds_written_into_the_config_are_read_back_by_asv_and_by_compare(tmp_path):
    from asv import util

    config = tmp_path / "asv.conf.json"
    config.write_text((ROOT / "asv.conf.json").read_text())
    model = noise_model.build(_rounds([{("step_cost.X.track_r", ("a",)): 1.0,
                                        ("convergence.T.track_steps", ("a",)): 9.0},
                                       {("step_cost.X.track_r", ("a",)): 1.04,
                                        ("convergence.T.track_steps", ("a",)): 9.0}],
                                      {"step_cost.X.track_r"}), ["a", "b"])
    for _ in range(2):  # writing twice replaces the block, it does not add to it
        noise_model.write_config_thresholds(config, model, "model.json")
    loaded = util.load_json(config, js_comments=True)["regressions_thresholds"]
    assert loaded[r"step_cost\.X\.track_r(?=$|\(|@)"] == 0.06
    assert loaded[r"convergence\.T\.track_steps(?=$|\(|@)"] == 0
    thresholds = Thresholds.load(config)
    assert thresholds.of("step_cost.X.track_r") == 0.06
    assert thresholds.of("convergence.T.track_steps") == 0
    assert thresholds.of("step_cost.X.track_r_other") == 0  # anchored: no prefix match
    # asv matches the name of a graph: the point's parameters and the branch follow the name
    assert thresholds.of("step_cost.X.track_r('mlp', 'plp')@main") == 0.06
    assert thresholds.of("step_cost.UpdateOverheadCuda.track_update_time_ratio") == 0.2


def test_the_repository_config_is_in_step_with_the_committed_model():
    model = noise_model.NoiseModel.load(ROOT / "benchmarks" / "noise-model.json")
    thresholds = Thresholds.load(ROOT / "asv.conf.json")
    assert model.benchmarks
    for row in model.benchmarks:
        params = () if row.first_parameter is None else (row.first_parameter, "x")
        assert thresholds.of(point_name(row.benchmark, params)) == row.threshold, row.label
    written = noise_model.config_thresholds(model)
    assert {k: v for k, v in thresholds.patterns if k in written} == written


# --- asv's files and the commands -----------------------------------------------------------

def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def _results_file(folder: Path, machine: str, commit: str, points: dict,
                  versions: dict[str, str] | None = None) -> None:
    """An asv results file of ``commit`` in asv 0.6's layout, one benchmark per entry of
    ``points``: name -> (params, values, samples or None), each measured by version
    ``versions[name]`` of its benchmark (default "1")."""
    columns = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
               "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
               "samples", "profile"]
    results = {}
    for name, (params, values, samples) in points.items():
        lows = [min(s) if s else None for s in samples] if samples else None
        highs = [max(s) if s else None for s in samples] if samples else None
        results[name] = [values, params, (versions or {}).get(name, "1"), 0, 1.0, lows, highs,
                         None, None, None, None, samples, None]
    data = {"commit_hash": commit, "env_name": "existing-py", "date": 0,
            "params": {"machine": machine}, "python": "3.11", "requirements": {},
            "env_vars": {}, "result_columns": columns, "results": results, "version": 2}
    (folder / machine).mkdir(parents=True, exist_ok=True)
    (folder / machine / f"{commit[:8]}-existing-py.json").write_text(json.dumps(data))


def test_asv_samples_and_intervals_are_read(tmp_path):
    commit = _git("rev-parse", "HEAD")
    _results_file(tmp_path, "m", commit, {
        "step_cost.U.track_r": ([["'mlp'", "'big'"]], [1.1, None], [[1.0, 1.1, 1.2], None]),
        "convergence.T.track_steps": ([["'a'"]], [40.0], None)})
    values = {(v.benchmark, v.params): v for v in commit_values(tmp_path, commit)}
    sampled = values[("step_cost.U.track_r", ("mlp",))]
    assert sampled.samples == (1.0, 1.1, 1.2) and sampled.interval == (1.0, 1.2)
    assert values[("step_cost.U.track_r", ("big",))].value is None
    exact = values[("convergence.T.track_steps", ("a",))]
    assert exact.samples is None and exact.interval is None and exact.value == 40.0


def _two_commits(tmp_path: Path, shift: float) -> tuple[str, str, Path]:
    """asv results of HEAD~1 and HEAD (the ratio's medians ``shift`` apart), and an asv
    configuration with a 5% threshold beside them (``tmp_path / "asv.conf.json"``)."""
    (tmp_path / "asv.conf.json").write_text('{"regressions_thresholds": {".*": 0.05}}')
    base, head = _git("rev-parse", "HEAD~1"), _git("rev-parse", "HEAD")
    rng = random.Random(4)
    for commit, scale in ((base, 1.0), (head, shift)):
        ratios = [noisy(1.2 * scale, 0.03, 12, rng), noisy(1.5, 0.03, 12, rng)]
        _results_file(tmp_path / "results", "ci", commit, {
            "step_cost.UpdateOverhead.track_update_time_ratio": (
                [["'mlp'"], ["'plp'", "'demon'"]],
                [as_measured(r).value for r in ratios], [list(r) for r in ratios]),
            "convergence.TargetTracks.track_steps_to_target": (
                [["'digits-mlp'"], ["'sgd'"], ["'1'"]], [100.0], None)})
    return base, head, tmp_path / "results"


def test_compare_reports_no_change_for_a_a(tmp_path, capsys):
    base, head, results = _two_commits(tmp_path, 1.0)
    assert main(["compare", base, head, "--results", str(results), "--config",
                 str(tmp_path / "asv.conf.json")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"compared with {base[:12]}: no change"


def test_compare_names_a_changed_benchmark_and_stays_report_only(tmp_path, capsys):
    base, head, results = _two_commits(tmp_path, 1.15)
    config = ["--config", str(tmp_path / "asv.conf.json")]
    assert main(["compare", base, head, "--results", str(results), *config]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"compared with {base[:12]}: 1 changed: ")
    assert "track_update_time_ratio(mlp, plp)" in last and "worse" in last
    assert "halves of one side's own samples" not in capsys.readouterr().out
    assert main(["compare", base, head, "--results", str(results), *config,
                 "--fail-on-change"]) == 1


def test_a_sides_own_rounds_are_its_samples_cut_in_order():
    two_rounds = Measured(1.05, (1.0, 1.01, 0.99, 1.1, 1.11, 1.09))
    assert round_shift(two_rounds) == pytest.approx(0.1)
    assert round_shift(Measured(1.0, (1.0, 1.0, 1.1, 1.1, 1.1))) is None  # not two equal rounds
    assert round_shift(Measured(1.0, (1.0, 1.1))) is None  # one sample a round: no median
    assert round_shift(Measured(1.0, (1.0, math.nan, 1.1, 1.1))) is None
    assert round_shift(Measured(1.0)) is None and round_shift(None) is None


def test_a_change_within_a_sides_own_rounds_is_named_and_a_larger_one_is_not():
    before = Measured(1.035, (1.0,) * 6 + (1.07,) * 6)  # two processes 7% apart
    assert within_own_rounds(before, Measured(0.95, (0.95,) * 12)) == pytest.approx(0.07)
    assert within_own_rounds(before, Measured(0.8, (0.8,) * 12)) is None  # 29%: beyond 1.5 x 7%
    steady = Measured(1.0, (1.0,) * 12)
    assert within_own_rounds(steady, Measured(1.08, (1.08,) * 12)) is None
    assert within_own_rounds(Measured(1.0), Measured(1.08)) is None  # no samples, no rounds


def test_compare_warns_of_a_change_within_a_sides_own_rounds_and_still_ends_with_the_verdict(
        tmp_path, capsys):
    (tmp_path / "asv.conf.json").write_text('{"regressions_thresholds": {".*": 0.05}}')
    base, head = _git("rev-parse", "HEAD~1"), _git("rev-parse", "HEAD")
    rng = random.Random(5)
    # the head's two rounds sit 8% apart (a machine whose processes differ more than the
    # model's), its median 9% above the base's, whose rounds agree
    sides = {base: noisy(1.2, 0.01, 12, rng),
             head: noisy(1.26, 0.01, 6, rng) + noisy(1.36, 0.01, 6, rng)}
    for commit, samples in sides.items():
        _results_file(tmp_path / "results", "ci", commit, {
            "step_cost.UpdateOverhead.track_update_time_ratio": (
                [["'mlp'"], ["'plp'"]], [as_measured(samples).value], [list(samples)])})
    assert main(["compare", base, head, "--results", str(tmp_path / "results"), "--config",
                 str(tmp_path / "asv.conf.json")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith(f"compared with {base[:12]}: 1 changed: ")  # a warning only
    assert re.match(r"1 of the changes are no larger than 1.5 times the shift between the two "
                    r"halves of one side's own samples", lines[-2])
    assert "track_update_time_ratio(mlp, plp) 1.0" in lines[-2] and "halves 8." in lines[-2]


def _benchmarks_file(folder: Path, versions: dict[str, str]) -> None:
    """asv's ``benchmarks.json``: each benchmark's current version."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "benchmarks.json").write_text(json.dumps(
        {name: {"version": v, "unit": "ratio"} for name, v in versions.items()}
        | {"version": 2}))


def test_a_value_measured_by_another_version_of_its_benchmark_is_compared_with_nothing(
        tmp_path, capsys):
    """The base was measured before the benchmark's definition changed (version 1), the head
    after (version 2): a 30% move between them is not a change, and is shown as such; the
    same values under one version are a change."""
    (tmp_path / "asv.conf.json").write_text('{"regressions_thresholds": {".*": 0.05}}')
    config = ["--config", str(tmp_path / "asv.conf.json")]
    base, head = _git("rev-parse", "HEAD~1"), _git("rev-parse", "HEAD")
    name = "loop.LoopOverhead.track_overhead_ratio"
    results = tmp_path / "results"

    def measured(head_version: str) -> None:
        rng = random.Random(5)
        for commit, scale, version in ((base, 1.0, "1"), (head, 1.3, head_version)):
            samples = noisy(1.04 * scale, 0.01, 12, rng)
            _results_file(results, "ci", commit, {
                name: ([["'digits-mlp'"]], [as_measured(samples).value], [list(samples)])},
                versions={name: version})
        _benchmarks_file(results, {name: head_version})

    measured("2")
    before, now = commit_values(results, base), commit_values(results, head)
    assert [(v.version, v.current) for v in before] == [("1", False)]
    assert [(v.version, v.current) for v in now] == [("2", True)]
    assert not before[0].comparable(now[0]) and now[0].comparable(now[0])
    assert main(["compare", base, head, "--results", str(results), "--all", *config]) == 0
    out = capsys.readouterr().out
    assert "other version" in out
    assert out.strip().splitlines()[-1] == f"compared with {base[:12]}: no change"
    measured("1")
    assert main(["compare", base, head, "--results", str(results), *config]) == 0
    assert "1 changed" in capsys.readouterr().out.strip().splitlines()[-1]


def test_the_noise_model_leaves_out_values_of_another_version_of_their_benchmark(
        tmp_path, capsys):
    """Rounds measured before a benchmark changed still count for the other benchmarks;
    the changed one's noise comes from the rounds of its current version only."""
    base, head = _git("rev-parse", "HEAD~1"), _git("rev-parse", "HEAD")
    changed, kept = "loop.LoopOverhead.track_overhead_ratio", "step_cost.U.track_r"
    rng = random.Random(6)
    for machine, version, loop_center, kept_center in (("old", "1", (1.0, 1.4), (1.2, 1.3)),
                                                       ("new", "2", (1.04, 1.05), (1.2, 1.2))):
        for commit, center, other_center in zip((base, head), loop_center, kept_center,
                                                strict=True):
            loop, other = noisy(center, 0.01, 12, rng), noisy(other_center, 0.01, 12, rng)
            _results_file(tmp_path / "results", machine, commit, {
                changed: ([["'digits-mlp'"]], [as_measured(loop).value], [list(loop)]),
                kept: ([["'mlp'"]], [as_measured(other).value], [list(other)])},
                versions={changed: version, kept: "2"})  # the kept one did not change
    _benchmarks_file(tmp_path / "results", {changed: "2", kept: "2"})
    (tmp_path / "asv.conf.json").write_text((ROOT / "asv.conf.json").read_text())
    model = tmp_path / "model.json"
    assert main(["noise", "--commit", base, "--commit", head, "--results",
                 str(tmp_path / "results"), "--model", str(model), "--config",
                 str(tmp_path / "asv.conf.json")]) == 0
    written = noise_model.NoiseModel.load(model)
    assert written.of(changed).spread < 0.03  # the new round's pair only, not the old 40%
    assert written.of(kept).spread > 0.05  # the old round's 8% counts for the other
    capsys.readouterr()


def test_compare_without_results_is_a_named_error(tmp_path, capsys):
    assert main(["compare", "HEAD~1", "HEAD", "--results", str(tmp_path)]) == 2
    assert "asv recorded nothing" in capsys.readouterr().err


def test_noise_command_reads_a_a_rounds_and_writes_model_and_config(tmp_path, capsys):
    base, head, results = _two_commits(tmp_path, 1.0)
    config = tmp_path / "asv.conf.json"
    config.write_text((ROOT / "asv.conf.json").read_text())  # with its markers
    model = tmp_path / "model.json"
    assert main(["noise", "--commit", base, "--commit", head, "--results", str(results),
                 "--model", str(model), "--config", str(config)]) == 0
    written = noise_model.NoiseModel.load(model)
    assert written.measurements == (f"ci/{base[:12]}", f"ci/{head[:12]}")
    ratio = written.of("step_cost.UpdateOverhead.track_update_time_ratio")
    steps = written.of("convergence.TargetTracks.track_steps_to_target")
    assert not ratio.deterministic and ratio.threshold >= noise_model.FLOOR
    assert steps.deterministic and steps.threshold == 0
    assert Thresholds.load(config).of(ratio.benchmark) == ratio.threshold
    assert "noise of 2 A/A rounds" in capsys.readouterr().out
    assert main(["noise", "--commit", base, "--commit", head, "--results", str(results),
                 "--dry-run", "--markdown"]) == 0
    table = capsys.readouterr().out
    assert "| `convergence` | `TargetTracks.track_steps_to_target` | 1 | 0.0% | 0% | any change" \
        in table


def test_rounds_of_one_suite_replace_its_rows_and_keep_the_others_of_the_written_model(
        tmp_path, capsys):
    base, head, results = _two_commits(tmp_path, 1.0)
    config = tmp_path / "asv.conf.json"
    config.write_text((ROOT / "asv.conf.json").read_text())
    model = tmp_path / "model.json"
    earlier = noise_model.NoiseModel(
        (noise_model.BenchmarkNoise("loop.LoopOverhead.track_overhead_ratio", 1, 2, False,
                                    0.045, 0.07, 0.1),
         noise_model.BenchmarkNoise("step_cost.UpdateOverhead.track_update_time_ratio", 1, 2,
                                    False, 0.5, 0.75, 1.0)),
        ("r1/0123456789ab",))
    model.write_text(json.dumps(earlier.to_json()))
    command = ["noise", "--commit", base, "--commit", head, "--results", str(results),
               "--model", str(model), "--config", str(config), "--bench", "UpdateOverhead"]
    assert main([*command, "--keep-others"]) == 0
    written = noise_model.NoiseModel.load(model)
    assert written.of("loop.LoopOverhead.track_overhead_ratio") == earlier.benchmarks[0]
    update = written.of("step_cost.UpdateOverhead.track_update_time_ratio")
    assert update.spread < 0.1  # the new rounds' row, not the earlier 50%
    assert written.measurements == (f"ci/{base[:12]}", f"ci/{head[:12]}", "r1/0123456789ab")
    assert Thresholds.load(config).of("loop.LoopOverhead.track_overhead_ratio") == 0.07
    assert main(command) == 0  # without it, the model holds what the rounds measured only
    assert noise_model.NoiseModel.load(model).of("loop.LoopOverhead.track_overhead_ratio") \
        is None
    capsys.readouterr()


def test_noise_command_refuses_bad_rounds(capsys):
    assert main(["noise", "--rounds", "1", "--dry-run"]) == 2
    assert "--rounds" in capsys.readouterr().err


def test_noise_is_taken_within_what_was_measured_together():
    """Two A/A comparisons on two days, the second day 30% slower on both sides: the noise a
    comparison sees is the 2% within a day, not the drift between days."""
    days = _rounds([{("s.A.t", ()): 1.00}, {("s.A.t", ()): 1.02},
                    {("s.A.t", ()): 1.30}, {("s.A.t", ()): 1.31}], {"s.A.t"})
    within = noise_model.build(days, list("abcd"), groups=[1, 1, 2, 2]).of("s.A.t")
    across = noise_model.build(days, list("abcd")).of("s.A.t")
    assert within.spread == pytest.approx(0.02) and within.threshold == pytest.approx(0.03)
    assert across.spread == pytest.approx(0.31)


def test_the_moved_asv_configuration_keeps_every_folder_where_it_was(tmp_path):
    """asv reads a configuration's folders relative to its own folder: the moved one, written
    elsewhere, has them absolute, and the results and site where the trends are kept."""
    from asv import util

    from plp_bench.report.asv_config import main as write_config

    moved = tmp_path / "elsewhere" / "conf.json"
    moved.parent.mkdir()
    trends = tmp_path / "trends"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert write_config([str(ROOT / "asv.conf.json"), str(trends / "results"),
                             str(trends / "asv")]) == 0
    moved.write_text(out.getvalue())
    config = util.load_json(moved, js_comments=True)
    assert config["repo"] == str(ROOT) and config["benchmark_dir"] == str(ROOT / "benchmarks")
    assert config["env_dir"] == str(ROOT / ".asv" / "env")
    assert config["results_dir"] == str(trends / "results")
    assert config["html_dir"] == str(trends / "asv")
    assert config["regressions_thresholds"] == util.load_json(
        ROOT / "asv.conf.json", js_comments=True)["regressions_thresholds"]


def test_every_command_reads_asv_results_from_the_trends_folder_when_it_is_set(monkeypatch):
    from plp_bench.report.asv_results import default_results_dir

    monkeypatch.delenv("PLP_BENCH_TRENDS", raising=False)
    assert default_results_dir() == ".asv/results"
    monkeypatch.setenv("PLP_BENCH_TRENDS", "/kept/trends")
    assert default_results_dir() == "/kept/trends/results"


# --- comparisons of one round a side --------------------------------------------------------

def _one_round_results(tmp_path: Path) -> tuple[str, str, Path, Path]:
    """HEAD~1 and HEAD: the MLP update ratio 8% apart, each side one process's six samples,
    and steps to target 100 and 101; an asv configuration with a 5% threshold for the ratio
    and 0 for the steps."""
    config = tmp_path / "asv.conf.json"
    config.write_text('{"regressions_thresholds": {"step_cost": 0.05, "convergence": 0}}')
    base, head = _git("rev-parse", "HEAD~1"), _git("rev-parse", "HEAD")
    rng = random.Random(8)
    for commit, scale, steps in ((base, 1.0, 100.0), (head, 1.08, 101.0)):
        ratio = noisy(1.2 * scale, 0.01, 6, rng)
        _results_file(tmp_path / "results", "ci", commit, {
            "step_cost.UpdateOverhead.track_update_time_ratio": (
                [["'mlp'"], ["'plp'"]], [as_measured(ratio).value], [list(ratio)]),
            "convergence.TargetTracks.track_steps_to_target": (
                [["'digits-mlp'"], ["'sgd'"], ["'1'"]], [steps], None)})
    return base, head, tmp_path / "results", config


def test_compare_takes_a_one_round_models_thresholds_where_they_are_larger(tmp_path, capsys):
    """At the configuration's 5% the update ratio's 8% is a change; a model of one round a
    side that measured that timing 12% apart between processes calls it none, and the steps,
    which that model does not measure, keep the configuration's threshold."""
    base, head, results, config = _one_round_results(tmp_path)
    command = ["compare", base, head, "--results", str(results), "--config", str(config)]
    assert main(command) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"compared with {base[:12]}: 2 changed: ")
    one_round = noise_model.NoiseModel(
        (noise_model.BenchmarkNoise("step_cost.UpdateOverhead.track_update_time_ratio", 1, 6,
                                    False, 0.08, 0.12, 0.15),), ("noise-1/0123456789ab",),
        rounds_a_side=1)
    model = tmp_path / "one-round.json"
    model.write_text(json.dumps(one_round.to_json()))
    assert main([*command, "--model", str(model)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == (f"thresholds: the larger of {model}'s (comparisons of 1 round(s) a "
                      f"side) and {config}'s")
    assert out[-1].startswith(f"compared with {base[:12]}: 1 changed: ")
    assert "track_steps_to_target" in out[-1] and "track_update_time_ratio" not in out[-1]
    model.write_text('{"schema": 3}')
    assert main([*command, "--model", str(model)]) == 2
    assert "rounds_a_side" in capsys.readouterr().err


def test_a_one_round_models_thresholds_never_go_below_the_configurations():
    configured = Thresholds(((r"a\.t(?=$|\()", 0.05), (r"a\.u", 0.2), (r".*", 0.0)),
                            "asv.conf.json")
    model = noise_model.NoiseModel(
        tuple(noise_model.BenchmarkNoise(name, 1, 6, False, spread, threshold, threshold)
              for name, spread, threshold in (("a.t", 0.08, 0.12), ("a.u", 0.02, 0.03))),
        ("noise-1/0123456789ab",), rounds_a_side=1)
    thresholds = noise_model.model_thresholds(model, "one-round.json", configured)
    assert thresholds.of("a.t(mlp)") == 0.12  # the model's, larger
    assert thresholds.of("a.u(mlp)") == 0.2  # the configuration's, larger
    assert thresholds.of("b.steps") == 0.0  # the model has no row: the configuration's
    assert thresholds.source == "one-round.json and asv.conf.json"


def test_a_model_says_how_many_rounds_a_side_it_measured_and_older_ones_mean_two(tmp_path):
    rounds = _rounds([{("s.A.t", ()): 1.0}, {("s.A.t", ()): 1.1}], {"s.A.t"})
    model = noise_model.build(rounds, ["a", "b"], rounds_a_side=1)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model.to_json()))
    assert noise_model.NoiseModel.load(path).rounds_a_side == 1
    older = model.to_json() | {"schema": 2}
    del older["rounds_a_side"]
    path.write_text(json.dumps(older))
    assert noise_model.NoiseModel.load(path).rounds_a_side == 2
    for hostile in (0, 11, True, "1", None):
        path.write_text(json.dumps(model.to_json() | {"rounds_a_side": hostile}))
        with pytest.raises(ConfigError, match="rounds_a_side: expected an integer in"):
            noise_model.NoiseModel.load(path)
    with pytest.raises(ConfigError, match=r"1 round.* a side, these rounds of 2"):
        noise_model.build(rounds, ["a", "b"]).over(model)


def test_noise_rounds_of_one_round_a_side_run_asv_so_and_leave_the_config_alone(
        tmp_path, capsys, monkeypatch):
    """``--rounds 3 --rounds-a-side 1``: each asv run takes its timings in one process
    (``--attribute rounds=1``), the rounds are compared with each other (one group, as a
    commit and its parent in one CI job), and the model goes to the one-round file, while the
    configuration's thresholds (two rounds a side) stay as they were."""
    from plp_bench.commands import noise

    head = _git("rev-parse", "HEAD")
    results = tmp_path / "results"
    medians = iter([1.00, 1.10, 1.04])
    commands = []

    real_run = subprocess.run

    def fake_run(command, **options):
        if command[1:3] != ["-m", "asv"]:  # git
            return real_run(command, **options)
        commands.append(command)
        if "run" in command:  # asv run: one round's results, under its machine's name
            machine = command[command.index("--machine") + 1]
            center = next(medians)
            _results_file(results, machine, head, {
                "loop.LoopOverhead.track_overhead_ratio": (
                    [["'digits-mlp'"]], [center], [[center] * 6])})
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(noise.subprocess, "run", fake_run)
    monkeypatch.setattr(noise, "ONE_ROUND_MODEL", str(tmp_path / "one-round.json"))
    monkeypatch.setattr(noise, "DEFAULT_MODEL", str(tmp_path / "two-rounds.json"))
    config = tmp_path / "asv.conf.json"
    config.write_text((ROOT / "asv.conf.json").read_text())
    assert main(["noise", "--rounds", "3", "--rounds-a-side", "1", "--results", str(results),
                 "--config", str(config)]) == 0
    runs = [c for c in commands if "run" in c]
    assert len(runs) == 3 and all(c[-2:] == ["--attribute", "rounds=1"] for c in runs)
    model = noise_model.NoiseModel.load(tmp_path / "one-round.json")
    assert model.rounds_a_side == 1
    assert model.of("loop.LoopOverhead.track_overhead_ratio").spread == pytest.approx(0.1)
    assert config.read_text() == (ROOT / "asv.conf.json").read_text()
    assert not (tmp_path / "two-rounds.json").exists()
    assert "comparisons of 1 round(s) a side" in capsys.readouterr().out
    commands.clear()
    medians = iter([1.00, 1.02])
    assert main(["noise", "--rounds", "2", "--results", str(results), "--config",
                 str(config)]) == 0  # two rounds a side: asv's own rounds, the configuration
    assert all("--attribute" not in c for c in commands)
    assert noise_model.NoiseModel.load(tmp_path / "two-rounds.json").rounds_a_side == 2
    assert config.read_text() != (ROOT / "asv.conf.json").read_text()
    capsys.readouterr()


def test_noise_add_runs_rounds_after_those_measured_and_models_all_of_them(
        tmp_path, capsys, monkeypatch):
    """``--add``: the new rounds are numbered after this command's rounds of the same kind
    already in the results folder, and the model is built from all of them; rounds of the
    other kind, other machines and folders it does not name are no rounds of it."""
    from plp_bench.commands import noise

    head = _git("rev-parse", "HEAD")
    results = tmp_path / "results"
    medians = iter([1.00, 1.02, 1.10])
    machines_run = []
    real_run = subprocess.run

    def loop_result(machine, center):
        _results_file(results, machine, head, {"loop.LoopOverhead.track_overhead_ratio": (
            [["'digits-mlp'"]], [center], [[center] * 6])})

    def fake_run(command, **options):
        if command[1:3] != ["-m", "asv"]:  # git
            return real_run(command, **options)
        if "run" in command:
            machines_run.append(command[command.index("--machine") + 1])
            loop_result(machines_run[-1], next(medians))
            data_roots.append(options["env"]["PLP_BENCH_DATA"])
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(noise.subprocess, "run", fake_run)
    # asv runs the suites in a folder of its own: a relative data root reaches them absolute
    data_roots = []
    monkeypatch.setenv("PLP_BENCH_DATA", "shared/data")
    model_path = tmp_path / "one-round.json"
    common = ["--rounds-a-side", "1", "--results", str(results), "--model", str(model_path)]
    assert main(["noise", "--rounds", "2", *common]) == 0
    assert machines_run == ["noise-one-round-1", "noise-one-round-2"]
    assert data_roots == [str(Path.cwd() / "shared" / "data")] * 2
    assert noise_model.NoiseModel.load(model_path).of(
        "loop.LoopOverhead.track_overhead_ratio").spread == pytest.approx(0.02)
    for stranger in ("noise-1", "noise-one-round-07", "noise-one-round-51", "other"):
        loop_result(stranger, 2.0)  # each would double the spread, were it read
    assert main(["noise", "--rounds", "1", "--add", *common]) == 0
    assert machines_run[2:] == ["noise-one-round-3"]
    model = noise_model.NoiseModel.load(model_path)
    assert [label.split("/")[0] for label in model.measurements] == [
        "noise-one-round-1", "noise-one-round-2", "noise-one-round-3"]
    assert model.of("loop.LoopOverhead.track_overhead_ratio").spread == pytest.approx(0.10)
    capsys.readouterr()
    assert main(["noise", "--rounds", "1", *common]) == 2  # one round compares with nothing
    assert "1 is not allowed; allowed: 2 to 50" in capsys.readouterr().err
    assert main(["noise", "--rounds", "48", "--add", *common]) == 2
    assert "allowed: 0 to 47 (rounds up to 3 are measured already)" in capsys.readouterr().err
    assert main(["noise", "--add", "--commit", "HEAD", *common]) == 2
    assert "--add" in capsys.readouterr().err
    model_path.unlink()
    assert main(["noise", "--rounds", "0", "--add", *common]) == 0  # built again, nothing run
    assert len(machines_run) == 3
    assert noise_model.NoiseModel.load(model_path) == model


def test_the_committed_one_round_model_covers_every_timing_ci_compares():
    """CI's one-round comparison takes each timing's threshold from the one-round model:
    it must have a row for every timing a round measures on the CPU."""
    from benchmarks.rounds import timings_pattern

    model = noise_model.NoiseModel.load(ROOT / "benchmarks" / "noise-model-one-round.json")
    assert model.rounds_a_side == 1 and len(model.measurements) >= 3
    timings = re.compile(timings_pattern(str(ROOT / "benchmarks")))
    two_rounds = noise_model.NoiseModel.load(ROOT / "benchmarks" / "noise-model.json")
    measured_at_ci = {row.benchmark for row in two_rounds.benchmarks
                      if not row.deterministic and timings.match(row.benchmark)}
    assert measured_at_ci and measured_at_ci <= {row.benchmark for row in model.benchmarks}
    assert all(not row.deterministic for row in model.benchmarks)
