"""PLP against a literal float64 transcription of Algorithm 1, foreach against the per-tensor
loop, its memory, checkpoints mid-cycle, and the options beyond the paper."""

import copy

import pytest
import torch
from literals import plp_algorithm1

from plp_bench import PLP


class RandomWalk(torch.optim.Optimizer):
    """An 'optimizer' whose iterates are a seeded random walk: arbitrary trajectories."""

    def __init__(self, params, seed: int, scale: float = 1.0):
        super().__init__(params, {"lr": scale})
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    delta = torch.randn(p.shape, generator=self.generator, dtype=torch.float64)
                    p.add_(delta.to(p.dtype), alpha=group["lr"])


def reference_walk(initial, seed, steps, step_size, cycle=3, warmup=0, scale=1.0):
    """Algorithm 1 over the same random walk, with lists of iterates kept in float64."""
    params = [torch.nn.Parameter(p.detach().clone().double()) for p in initial]
    for p in params:
        p.grad = torch.zeros_like(p)
    walk = RandomWalk(params, seed, scale)
    kept = []
    for t in range(steps):
        walk.step()
        if t < warmup:
            continue
        position = (t - warmup) % cycle + 1
        if position >= cycle - 2:
            kept.append([p.detach().clone() for p in params])
        if position == cycle:
            with torch.no_grad():
                for i, p in enumerate(params):
                    p.copy_(plp_algorithm1([k[i] for k in kept], step_size))
            kept = []
    return [p.detach() for p in params]


def walked(initial, seed, steps, dtype=torch.float64, **options):
    params = [torch.nn.Parameter(p.detach().clone().to(dtype)) for p in initial]
    for p in params:
        p.grad = torch.zeros_like(p)
    plp = PLP(RandomWalk(params, seed), **options)
    for _ in range(steps):
        plp.step()
    return [p.detach() for p in params], plp


def initial_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64)
            for shape in [(7, 5), (5,), (3, 2, 4), ()]]


@pytest.mark.parametrize("step_size", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("steps", [3, 9, 10, 14])
def test_both_paths_equal_algorithm1_in_float64(step_size, steps):
    initial = initial_tensors()
    expected = reference_walk(initial, 1, steps, step_size)
    fast, _ = walked(initial, 1, steps, step=step_size, foreach=True)
    loop, _ = walked(initial, 1, steps, step=step_size, foreach=False)
    for e, f, lp in zip(expected, fast, loop, strict=True):
        torch.testing.assert_close(f, e, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(lp, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("step_size", [0.0, 0.5, 1.0, 2.0])
def test_foreach_equals_per_tensor_in_float32(step_size):
    initial = initial_tensors(3)
    fast, _ = walked(initial, 2, 11, torch.float32, step=step_size, foreach=True)
    loop, _ = walked(initial, 2, 11, torch.float32, step=step_size, foreach=False)
    for f, lp in zip(fast, loop, strict=True):
        torch.testing.assert_close(f, lp, rtol=1e-6, atol=1e-6)


def test_longer_cycles_predict_from_the_last_three_points_and_warmup_delays_them():
    initial = initial_tensors(1)
    expected = reference_walk(initial, 4, 17, 1.5, cycle=5, warmup=2)
    for foreach in (True, False):
        got, plp = walked(initial, 4, 17, step=1.5, cycle=5, warmup=2, foreach=foreach)
        for e, g in zip(expected, got, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
    assert plp.position() == (17 - 2) % 5 + 1


def test_warmup_steps_are_plain_optimizer_steps():
    initial = initial_tensors(2)
    plain = reference_walk(initial, 6, 5, 1.0, warmup=10)  # never reaches a prediction
    got, _ = walked(initial, 6, 5, warmup=5)
    for e, g in zip(plain, got, strict=True):
        assert torch.equal(g, e)


def small_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def batches(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g))
            for _ in range(count)]


def train(model, optimizer, data):
    for x, y in data:
        def closure(x=x, y=y):
            optimizer.zero_grad()
            dtype = next(model.parameters()).dtype
            loss = torch.nn.functional.cross_entropy(model(x.to(dtype)), y)
            loss.backward()
            return loss
        optimizer.step(closure)


PATHS = ["buffer", "sgd-momentum"]


@pytest.mark.parametrize("path", PATHS)
def test_over_sgd_with_momentum_matches_the_transcription_and_leaves_momentum_alone(path):
    """The paper's setting: SGD momentum 0.9, step 1, on a real network in float64."""
    data = batches(10)
    model = small_net().double()
    reference = copy.deepcopy(model)
    plp = PLP(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), path=path)
    train(model, plp, data)

    sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    kept = []
    for t, batch in enumerate(data):
        train(reference, sgd, [batch])
        kept.append([p.detach().clone() for p in reference.parameters()])
        if t % 3 == 2:
            with torch.no_grad():
                for i, p in enumerate(reference.parameters()):
                    p.copy_(plp_algorithm1([k[i] for k in kept], 1.0))
            kept = []
    for got, want in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for got, want in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(plp.optimizer.state[got]["momentum_buffer"],
                                   sgd.state[want]["momentum_buffer"], rtol=1e-12, atol=1e-12)


def test_extra_memory_is_one_buffer_per_trained_parameter():
    model = small_net()
    model[0].bias.requires_grad_(False)
    for options in ({}, {"min_cosine": 0.0}, {"step": 0.5}):
        plp = PLP(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), path="buffer",
                  **options)
        train(model, plp, batches(7))
        trained = [p for p in model.parameters() if p.requires_grad]
        held = [t for state in plp.state.values() for t in state.values() if torch.is_tensor(t)]
        assert sum(t.numel() * t.element_size() for t in held) == sum(
            p.numel() * p.element_size() for p in trained)
        assert len(held) == len(trained)
        saved = plp.state_dict()["state"]
        assert sum(t.numel() for s in saved.values() for t in s.values() if torch.is_tensor(t)) \
            == sum(p.numel() for p in trained)


