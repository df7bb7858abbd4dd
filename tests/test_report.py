"""``plp-bench report``: per-workload tables and the line per method across workloads."""

import math
import subprocess
import sys

import pytest
from helpers import tiny

from plp_bench import summary
from plp_bench.cli import main
from plp_bench.methods import get_method
from plp_bench.profiles import geometric_mean, profile_score
from plp_bench.sweeps import sweep


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    workloads = [tiny("breast_cancer-mlp", steps=30, eval_every=5, targets=[0.3, 0.1]),
                 tiny("digits-mlp", steps=30, eval_every=5, targets=[0.5, 0.3])]
    report = sweep(workloads, [get_method("sgd"), get_method("plp"), get_method("adam")],
                   [0, 1, 2], "cpu", folder)
    assert not report.failed
    return folder, report.results


def test_overall_line_is_the_geometric_mean_and_profile_score_of_the_workload_rows(records):
    _, results = records
    summaries = summary.summarize(results)
    rows = {r.method: r for r in summary.overall(summaries)}
    for method in ("plp", "adam"):
        own = [row for s in summaries for row in s.rows if row.method == method]
        expected = geometric_mean([r.speedup_steps.estimate for r in own if r.speedup_steps])
        assert rows[method].speedup_steps == pytest.approx(expected)
        ratios = []
        for s in summaries:
            times = {row.method: row.steps if 2 * row.reached[-1] > row.runs else None
                     for row in s.rows}
            reached = [t for t in times.values() if t is not None]
            ratios.append(math.inf if times[method] is None or not reached
                          else times[method] / min(reached))
        assert rows[method].profile_steps == pytest.approx(profile_score(ratios))
    assert rows["sgd"].workloads == 2
    assert any(0 < r.profile_steps < 1 for r in rows.values())  # the data discriminate


def test_report_prints_every_workload_and_the_overall_table(records, capsys):
    folder, _ = records
    assert main(["report", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "breast_cancer-mlp" in printed and "digits-mlp" in printed
    assert "all workloads" in printed and "profile (steps)" in printed
    assert main(["report", str(folder), "--workload", "digits-mlp"]) == 0
    printed = capsys.readouterr().out
    assert "breast_cancer-mlp" not in printed and "all workloads" not in printed


def test_report_piped_to_a_file_has_no_colour_codes(records):
    folder, _ = records
    done = subprocess.run([sys.executable, "-m", "plp_bench.cli", "report", str(folder)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "all workloads" in done.stdout
    assert "\x1b[" not in done.stdout


@pytest.mark.parametrize("args, message", [(["report", "/nowhere/at/all"], "no such folder"),
                                           (["report", "--workload", "magic-mlp"], "magic-mlp")])
def test_report_mistakes_exit_2_naming_the_value(records, args, message, capsys):
    folder, _ = records
    if "--workload" in args:
        args = ["report", str(folder), *args[1:]]
    assert main(args) == 2
    assert message in capsys.readouterr().err
