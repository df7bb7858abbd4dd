"""The linearised-model baseline and full-batch GD as harness methods, the applicability of
methods to backbones, and the ODE table command."""

import json

import pytest
import yaml
from helpers import tiny

from plp_bench import data, run, sweep, workloads
from plp_bench.cli import main
from plp_bench.core.config import ConfigError, parse, to_plain
from plp_bench.core.record import load, save
from plp_bench.methods.catalogue import MethodConfig, get_method
from plp_bench.sweeps.config_file import load_run_config, resolve


def test_full_batch_gd_keeps_the_workloads_budget_in_steps():
    workload = workloads.get("digits-mlp").replace(epochs=2)
    result = run(workload, get_method("gd-fullbatch"), seed=0)
    rows = data.load("digits", seed=0).y_train.shape[0]
    resolved = result.config["resolved"]
    assert resolved["batch_size"] == rows and resolved["steps_per_epoch"] == 1
    assert resolved["total_steps"] == 2 * (-(-rows // 32)) == result.steps_run
    assert resolved["hyperparameters"]["momentum"] == 0.0


def test_linearised_run_is_a_full_record(tmp_path):
    workload = tiny("breast_cancer-mlp", steps=40, eval_every=4)
    result = run(workload, get_method("linearized-bdf"), seed=3)
    details = result.details
    assert details["solver"] == "BDF" and details["space"] == "function"  # 2 x 364 < 1058
    assert details["solver_status"] == "finished" and result.curves.epoch[-1] == 40.0
    assert details["jacobian_calls"] >= 1 and details["rhs_calls"] > result.steps_run
    assert result.train_seconds == pytest.approx(details["jacobian_seconds"]
                                                 + details["integration_seconds"])
    assert result.curves.step == list(range(result.steps_run + 1))
    assert result.curves.train_seconds == sorted(result.curves.train_seconds)
    for t in result.targets:
        if t.reached:
            assert result.curves.val_error[t.steps] <= t.target
            assert all(e > t.target for e in result.curves.val_error[:t.steps])
    assert 0.5 < result.best_test.accuracy <= 1.0
    assert 0.5 < details["network_test_accuracy"] <= 1.0
    assert load(save(result, tmp_path / "r.json")).details == json.loads(
        json.dumps(details))


def test_linearised_flow_tracks_full_batch_gd_for_a_small_rate():
    """Same seed, same initial network, same rate: the validation losses agree closely at
    equal (ODE time, GD steps), and the records are paired like any other method's."""
    workload = tiny("breast_cancer-mlp", steps=30, eval_every=30,
                    optimizers={"gd": {"lr": 0.002}})
    gd = run(workload, get_method("gd-fullbatch"), seed=1)
    ode = run(workload, get_method("linearized-bdf"), seed=1)
    assert ode.curves.val_loss[0] == pytest.approx(gd.curves.val_loss[0], rel=1e-6)
    assert ode.curves.val_loss[-1] == pytest.approx(gd.curves.val_loss[-1], rel=1e-3)
    assert ode.curves.val_loss[-1] < ode.curves.val_loss[0] - 1e-3


def test_parameter_space_and_other_solvers_give_the_same_flow():
    workload = tiny("breast_cancer-mlp", steps=20, eval_every=20)
    function = run(workload, get_method("linearized-bdf"), seed=0)
    forced = MethodConfig(name="lin-param", optimizer="gd",
                          solver={"name": "bdf", "options": {"space": "parameter"}})
    forced = resolve_method(forced)
    param = run(workload, forced, seed=0)
    lsoda = run(workload, get_method("linearized-lsoda"), seed=0)
    assert param.details["space"] == "parameter"
    for other in (param, lsoda):
        assert other.curves.val_loss[-1] == pytest.approx(function.curves.val_loss[-1], rel=1e-4)


def resolve_method(method: MethodConfig) -> MethodConfig:
    """A method built in Python with plain dicts, validated as YAML would be."""
    return parse(MethodConfig, to_plain(method))


def test_memory_limit_refuses_before_allocating():
    method = resolve_method(MethodConfig(
        name="tight", optimizer="gd",
        solver={"name": "bdf", "options": {"memory_limit_gib": 1e-6}}))
    with pytest.raises(MemoryError, match=r"needs 0\.\d+ GiB .* the limit is 0\.00 GiB"):
        run(tiny("breast_cancer-mlp", steps=4), method, seed=0)


def test_methods_that_do_not_apply_are_left_out_and_reported(tmp_path, capsys):
    report = sweep([tiny("digits-cnn", steps=4)], [get_method("linearized-bdf")], [0],
                   results_dir=tmp_path)
    assert report.ran == 0 and not report.failed
    assert report.not_applicable == [("digits-cnn", "linearized-bdf", ["mlp"])]
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"workloads": [{"name": "digits-cnn", "steps": 4}],
                                      "methods": ["sgd", "gd-fullbatch"], "seeds": 1,
                                      "results": str(tmp_path / "out")}))
    assert main(["run", str(config)]) == 0
    assert "not run: gd-fullbatch does not apply to digits-cnn (backbones: mlp)" in \
        capsys.readouterr().out


