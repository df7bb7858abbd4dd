"""``.ci/run``'s budget and rounds: the second timing rounds run only where they end within
the budget, a budget that is not a whole number of minutes stops the job before anything runs,
and each round names the commit it measures. The script's lines are run alone in bash (the
budget's with its elapsed-seconds counter set)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "run"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _budget_lines() -> str:
    """The budget's check and ``second_rounds_fit`` as ``.ci/run`` defines them."""
    text = SCRIPT.read_text()
    check = re.search(r"^budget_minutes=.*?^fi\n", text, re.M | re.S)
    model = re.search(r"^one_round_model=.*\n", text, re.M)
    function = re.search(r"^second_rounds_fit\(\) \{.*?^\}\n", text, re.M | re.S)
    assert check and model and function, \
        ".ci/run no longer defines its budget as this test reads it"
    return check.group(0) + model.group(0) + function.group(0)


def _run(after: str, minutes: str | None = None) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin"}
    if minutes is not None:
        environment["PLP_BENCH_CI_MINUTES"] = minutes
    return subprocess.run(["bash", "-c", "set -euo pipefail\n" + _budget_lines() + after],
                          capture_output=True, text=True, env=environment, timeout=30)


def test_the_second_rounds_run_when_they_end_within_the_budget():
    # 22 minutes in, after a 5-minute parent round: 22 + 6 + 5 minutes end within 40
    done = _run("SECONDS=1320; second_rounds_fit 300 && echo fit")
    assert done.returncode == 0 and done.stdout.strip() == "fit"
    # 30 minutes in, after a 4-minute parent round: 1.2 times it (4.8) and 5 minutes end at
    # 39.8, within 40 (at the 1.5 times once expected, 41)
    done = _run("SECONDS=1800; second_rounds_fit 240 && echo fit")
    assert done.returncode == 0 and done.stdout.strip() == "fit"


def test_the_second_rounds_are_left_out_saying_so_when_they_would_end_past_it():
    # 28 minutes in, after a 7.5-minute parent round: 28 + 9 + 5 > 40
    done = _run("SECONDS=1680; if second_rounds_fit 450; then echo fit; else echo left; fi")
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "left"
    assert "would end past its budget of 40 minutes" in done.stdout
    # 61 minutes in, after a 15.3-minute round (the slower machine): 61 + 18.4 + 5 > 80
    done = _run("SECONDS=3660; if second_rounds_fit 918; then echo fit; else echo left; fi",
                minutes="80")
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "left"
    assert "would end past its budget of 80 minutes" in done.stdout
    assert "compared on one round a side, at the thresholds of " \
        "benchmarks/noise-model-one-round.json" in done.stdout
    # a larger budget lets them run
    done = _run("SECONDS=3660; second_rounds_fit 918 && echo fit", minutes="120")
    assert done.stdout.strip() == "fit"


@pytest.mark.parametrize("minutes", ["0", "eighty", "1e3", "99999", "a[$(echo injected >&2)]"])
def test_a_budget_that_is_not_whole_minutes_stops_the_job_naming_it(minutes):
    done = _run("echo reached", minutes=minutes)
    assert done.returncode == 2 and "reached" not in done.stdout
    assert f"PLP_BENCH_CI_MINUTES={minutes}: allowed a whole number of minutes" in done.stderr
    assert "injected" not in done.stderr.replace(minutes, "")


def test_each_round_names_the_commit_it_measures_to_the_suites():
    """asv's existing environments leave ``$ASV_COMMIT`` unset, so ``measure`` names the
    commit itself: otherwise the parent's round would file its records and memos under the
    checkout's commit and read the commit's grid as the parent's."""
    function = re.search(r"^measure\(\) \{.*?^\}\n", SCRIPT.read_text(), re.M | re.S)
    assert function, ".ci/run no longer defines measure as this test reads it"
    # an asv that prints the commit its benchmarks would see, then its arguments
    fake_asv = "asv=(bash -c 'echo \"commit=$PLP_BENCH_COMMIT\"; echo \"$@\"' asv)\n"
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + fake_asv + function.group(0)
         + "measure 0123abc /venv/bin/python -b suite"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert done.returncode == 0, done.stderr
    seen, arguments = done.stdout.splitlines()
    assert seen == "commit=0123abc"
    assert arguments.startswith("run --environment existing:/venv/bin/python "
                                "--set-commit-hash 0123abc ")
    assert arguments.endswith(" -b suite")


def test_ci_compares_at_the_one_round_models_thresholds_where_it_ran_one_round():
    """``.ci/run``'s choice between the second rounds and the one-round thresholds, run in
    bash with a stand-in ``measure``: where the rounds fit, both run and the comparison keeps
    the configuration's thresholds; where they do not, it is given the one-round model."""
    text = SCRIPT.read_text()
    setting = re.search(r"^one_round_model=.*?^\}\n", text, re.M | re.S)
    choice = re.search(r"^  if second_rounds_fit \$\(\(SECONDS - started\)\); then\n"
                       r"    measure \"\$parent\".*?^  fi\n", text, re.M | re.S)
    compare = re.search(r"^  \.venv/bin/plp-bench compare .*$", text, re.M)
    assert setting and choice and compare, ".ci/run no longer reads as this test expects"
    assert compare.group(0).endswith('"${thresholds[@]}"')
    script = ("set -euo pipefail\nbudget_minutes=40\n" + setting.group(0)
              + 'measure() { echo "measure $1"; }\nparent=p commit=c timings=t\n' + "ELAPSED\n"
              + choice.group(0) + 'echo "thresholds: ${thresholds[*]}"\n')
    # a 5-minute parent round, 20 or 35 minutes in
    for elapsed, rounds in ((1200, ["measure p", "measure c"]), (2100, [])):
        clock = f"SECONDS={elapsed}; started={elapsed - 300}"
        done = subprocess.run(["bash", "-c", script.replace("ELAPSED", clock)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert [line for line in lines if line.startswith("measure")] == rounds
        expected = "" if rounds else "--model benchmarks/noise-model-one-round.json"
        assert lines[-1] == f"thresholds: {expected}".rstrip()
