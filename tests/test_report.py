"""``plp-bench report``: per-workload tables and the line per method across workloads."""

import math
import subprocess
import sys

import numpy as np
import pytest
from helpers import tiny
from rich.console import Console

from plp_bench.cli import main
from plp_bench.core.tables import to_rich
from plp_bench.methods.catalogue import get_method
from plp_bench.report import summary
from plp_bench.report.performance_profiles import geometric_mean, profile_score
from plp_bench.sweeps.grid import sweep


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


def test_time_table_gives_median_and_interquartile_range_of_each_target(records):
    _, results = records
    item = next(s for s in summary.summarize(results) if s.workload == "digits-mlp")
    plp = [r for r in results if r.workload == "digits-mlp" and r.method == "plp"]
    row = next(r for r in item.rows if r.method == "plp")
    for i, target in enumerate(item.targets):
        steps = [r.target(target).steps for r in plp if r.target(target).reached]
        q1, mid, q3 = np.quantile(steps, [0.25, 0.5, 0.75])
        assert (row.steps_spread[i].median, row.steps_spread[i].q1,
                row.steps_spread[i].q3) == (mid, q1, q3)


def test_the_best_value_of_a_column_is_highlighted_and_narrow_terminals_still_render(records):
    _, results = records
    item = next(s for s in summary.summarize(results) if s.workload == "digits-mlp")
    time_table = summary.time_table(item)
    column = time_table.column("steps@0.3")
    medians = [r.steps_spread[-1].median if r.steps_spread[-1] else None for r in item.rows]
    best = min(m for m in medians if m is not None)
    for cell, m in zip(column, medians, strict=True):
        assert (cell.style == "best") == (m == best)
    rendered = to_rich(time_table)
    rich_cells = next(c for c in rendered.columns if c.header == "steps@0.3")._cells
    for cell, m in zip(rich_cells, medians, strict=True):
        assert cell.startswith("[bold green]") == (m == best)
    console = Console(width=70, record=True)
    console.print(summary.table(item))
    text = console.export_text()
    assert "digits-mlp: time to target" in text and "speedup at 0.3" in text


def test_accuracy_at_fixed_epochs_is_shown_when_recorded():
    workload = tiny("breast_cancer-mlp", epochs=2, steps=None, eval_every=0,
                    test_at_epochs=[1, 2])
    from plp_bench import run

    results = [run(workload, get_method(m), seed=0) for m in ("sgd", "plp")]
    console = Console(width=200, record=True)
    console.print(summary.table(summary.summarize(results)[0]))
    text = console.export_text()
    assert "test acc @ epoch" in text and "1: " in text and "2: " in text
