"""Today's suites against an older commit's package, as ``asv continuous`` and ``asv compare``
use them: every benchmark runs or is skipped, none fails.

The older commit is checked out as a git worktree and put first on the benchmark processes'
path (``ASV_PYTHONPATH``: asv drops ``PYTHONPATH``), so they import its ``plp_bench`` (a
probe written into that checkout proves it) and, through it, its ``baselines`` (the name the
folder was installed under before ``plp_baselines``), while asv runs the current
``benchmarks/`` at the ``smoke`` size. The commit is the last one before the suites carried
their own helpers, whose internals differ most from today's; where a clone lacks it, the
previous commit is used.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import data_available

ROOT = Path(__file__).resolve().parents[1]
# the last commit whose suites imported the harness's internals (plp_bench.benchmarking,
# plp_bench.method_cost, training.stream_seed)
RECORDED_COMMIT = "43dfa8149548120cb44949eefcdb9b2225257587"
PROBE = "import os as _os, sys as _sys\n" \
        "open(_os.environ['PLP_BENCH_IMPORT_PROBE'], 'a').write(__file__ + '\\n')\n"


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


def older_commit() -> str:
    found = subprocess.run(["git", "cat-file", "-e", f"{RECORDED_COMMIT}^{{commit}}"], cwd=ROOT,
                           capture_output=True)
    return RECORDED_COMMIT if found.returncode == 0 else git("rev-parse", "HEAD~1")


def asv_config(tmp_path: Path) -> Path:
    """The project's asv configuration with every output folder under ``tmp_path``."""
    text = (ROOT / "asv.conf.json").read_text()
    conf = json.loads("\n".join(line for line in text.splitlines()
                                if not line.strip().startswith("//")))
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"),
                results_dir=str(tmp_path / "results"), env_dir=str(tmp_path / "env"),
                html_dir=str(tmp_path / "html"))
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return path


def test_todays_suites_run_or_skip_on_an_older_commit(tmp_path):
    from plp_bench.report.asv_results import commit_values

    commit = older_commit()
    checkout = tmp_path / "older"
    git("worktree", "add", "--detach", str(checkout), commit)
    try:
        init = checkout / "plp_bench" / "__init__.py"
        init.write_text(init.read_text() + "\n" + PROBE)
        probe = tmp_path / "imported-from.txt"
        env = {**os.environ, "ASV_PYTHONPATH": str(checkout), "HOME": str(tmp_path),
               "PLP_BENCH_SIZE": "smoke", "PLP_BENCH_ASV_RUNS": str(tmp_path / "runs"),
               "PLP_BENCH_COMMIT": commit, "PLP_BENCH_IMPORT_PROBE": str(probe)}
        asv = [sys.executable, "-m", "asv", "--config", str(asv_config(tmp_path))]
        subprocess.run([*asv, "machine", "--yes", "--machine", "compat"], cwd=ROOT, env=env,
                       capture_output=True, check=True)
        out = subprocess.run([*asv, "run", "--python=same", "--quick", "--show-stderr",
                              "--machine", "compat", "--set-commit-hash", commit], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=900)
    finally:
        git("worktree", "remove", "--force", str(checkout))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    imported = set(probe.read_text().split())
    assert imported == {str(checkout / "plp_bench" / "__init__.py")}, imported
    values = commit_values(tmp_path / "results", commit)
    failed = [v.label for v in values if v.value is None and not v.skipped]
    assert not failed, f"failed on {commit[:12]}: {failed}"
    measured = {v.benchmark.rsplit(".", 1)[0] for v in values if v.value is not None}
    expected = {"convergence.TargetTracks", "convergence.TestTracks", "step_cost.UpdateTime",
                "step_cost.UpdateOverhead", "step_cost.HeldMemory",
                "step_cost.TrainingStepOverhead", "loop.LoopOverhead", "loop.LoopTimes",
                "jumps.JumpCost",
                "jumps.JumpTime"}
    if data_available("banknote"):  # the ODE suite's workload (CI has the real data)
        expected.add("ode.OdeVersusGradientDescent")
    assert expected <= measured, measured
    records = list((tmp_path / "runs" / commit / "smoke").rglob("seed-*.json"))
    assert records and all(json.loads(r.read_text())["environment"]["commit"] == commit
                           for r in records)