@pytest.mark.parametrize("options", [{}, {"step": 0.5}, {"step": 2.0, "min_cosine": 0.2},
                                     {"cycle": 4, "warmup": 1}])
@pytest.mark.parametrize("stop_after", [4, 5, 6])
@pytest.mark.parametrize("path", PATHS)
def test_a_checkpoint_taken_mid_cycle_resumes_exactly(options, stop_after, path):
    data = batches(14, seed=1)
    model = small_net(1)
    plp = PLP(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), path=path, **options)
    train(model, plp, data[:stop_after])
    weights = copy.deepcopy(model.state_dict())
    checkpoint = copy.deepcopy(plp.state_dict())
    train(model, plp, data[stop_after:])

    resumed = small_net(2)
    resumed.load_state_dict(weights)
    fresh = PLP(torch.optim.SGD(resumed.parameters(), lr=0.3), cycle=7, step=9.0)
    fresh.load_state_dict(checkpoint)
    assert fresh.steps == stop_after
    train(resumed, fresh, data[stop_after:])
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert fresh.steps == plp.steps and fresh.cycle == plp.cycle


def test_loading_a_checkpoint_copies_the_buffers():
    model = small_net()
    plp = PLP(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), path="buffer")
    train(model, plp, batches(2))
    checkpoint = plp.state_dict()
    other = PLP(torch.optim.SGD(small_net().parameters(), lr=0.05, momentum=0.9), path="buffer")
    other.load_state_dict(checkpoint)
    for mine, theirs in zip(plp.parameters(), other.parameters(), strict=True):
        ours, loaded = plp.state[mine]["prediction_buffer"], other.state[theirs]["prediction_buffer"]
        assert torch.equal(ours, loaded) and ours.data_ptr() != loaded.data_ptr()
    with pytest.raises(ValueError, match="lacks 'wrapped'; it has 'param_groups', 'state'"):
        other.load_state_dict(torch.optim.SGD(small_net().parameters(), lr=0.1).state_dict())


@pytest.mark.parametrize("path", PATHS)
def test_parameters_without_gradients_are_left_exactly_alone(path):
    model = small_net()
    unused = torch.nn.Parameter(torch.randn(4, dtype=torch.float32))
    model[2].weight.requires_grad_(False)
    frozen_before = model[2].weight.detach().clone()
    unused_before = unused.detach().clone()
    plp = PLP(torch.optim.SGD([*model.parameters(), unused], lr=0.1, momentum=0.9), path=path)
    train(model, plp, batches(9))
    assert torch.equal(model[2].weight, frozen_before)
    assert torch.equal(unused, unused_before)
    assert unused not in plp.state or not plp.state[unused].get("in_cycle")


