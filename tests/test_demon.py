"""DEMON: the momentum formula, the paper's SGD update in float64, Adam's beta1, and the
harness schedule that runs it."""

import random

import pytest
import torch

from plp_baselines.demon import DemonMomentum, demon_momentum
from plp_bench.methods.schedules import Demon, ScheduleRunner


def formula(beta_init, t, T):
    """Chen et al. (ICASSP 2022), the decay rule as printed."""
    return beta_init * (1 - t / T) / ((1 - beta_init) + beta_init * (1 - t / T))


@pytest.mark.parametrize("beta_init", [0.0, 0.5, 0.9, 0.99])
def test_momentum_follows_the_formula(beta_init):
    T = 1000
    assert demon_momentum(beta_init, 0, T) == pytest.approx(beta_init, abs=1e-15)
    assert demon_momentum(beta_init, T // 2, T) == pytest.approx(
        beta_init * 0.5 / ((1 - beta_init) + beta_init * 0.5), rel=1e-14)
    assert demon_momentum(beta_init, T, T) == 0.0
    assert demon_momentum(beta_init, T + 7, T) == 0.0
    rng = random.Random(0)
    for t in rng.sample(range(T), 20):
        assert demon_momentum(beta_init, t, T) == pytest.approx(formula(beta_init, t, T),
                                                                rel=1e-14, abs=1e-16)


def test_schedule_sets_the_groups_for_the_next_update_and_records_the_initial_value():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = torch.optim.SGD([{"params": params}, {"params": [torch.nn.Parameter(torch.zeros(1))]}],
                          lr=0.1, momentum=0.5)
    demon = DemonMomentum(sgd, total_steps=10, beta_init=0.9)
    assert [g["momentum"] for g in sgd.param_groups] == [0.9, 0.9]
    assert [g["initial_momentum"] for g in sgd.param_groups] == [0.5, 0.5]
    for t in range(1, 12):
        sgd.step()
        demon.step()
        assert demon.get_last_momentum() == [pytest.approx(formula(0.9, min(t, 10), 10))] * 2
    state = demon.state_dict()
    other = DemonMomentum(torch.optim.SGD(params, lr=0.1, momentum=0.5), total_steps=3)
    other.load_state_dict(state)
    assert other.last_step == 11 and other.total_steps == 10 and other.get_last_momentum() == [0.0]
    other.load_state_dict({"last_step": 2, "total_steps": 10, "beta_init": 0.9})  # earlier form
    assert other.last_step == 2 and other.get_last_momentum() == [pytest.approx(formula(0.9, 2, 10))]
    with pytest.raises(ValueError, match="unknown keys 'optimizer'"):
        other.load_state_dict({**state, "optimizer": None})
    assert isinstance(DemonMomentum(sgd, total_steps=4), torch.optim.lr_scheduler.LRScheduler)


def test_sgd_with_demon_reproduces_the_papers_update_in_float64():
    """theta_{t+1} = theta_t - eta g_t + beta_t v_t, v_{t+1} = beta_t v_t - eta g_t, on the
    quadratic loss 1/2 theta^T A theta - b^T theta (gradient A theta - b)."""
    g = torch.Generator().manual_seed(0)
    m = torch.randn(5, 5, generator=g, dtype=torch.float64)
    A = m @ m.T / 5 + torch.eye(5, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    theta0 = torch.randn(5, generator=g, dtype=torch.float64)
    eta, T, beta_init = 0.05, 40, 0.9

    param = torch.nn.Parameter(theta0.clone())
    sgd = torch.optim.SGD([param], lr=eta, momentum=0.0)
    demon = DemonMomentum(sgd, total_steps=T, beta_init=beta_init)
    for _ in range(T + 5):
        sgd.zero_grad()
        loss = 0.5 * param @ A @ param - b @ param
        loss.backward()
        sgd.step()
        demon.step()

    theta, v = theta0.clone(), torch.zeros(5, dtype=torch.float64)
    for t in range(T + 5):
        beta_t = formula(beta_init, min(t, T), T)
        grad = A @ theta - b
        theta, v = theta - eta * grad + beta_t * v, beta_t * v - eta * grad
    torch.testing.assert_close(param.detach(), theta, rtol=1e-12, atol=1e-13)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # the schedule alone
@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_variants_change_beta1_only(optimizer):
    opt = optimizer([torch.nn.Parameter(torch.zeros(3))], lr=1e-3, betas=(0.8, 0.777))
    demon = DemonMomentum(opt, total_steps=4)
    assert opt.param_groups[0]["initial_momentum"] == 0.8
    for t in range(1, 5):
        demon.step()
        beta1, beta2 = opt.param_groups[0]["betas"]
        assert beta1 == pytest.approx(formula(0.9, t, 4)) and beta2 == 0.777


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # the schedule alone
def test_harness_schedule_gives_the_same_sequence():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    reference = DemonMomentum(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1,
                                              momentum=0.9), total_steps=50, beta_init=0.9)
    runner = ScheduleRunner(opt, [Demon()], total_steps=50)
    for t in range(55):
        runner.apply(t)
        assert opt.param_groups[0]["momentum"] == reference.get_last_momentum()[0]
        reference.step()
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], betas=(0.95, 0.999))
    ScheduleRunner(adam, [Demon(beta_init=0.5)], total_steps=10).apply(5)
    assert adam.param_groups[0]["betas"] == (pytest.approx(formula(0.5, 5, 10)), 0.999)


def test_bad_arguments_are_value_errors():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="total_steps must be an integer >= 1, got 0"):
        DemonMomentum(opt, total_steps=0)
    with pytest.raises(ValueError, match=r"beta_init must be in \[0, 1\), got 1.0"):
        DemonMomentum(opt, total_steps=5, beta_init=1.0)
    adagrad = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match=r"neither 'momentum' nor 'betas'.*lr_decay"):
        DemonMomentum(adagrad, total_steps=5)
    with pytest.raises(ValueError, match="schedule field 'momentum' is not a hyperparameter"):
        ScheduleRunner(adagrad, [Demon()], total_steps=5)
    with pytest.raises(ValueError, match="beta_init must be in"):
        Demon(beta_init=-0.1)
