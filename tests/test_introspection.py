"""Introspection weight jumps and the paper's alternatives against literal transcriptions:
the network's formula, the snapshot steps against a loop that keeps every step's weights, the
polynomial fits against numpy.polyfit, the shipped weights against the no-change predictor."""

import copy
import hashlib
import pickle
import shutil

import numpy as np
import pytest
import torch
from literals import introspection_formula

from plp_baselines.introspection import (
    FitJumps,
    IntrospectionJumps,
    IntrospectionNet,
    JumpSchedule,
    NoiseJumps,
    WeightJumps,
    history_steps,
    load_net,
)
from plp_baselines.introspection.fitting import FitSettings, fit, l1_error
from plp_baselines.introspection.histories import (
    Examples,
    WeightHistoryRecorder,
    jump_points,
    sample_examples,
    split_pool,
)
from plp_baselines.introspection.net import read_weights_file, shipped_path, shipped_provenance
from plp_baselines.introspection.predictors import (
    GaussianNoise,
    IntrospectionPredictor,
    PolynomialFit,
    Predictor,
)


@pytest.mark.parametrize("linear", [False, True])
def test_network_forward_is_the_papers_formula_with_scaling_applied_once(linear):
    torch.manual_seed(0)
    net = IntrospectionNet(linear=linear).double()
    history = torch.randn(50, 4, dtype=torch.float64) * 0.05
    expected = introspection_formula(net, history.numpy())
    np.testing.assert_allclose(net(history).detach().numpy(), expected, rtol=1e-12, atol=1e-15)
    twin = IntrospectionNet(linear=not linear).double()
    twin.load_state_dict(net.state_dict())
    assert not torch.allclose(twin(history), net(history))  # the ReLU is active and matters


@pytest.mark.parametrize("linear", [False, True])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_the_folded_fast_path_equals_the_networks_forward(linear, dtype, tolerance):
    torch.manual_seed(1)
    net = IntrospectionNet(linear=linear)
    history = (torch.randn(1000, 4) * 0.05).to(dtype)
    fast = IntrospectionPredictor(net).predict(history, (0, 40, 70, 100))
    assert fast.dtype == dtype
    with torch.no_grad():
        plain = net.to(dtype)(history)
    torch.testing.assert_close(fast, plain, rtol=tolerance, atol=tolerance * 1e-2)


def test_history_steps_round_halves_up():
    assert history_steps(3000) == (0, 1200, 2100, 3000)
    assert history_steps(5) == (0, 2, 4, 5)  # 0.7 * 5 = 3.5 -> 4
    assert history_steps(15) == (0, 6, 11, 15)  # 10.5 -> 11
    assert history_steps(1) == (0, 0, 1, 1)


class Recording(Predictor):
    """Returns the current weight + 1000 and remembers what it was given."""

    def __init__(self):
        self.calls = []

    def predict(self, history, positions):
        self.calls.append((tuple(positions), history.clone()))
        return history[:, -1] + 1000.0


def reference_histories(jump_steps, total):
    """A plain loop that keeps the weights of every step: each update adds 1; a jump adds 1000.
    Returns the four values each jump reads, and the most steps a lazy store must hold."""
    weights = {0: 0.0}
    w = 0.0
    read = {}
    for step in range(1, total + 1):
        w += 1.0
        if step in jump_steps:
            positions = history_steps(step)
            read[step] = [weights[s] if s < step else w for s in positions]
            w += 1000.0
        weights[step] = w
    return read


@pytest.mark.parametrize("jump_steps", [[30, 40, 50], [10, 12], [1, 2, 3], [5, 12, 13],
                                        [25, 100], [7]])