def test_a_parameter_without_gradient_at_the_cycle_start_sits_the_cycle_out():
    """``b`` has no gradient at the first step, then moves: it keeps w3, ``a`` is predicted."""

    def three_steps(optimizer, a, b):
        points = []
        for t in range(3):
            a.grad = torch.zeros_like(a)
            b.grad = None if t == 0 else torch.zeros_like(b)
            optimizer.step()
            points.append(a.detach().clone())
        return points

    a, b = (torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in range(2))
    ra, rb = (torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in range(2))
    three_steps(PLP(RandomWalk([a, b], seed=0)), a, b)
    points = three_steps(RandomWalk([ra, rb], seed=0), ra, rb)
    assert not torch.equal(rb, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(b, rb)
    torch.testing.assert_close(a.detach(), plp_algorithm1(points, 1.0), rtol=1e-12, atol=1e-12)


def test_param_groups_keep_their_own_step_size():
    g1 = [torch.nn.Parameter(t.clone()) for t in initial_tensors(5)[:2]]
    g2 = [torch.nn.Parameter(t.clone()) for t in initial_tensors(5)[2:]]
    for p in g1 + g2:
        p.grad = torch.zeros_like(p)
    walk = RandomWalk([{"params": g1, "lr": 0.5}, {"params": g2, "lr": 2.0, "plp_step": 2.0}],
                      seed=3)
    plp = PLP(walk, step=0.5)
    assert [g["plp_step"] for g in plp.param_groups] == [0.5, 2.0]
    for _ in range(6):
        plp.step()
    # reference: the same walk, per group, in the literal form
    r1 = [torch.nn.Parameter(t.clone()) for t in initial_tensors(5)[:2]]
    r2 = [torch.nn.Parameter(t.clone()) for t in initial_tensors(5)[2:]]
    for p in r1 + r2:
        p.grad = torch.zeros_like(p)
    ref_walk = RandomWalk([{"params": r1, "lr": 0.5}, {"params": r2, "lr": 2.0}], seed=3)
    kept = []
    for t in range(6):
        ref_walk.step()
        kept.append([p.detach().clone() for p in r1 + r2])
        if t % 3 == 2:
            with torch.no_grad():
                for i, p in enumerate(r1 + r2):
                    p.copy_(plp_algorithm1([k[i] for k in kept], 0.5 if i < 2 else 2.0))
            kept = []
    for got, want in zip(g1 + g2, r1 + r2, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_groups_added_later_get_the_defaults():
    model = small_net()
    plp = PLP(torch.optim.SGD(list(model[0].parameters()), lr=0.1), step=0.7)
    plp.add_param_group({"params": list(model[2].parameters())})
    assert plp.param_groups[1]["plp_step"] == 0.7


def guard_trajectory(min_cosine, foreach):
    """Two tensors: one keeps its direction, one turns back on the third step."""
    steady = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    turning = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    moves = {0: ([1.0, 0.0], [1.0, 1.0]), 1: ([1.0, 0.0], [1.0, 1.0]), 2: ([1.0, 0.1], [-1, -1])}

    class Scripted(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 1.0})
            self.t = 0

        @torch.no_grad()
        def step(self, closure=None):
            a, b = moves[self.t]
            steady.add_(torch.tensor(a, dtype=torch.float64))
            turning.add_(torch.tensor(b, dtype=torch.float64))
            self.t += 1

    for p in (steady, turning):
        p.grad = torch.zeros_like(p)
    plp = PLP(Scripted([steady, turning]), step=1.0, min_cosine=min_cosine, foreach=foreach)
    for _ in range(3):
        plp.step()
    return steady.detach(), turning.detach(), plp


@pytest.mark.parametrize("foreach", [True, False])
def test_the_cosine_guard_keeps_w3_for_a_tensor_that_turned(foreach):
    steady, turning, plp = guard_trajectory(0.0, foreach)
    w = {"steady": [torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]), torch.tensor([3.0, 0.1])],
         "turning": [torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0])]}
    torch.testing.assert_close(steady, plp_algorithm1(w["steady"], 1.0).double())
    torch.testing.assert_close(turning, w["turning"][2].double())
    assert plp.guard_skips == 1
    _, unguarded_turning, plp = guard_trajectory(-1.0, foreach)
    torch.testing.assert_close(unguarded_turning, plp_algorithm1(w["turning"], 1.0).double())
    assert plp.guard_skips == 0


@pytest.mark.parametrize("step_size", [0.5, 1.0, 2.0])
def test_a_guard_that_never_fires_equals_no_guard(step_size):
    initial = initial_tensors(7)
    plain, _ = walked(initial, 8, 12, step=step_size)
    guarded, plp = walked(initial, 8, 12, step=step_size, min_cosine=-1.0)
    for a, b in zip(plain, guarded, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert plp.guard_skips == 0


@pytest.mark.parametrize("options, message", [
    ({"step": -1.0}, "step must be a finite number >= 0, got -1.0"),
    ({"step": float("nan")}, "step must be a finite number >= 0"),
    ({"cycle": 2}, "cycle must be an integer >= 3"),
    ({"warmup": -2}, "warmup must be an integer >= 0, got -2"),
    ({"min_cosine": 1.5}, "min_cosine must be None .* got 1.5"),
])
def test_bad_options_are_value_errors_naming_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        PLP(torch.optim.SGD(small_net().parameters(), lr=0.1), **options)
    with pytest.raises(TypeError, match=r"wraps a torch\.optim\.Optimizer"):
        PLP(object())


@pytest.mark.cuda
@pytest.mark.parametrize("step_size", [0.5, 1.0, 2.0])
def test_cuda_tensors_match_the_transcription(step_size):
    initial = initial_tensors(9)
    expected = reference_walk(initial, 3, 10, step_size)
    params = [torch.nn.Parameter(p.clone().cuda()) for p in initial]
    for p in params:
        p.grad = torch.zeros_like(p)

    class CudaWalk(RandomWalk):
        @torch.no_grad()
        def step(self, closure=None):
            for p in self.param_groups[0]["params"]:
                p.add_(torch.randn(p.shape, generator=self.generator, dtype=torch.float64).cuda())

    plp = PLP(CudaWalk(params, 3), step=step_size)
    for _ in range(10):
        plp.step()
    for e, p in zip(expected, params, strict=True):
        torch.testing.assert_close(p.detach().cpu(), e, rtol=1e-12, atol=1e-12)
