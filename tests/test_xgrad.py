"""XGrad weight prediction against literal float64 transcriptions of the prediction formulas
and of the SGD / Adam / AdamW updates, with gradients taken at the predicted weights."""

import copy
import math

import pytest
import torch

from plp_baselines.xgrad import WeightPrediction
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
    (params[0] ** 2).sum().backward()
    with pytest.raises(RuntimeError, match="call predict_weights"):
        wp.step()
    with pytest.raises(ValueError, match="SGD, Adam, AdamW, AdaBelief or AdaM3; got Adagrad"):
        WeightPrediction(torch.optim.Adagrad(params))
    for horizon in (0, -1, math.inf, True):
        with pytest.raises(ValueError, match="horizon must be a finite number > 0"):
            WeightPrediction(torch.optim.SGD(params, lr=0.1), horizon=horizon)


# -- the two-phase form ----------------------------------------------------------------------

def drive_two_phase(optimizer_class, hyper, steps, horizon=1, seed=0, micro_batches=1):
    """The two phases as a loop driven by someone else uses them: zero_grad, predict_weights
    before each forward pass (``micro_batches`` of them, each a share of the loss), step()."""
    terms = problem(seed)
    params = [torch.nn.Parameter(t[2].clone()) for t in terms]
    wp = WeightPrediction(optimizer_class(params, **hyper), horizon=horizon)
    seen = []
    for _ in range(steps):
        wp.zero_grad()
        for _ in range(micro_batches):
            wp.predict_weights()
            seen.append([p.detach().clone() for p in params])
            loss = sum(0.5 * p @ A @ p - b @ p for p, (A, b, _) in zip(params, terms, strict=True))
            (loss / micro_batches).backward()
        assert wp.predicted
        wp.step()
        assert not wp.predicted
    return seen, [p.detach() for p in params]


