"""The asv suites: sizes, the on-disk run cache (one training per commit, workload, method and
seed), the medians they track, the asv configuration itself, and the rules that let today's
suites measure older commits (fixed parameters, the stable interface, skips for what a commit
lacks)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import common
from plp_bench.core.record import RunResult, TargetResult
from plp_bench.sweeps import grid as sweeps

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def asv_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PLP_BENCH_ASV_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PLP_BENCH_SIZE", "ci")
    return tmp_path / "runs"


def test_each_point_trains_once_however_many_tracks_read_it(asv_runs, monkeypatch):
    """The first point trains the size's whole grid in one sweep; every point and track then
    reads the cache."""
    import benchmarks.convergence as convergence
    from benchmarks.sampling import sample_values

    monkeypatch.setenv("PLP_BENCH_SIZE", "smoke")
    calls = []
    real_run = sweeps.run

    def counting_run(workload, method, seed, *args, **kwargs):
        calls.append((workload.name, method.name, seed))
        return real_run(workload.replace(steps=8, eval_every=4, epochs=None), method, seed,
                        *args, **kwargs)

    monkeypatch.setattr(sweeps, "run", counting_run)
    values = []
    for target in ("1", "2", "3"):
        tracks = convergence.TargetTracks()  # asv makes a fresh instance per benchmark
        tracks.setup("breast_cancer-mlp", "sgd", target)
        values += [tracks.track_steps_to_target("breast_cancer-mlp", "sgd", target),
                   *sample_values(tracks.track_wall_seconds_to_target("breast_cancer-mlp",
                                                                      "sgd", target)),
                   tracks.track_runs_that_missed("breast_cancer-mlp", "sgd", target)]
    tests = convergence.TestTracks()
    tests.setup("digits-cnn", "plp")
    values.append(tests.track_test_error("digits-cnn", "plp"))
    size = common.current_size()
    grid = {(w, m, 0) for w in size.workloads for m in size.methods
            if (w, m) != ("digits-cnn", "linearized-bdf")}  # the ODE needs an MLP
    assert sorted(calls) == sorted(grid)  # each cell once
    assert all(isinstance(v, float) and v >= 0 for v in values)
    folder = common.runs_dir()
    assert folder.parent.parent == asv_runs and folder.name == "smoke"
    assert len(list(folder.rglob("seed-*.json"))) == len(grid)


def test_a_new_commit_trains_again(asv_runs, monkeypatch):
    monkeypatch.setenv("PLP_BENCH_COMMIT", "a" * 40)
    common.commit.cache_clear()
    first = common.runs_dir()
    monkeypatch.setenv("PLP_BENCH_COMMIT", "b" * 40)
    common.commit.cache_clear()
    try:
        assert common.runs_dir() != first
    finally:
        common.commit.cache_clear()


def record(reached_steps, budget=100, seconds=10.0):
    targets = [TargetResult(0.1, steps, None if steps is None else steps / budget * seconds)
               for steps in reached_steps]
    return RunResult(workload="w", method="m", seed=0, device="cpu", config={},
                     config_hash="x", environment={}, curves=None, targets=targets,
                     steps_run=budget, train_seconds=seconds, wall_seconds=seconds)


def test_a_missed_target_counts_as_the_whole_budget_in_the_median():
    runs = [record([20]), record([40]), record([None])]
    assert common.censored_median(runs, 0, "steps") == 40.0
    assert common.censored_median([record([None]), record([None]), record([30])], 0,
                                 "steps") == 100.0
    assert common.censored_median(runs, 0, "seconds") == 4.0


@pytest.fixture
def no_commit_variables(monkeypatch):
    for var in common.COMMIT_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    common.commit.cache_clear()
    yield
    common.commit.cache_clear()


def test_the_commit_is_the_checkouts_only_where_its_package_is_installed(no_commit_variables,
                                                                        monkeypatch, tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert common._installed_package_folder() == ROOT / "plp_bench"  # the tests' install
    assert common.commit() == head
    # another commit's package, as asv's existing environment of .ci/run's parent round has
    elsewhere = tmp_path / "site-packages" / "plp_bench"
    monkeypatch.setattr(common, "_installed_package_folder", lambda: elsewhere)
    common.commit.cache_clear()
    with pytest.raises(RuntimeError, match=f"installed plp_bench \\({elsewhere}\\) is not this "
                                           ".*set PLP_BENCH_COMMIT"):
        common.commit()
    monkeypatch.setenv("ASV_COMMIT", "c" * 40)  # asv names the commit it installed
    common.commit.cache_clear()
    assert common.commit() == "c" * 40
    monkeypatch.setenv("PLP_BENCH_COMMIT", "d" * 40)  # and the variable comes first
    common.commit.cache_clear()
    assert common.commit() == "d" * 40


def test_the_suites_commit_rule_is_the_harnesss():
    """The suites may not import the harness's internals, so they carry its rule for a
    commit named by a variable; this holds the two together."""
    from plp_bench.core.record import COMMIT

    assert common.COMMIT_TOKEN.pattern == COMMIT.pattern


@pytest.mark.parametrize("value", ["../../escape", "/tmp/x", "a/b", ".hidden", "x" * 65])
def test_a_commit_variable_that_is_not_a_commit_is_refused_naming_it(no_commit_variables,
                                                                    monkeypatch, asv_runs, value):
    monkeypatch.setenv("PLP_BENCH_COMMIT", value)
    with pytest.raises(ValueError, match=r"\$PLP_BENCH_COMMIT=.* is not a commit"):
        common.runs_dir()
    assert not asv_runs.exists()


def test_sizes_and_skips(asv_runs, monkeypatch, empty_root):
    ci = common.current_size()
    assert ci.seeds == 1 and "vgg16" not in ci.parameter_sets
    capped = common.benchmark_workload("digits-mlp")
    assert capped.steps == common.CI_STEP_CAP and capped.epochs is None
    assert not capped.stop_at_targets  # what the timings run on
    # the grid's runs end at their last target, on the same capped budget
    assert common.grid_workload("digits-mlp") == capped.replace(stop_at_targets=True)
    with pytest.raises(NotImplementedError, match="data not available"):
        common.benchmark_workload("banknote-mlp")  # empty data root
    monkeypatch.setenv("PLP_BENCH_SIZE", "full")
    full = common.current_size()
    assert full.seeds == 5 and "vgg16" in full.parameter_sets
    assert common.benchmark_workload("digits-mlp").epochs == 15
    # at the papers' budgets the grid trains them whole: the test errors are the papers'
    assert common.grid_workload("digits-mlp") == common.benchmark_workload("digits-mlp")
    assert not common.grid_workload("digits-mlp").stop_at_targets
    monkeypatch.setenv("PLP_BENCH_SIZE", "huge")
    with pytest.raises(ValueError, match="PLP_BENCH_SIZE='huge'; allowed: ci, full, gpu, smoke"):
        common.current_size()


def test_cifar_workloads_need_a_cuda_device(asv_runs, monkeypatch):
    from plp_bench import data

    monkeypatch.setattr(common, "device", lambda: "cpu")
    monkeypatch.setattr(data, "check_available", lambda name: None)
    with pytest.raises(NotImplementedError, match="needs a CUDA device"):
        common.benchmark_workload("cifar100-resnet18")


def test_memo_computes_once_per_commit(asv_runs):
    calls = []
    for _ in range(2):
        value = common.memo("thing", lambda: calls.append(1) or {"x": 1.5})
        assert value == {"x": 1.5}
    assert len(calls) == 1


def test_asv_config_is_valid_and_pins_the_requirements():
    text = (ROOT / "asv.conf.json").read_text()
    body = json.loads("\n".join(line for line in text.splitlines()
                                if not line.strip().startswith("//")))
    pins = dict(line.strip().split("==") for line in (ROOT / "requirements.txt").read_text()
                .splitlines() if "==" in line)
    assert body["matrix"]["req"] == pins
    assert body["benchmark_dir"] == "benchmarks" and body["html_dir"] == "reports/asv"
    out = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout


def test_the_fixed_parameters_cover_the_registries(monkeypatch):
    """The suites' lists are fixed (see ``benchmarks.common``); they must still name every
    workload and method this commit registers, in the registry's order."""
    from benchmarks.throughput import MODELS
    from plp_bench import workloads
    from plp_bench.methods import catalogue as methods
    from plp_bench.methods.catalogue import METHODS
    from plp_bench.studies.image_throughput import THROUGHPUT_MODELS

    assert workloads.list_workloads() == common.WORKLOADS
    assert methods.list_methods() == common.METHODS
    assert methods.default_methods() == common.DEFAULT_METHODS
    stepped = [n for n in common.METHODS if METHODS.get(n).solver is None]
    assert stepped == common.STEPPED_METHODS
    composed = [n for n in stepped if METHODS.get(n).wrappers or METHODS.get(n).schedules]
    assert composed == common.COMPOSED_METHODS
    jumping = {"introspection", "fit-jumps", "noise-jumps"}
    jumps = [n for n in common.METHODS if any(w.name in jumping for w in METHODS.get(n).wrappers)]
    assert jumps == common.JUMP_METHODS
    assert list(THROUGHPUT_MODELS) == MODELS
    for name in common.SIZES:
        monkeypatch.setenv("PLP_BENCH_SIZE", name)
        size = common.current_size()
        assert set(size.workloads) <= set(common.WORKLOADS)
        assert set(size.methods) <= set(common.METHODS)


