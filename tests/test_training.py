"""The training loop: determinism, pairing by seed, the clock, targets, divergence, and
equality with a plain hand-written PyTorch loop."""

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers import FakeTime, tiny

from benchmarks.loop import plain_loop
from plp_bench import data, run
from plp_bench.core.record import RunResult
from plp_bench.methods.catalogue import MethodConfig, get_method
from plp_bench.runs import clock as training_clock
from plp_bench.runs import device as run_device
from plp_bench.runs import training


def curves_json(result: RunResult) -> str:
    """The curves as JSON, less the wall-clock column (time is not reproducible)."""
    curves = result.to_dict()["curves"]
    del curves["train_seconds"]
    return json.dumps(curves, sort_keys=True)


def test_same_seed_same_json_curves():
    a = run(tiny(), get_method("sgd"), seed=3)
    b = run(tiny(), get_method("sgd"), seed=3)
    assert curves_json(a) == curves_json(b)
    assert a.curves.val_loss == b.curves.val_loss and a.best_test == b.best_test
    c = run(tiny(), get_method("sgd"), seed=4)
    assert curves_json(a) != curves_json(c)


def test_bit_identical_across_processes(tmp_path):
    script = (
        "import json, sys; sys.path.insert(0, 'tests');"
        "from helpers import tiny; from plp_bench import run;"
        "from plp_bench.methods import get_method;"
        "r = run(tiny('digits-cnn', steps=6, eval_every=3), get_method('adam'), seed=1);"
        "print(json.dumps(r.curves.val_loss + r.curves.train_loss[1:]))"
    )
    outputs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True).stdout for _ in range(2)]
    assert outputs[0] == outputs[1] and len(json.loads(outputs[0])) == 5


def test_methods_are_paired_by_seed():
    """With a zero learning rate nothing is learned, so the curves depend only on the initial
    weights and the batch order: they must be identical for two different methods."""
    frozen = {"sgd": {"lr": 0.0, "momentum": 0.9}, "adam": {"lr": 0.0}}
    workload = tiny(optimizers=frozen)
    a = run(workload, get_method("sgd"), seed=2)
    b = run(workload, get_method("adam"), seed=2)
    assert a.curves.train_loss == b.curves.train_loss
    assert a.curves.val_loss == b.curves.val_loss
    assert len(set(a.curves.train_loss[1:])) > 1  # different batches did go by


def test_loop_equals_a_plain_pytorch_loop():
    workload = tiny(steps=30, eval_every=30)
    result = run(workload, get_method("sgd"), seed=5)
    dataset = data.load(workload.dataset, seed=5, val_fraction=workload.val_fraction)
    model = plain_loop(workload, dataset, 5, 30).eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(dataset.x_val), dataset.y_val).item()
    assert result.curves.val_loss[-1] == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_targets_are_first_evaluation_at_or_below():
    result = run(tiny(steps=60, eval_every=4), get_method("sgd"), seed=0)
    for t in result.targets:
        hits = [s for s, e in zip(result.curves.step, result.curves.val_error, strict=True)
                if e <= t.target]
        if hits:
            assert t.steps == hits[0]
            i = result.curves.step.index(hits[0])
            assert t.seconds == result.curves.train_seconds[i]
        else:
            assert t.steps is None and t.seconds is None
    assert any(t.reached for t in result.targets)


def test_curves_and_best_model():
    result = run(tiny(steps=24, eval_every=8), get_method("sgd"), seed=0)
    assert result.curves.step == [0, 8, 16, 24]
    assert result.curves.train_loss[0] is None and all(v > 0 for v in result.curves.train_loss[1:])
    assert result.best_val_loss == min(result.curves.val_loss)
    assert result.best_step == result.curves.step[result.curves.val_loss.index(result.best_val_loss)]
    assert 0.0 <= result.best_test.error <= 1.0
    assert result.best_test.accuracy == pytest.approx(1 - result.best_test.error)
    assert result.best_test.top5_error <= result.best_test.error


def test_clock_excludes_evaluation(monkeypatch):
    """A fake clock, so the test does not depend on the machine's load: every evaluation
    takes 100 fake seconds, every other reading of the clock 1 ms."""
    fake = FakeTime()
    real = training.evaluate

    def slow(*args, **kwargs):
        fake.advance(100.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "time", fake)
    monkeypatch.setattr(training_clock, "time", fake)
    monkeypatch.setattr(training, "evaluate", slow)
    result = run(tiny(steps=10, eval_every=1), get_method("sgd"), seed=0)
    assert result.wall_seconds > 1200  # 12 evaluations of 100 s each
    assert result.train_seconds < 1.0  # ten steps of a few clock readings
    assert result.curves.train_seconds == sorted(result.curves.train_seconds)


def test_divergence_is_a_result():
    workload = tiny(optimizers={"sgd": {"lr": 1e12, "momentum": 0.9}})
    result = run(workload, get_method("sgd"), seed=0)
    assert result.diverged and result.diverged_at_step is not None
    assert result.steps_run < 24
    json.dumps(result.to_dict(), allow_nan=False)  # still a valid record


def test_stop_at_targets():
    result = run(tiny(steps=400, eval_every=4, stop_at_targets=True,
                      targets=[0.3, 0.2]), get_method("sgd"), seed=0)
    assert all(t.reached for t in result.targets)
    assert result.steps_run == result.targets[-1].steps < 400
    # the same run over its whole budget: every target at the same step and epoch, and the
    # same validation curve up to the stop (what the asv grid's ci size relies on)
    whole = run(tiny(steps=400, eval_every=4, targets=[0.3, 0.2]), get_method("sgd"), seed=0)
    assert whole.steps_run == 400
    assert [(t.steps, t.epoch) for t in result.targets] \
        == [(t.steps, t.epoch) for t in whole.targets]
    stopped = len(result.curves.val_error)
    assert result.curves.val_error == whole.curves.val_error[:stopped]
    assert result.curves.step == whole.curves.step[:stopped]