def test_snapshots_are_taken_at_exactly_the_steps_each_jump_reads(jump_steps):
    total = max(jump_steps) + 5
    p = torch.zeros(3)
    predictor = Recording()
    jumps = WeightJumps([p], jump_steps=jump_steps, predictor=predictor)
    peak_copies = 0
    for _ in range(total):
        p.add_(1.0)  # "the optimizer's update"
        jumps.step()
        peak_copies = max(peak_copies, len(jumps.snapshots))
    expected = reference_histories(set(jump_steps), total)
    assert [pos[-1] for pos, _ in predictor.calls] == sorted(jump_steps)
    for (positions, history), t in zip(predictor.calls, sorted(jump_steps), strict=True):
        assert positions == history_steps(t)
        assert history[0].tolist() == expected[t]
    assert jumps.snapshots == {} and jumps.snapshot_bytes == 0  # freed after the last jump
    schedule = JumpSchedule(jump_steps)
    needed_at_most = len(schedule.readers)
    assert peak_copies <= needed_at_most
    assert jumps.peak_snapshot_bytes == peak_copies * 3 * 4
    assert [j.step for j in jumps.jumps] == sorted(jump_steps)


def test_the_papers_mnist1_schedule_holds_six_copies_at_most():
    p = torch.zeros(10)
    jumps = WeightJumps([p], jump_steps=[3000, 4000, 5000], predictor=Recording())
    for _ in range(5000):
        jumps.step()
    assert jumps.peak_snapshot_bytes == 6 * 10 * 4


def small_model():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def train_steps(model, optimizer, steps, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 5, generator=generator)
        y = torch.randint(0, 3, (8,), generator=generator)

        def closure(x=x, y=y):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        optimizer.step(closure)


@pytest.mark.parametrize("chunk_size", [1 << 18, 7])
def test_a_jump_sets_every_weight_to_the_networks_prediction_of_its_own_history(chunk_size):
    torch.manual_seed(1)
    net = IntrospectionNet()
    model = small_model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    jumps = IntrospectionJumps(sgd, jump_steps=[10], net=net, chunk_size=chunk_size)
    kept = {}
    for step in range(10):
        train_steps(model, jumps, 1, seed=step)
        if step + 1 in (4, 7):
            kept[step + 1] = [p.detach().clone() for p in model.parameters()]
    # rebuild the pre-jump weights at step 10 with a plain optimizer from the same start
    twin = small_model()
    plain = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    start = [p.detach().clone() for p in twin.parameters()]
    for step in range(10):
        train_steps(twin, plain, 1, seed=step)
    for p0, p4, p7, p10, jumped in zip(start, kept[4], kept[7], twin.parameters(),
                                       model.parameters(), strict=True):
        history = torch.stack([p0.reshape(-1), p4.reshape(-1), p7.reshape(-1),
                               p10.detach().reshape(-1)], dim=1).double()
        expected = introspection_formula(net, history.numpy())
        np.testing.assert_allclose(jumped.detach().reshape(-1).double().numpy(), expected,
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("degree, ratio", [(1, 1.1), (1, 1.075), (2, 1.25), (2, 1.4)])
@pytest.mark.parametrize("t", [5, 30, 3000])
def test_polynomial_fits_match_numpy_polyfit_on_the_same_points(degree, ratio, t):
    generator = torch.Generator().manual_seed(t)
    history = torch.randn(40, 4, generator=generator, dtype=torch.float64)
    positions = history_steps(t)
    predicted = PolynomialFit(degree, ratio).predict(history, positions).numpy()
    x = np.array(positions, dtype=np.float64) / t
    for row, value in zip(history.numpy(), predicted, strict=True):
        expected = np.polyval(np.polyfit(x, row, degree), ratio)
        assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_fit_jumps_in_a_wrapper_apply_the_fit_to_the_parameters():
    p = torch.zeros(4)
    jumps = FitJumps([p], jump_steps=[10], degree=1, ratio=1.1)
    for _ in range(10):
        p.add_(torch.tensor([1.0, 2.0, -1.0, 0.0]))  # weights linear in the step
        jumps.step()
    # a line through w(s) = slope * s evaluated at 1.1 t
    assert torch.allclose(p, torch.tensor([11.0, 22.0, -11.0, 0.0]), atol=1e-5)


def test_noise_jumps_add_zero_mean_noise_of_the_given_std_reproducibly():
    def jumped(seed):
        p = torch.full((200_000,), 0.5)
        jumps = NoiseJumps([p], jump_steps=[1], std=0.01, seed=seed)
        jumps.step()
        return p - 0.5

    a, b, c = jumped(0), jumped(0), jumped(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.mean().item()) < 1e-4 and a.std().item() == pytest.approx(0.01, rel=0.01)


def test_hook_mode_equals_wrapper_mode():
    def trained(mode):
        model = small_model()
        sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if mode == "wrapper":
            opt = FitJumps(sgd, jump_steps=[3, 6], degree=2, ratio=1.3)
        else:
            FitJumps(model.parameters(), jump_steps=[3, 6], degree=2, ratio=1.3).attach(sgd)
            opt = sgd
        train_steps(model, opt, 9)
        return [p.detach() for p in model.parameters()]

    for a, b in zip(trained("wrapper"), trained("hook"), strict=True):
        assert torch.equal(a, b)


def test_optimizer_state_is_kept_unless_reset_is_asked_for():
    for reset in (False, True):
        model = small_model()
        sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        jumps = FitJumps(sgd, jump_steps=[4], degree=1, ratio=1.1, reset_state=reset)
        train_steps(model, jumps, 3)
        before = [sgd.state[p]["momentum_buffer"].clone() for p in model.parameters()]
        train_steps(model, jumps, 1, seed=5)
        if reset:
            assert all(p not in sgd.state for p in model.parameters())
        else:
            after = [sgd.state[p]["momentum_buffer"] for p in model.parameters()]
            assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    with pytest.raises(ValueError, match="reset_state needs the optimizer"):
        FitJumps([torch.zeros(1)], jump_steps=[1], degree=1, ratio=1.1, reset_state=True)


@pytest.mark.parametrize("make", [
    lambda opt: NoiseJumps(opt, jump_steps=[3, 7, 9], std=0.01, seed=4),
    lambda opt: IntrospectionJumps(opt, jump_steps=[3, 7, 9], net=IntrospectionNet()),
])
def test_a_checkpoint_mid_schedule_resumes_identically(make):
    torch.manual_seed(0)

    def fresh():
        model = small_model()
        return model, make(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))

    model, opt = fresh()
    train_steps(model, opt, 5)
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved = copy.deepcopy(opt.state_dict())  # as torch.save would freeze it
    train_steps(model, opt, 6, seed=9)
    other, other_opt = fresh()
    other.load_state_dict(saved_model)
    other_opt.load_state_dict(saved)
    train_steps(other, other_opt, 6, seed=9)
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [j.step for j in other_opt.jumps] == [3, 7, 9]