def test_the_suites_copies_agree_with_the_harness():
    """The medians a suite tracks are the ones the reports compare, and the reference loop's
    seed streams are the harness's."""
    from plp_bench.core.stats import censored
    from plp_bench.runs.protocol import stream_seed

    runs = [record([20]), record([None]), record([35]), record([None], seconds=7.0)]
    for field in ("steps", "seconds"):
        for chosen in (runs, runs[:3], runs[1:]):
            assert common.censored_median(chosen, 0, field) == censored(chosen, 0, field)
    for seed, stream in [(0, "init"), (7, "batches"), (123, "augment")]:
        assert common.stream_seed(seed, stream) == stream_seed(seed, stream)


def suite_imports():
    """``(file, module, names, guarded)`` for every import of the harness in ``benchmarks/``
    (``import`` statements and :func:`benchmarks.common.interface_name` calls); ``guarded``
    when it sits inside a ``with harness():`` block."""
    import ast

    found = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        guarded_nodes = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.With) and any(
                    isinstance(item.context_expr, ast.Call)
                    and getattr(item.context_expr.func, "id", None) == "harness"
                    for item in node.items):
                guarded_nodes.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in ("plp_bench", "plp_baselines"):
                found.append((path.name, node.module, [a.name for a in node.names],
                              id(node) in guarded_nodes))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("plp_bench", "plp_baselines"):
                        found.append((path.name, alias.name, [], id(node) in guarded_nodes))
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                    "interface_name", "interface_module") and node.args \
                    and all(isinstance(a, ast.Constant) for a in node.args):
                args = [a.value for a in node.args]  # the calls that name a module
                found.append((path.name, args[0], args[1:], id(node) in guarded_nodes))
    return found


