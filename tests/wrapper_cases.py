"""Every update-rule wrapper, the float64 transcription of its own effect, and the small problems
the optimizer-protocol tests drive them on. Also run as a script: the fresh process that resumes
a checkpoint (``python wrapper_cases.py CHECKPOINT OUT``, the tests folder and the project on
``PYTHONPATH``).

A transcription acts around a *bare* optimizer step: ``gradient`` takes the gradient where the
method takes it (XGrad: at the predicted weights), ``after`` applies what the method does to the
weights after the update (PLP's prediction, a weight jump). Composing methods composes them.
"""

from __future__ import annotations

import functools
import sys

import torch
from literals import introspection_formula, jump_history, plp_algorithm1, polynomial_fit_at

from plp_baselines.introspection import FitJumps, IntrospectionJumps, NoiseJumps
from plp_baselines.introspection.net import load_net
from plp_baselines.xgrad import WeightPrediction, weight_prediction
from plp_bench import PLP

JUMP_STEPS = (9, 20)
NOISE = {"std": 1e-2, "seed": 3}


@functools.lru_cache(maxsize=1)
def shipped_net():
    return load_net()


WRAPPERS = {
    "plp": lambda opt: PLP(opt),
    "plp-1n": lambda opt: PLP(opt, path="buffer"),
    "xgrad": lambda opt: WeightPrediction(opt),
    "plp-over-xgrad": lambda opt: PLP(WeightPrediction(opt)),
    "introspection": lambda opt: IntrospectionJumps(opt, jump_steps=JUMP_STEPS,
                                                    net=shipped_net()),
    "fit-jumps": lambda opt: FitJumps(opt, jump_steps=JUMP_STEPS, degree=2, ratio=1.25),
    "noise-jumps": lambda opt: NoiseJumps(opt, jump_steps=JUMP_STEPS, **NOISE),
}


# -- the transcriptions ---------------------------------------------------------------------
class Plain:
    """No effect of its own: the gradient where the parameters are, nothing after the step."""

    def gradient(self, params, bare, closure):
        return closure()

    def after(self, params, t):
        pass


class PredictedGradient(Plain):
    """Guan et al. (XGrad), SGD with momentum: the gradient at theta - lr v, v the momentum
    buffer, lr the rate the coming update uses; the update from the true weights."""

    @torch.no_grad()
    def _move(self, bare, sign):
        for group in bare.param_groups:
            for p in group["params"]:
                v = bare.state[p].get("momentum_buffer")
                if v is not None:
                    p.sub_(sign * group["lr"] * v)

    def gradient(self, params, bare, closure):
        true = [p.detach().clone() for p in params]
        self._move(bare, 1.0)
        loss = closure()
        with torch.no_grad():
            for p, w in zip(params, true, strict=True):
                p.copy_(w)
        return loss


class LinearPrediction(Plain):
    """Ying et al., Algorithm 1 with s = 1 on cycles of three updates."""

    def __init__(self):
        self.kept = []

    @torch.no_grad()
    def after(self, params, t):
        self.kept.append([p.detach().clone() for p in params])
        if (t - 1) % 3 + 1 == 3:
            for i, p in enumerate(params):
                p.copy_(plp_algorithm1([k[i] for k in self.kept], 1.0))
            self.kept = []


class Jumps(Plain):
    """Sinha et al. section 3.2: at each jump step t every weight becomes
    predict(w_0, w_0.4t, w_0.7t, w_t); ``predict`` maps rows of those four values."""

    def __init__(self, params, predict):
        self.predict = predict
        self.history = {0: self.flat(params)}

    @staticmethod
    def flat(params):
        return torch.cat([p.detach().reshape(-1) for p in params]).double().clone()

    @torch.no_grad()
    def after(self, params, t):
        if t in JUMP_STEPS:
            positions = jump_history(t)
            rows = torch.stack([self.history[s] for s in positions[:3]] + [self.flat(params)],
                               dim=1)
            new = self.predict(rows, positions)
            for p, value in zip(params, new.split([p.numel() for p in params]), strict=True):
                p.copy_(value.view_as(p))
        self.history[t] = self.flat(params)


class Composed(Plain):
    def __init__(self, gradient, after):
        self.gradient = gradient.gradient
        self.after = after.after


