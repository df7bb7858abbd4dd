"""XGrad weight prediction against literal float64 transcriptions of the prediction formulas
and of the SGD / Adam / AdamW updates, with gradients taken at the predicted weights."""

import math

import pytest
import torch

from baselines.xgrad import WeightPrediction
from plp_bench import PLP


def problem(seed=0):
    """Two parameters under separable quadratics; the gradient at w is A w - b."""
    g = torch.Generator().manual_seed(seed)
    terms = []
    for n in (4, 3):
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        terms.append((m @ m.T / n + torch.eye(n, dtype=torch.float64),
                      torch.randn(n, generator=g, dtype=torch.float64),
                      torch.randn(n, generator=g, dtype=torch.float64)))
    return terms


def gradient(term, w):
    A, b, _ = term
    return A @ w - b


def drive(optimizer_class, hyper, steps, horizon=1, seed=0):
    """The wrapper in use: returns the weights seen by each closure call and the final ones."""
    terms = problem(seed)
    params = [torch.nn.Parameter(t[2].clone()) for t in terms]
    wp = WeightPrediction(optimizer_class(params, **hyper), horizon=horizon)
    seen = []

    def closure():
        wp.zero_grad()
        seen.append([p.detach().clone() for p in params])
        loss = sum(0.5 * p @ A @ p - b @ p for p, (A, b, _) in zip(params, terms, strict=True))
        loss.backward()
        return loss

    for _ in range(steps):
        wp.step(closure)
    return seen, [p.detach() for p in params]


def literal_sgd(hyper, steps, horizon=1, seed=0):
    """theta_hat = theta - s lr v; v = momentum v + (g + wd theta) (torch's buffer convention);
    theta = theta - lr v. Without momentum, v is the last step's g + wd theta."""
    lr, mu, wd = hyper["lr"], hyper.get("momentum", 0.0), hyper.get("weight_decay", 0.0)
    predicted, final = [], []
    for term in problem(seed):
        theta, v, points = term[2].clone(), None, []
        for _ in range(steps):
            theta_hat = theta if v is None else theta - horizon * lr * v
            points.append(theta_hat)
            d = gradient(term, theta_hat) + wd * theta
            v = d if (v is None or mu == 0) else mu * v + d
            theta = theta - lr * v
        predicted.append(points)
        final.append(theta)
    return predicted, final


def literal_adam(hyper, steps, decoupled, horizon=1, seed=0):
    """Adam / AdamW as in Kingma & Ba and Loshchilov & Hutter, with XGrad's prediction
    theta_hat = theta - s lr (m_hat / (sqrt(v_hat) + eps) [+ wd theta for AdamW])."""
    lr, (b1, b2), eps = hyper["lr"], hyper["betas"], hyper["eps"]
    wd = hyper.get("weight_decay", 0.0)
    predicted, final = [], []
    for term in problem(seed):
        theta = term[2].clone()
        m = torch.zeros_like(theta)
        v = torch.zeros_like(theta)
        points = []
        for t in range(steps):
            if t == 0:
                theta_hat = theta
            else:
                m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
                direction = m_hat / (v_hat.sqrt() + eps)
                if decoupled:
                    direction = direction + wd * theta
                theta_hat = theta - horizon * lr * direction
            points.append(theta_hat)
            g = gradient(term, theta_hat)
            if not decoupled:
                g = g + wd * theta
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
            if decoupled:
                theta = theta * (1 - lr * wd)
            theta = theta - lr * m_hat / (v_hat.sqrt() + eps)
        predicted.append(points)
        final.append(theta)
    return predicted, final


