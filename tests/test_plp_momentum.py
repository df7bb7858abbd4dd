"""PLP's momentum path (the prediction folded into SGD-momentum's update, no buffer) against the
literal float64 transcription of Algorithm 1 over torch's SGD, against the 1N path in float32,
its plain loop and compiled kernel against the multi-tensor ops, its memory and its choice."""

import copy
import math

import pytest
import torch
from literals import plp_algorithm1

from benchmarks.costs import held_bytes
from plp_bench import PLP

STEPS = 300


def problem(dtype=torch.float64, seed=0):
    """Three parameters under convex quadratics, in two groups (the second with weight decay)."""
    g = torch.Generator().manual_seed(seed)
    terms, params = [], []
    for n in (5, 4, 3):
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        terms.append(((m @ m.T / n + torch.eye(n, dtype=torch.float64)).to(dtype),
                      torch.randn(n, generator=g, dtype=torch.float64).to(dtype)))
        params.append(torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64)
                                         .to(dtype)))
    return params, terms


def sgd_over(params, dampening=0.1):
    return torch.optim.SGD([{"params": params[:2]},
                            {"params": params[2:], "weight_decay": 1e-3, "lr": 0.02}],
                           lr=0.04, momentum=0.9, dampening=dampening)


def settings_at(t, zero_momentum):
    """A learning rate that changes every step (so inside cycles) and, for ``zero_momentum``,
    a momentum that is 0 on some steps (then SGD moves without its buffer)."""
    scale = 1 + 0.5 * math.sin(0.7 * t)
    momentum = 0.0 if zero_momentum and t % 13 in (4, 5) else 0.9 - 0.2 * (t / 300)
    return scale, momentum


def gradient_step(optimizer, params, terms, t, zero_momentum, base_lrs):
    scale, momentum = settings_at(t, zero_momentum)
    for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
        group["lr"], group["momentum"] = lr * scale, momentum

    def closure():
        optimizer.zero_grad()
        loss = sum(0.5 * p @ A @ p - b @ p for p, (A, b) in zip(params, terms, strict=True))
        loss.backward()
        # tensors without a gradient on some steps: each case of a cycle comes up
        if t % 7 == 3:
            params[2].grad = None
        if t % 11 == 5:
            params[1].grad = None
        return loss

    return closure


def literal_run(step_size, cycle, zero_momentum, dtype=torch.float64, steps=STEPS):
    """Bare torch SGD; after each cycle's last step, Algorithm 1 on the tensors that had a
    gradient at the cycle's first tracked step, from their three iterates."""
    params, terms = problem(dtype)
    sgd = sgd_over(params)
    base = [g["lr"] for g in sgd.param_groups]
    kept, tracked = [], []
    for t in range(steps):
        closure = gradient_step(sgd, params, terms, t, zero_momentum, base)
        closure()
        sgd.step()
        position = t % cycle + 1
        if position == cycle - 2:
            tracked = [p.grad is not None for p in params]
            kept = []
        if position >= cycle - 2:
            kept.append([p.detach().clone() for p in params])
        if position == cycle:
            with torch.no_grad():
                for i, p in enumerate(params):
                    if tracked[i]:
                        p.copy_(plp_algorithm1([k[i] for k in kept], step_size))
    return params


def plp_run(step_size, cycle, zero_momentum, *, dtype=torch.float64, restore_at=None,
            steps=STEPS, **options):
    """PLP over the same SGD; with ``restore_at``, its state and the weights are saved after
    that step and loaded into a fresh PLP over fresh parameters, which goes on."""
    params, terms = problem(dtype)
    plp = PLP(sgd_over(params), step=step_size, cycle=cycle, **options)
    base = [g["lr"] for g in plp.param_groups]
    for t in range(steps):
        plp.step(gradient_step(plp, params, terms, t, zero_momentum, base))
        if t == restore_at:
            saved, weights = copy.deepcopy(plp.state_dict()), [p.detach().clone() for p in params]
            params = [torch.nn.Parameter(w + 1) for w in weights]
            plp = PLP(sgd_over(params, dampening=0.0), step=7.0, cycle=9, **options)
            plp.load_state_dict(saved)
            with torch.no_grad():
                for p, w in zip(params, weights, strict=True):
                    p.copy_(w)
    return params, plp