def transcription(kind: str, params):
    if kind in ("plp", "plp-1n"):
        return LinearPrediction()
    if kind == "xgrad":
        return PredictedGradient()
    if kind == "plp-over-xgrad":
        return Composed(PredictedGradient(), LinearPrediction())
    if kind == "introspection":
        net = shipped_net()
        return Jumps(params, lambda rows, _: torch.from_numpy(
            introspection_formula(net, rows.numpy())))
    if kind == "fit-jumps":
        return Jumps(params, lambda rows, positions: torch.from_numpy(
            polynomial_fit_at(positions, rows.numpy(), 2, 1.25)))
    if kind == "noise-jumps":
        generator = torch.Generator().manual_seed(NOISE["seed"])
        return Jumps(params, lambda rows, _: rows[:, -1] + NOISE["std"] * torch.randn(
            rows.shape[0], generator=generator, dtype=torch.float64))
    raise KeyError(kind)


# -- a quadratic problem in float64 -------------------------------------------------------------
def quadratic(seed: int = 0):
    """Two parameters under separable convex quadratics 0.5 w'Aw - b'w; returns the parameters,
    a closure factory ``closure(optimizer)`` and two param groups (different rates, one with
    weight decay) to build an optimizer from."""
    g = torch.Generator().manual_seed(seed)
    terms = []
    for n in (4, 3):
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        terms.append((m @ m.T / n + torch.eye(n, dtype=torch.float64),
                      torch.randn(n, generator=g, dtype=torch.float64)))
    params = [torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64))
              for n in (4, 3)]

    def closure(optimizer):
        def run():
            optimizer.zero_grad()
            loss = sum(0.5 * p @ A @ p - b @ p for p, (A, b) in zip(params, terms, strict=True))
            loss.backward()
            return loss
        return run

    groups = [{"params": [params[0]], "lr": 0.05},
              {"params": [params[1]], "lr": 0.02, "weight_decay": 1e-3}]
    return params, closure, groups


def sgd(groups):
    return torch.optim.SGD(groups, lr=0.05, momentum=0.9)


# -- a small network in float32, for checkpoints ------------------------------------------------
RESUME_AT, RESUMED_STEPS = 7, 10


def network(seed: int):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def batch(i: int):
    g = torch.Generator().manual_seed(1000 + i)
    return torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)


def scaled_steps(model, optimizer, scaler, batches, *, predict: bool, skip_at=None,
                 poison_at=None, autocast_dtype=None) -> None:
    """Training through ``scaler`` as a client drives it (Lightning's fp16 plugin, timm's
    NativeScaler): backward on the scaled loss, unscale, ``scaler.step``, ``update``.
    ``predict``: XGrad's prediction before each forward pass (a scaler cannot drive a
    closure); ``poison_at``: that step's gradient holds an inf (the scaler skips the step);
    ``skip_at``: that batch is left out altogether; ``autocast_dtype``: the forward pass under
    autocast on the model's device."""
    device = next(model.parameters()).device
    for i, (x, y) in enumerate(batches):
        if i == skip_at:
            continue
        optimizer.zero_grad()
        if predict:
            weight_prediction(optimizer).predict_weights()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        scaler.scale(loss).backward()
        if i == poison_at:
            with torch.no_grad():
                next(model.parameters()).grad[0, 0] = float("inf")
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()


def training(kind: str, seed: int):
    """The network, the wrapped SGD and the paper's cyclic learning rate over it."""
    model = network(seed)
    optimizer = WRAPPERS[kind](torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                                               weight_decay=1e-4))
    schedule = torch.optim.lr_scheduler.CyclicLR(optimizer, 0.02, 0.08, step_size_up=4)
    return model, optimizer, schedule


def train_step(model, optimizer, schedule, i: int) -> None:
    x, y = batch(i)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    schedule.step()


def resume(checkpoint: str, out: str) -> None:
    """Build every case afresh (other weights, other settings), load the checkpoint, take the
    next steps and save the weights after each."""
    saved = torch.load(checkpoint, weights_only=True)
    trajectories = {}
    for kind, state in saved.items():
        model, optimizer, schedule = training(kind, seed=99)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        steps = []
        for i in range(RESUME_AT, RESUME_AT + RESUMED_STEPS):
            train_step(model, optimizer, schedule, i)
            steps.append([p.detach().clone() for p in model.parameters()])
        trajectories[kind] = steps
    torch.save(trajectories, out)


if __name__ == "__main__":  # with the tests folder and the project on PYTHONPATH
    resume(sys.argv[1], sys.argv[2])