@pytest.mark.parametrize("method, message", [
    ({"name": "m", "optimizer": "gd", "solver": {"name": "bfd"}},
     "methods.0.solver.name: unknown solver 'bfd' (did you mean 'bdf'?)"),
    ({"name": "m", "optimizer": "gd", "solver": {"name": "bdf", "options": {"tol": 1}}},
     "methods.0.solver.options.tol: solver 'bdf' has no option 'tol'"),
    ({"name": "m", "optimizer": "gd", "solver": {"name": "bdf", "options": {"space": "both"}}},
     "methods.0.solver.options.space: 'both' is not allowed; allowed: one of auto, parameter, "
     "function"),
    ({"name": "m", "optimizer": "gd", "solver": {"name": "bdf"}, "wrappers": [{"name": "plp"}]},
     "methods.0.solver: a method with a solver integrates the linearised network"),
    ({"name": "m", "optimizer": "gd", "models": ["mpl"]},
     "methods.0.models.0: unknown model 'mpl' (did you mean 'mlp'?)"),
])
def test_solver_method_config_errors(tmp_path, method, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"methods": [method]}))
    with pytest.raises(ConfigError) as err:
        config, source = load_run_config(str(path))
        resolve(config, source=source)
    assert message in str(err.value)


def test_ode_table_command(tmp_path, capsys):
    out = tmp_path / "ode.json"
    code = main(["ode-table", "--workload", "breast_cancer-mlp", "--lr", "0.5",
                 "--threshold", "0.9", "--max-steps", "300", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "eta = 0.5" in printed and "time for ODE" in printed and "speedup" in printed
    assert "hidden width [32]" in printed and "Jacobian build" in printed
    numbers = json.loads(out.read_text())
    row = numbers[0]["rows"][0]
    assert numbers[0]["space"] == "function" and row["threshold"] == 0.9
    assert row["gd_steps"] is not None and row["ode_steps"] is not None
    assert row["ode_seconds"] > numbers[0]["jacobian_seconds"]


def test_ode_table_over_hidden_widths(tmp_path, capsys):
    """One table per width and a summary of the speed-up and the accuracy cost per width; the
    network of each is the two-layer one with that many hidden units."""
    out = tmp_path / "ode.json"
    code = main(["ode-table", "--workload", "breast_cancer-mlp", "--lr", "0.5",
                 "--threshold", "0.9", "--max-steps", "200", "--width", "4", "--width", "16",
                 "--json", str(out)])
    assert code == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "hidden width [4]" in printed and "hidden width [16]" in printed
    assert "the linearised model over hidden widths" in printed and "accuracy cost" in printed
    numbers = json.loads(out.read_text())
    features = 30  # breast cancer: 30 features, 2 classes
    assert [c["hidden"] for c in numbers] == [[4], [16]]
    assert [c["parameters"] for c in numbers] == [(features + 1) * h + (h + 1) * 2
                                                 for h in (4, 16)]


def test_the_first_jacobian_of_a_process_is_not_on_the_clock(monkeypatch):
    """A one-row Jacobian (the process's first use of torch.func) runs before the build's
    clock starts; the timed build computes the whole split's Jacobian."""
    from plp_bench.runs import solving

    events = []
    real = solving.network_jacobian

    class Clock:
        def perf_counter(self):
            events.append("clock")
            return 0.0

    monkeypatch.setattr(solving, "time", Clock())
    monkeypatch.setattr(solving, "network_jacobian",
                        lambda network, x: events.append(len(x)) or real(network, x))
    workload = tiny("breast_cancer-mlp", steps=10, eval_every=10)
    dataset = data.load(workload.dataset, seed=0)
    solving.linearize(workload, dataset, 0, 0.1, solving.SOLVERS.get("bdf")())
    assert events == [1, "clock", len(dataset.y_train), "clock"]


@pytest.mark.parametrize("argv, message", [
    (["ode-table", "--workload", "breast_cancer-mlp", "--width", "0"],
     "--width: 0 hidden units: allowed 1 to 4096"),
    (["ode-table", "--workload", "digits-cnn"], "linearises MLPs; digits-cnn uses 'cnn'"),
    (["ode-table", "--workload", "breast_cancer-mlp", "--lr", "-1"], "-1.0 is not a learning"),
    (["ode-table", "--workload", "breast_cancer-mlp", "--solver", "euler"], "unknown solver"),
])
def test_ode_table_refuses_bad_input_without_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.cuda
def test_a_cuda_request_integrates_on_the_cpu_and_says_so():
    workload = tiny("breast_cancer-mlp", steps=10, eval_every=10)
    on_cuda = run(workload, get_method("linearized-bdf"), seed=0, device="cuda")
    on_cpu = run(workload, get_method("linearized-bdf"), seed=0)
    assert on_cuda.device.startswith("cuda") and on_cuda.details["ran_on"] == "cpu"
    assert on_cuda.curves.val_loss[-1] == pytest.approx(on_cpu.curves.val_loss[-1], rel=1e-5)
