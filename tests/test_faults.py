"""Faults during a sweep and damaged records: every finished record survives, an interrupted
run leaves no partial file, a rerun resumes and says what it skipped, a failed run is recorded
with its error, and a damaged record is refused by name. Also ``plp-bench rerun``."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny, yaml_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plp_bench.cli import main
from plp_bench.core import record as results
from plp_bench.core.config import ConfigError, to_plain
from plp_bench.methods.catalogue import MethodConfig, get_method
from plp_bench.sweeps import grid as sweeps
from plp_bench.sweeps.config_file import load_run_config, resolve
from plp_bench.sweeps.grid import sweep

ROOT = Path(__file__).resolve().parent.parent


def grid():
    return [tiny(steps=8, eval_every=4)], [get_method("sgd"), get_method("adam")], [0, 1]


def _records(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("seed-*.json")}


# --- a run that raises, out of memory or otherwise ---------------------------------------

@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried "
                                                                "to allocate 2.00 GiB"),
                                   MemoryError(), RuntimeError("boom")])
def test_a_run_that_raises_is_recorded_with_its_error_and_retried(tmp_path, monkeypatch, error):
    real_run = sweeps.run

    def flaky(workload, method, seed, *args, **kwargs):
        if method.name == "adam" and seed == 1:
            raise error
        return real_run(workload, method, seed, *args, **kwargs)

    monkeypatch.setattr(sweeps, "run", flaky)
    workloads, methods, seeds = grid()
    report = sweep(workloads, methods, seeds, results_dir=tmp_path)
    assert (report.ran, len(report.failed)) == (3, 1)
    task, failure = report.failed[0]
    assert str(failure).startswith(type(error).__name__)
    saved = json.loads(task.failure_path.read_text())
    assert saved["error"].startswith(type(error).__name__)
    assert "Traceback" in saved["traceback"] and type(error).__name__ in saved["traceback"]
    assert saved["config"]["method"]["name"] == "adam" and saved["seed"] == 1
    assert not task.path.exists() and len(_records(tmp_path)) == 3
    # the report counts it
    from plp_bench.report.record_sources import read_folders

    assert len(read_folders([tmp_path]).failures) == 1
    # fixed: the next sweep runs only that cell and removes the failure file
    monkeypatch.setattr(sweeps, "run", real_run)
    before = _records(tmp_path)
    again = sweep(workloads, methods, seeds, results_dir=tmp_path)
    assert (again.ran, again.skipped, len(again.failed)) == (1, 3, 0)
    assert not task.failure_path.exists() and task.path.exists()
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in before.items())


def test_a_diverging_run_is_a_result_not_a_failure(tmp_path):
    blowup = MethodConfig(name="sgd-blowup", optimizer="sgd", hyperparameters={"lr": 1e30})
    report = sweep([tiny("digits-mlp", steps=30, eval_every=5)], [blowup, get_method("sgd")],
                   [0, 1], results_dir=tmp_path)
    assert (report.ran, len(report.failed)) == (4, 0)
    diverged = [r for r in report.results if r.method == "sgd-blowup"]
    assert all(r.diverged and r.diverged_at_step is not None for r in diverged)
    assert all(not t.reached for r in diverged for t in r.targets)
    from plp_bench.report.summary import summarize

    row = next(r for r in summarize(report.results)[0].rows if r.method == "sgd-blowup")
    assert row.diverged == 2


# --- damaged record files ------------------------------------------------------------------

def _one_record(tmp_path) -> Path:
    workloads, methods, seeds = grid()
    sweep(workloads, methods[:1], seeds[:1], results_dir=tmp_path)
    (path,) = tmp_path.rglob("seed-*.json")
    return path


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(p.read_text()[:200]), "unreadable run record"),
    (lambda p: p.write_text(""), "unreadable run record"),
    (lambda p: p.write_bytes(os.urandom(300)), "unreadable run record"),
    (lambda p: _edit(p, lambda d: d["targets"][0].update(steps=1)), "checksum mismatch"),
    (lambda p: _edit(p, lambda d: d.update(train_seconds=0.001)), "checksum mismatch"),
    (lambda p: _edit(p, lambda d: d.pop("checksum")), "no checksum"),
    (lambda p: _edit(p, lambda d: d.update(schema_version=4)), "written by a newer plp-bench"),
    (lambda p: _edit(p, lambda d: d.update(schema_version="1")), "schema version '1'"),
    (lambda p: p.write_text("[1, 2]"), "not a run record"),
    # a relabelled, hand-edited record: schema 1 carried no checksum, so it is not believed
    (lambda p: _edit(p, lambda d: (d.pop("checksum"), d.update(schema_version=1),
                                   d["targets"][0].update(steps=1))), "schema version 1"),
])
def test_a_damaged_record_is_refused_by_name_set_aside_and_rerun(tmp_path, damage, message):
    path = _one_record(tmp_path)
    damage(path)
    with pytest.raises(results.ResultError, match=message) as refused:
        results.load(path)
    assert str(path) in str(refused.value)
    workloads, methods, seeds = grid()
    report = sweep(workloads, methods[:1], seeds[:1], results_dir=tmp_path)
    assert (report.ran, report.skipped) == (1, 0)
    (aside, why), = report.invalid
    assert aside == path.with_name(path.name + ".invalid") and aside.is_file()
    assert message in why
    results.load(path)  # the rerun wrote a valid record in its place


def test_the_report_names_damaged_records_and_leaves_them_out(tmp_path, capsys):
    workloads, methods, seeds = grid()
    sweep(workloads, methods, seeds, results_dir=tmp_path)
    victim = sorted(tmp_path.rglob("seed-*.json"))[0]
    _edit(victim, lambda d: d["curves"]["val_error"].__setitem__(0, 0.0))
    assert main(["report", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "3 run records" in captured.out
    said = "".join(captured.err.split())  # rich wraps long paths anywhere
    assert f"skipped:{victim}" in said and "checksummismatch" in said


# --- a machine that dies mid-write ---------------------------------------------------------

def test_a_write_that_dies_before_the_rename_leaves_the_old_record(tmp_path, monkeypatch):
    path = _one_record(tmp_path)
    before = path.read_bytes()
    record = results.load(path)
    record.steps_run += 1

    def dies(*args):
        raise OSError("power lost")

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(OSError, match="power lost"):
        results.save(record, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_temporaries_of_a_killed_writer_are_removed_and_never_read(tmp_path):
    path = _one_record(tmp_path)
    stale = path.parent / f".{path.name}.x1y2.tmp"
    stale.write_text(path.read_text()[:50])
    other = path.parent / ".failed-seed-1-abc.json.z.tmp"
    other.write_text("{")
    workloads, methods, seeds = grid()
    report = sweep(workloads, methods[:1], seeds[:1], results_dir=tmp_path)
    assert (report.ran, report.skipped) == (0, 1)
    assert not stale.exists() and not other.exists()


# --- signals, in a real process ------------------------------------------------------------

SIGNAL_SEEDS = 6  # room enough that a loaded machine still signals mid-sweep


def _start_sweep(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "run.yaml"
    out = tmp_path / "out"
    config.write_text(yaml.safe_dump({
        "workloads": [{"name": "digits-mlp", "steps": 600, "eval_every": 300}],
        "methods": ["sgd"], "seeds": SIGNAL_SEEDS, "results": str(out)}))
    # a shell's background job ignores SIGINT, and a Python started so never turns it into
    # KeyboardInterrupt: give the sweep the default handling, however the suite was started
    process = subprocess.Popen([sys.executable, "-m", "plp_bench.cli", "run", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=tmp_path, preexec_fn=_default_sigint)
    return process, config


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_records(folder: Path, count: int, process: subprocess.Popen,
                      timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list(folder.rglob("seed-*.json"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep made no record in time"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGKILL, -9, None)])
def test_a_signal_mid_sweep_loses_nothing_and_the_rerun_resumes(tmp_path, sig, code, word):
    process, config = _start_sweep(tmp_path)
    out = tmp_path / "out"
    _wait_for_records(out, 1, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    if word:
        said = " ".join(stderr.split())  # rich wraps lines
        assert word in said and "Traceback" not in said
        assert "run the same command again to resume" in said
    finished = _records(out)
    assert 1 <= len(finished) < SIGNAL_SEEDS
    for path in finished:
        results.load(path)  # every record on disk is whole (checksum verified)
    if sig != signal.SIGKILL:
        assert not list(out.rglob("*.tmp"))  # the interrupted run left no partial file
    done = subprocess.run([sys.executable, "-m", "plp_bench.cli", "run", str(config)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{SIGNAL_SEEDS - len(finished)} runs done, {len(finished)} skipped" in done.stdout
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())
    assert not list(out.rglob("*.tmp"))


# --- configs: mutated method definitions in YAML files -------------------------------------

values = yaml_values
METHOD_KEYS = sorted({*to_plain(get_method("introspection")), "bogus"})
WRAPPER_NAMES = ["plp", "introspection", "fit-jumps", "noise-jumps", "xgrad", "demon", "nope"]


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(["sgd", "plp", "introspection", "xgrad-adam", "demon",
                             "linearized-bdf"]),
       key=st.sampled_from(METHOD_KEYS), value=values,
       wrapper=st.sampled_from(WRAPPER_NAMES), options=st.dictionaries(
           st.sampled_from(["lr", "degree", "ratio", "std", "jump_steps", "net", "x"]), values,
           max_size=2))
def test_mutated_method_files_raise_only_config_errors(tmp_path, base, key, value, wrapper,
                                                       options):
    method = to_plain(get_method(base))
    method["name"] = "mutant"
    method[key] = value
    if key != "wrappers":
        method["wrappers"] = [*method.get("wrappers", []),
                              {"name": wrapper, "options": options}][-2:]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"workloads": ["digits-mlp"], "methods": [method]}))
    try:
        config, source = load_run_config(str(path))
        resolve(config, source=source)
    except ConfigError as error:
        assert str(path) in str(error)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60) | st.binary(max_size=60).map(
    lambda b: b.decode("latin-1")))
def test_random_file_contents_raise_only_config_errors(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with contextlib.suppress(ConfigError):
        config, source = load_run_config(str(path))
        resolve(config, source=source)


# --- plp-bench rerun -----------------------------------------------------------------------

def test_rerun_reproduces_a_record_bit_for_bit_in_another_process(tmp_path):
    path = _one_record(tmp_path)
    done = subprocess.run([sys.executable, "-m", "plp_bench.cli", "rerun", str(path),
                           "--out", str(tmp_path / "again.json")], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "identical" in done.stdout
    again = results.load(tmp_path / "again.json")
    assert again.curves.val_loss == results.load(path).curves.val_loss


def test_rerun_says_which_fields_differ(tmp_path, capsys):
    path = _one_record(tmp_path)
    record = results.load(path)
    record.curves.val_loss[-1] += 1e-9
    record.targets[0].steps = 999
    results.save(record, path)  # a valid record that the code no longer produces
    assert main(["rerun", str(path)]) == 1
    printed = capsys.readouterr().out
    assert "differs" in printed and "curves.val_loss" in printed and "targets" in printed
    assert "2 field(s)" in printed


@pytest.mark.parametrize("prepare, message", [
    (lambda p: p.unlink(), "no such record file"),
    (lambda p: _edit(p, lambda d: d["targets"][0].update(steps=1)), "checksum mismatch"),
])
def test_rerun_of_a_missing_or_damaged_record_exits_2(tmp_path, capsys, prepare, message):
    path = _one_record(tmp_path)
    prepare(path)
    assert main(["rerun", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["run", "--seeds", "many"], "invalid int value"),
    (["run", "--frobnicate"], "unrecognized arguments"),
    (["report", "nothing-here"], "no such folder"),
    (["rerun", "x.json"], "no such record file"),
    (["data", "fetch", "mnsit"], "did you mean 'mnist'"),
])
def test_cli_mistakes_give_one_message_and_exit_2(tmp_path, monkeypatch, capsys, args,
                                                  message):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


# --- data files with a known checksum ------------------------------------------------------

def test_a_damaged_canonical_data_file_is_refused_before_any_run(shared_data, tmp_path,
                                                                 capsys):
    from plp_bench import data

    root = tmp_path / "data"
    (root / "uci").mkdir(parents=True)
    original = (shared_data / "uci" / "data_banknote_authentication.txt").read_bytes()
    target = root / "uci" / "data_banknote_authentication.txt"
    target.write_bytes(original)
    data.check_available("banknote", root)  # the real file passes
    damaged = bytearray(original)
    damaged[100] = ord("9") if damaged[100] != ord("9") else ord("8")
    target.write_bytes(bytes(damaged))
    # same size, and maybe the same mtime tick: forget this process's verification
    data.files._VERIFIED.clear()
    with pytest.raises(data.DataError, match="does not match the canonical file's"):
        data.check_available("banknote", root)
    code = main(["run", "--workload", "banknote-mlp", "--method", "sgd", "--data-dir", str(root),
                 "--results", str(tmp_path / "out")])
    said = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "plp-bench data fetch banknote" in said
    assert "Traceback" not in said and not (tmp_path / "out").exists()