def test_test_accuracy_at_fixed_epochs():
    workload = tiny("digits-mlp", steps=None, epochs=2, test_at_epochs=[1, 2])
    result = run(workload, get_method("sgd"), seed=0)
    assert set(result.test_accuracy_at_epochs) == {"1", "2"}
    assert all(0.0 <= v <= 1.0 for v in result.test_accuracy_at_epochs.values())


def test_full_batch_when_batch_size_exceeds_rows():
    result = run(tiny(batch_size=100000, steps=5, eval_every=5), get_method("sgd"), seed=0)
    resolved = result.config["resolved"]
    assert resolved["steps_per_epoch"] == 1
    assert resolved["batch_size"] == resolved["dataset"]["sizes"]["train"]


def test_record_holds_config_and_environment():
    result = run(tiny(), get_method("adam"), seed=0)
    assert result.config["workload"]["name"] == "breast_cancer-mlp"
    assert result.config["resolved"]["hyperparameters"]["lr"] == 0.001
    assert result.config["resolved"]["tuned"] is True
    env = result.environment
    assert env["torch"] == torch.__version__ and env["threads"] >= 1 and env["device"] == "cpu"
    back = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back == result


def test_untuned_optimizer_uses_defaults():
    method = MethodConfig(name="plain-sgd", optimizer="sgd")
    result = run(tiny(optimizers={"adam": {"lr": 0.001}}), method, seed=0)
    assert result.config["resolved"]["tuned"] is False
    assert result.config["resolved"]["hyperparameters"] == {"lr": 0.01, "momentum": 0.9}


def test_cuda_absent_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(run_device.DeviceError, match="no CUDA device"):
        run(tiny(), get_method("sgd"), seed=0, device="cuda")


@pytest.mark.cuda
def test_cuda_matches_cpu_when_present():
    a = run(tiny(), get_method("sgd"), seed=0, device="cpu")
    b = run(tiny(), get_method("sgd"), seed=0, device="cuda")
    assert a.curves.step == b.curves.step
    assert all(math.isclose(x, y, rel_tol=1e-3, abs_tol=1e-4)
               for x, y in zip(a.curves.val_loss, b.curves.val_loss, strict=True))


def test_the_run_entry_sends_solved_methods_to_the_solver_and_the_rest_to_the_loop():
    """``run`` dispatches; each of the two runs refuses the other kind of method by name."""
    from plp_bench.runs.solving import run_linearized

    workload = tiny(steps=4, eval_every=2)
    solved = get_method("linearized-bdf")
    with pytest.raises(ValueError, match="'linearized-bdf' is solved by an ODE solver"):
        training.train(workload, solved, seed=0)
    with pytest.raises(ValueError, match="'sgd' has no solver"):
        run_linearized(workload, get_method("sgd"), seed=0)
    assert "solver" in run(workload, solved, seed=0).details
    assert "solver" not in run(workload, get_method("sgd"), seed=0).details


def _hand_scored(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Top-1 error and mean cross-entropy over every row, one row at a time."""
    model.eval()
    wrong, loss = 0, 0.0
    with torch.no_grad():
        for row, label in zip(x, y, strict=True):
            logits = model(row[None])[0].double()
            wrong += int(logits.argmax().item() != label.item())
            loss += float(torch.logsumexp(logits, 0) - logits[label])
    return wrong / len(y), loss / len(y)


def test_the_training_split_is_scored_at_each_evaluation_as_by_hand():
    """At step 0 the model is the seed's initial one: its training error and loss, computed
    row by row, are the record's first point; the last point scores the weights the run ended
    with (the final evaluation is at the last step, before the best model is restored)."""
    from plp_bench.runs.protocol import initial_model

    workload = tiny(steps=12, eval_every=4)
    dataset = data.load(workload.dataset, seed=3)
    optimizers = []
    record = run(workload, get_method("sgd"), seed=3, dataset=dataset,
                 method_built=optimizers.append)
    curves = record.curves
    assert len(curves.train_error) == len(curves.step) == 4
    start = initial_model(workload, dataset, 3, torch.device("cpu"))
    error, loss = _hand_scored(start, dataset.x_train, dataset.y_train)
    assert curves.train_error[0] == pytest.approx(error, abs=1e-12)
    assert curves.train_scored_loss[0] == pytest.approx(loss, rel=1e-5)
    assert record.config["resolved"]["train_rows_scored"] == len(dataset.y_train)
    assert len(set(curves.train_error)) > 1 or len(set(curves.train_scored_loss)) > 1
    # the hand-written loop trained to step 12 holds the weights of the last point
    final = plain_loop(workload, dataset, 3, 12)
    error, loss = _hand_scored(final, dataset.x_train, dataset.y_train)
    assert curves.train_error[-1] == pytest.approx(error, abs=1e-12)
    assert curves.train_scored_loss[-1] == pytest.approx(loss, rel=1e-4)


def test_a_large_training_split_is_scored_on_a_fixed_seeded_subset():
    from plp_bench.runs.scoring import training_rows_scored

    assert training_rows_scored(500, seed=0, most=500) is None
    rows = training_rows_scored(50_000, seed=0, most=1000)
    assert len(rows) == 1000 == len(set(rows.tolist()))
    assert rows.tolist() == sorted(rows.tolist()) and rows.min() >= 0 and rows.max() < 50_000
    assert torch.equal(rows, training_rows_scored(50_000, seed=0, most=1000))
    assert not torch.equal(rows, training_rows_scored(50_000, seed=1, most=1000))