FORMS = [
    (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.1}),
    (torch.optim.Adam, {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    (torch.optim.Adam, {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": True}),
    (torch.optim.AdamW, {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("optimizer, hyper", FORMS)
def test_the_two_phases_equal_the_closure_form_bit_for_bit(optimizer, hyper):
    seen, final = drive(optimizer, hyper, 7, horizon=2)
    seen_2, final_2 = drive_two_phase(optimizer, hyper, 7, horizon=2)
    for a, b in zip([*seen, final], [*seen_2, final_2], strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)


def test_the_two_phases_equal_the_literal_formulas():
    hyper = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
    seen, final = drive_two_phase(torch.optim.SGD, hyper, 8, horizon=2)
    assert_matches(seen, final, *literal_sgd(hyper, 8, horizon=2))


def test_accumulated_micro_batches_share_one_prediction_per_step():
    """Four micro-batches, each calling predict_weights: all at the step's one prediction,
    and the run equals the literal update with the whole gradient taken there."""
    hyper = {"lr": 0.05, "momentum": 0.9}
    seen, final = drive_two_phase(torch.optim.SGD, hyper, 6, micro_batches=4)
    for step in range(6):
        for k in range(1, 4):
            for x, y in zip(seen[4 * step], seen[4 * step + k], strict=True):
                assert torch.equal(x, y)
    expected_points, expected_final = literal_sgd(hyper, 6)
    assert_matches(seen[::4], final, expected_points, expected_final)


def test_a_changed_rate_before_the_step_asks_for_a_new_prediction():
    """As after a step a GradScaler skipped while a scheduler ran: same state, new rate."""
    params = [torch.nn.Parameter(torch.ones(3, dtype=torch.float64))]
    wp = WeightPrediction(torch.optim.SGD(params, lr=0.1, momentum=0.9))
    wp.zero_grad()
    wp.predict_weights()
    (params[0] ** 2).sum().backward()
    wp.step()  # v = 2, theta = 1 - 0.2 = 0.8
    wp.predict_weights()
    torch.testing.assert_close(params[0].detach(), torch.full((3,), 0.8 - 0.1 * 2.0,
                                                                dtype=torch.float64))
    wp.predict_weights()  # unchanged settings: nothing moves
    torch.testing.assert_close(params[0].detach(), torch.full((3,), 0.6, dtype=torch.float64))
    wp.param_groups[0]["lr"] = 0.05
    wp.predict_weights()
    torch.testing.assert_close(params[0].detach(), torch.full((3,), 0.8 - 0.05 * 2.0,
                                                                dtype=torch.float64))
    wp.restore_weights()
    torch.testing.assert_close(params[0].detach(), torch.full((3,), 0.8, dtype=torch.float64))
    assert not wp.predicted


def test_a_view_with_copied_attributes_predicts_for_the_optimizer_itself():
    """Lightning hands training_step an object whose __dict__ is a copy of the optimizer's:
    a prediction made through it must be the one step() restores."""
    params = [torch.nn.Parameter(torch.ones(2))]
    wp = WeightPrediction(torch.optim.SGD(params, lr=0.5, momentum=0.9))
    view = object.__new__(type(wp))
    view.__dict__ = dict(wp.__dict__)
    view.predict_weights()
    assert wp.predicted
    (params[0] ** 2).sum().backward()
    wp.step()
    assert not wp.predicted and not view.predicted


def test_gradients_accumulated_at_the_current_weights_are_refused_and_the_weights_restored():
    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))]
    wp = WeightPrediction(torch.optim.SGD(params, lr=0.5, momentum=0.9))

    def loss():
        return (params[0] ** 2).sum() + (params[1] ** 3).sum()

    wp.zero_grad()
    wp.predict_weights()
    loss().backward()
    wp.step()  # one honest step: momentum state exists, the prediction moves the weights
    current = [p.detach().clone() for p in params]
    wp.zero_grad()
    loss().backward()  # a micro-batch at the current weights
    wp.predict_weights()
    loss().backward()  # ... and one at the prediction, into the same gradients

    def closure():
        return loss()  # a closure that does not zero: the earlier micro-batch stays in

    with pytest.raises(RuntimeError, match="micro-batches accumulated outside the closure"):
        wp.step(closure)
    assert not wp.predicted
    for p, c in zip(params, current, strict=True):
        assert torch.equal(p.detach(), c)
    wp.zero_grad()  # cleared: the same loop with the prediction first is accepted
    wp.predict_weights()
    loss().backward()
    wp.step()
    for p in params:  # a .grad of None counts as cleared too
        p.grad = None
    wp.predict_weights()
    loss().backward()
    wp.step()


def test_a_checkpoint_taken_at_the_prediction_resumes_exactly():
    def build(values):
        params = [torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))]
        return params, WeightPrediction(torch.optim.Adam(params, lr=0.1))

    def train(params, wp, steps):
        for _ in range(steps):
            wp.zero_grad()
            wp.predict_weights()
            (params[0] ** 2).sum().backward()
            wp.step()

    params, wp = build([1.0, -2.0])
    train(params, wp, 3)
    wp.zero_grad()
    wp.predict_weights()
    state = copy.deepcopy(wp.state_dict())  # torch's state dicts share the live tensors
    assert len(state["extra"]["weights_before_prediction"]) == 1
    at_prediction = params[0].detach().clone()
    (params[0] ** 2).sum().backward()
    wp.step()

    resumed, fresh = build(at_prediction.tolist())  # the model saved with its weights
    fresh.load_state_dict(state)
    assert fresh.predicted
    (resumed[0] ** 2).sum().backward()
    fresh.step()
    assert torch.equal(resumed[0].detach(), params[0].detach())
    assert "weights_before_prediction" not in fresh.state_dict()["extra"]


def test_the_hooks_go_with_the_wrapper_and_its_repr_shows_its_settings():
    import gc

    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))]
    wp = WeightPrediction(torch.optim.SGD(params, lr=0.5, momentum=0.9), horizon=2)
    assert repr(wp).startswith("WeightPrediction(horizon=2, predicted=False\n    SGD (")
    assert all(p._backward_hooks for p in params)
    del wp
    gc.collect()
    assert not any(p._backward_hooks for p in params)


def test_weight_prediction_is_found_through_other_wrappers():
    from plp_baselines.xgrad import weight_prediction

    params = [torch.nn.Parameter(torch.ones(2))]
    wp = WeightPrediction(torch.optim.SGD(params, lr=0.5, momentum=0.9))
    outer = PLP(wp)

    class ClientWrapper:  # accelerate's AcceleratedOptimizer keeps it as .optimizer
        def __init__(self, optimizer):
            self.optimizer = optimizer

    assert weight_prediction(ClientWrapper(outer)) is wp
    with pytest.raises(ValueError, match=r"no WeightPrediction .* PLP -> SGD"):
        weight_prediction(PLP(torch.optim.SGD(params, lr=0.1, momentum=0.9)))