def test_the_suites_use_only_the_stable_interface_and_only_inside_harness_blocks():
    imports = suite_imports()
    assert len(imports) >= 10  # the check reads the suites at all
    for file, module, names, guarded in imports:
        assert guarded, f"{file}: the import of {module} is outside a `with harness():` block"
        allowed = common.INTERFACE.get(module, set())
        for name in names:
            submodule = f"{module}.{name}"
            assert name in allowed or submodule in common.INTERFACE, (
                f"{file}: {module}.{name} is not in benchmarks.common.INTERFACE")
    from importlib import import_module

    for module, names in common.INTERFACE.items():  # the interface exists at this commit
        for name in names:
            assert hasattr(import_module(module), name), f"{module}.{name}"


def test_modules_that_moved_are_reached_through_their_former_homes_too(monkeypatch):
    """An interface module that moved is imported by ``interface_name`` only (a plain import
    would fail on a commit from before the move), and where today's home is absent the
    former one serves."""
    import ast

    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in common.FORMER_HOMES:
                raise AssertionError(f"{path.name}: from {node.module} import ...: use "
                                     "interface_name, which knows the former home")
    assert set(common.FORMER_HOMES) <= set(common.INTERFACE)
    monkeypatch.setitem(common.FORMER_HOMES, "plp_bench.no_such_home", "plp_bench.methods.solvers")
    assert "bdf" in common.interface_name("plp_bench.no_such_home", "SOLVERS")
    with pytest.raises(NotImplementedError, match="lacks"), common.harness():
        common.interface_name("plp_bench.methods.solvers", "NO_SUCH_NAME")
    with pytest.raises(NotImplementedError, match="lacks"), common.harness():
        common.interface_module("plp_bench.nowhere")


def test_a_name_the_commit_lacks_skips_the_benchmark():
    with pytest.raises(NotImplementedError, match="lacks"), common.harness():
        from plp_bench.sweeps.grid import no_such_helper  # noqa: F401
    with pytest.raises(NotImplementedError, match="no method 'not-a-method'"):
        common.convergence_records("breast_cancer-mlp", "not-a-method")
    with pytest.raises(NotImplementedError, match="no workload 'not-a-workload'"):
        common.benchmark_workload("not-a-workload")
