"""The linearised-model ODE baseline: Jacobian, right-hand side and its analytic Jacobian
against autograd and finite differences, the MSE closed form, agreement with gradient descent
for a small learning rate, and the space / memory choices."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from plp_baselines.linearized import (
    LinearizedModel,
    choose_space,
    flat_parameters,
    gradient_descent,
    integrate,
    load_flat_parameters,
    memory_needed,
    network_jacobian,
)


def two_layer(inputs=4, hidden=6, classes=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, classes)).double()


def data(n=20, inputs=4, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, inputs, generator=g, dtype=torch.float64)
    return x, torch.randint(0, classes, (n,), generator=g)


def linearized(space, loss="cross_entropy", lr=0.5, **net):
    model = two_layer(**net)
    x, y = data(classes=net.get("classes", 3))
    outputs, jac = network_jacobian(model, x)
    return LinearizedModel(jac, outputs, y, lr, loss=loss, space=space), model, x, y


def test_jacobian_equals_a_per_sample_autograd_loop_in_both_modes():
    model = two_layer()
    x, _ = data(n=5)
    outputs, rev = network_jacobian(model, x, mode="rev")
    _, fwd = network_jacobian(model, x, mode="fwd")
    rows = []
    for sample in x:
        per_output = []
        for c in range(3):
            model.zero_grad()
            model(sample[None])[0, c].backward()
            per_output.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        rows.append(torch.stack(per_output))
    torch.testing.assert_close(rev, torch.stack(rows), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fwd, rev, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outputs, model(x).detach())


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_rhs_is_minus_lr_times_the_autograd_gradient_of_the_linearised_loss(loss):
    lin, _, _, y = linearized("parameter", loss)
    delta = torch.randn(lin.p, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    delta.requires_grad_(True)
    logits = (lin.f0 + lin.J @ delta).reshape(lin.n, lin.c)
    if loss == "cross_entropy":
        value = F.cross_entropy(logits, y)
    else:
        value = 0.5 * ((logits - F.one_hot(y, 3).double()) ** 2).sum() / lin.n
    value.backward()
    np.testing.assert_allclose(lin.rhs(0.0, delta.detach().numpy()), -0.5 * delta.grad.numpy(),
                               rtol=1e-11, atol=1e-14)

    fun = linearized("function", loss)[0]
    f = (fun.f0 + fun.J @ delta.detach()).requires_grad_(True)
    if loss == "cross_entropy":
        value = F.cross_entropy(f.reshape(fun.n, fun.c), y)
    else:
        value = 0.5 * ((f - fun.targets) ** 2).sum() / fun.n
    value.backward()
    expected = -0.5 * (fun.J @ fun.J.T) @ f.grad
    np.testing.assert_allclose(fun.rhs(0.0, f.detach().numpy()), expected.numpy(), rtol=1e-11,
                               atol=1e-14)


@pytest.mark.parametrize("space", ["parameter", "function"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_analytic_jacobian_equals_finite_differences(space, loss):
    lin = linearized(space, loss)[0]
    rng = np.random.default_rng(3)
    state = lin.initial_state() + 0.3 * rng.standard_normal(lin.state_size)
    analytic = lin.jac(0.0, state)
    h = 1e-6
    numeric = np.empty_like(analytic)
    for k in range(lin.state_size):
        step = np.zeros(lin.state_size)
        step[k] = h
        numeric[:, k] = (lin.rhs(0.0, state + step) - lin.rhs(0.0, state - step)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_mse_flow_matches_the_closed_form():
    """f_t = y + exp(-eta Theta t / N) (f_0 - y) for the mean squared error."""
    lin = linearized("function", "mse", lr=0.5)[0]
    record = integrate(lin, 40.0, rtol=1e-10, atol=1e-12)
    assert record.status == "finished" and record.time == 40.0
    theta = (lin.J @ lin.J.T).numpy()
    y, f0 = lin.targets.numpy(), lin.f0.numpy()
    closed = y + scipy.linalg.expm(-0.5 * theta * 40.0 / lin.n) @ (f0 - y)
    np.testing.assert_allclose(record.state, closed, rtol=1e-6, atol=1e-7)


def test_both_spaces_reach_the_same_parameters():
    param = linearized("parameter")[0]
    func = linearized("function")[0]
    a = integrate(param, 30.0, rtol=1e-10, atol=1e-12)
    b = integrate(func, 30.0, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(func.displacement(b.state), param.displacement(a.state),
                               rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(func.logits(b.state), param.logits(a.state), rtol=1e-6, atol=1e-7)


def test_small_learning_rate_ode_and_gradient_descent_coincide():
    """After k GD steps the network's training logits approach the linearised flow's at ODE
    time k as eta shrinks: the gap, relative to how far the logits moved, is first order in
    eta (the network's curvature), so it falls 4x when eta does."""

    def relative_gap(lr: float, steps: int = 60) -> float:
        lin, model, x, y = linearized("parameter", lr=lr)
        record = integrate(lin, float(steps), rtol=1e-10, atol=1e-12)
        gradient_descent(model, x, y, lr, steps)
        with torch.no_grad():
            network = model(x)
        flow = lin.logits(record.state)
        moved = (flow - lin.f0.reshape(lin.n, lin.c)).abs().max().item()
        assert moved > 0.02
        return (network - flow).abs().max().item() / moved

    larger, smaller = relative_gap(0.004), relative_gap(0.001)
    assert smaller < 0.01
    assert 3.0 < larger / smaller < 5.0


def test_gradient_descent_is_the_plain_update():
    model = two_layer()
    reference = two_layer()
    x, y = data()
    gradient_descent(model, x, y, 0.3, 3)
    theta = flat_parameters(reference)
    for _ in range(3):
        load_flat_parameters(reference, theta)
        reference.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        theta = theta - 0.3 * torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    torch.testing.assert_close(flat_parameters(model), theta, rtol=1e-12, atol=1e-12)


def test_thresholds_are_recorded_at_the_first_step_reaching_them():
    lin = linearized("parameter", lr=2.0)[0]
    record = integrate(lin, 5000.0, thresholds=[0.5, 0.7, 0.9, 1.01])
    hits = [record.hits[t] for t in (0.5, 0.7, 0.9)]
    assert all(h is not None for h in hits) and record.hits[1.01] is None
    for hit in hits:
        first = next(i for i, (_, _, acc) in enumerate(record.history) if acc >= hit.threshold)
        assert hit.steps == first and record.history[first][0] == hit.time
    assert [h.steps for h in hits] == sorted(h.steps for h in hits)
    assert record.jac_calls > 0 and record.rhs_calls > record.steps


@pytest.mark.parametrize("solver", ["LSODA", "Radau", "RK45"])
def test_other_scipy_solvers_agree_with_bdf(solver):
    lin = linearized("parameter", lr=1.0)[0]
    reference = integrate(lin, 20.0, rtol=1e-9, atol=1e-11).state
    other = integrate(lin, 20.0, solver=solver, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(other.state, reference, rtol=1e-5, atol=1e-6)
    if solver == "RK45":
        assert other.jac_calls == 0


def test_space_is_the_smaller_state_and_memory_is_refused_with_numbers():
    assert choose_space(1000, 2, 226) == "parameter"
    assert choose_space(300, 2, 3000) == "function"
    assert choose_space(300, 2, 3000, "parameter") == "parameter"
    assert memory_needed(12000, 2, 418, "function") > 4 * (24000 ** 2) * 8
    with pytest.raises(MemoryError, match=r"function space needs 17\.32 GiB .* limit is "
                                          r"1\.00 GiB\. The parameter space would need 0\.08"):
        choose_space(12000, 2, 418, "function", memory_limit=1 << 30)
    with pytest.raises(ValueError, match="space must be one of auto, parameter, function"):
        choose_space(10, 2, 10, "both")
    with pytest.raises(ValueError, match="solver must be one of BDF, LSODA, Radau, RK45"):
        integrate(linearized("parameter")[0], 1.0, solver="Euler")