def assert_matches(seen, final, expected_points, expected_final):
    for i, points in enumerate(expected_points):
        for step, point in enumerate(points):
            torch.testing.assert_close(seen[step][i], point, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(final[i], expected_final[i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hyper, horizon", [
    ({"lr": 0.05, "momentum": 0.9}, 1),
    ({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, 2),
    ({"lr": 0.1, "momentum": 0.0}, 1),
    ({"lr": 0.1, "momentum": 0.0, "weight_decay": 0.1}, 3),
])
def test_sgd_prediction_and_update_equal_the_literal_formulas(hyper, horizon):
    seen, final = drive(torch.optim.SGD, hyper, 8, horizon)
    assert_matches(seen, final, *literal_sgd(hyper, 8, horizon))
    assert not torch.equal(seen[3][0], seen[2][0])


@pytest.mark.parametrize("optimizer, decoupled, hyper", [
    (torch.optim.Adam, False, {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8}),
    (torch.optim.Adam, False, {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6,
                               "weight_decay": 0.1}),
    (torch.optim.AdamW, True, {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8,
                               "weight_decay": 0.1}),
])
@pytest.mark.parametrize("horizon", [1, 2])
def test_adam_prediction_and_update_equal_the_literal_formulas(optimizer, decoupled, hyper,
                                                               horizon):
    seen, final = drive(optimizer, hyper, 7, horizon)
    assert_matches(seen, final, *literal_adam(hyper, 7, decoupled, horizon))


def test_gradients_are_taken_at_the_predicted_weights_not_the_current_ones():
    """Against the same SGD fed gradients at the current weights, the result differs."""
    hyper = {"lr": 0.05, "momentum": 0.9}
    _, final = drive(torch.optim.SGD, hyper, 5)
    terms = problem()
    for term, got in zip(terms, final, strict=True):
        theta, v = term[2].clone(), None
        for _ in range(5):
            g = gradient(term, theta)
            v = g if v is None else 0.9 * v + g
            theta = theta - 0.05 * v
        assert not torch.allclose(got, theta, rtol=1e-6, atol=1e-9)


def test_weights_after_the_step_are_the_true_ones_and_the_loss_is_at_the_prediction():
    params = [torch.nn.Parameter(torch.ones(2, dtype=torch.float64))]
    wp = WeightPrediction(torch.optim.SGD(params, lr=0.5, momentum=0.9))
    losses = []

    def closure():
        wp.zero_grad()
        loss = (params[0] ** 2).sum()
        loss.backward()
        losses.append(loss.item())
        return loss

    first = wp.step(closure)
    assert first.item() == losses[0] == 2.0
    torch.testing.assert_close(params[0].detach(), torch.zeros(2, dtype=torch.float64))
    wp.step(closure)
    # predicted: 0 - 0.5 * v with v = 2 (the first gradient): -1 per coordinate -> loss 2
    assert losses[1] == pytest.approx(2.0)


def test_composes_with_plp_in_either_order():
    for build in (lambda ps: PLP(WeightPrediction(torch.optim.SGD(ps, lr=0.1, momentum=0.9))),
                  lambda ps: WeightPrediction(PLP(torch.optim.SGD(ps, lr=0.1, momentum=0.9)))):
        params = [torch.nn.Parameter(torch.ones(3))]
        optimizer = build(params)

        def closure(optimizer=optimizer, params=params):
            optimizer.zero_grad()
            loss = (params[0] ** 2).sum()
            loss.backward()
            return loss

        for _ in range(6):
            optimizer.step(closure)
        assert torch.isfinite(params[0]).all() and params[0].abs().max() < 1


def test_bad_use_is_a_clear_value_error():
    params = [torch.nn.Parameter(torch.ones(2))]
    wp = WeightPrediction(torch.optim.SGD(params, lr=0.1, momentum=0.9))
    with pytest.raises(ValueError, match="needs a closure"):
        wp.step()
    with pytest.raises(ValueError, match="SGD, Adam or AdamW; got Adagrad"):
        WeightPrediction(torch.optim.Adagrad(params))
    for horizon in (0, -1, math.inf, True):
        with pytest.raises(ValueError, match="horizon must be a finite number > 0"):
            WeightPrediction(torch.optim.SGD(params, lr=0.1), horizon=horizon)
