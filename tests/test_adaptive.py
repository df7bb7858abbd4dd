"""AdaBelief and AdaM3 against literal float64 transcriptions of their papers' algorithms
(Zhuang et al. 2020, Algorithm 2; Wang et al. 2021, Algorithm 1): the multi-tensor path, the
per-parameter loop, and XGrad's prediction over each."""

import copy
import math

import pytest
import torch

from plp_baselines.adaptive import AdaBelief, AdaM3
from plp_baselines.xgrad import WeightPrediction
from tests.test_xgrad import assert_matches, drive, gradient, problem

OPTIMIZERS = {"adabelief": AdaBelief, "adam3": AdaM3}
SETTINGS = [
    {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8},
    {"lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.1},
    {"lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1,
     "decoupled_weight_decay": True},
]


def literal(name, hyper, steps, horizon=None, seed=0):
    """The papers' algorithm, one line per equation, in float64, on the quadratics of
    ``tests.test_xgrad.problem``; with ``horizon``, XGrad's prediction
    theta_hat = theta - s lr (m_hat / (sqrt(s_hat) + eps) [+ wd theta if decoupled]) before
    each gradient. Returns the weights each gradient was taken at and the final weights."""
    lr, (b1, b2), eps = hyper["lr"], hyper["betas"], hyper["eps"]
    wd, decoupled = hyper.get("weight_decay", 0.0), hyper.get("decoupled_weight_decay", False)
    predicted, final = [], []
    for term in problem(seed):
        theta = term[2].clone()
        m, s = torch.zeros_like(theta), torch.zeros_like(theta)
        points = []
        for t in range(1, steps + 1):
            theta_hat = theta
            if horizon is not None and t > 1:
                direction = (m / (1 - b1 ** (t - 1))) / ((s / (1 - b2 ** (t - 1))).sqrt() + eps)
                if decoupled:
                    direction = direction + wd * theta
                theta_hat = theta - horizon * lr * direction
            points.append(theta_hat)
            g = gradient(term, theta_hat)
            if wd and not decoupled:
                g = g + wd * theta
            m = b1 * m + (1 - b1) * g
            d = g - m if name == "adabelief" else m
            s = b2 * s + (1 - b2) * d * d + eps
            m_hat = m / (1 - b1 ** t)
            s_hat = s / (1 - b2 ** t)
            if decoupled:
                theta = theta * (1 - lr * wd)
            theta = theta - lr * m_hat / (s_hat.sqrt() + eps)
        predicted.append(points)
        final.append(theta)
    return predicted, final


def run_plain(optimizer_class, hyper, steps, seed=0, foreach=None):
    terms = problem(seed)
    params = [torch.nn.Parameter(t[2].clone()) for t in terms]
    optimizer = optimizer_class(params, foreach=foreach, **hyper)
    seen = []
    for _ in range(steps):
        optimizer.zero_grad()
        seen.append([p.detach().clone() for p in params])
        sum(0.5 * p @ A @ p - b @ p for p, (A, b, _) in zip(params, terms, strict=True)).backward()
        optimizer.step()
    return seen, [p.detach() for p in params], optimizer


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("hyper", SETTINGS)
@pytest.mark.parametrize("foreach", [True, False])
def test_updates_equal_the_papers_algorithm(name, hyper, foreach):
    seen, final, _ = run_plain(OPTIMIZERS[name], hyper, 9, foreach=foreach)
    assert_matches(seen, final, *literal(name, hyper, 9))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_two_optimizers_differ_where_their_second_moments_do(name):
    """The deviation term is what is tested: AdaBelief's s is not AdaM3's, nor Adam's v."""
    hyper = SETTINGS[0]
    _, belief, _ = run_plain(AdaBelief, hyper, 5)
    _, momentum, _ = run_plain(AdaM3, hyper, 5)
    _, adam, _ = run_plain(lambda p, foreach, **h: torch.optim.Adam(p, foreach=foreach, **h),
                           hyper, 5)
    assert not torch.allclose(belief[0], momentum[0])
    assert not torch.allclose(belief[0], adam[0]) and not torch.allclose(momentum[0], adam[0])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_multi_tensor_path_equals_the_loop_bit_for_bit_in_float32(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    runs = []
    for foreach in (True, False):
        net = copy.deepcopy(model)
        opt = OPTIMIZERS[name](net.parameters(), lr=0.01, weight_decay=0.01, foreach=foreach)
        for _ in range(6):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        runs.append([p.detach().clone() for p in net.parameters()])
    for fast, loop in zip(*runs, strict=True):
        assert torch.equal(fast, loop)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("hyper", SETTINGS)
@pytest.mark.parametrize("horizon", [1, 2])
def test_xgrad_predicts_with_each_optimizers_own_second_moment(name, hyper, horizon):
    seen, final = drive(lambda p, **h: OPTIMIZERS[name](p, **h), hyper, 7, horizon)
    assert_matches(seen, final, *literal(name, hyper, 7, horizon))
    assert not torch.equal(seen[3][0], seen[2][0])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trips_and_training_resumes_exactly(name):
    hyper = SETTINGS[1]
    _, straight, _ = run_plain(OPTIMIZERS[name], hyper, 8)
    terms = problem()
    params = [torch.nn.Parameter(t[2].clone()) for t in terms]

    def train(optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            sum(0.5 * p @ A @ p - b @ p
                for p, (A, b, _) in zip(params, terms, strict=True)).backward()
            optimizer.step()

    first = OPTIMIZERS[name](params, **hyper)
    train(first, 3)
    saved = copy.deepcopy(first.state_dict())
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert float(saved["state"][0]["step"]) == 3
    resumed = OPTIMIZERS[name](params, **hyper)
    resumed.load_state_dict(saved)
    train(resumed, 5)
    for a, b in zip(params, straight, strict=True):
        assert torch.equal(a.detach(), b)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_maximize_ascends_the_negated_objective_as_descent_does_the_objective(name):
    terms = problem()
    results = []
    for maximize in (False, True):
        params = [torch.nn.Parameter(t[2].clone()) for t in terms]
        opt = OPTIMIZERS[name](params, lr=0.05, maximize=maximize)
        for _ in range(4):
            opt.zero_grad()
            loss = sum(0.5 * p @ A @ p - b @ p for p, (A, b, _) in zip(params, terms, strict=True))
            (-loss if maximize else loss).backward()
            opt.step()
        results.append([p.detach() for p in params])
    for descended, ascended in zip(*results, strict=True):
        assert torch.equal(descended, ascended)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("bad, match", [
    ({"lr": -1.0}, "learning rate"), ({"lr": math.nan}, "learning rate"),
    ({"eps": -1e-8}, "eps"), ({"betas": (0.9, 1.0)}, "betas"), ({"betas": (0.9,)}, "betas"),
    ({"weight_decay": -0.1}, "weight_decay"),
])
def test_bad_settings_are_refused_with_the_setting_named(name, bad, match):
    with pytest.raises(ValueError, match=match):
        OPTIMIZERS[name]([torch.nn.Parameter(torch.ones(2))], **bad)


def test_xgrad_still_refuses_an_optimizer_whose_rule_it_does_not_know():
    with pytest.raises(ValueError, match="AdaBelief or AdaM3"):
        WeightPrediction(torch.optim.RMSprop([torch.nn.Parameter(torch.ones(2))]))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_help_states_the_source_and_the_equation(name):
    doc = OPTIMIZERS[name].__doc__
    assert ("Zhuang" in doc) if name == "adabelief" else ("2106.11514" in doc)
    assert "d_t" in doc