@pytest.mark.parametrize("bad, message", [([], "empty"), ([3, 3], "twice"), ([0], "positive"),
                                          ([2.5], "positive")])
def test_bad_jump_steps_are_refused_with_the_value(bad, message):
    with pytest.raises(ValueError, match=message):
        FitJumps([torch.zeros(1)], jump_steps=bad, degree=1, ratio=1.1)


def test_bad_predictor_settings_are_refused():
    with pytest.raises(ValueError, match="degree"):
        PolynomialFit(3, 1.1)
    with pytest.raises(ValueError, match="ratio"):
        PolynomialFit(1, 0.9)
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(0.0)


# -- training data and the network's own training ---------------------------------------------

def test_the_recorder_keeps_the_pool_of_weights_at_every_grid_step():
    model = small_model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = WeightHistoryRecorder(sgd, pool_size=30, every=3, seed=2)
    flat = [torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()]
    for step in range(9):
        train_steps(model, recorder, 1, seed=step)
        flat.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone())
    steps, values = recorder.histories()
    assert steps.tolist() == [0, 3, 6, 9]
    for row, step in zip(values, steps.tolist(), strict=True):
        assert torch.equal(row, flat[step][recorder.flat_index])


def test_examples_read_the_exact_grid_positions_and_keep_validation_weights_apart():
    every, records = 10, 201  # steps 0 .. 2000
    steps = torch.arange(records) * every
    values = torch.randn(records, 100, generator=torch.Generator().manual_seed(0))
    assert jump_points(2000, every, 2.0) == list(range(100, 1001, 100))
    train_cols, val_cols = split_pool(100, 0.2, seed=0)
    assert set(train_cols.tolist()).isdisjoint(val_cols.tolist()) and len(val_cols) == 20
    ex = sample_examples(steps, values, train_cols, count=400, seed=1)
    assert set(ex.weight.tolist()) <= set(train_cols.tolist())
    for i in range(0, 400, 37):
        w, t = int(ex.weight[i]), int(ex.t[i])
        rows = [0, 4 * t // 100, 7 * t // 100, t // 10]
        assert ex.inputs[i].tolist() == values[rows, w].tolist()
        assert ex.targets[i] == values[2 * t // 10, w]
    change = (values[-1] - values[0]).abs()
    ranked = train_cols[torch.argsort(change[train_cols], descending=True, stable=True)]
    top_half = set(ranked[:40].tolist())
    assert sum(w in top_half for w in ex.weight.tolist()) == 200  # 50% of the examples


def test_fit_learns_a_known_law_of_evolution():
    """Weights that move linearly in time have w(2t) = 2 w(t) - w(0): the linear net can
    represent it exactly, and training must find it (to well below the no-change error)."""
    generator = torch.Generator().manual_seed(0)
    w0 = torch.randn(4000, generator=generator) * 0.05
    slope = torch.randn(4000, generator=generator) * 0.02
    inputs = torch.stack([w0 + slope * f for f in (0.0, 0.4, 0.7, 1.0)], dim=1)
    examples = Examples(inputs, w0 + 2 * slope, torch.arange(4000), torch.ones(4000))
    torch.manual_seed(0)
    net = IntrospectionNet(linear=True)
    fit(net, examples, FitSettings(steps=3000, decay_every=1000))
    with torch.no_grad():
        learned = l1_error(net(inputs), examples.targets)
    no_change = l1_error(inputs[:, -1], examples.targets)
    assert learned < 0.1 * no_change


def test_shipped_weights_load_safely_and_beat_the_no_change_predictor_on_held_out_histories():
    path_contents = read_weights_file(shipped_path())
    inputs = path_contents["validation"]["inputs"]
    targets = path_contents["validation"]["targets"]
    assert len(targets) >= 1000
    no_change = l1_error(inputs[:, -1], targets)
    record = shipped_provenance()
    assert record["command"].startswith("plp-bench introspection train")
    assert record["data"]["name"] == "mnist" and record["settings"]["seed"] == 0
    for name in ("introspection", "introspection-linear"):
        net = load_net(name)
        with torch.no_grad():
            error = l1_error(net(inputs), targets)
        assert error == pytest.approx(record["metrics_paper_units"][name]["val_l1"], rel=1e-5)
        assert error < no_change, name
    assert no_change == pytest.approx(record["metrics_paper_units"]["no-change"]["val_l1"],
                                      rel=1e-6)


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_weights_file_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"nets": Exploit()}, protocol=2))
    with pytest.raises(ValueError, match=r"evil\.pt"):
        load_net(path=path)
    assert "must never run" not in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="introspection train"):
        load_net(path=tmp_path / "missing.pt")


def test_a_record_says_which_introspection_net_jumped(tmp_path):
    params = [torch.nn.Parameter(torch.ones(3))]
    shipped = IntrospectionJumps(torch.optim.SGD(params, lr=0.1), jump_steps=[2])
    digest = hashlib.sha256(shipped_path().read_bytes()).hexdigest()[:16]
    assert shipped.run_details()["predictor"]["weights"] == {
        "net": "introspection", "file": "shipped", "sha256": digest}
    copy = tmp_path / "mine.pt"
    shutil.copy(shipped_path(), copy)
    mine = IntrospectionJumps(torch.optim.SGD(params, lr=0.1), jump_steps=[2],
                              net=load_net("introspection-linear", copy))
    assert mine.run_details()["predictor"]["weights"] == {
        "net": "introspection-linear", "file": "mine.pt", "sha256": digest}