@pytest.mark.parametrize("zero_momentum", [False, True])
@pytest.mark.parametrize("cycle", [3, 5])
@pytest.mark.parametrize("step_size", [0.5, 1.0, 2.0])
def test_the_momentum_path_equals_algorithm1_in_float64(step_size, cycle, zero_momentum):
    expected = literal_run(step_size, cycle, zero_momentum)
    got, plp = plp_run(step_size, cycle, zero_momentum, restore_at=151)
    assert plp.path == "sgd-momentum"
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("step_size", [0.5, 2.0])
def test_the_plain_loop_equals_the_multi_tensor_ops_bit_for_bit(step_size):
    many, _ = plp_run(step_size, 3, True, dtype=torch.float32)
    loop, _ = plp_run(step_size, 3, True, dtype=torch.float32, foreach=False)
    for a, b in zip(many, loop, strict=True):
        assert torch.equal(a, b)


def test_in_float32_a_short_run_agrees_with_the_1n_path_within_rounding():
    """The two paths compute the same prediction in a different order (w3 - (w1 - w2)/2 from
    stored weights against w2 - lr2 m2 / 2 - lr3 m3 from the momentum), so each prediction
    differs by a few float32 units in the last place of the weights (about 1e-7 here); on this
    contracting problem 10 cycles keep that within 1e-6."""
    fast, _ = plp_run(1.0, 3, False, dtype=torch.float32, steps=30)
    buffered, _ = plp_run(1.0, 3, False, dtype=torch.float32, path="buffer", steps=30)
    for a, b in zip(fast, buffered, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_the_compiled_kernel_agrees_with_the_multi_tensor_ops():
    compiled, plp = plp_run(1.0, 3, False, compiled=True, steps=24)
    many, _ = plp_run(1.0, 3, False, steps=24)
    assert plp.run_details() == {"path": "sgd-momentum", "kernel": "compiled"}
    for a, b in zip(compiled, many, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_momentum_path_holds_no_tensor_of_its_own_at_any_step():
    params, terms = problem(torch.float32)
    plp = PLP(sgd_over(params))
    sgd = sgd_over([torch.nn.Parameter(p.detach().clone()) for p in params])
    base = [g["lr"] for g in plp.param_groups]
    for t in range(7):
        plp.step(gradient_step(plp, params, terms, t, False, base))
        assert not [v for s in plp.state.values() for v in s.values() if torch.is_tensor(v)]
    sgd.step(gradient_step(sgd, sgd.param_groups[0]["params"] + sgd.param_groups[1]["params"],
                           terms, 0, False, base))
    assert held_bytes(plp, params) == held_bytes(sgd, [p for g in sgd.param_groups
                                                       for p in g["params"]])


def test_the_guard_and_a_zero_momentum_cycle_free_their_buffers_at_the_cycle_end():
    params, terms = problem(torch.float32)
    plp = PLP(sgd_over(params), min_cosine=0.0)
    base = [g["lr"] for g in plp.param_groups]
    held = []
    for t in range(6):
        plp.step(gradient_step(plp, params, terms, t, False, base))
        held.append(sum(v.numel() for s in plp.state.values() for v in s.values()
                        if torch.is_tensor(v)))
    assert plp.path == "sgd-momentum"
    # w1 kept from the second step to the third only (the 3-element tensor has no gradient at
    # the fourth step, so it sits the second cycle out)
    assert held == [0, 12, 0, 0, 9, 0]


@pytest.mark.parametrize("optimizer, reason", [
    (lambda p: torch.optim.Adam(p), "Adam, not torch.optim.SGD"),
    (lambda p: torch.optim.SGD(p, lr=0.1), "momentum is 0"),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), "nesterov"),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, maximize=True), "maximize"),
])
def test_auto_takes_the_1n_path_where_the_momentum_path_does_not_apply(optimizer, reason):
    params, _ = problem()
    assert PLP(optimizer(params)).path == "buffer"
    with pytest.raises(ValueError, match=reason):
        PLP(optimizer(params), path="sgd-momentum")
    with pytest.raises(ValueError, match="compiled=true is the sgd-momentum path's kernel"):
        PLP(optimizer(params), compiled=True)


def test_bad_path_options_are_refused_with_the_value():
    params, _ = problem()
    with pytest.raises(ValueError, match="path must be one of auto, buffer, sgd-momentum, "
                                         "got 'fast'"):
        PLP(sgd_over(params), path="fast")
    with pytest.raises(ValueError, match="compiled must be true or false, got 'yes'"):
        PLP(sgd_over(params), compiled="yes")


def test_a_checkpoint_of_one_path_is_refused_where_that_path_cannot_run():
    params, terms = problem()
    plp = PLP(sgd_over(params))
    plp.step(gradient_step(plp, params, terms, 0, False, [0.04, 0.02]))
    other = problem()[0]
    adam = PLP(torch.optim.Adam([{"params": other[:2]}, {"params": other[2:]}]))
    with pytest.raises(ValueError, match="taken on the 'sgd-momentum' path, which this PLP "
                                         "cannot run: the wrapped optimizer is Adam"):
        adam.load_state_dict(plp.state_dict())
