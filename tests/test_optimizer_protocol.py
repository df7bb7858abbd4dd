"""Every wrapper is a real ``torch.optim.Optimizer``: torch's own clients take it as it is.

The clients are the real ones: every ``torch.optim.lr_scheduler`` class (and ``SWALR``),
``torch.amp.GradScaler``, step and state-dict hooks, ``torch.save`` / ``torch.load`` across
processes, ``copy.deepcopy``, and DEMON's momentum schedule on either level of a chain. Each
scheduler on each wrapper is held to the same scheduler on the bare optimizer plus the
wrapper's own effect, transcribed in float64 (``wrapper_cases``).
"""

import copy
import inspect
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.optim import lr_scheduler, swa_utils
from torch.optim.optimizer import register_optimizer_step_post_hook
from wrapper_cases import (
    RESUME_AT,
    RESUMED_STEPS,
    WRAPPERS,
    batch,
    quadratic,
    scaled_steps,
    sgd,
    train_step,
    training,
    transcription,
)

from plp_baselines.demon import DemonMomentum
from plp_baselines.optimizer_wrapper import OptimizerWrapper, innermost
from plp_bench import PLP

TESTS = Path(__file__).resolve().parent
STEPS = 24


def plateau_ready(o):
    return lr_scheduler.ReduceLROnPlateau(o, mode="max", patience=2, factor=0.7)


# Every scheduler class torch ships, each set to change the rate within STEPS steps.
SCHEDULERS = {
    "LambdaLR": lambda o: lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.1 * t)),
    "MultiplicativeLR": lambda o: lr_scheduler.MultiplicativeLR(o, lambda t: 0.95),
    "StepLR": lambda o: lr_scheduler.StepLR(o, step_size=5, gamma=0.5),
    "MultiStepLR": lambda o: lr_scheduler.MultiStepLR(o, milestones=[4, 11, 17], gamma=0.5),
    "ConstantLR": lambda o: lr_scheduler.ConstantLR(o, factor=0.5, total_iters=7),
    "LinearLR": lambda o: lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=10),
    "ExponentialLR": lambda o: lr_scheduler.ExponentialLR(o, gamma=0.93),
    "SequentialLR": lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, 0.2, total_iters=5), lr_scheduler.ExponentialLR(o, 0.9)],
        milestones=[5]),
    "PolynomialLR": lambda o: lr_scheduler.PolynomialLR(o, total_iters=20, power=2.0),
    "CosineAnnealingLR": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "ChainedScheduler": lambda o: lr_scheduler.ChainedScheduler(
        [lr_scheduler.ConstantLR(o, 0.5, total_iters=6), lr_scheduler.ExponentialLR(o, 0.95)],
        optimizer=o),
    "ReduceLROnPlateau": plateau_ready,
    "CyclicLR": lambda o: lr_scheduler.CyclicLR(o, base_lr=[0.01, 0.005], max_lr=[0.05, 0.02],
                                                step_size_up=4),
    "CosineAnnealingWarmRestarts": lambda o: lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=5, T_mult=2),
    "OneCycleLR": lambda o: lr_scheduler.OneCycleLR(o, max_lr=[0.08, 0.03], total_steps=STEPS),
    "SWALR": lambda o: swa_utils.SWALR(o, swa_lr=0.01, anneal_epochs=6),
}


def test_the_table_covers_every_scheduler_torch_ships():
    shipped = {name for name, cls in vars(lr_scheduler).items()
               if inspect.isclass(cls) and issubclass(cls, lr_scheduler.LRScheduler)
               and not name.startswith("_") and cls is not lr_scheduler.LRScheduler}
    assert shipped | {"SWALR"} == set(SCHEDULERS)


def advance(schedule, loss):
    if isinstance(schedule, lr_scheduler.ReduceLROnPlateau):
        schedule.step(loss.item())
    else:
        schedule.step()


def settings(optimizer):
    return [(g["lr"], g["momentum"]) for g in optimizer.param_groups]


def wrapped_run(kind, scheduler):
    params, closure, groups = quadratic()
    optimizer = WRAPPERS[kind](sgd(groups))
    schedule = SCHEDULERS[scheduler](optimizer)
    seen = []
    for _ in range(STEPS):
        seen.append(settings(optimizer))
        advance(schedule, optimizer.step(closure(optimizer)))
    return params, seen


def reference_run(kind, scheduler):
    """The same scheduler on the bare optimizer, the wrapper's effect transcribed around it."""
    params, closure, groups = quadratic()
    bare = sgd(groups)
    schedule = SCHEDULERS[scheduler](bare)
    effect = transcription(kind, params)
    seen = []
    for t in range(1, STEPS + 1):
        seen.append(settings(bare))
        loss = effect.gradient(params, bare, closure(bare))
        bare.step()
        effect.after(params, t)
        advance(schedule, loss)
    return params, seen


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_each_scheduler_on_each_wrapper_equals_the_bare_schedule_plus_the_transcription(
        kind, scheduler):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "scheduler stepped before the optimizer"
        got, got_settings = wrapped_run(kind, scheduler)
    expected, expected_settings = reference_run(kind, scheduler)
    assert got_settings == expected_settings
    assert len({s[0][0] for s in got_settings}) > 1, "the schedule never changed the rate"
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)


def test_a_wrapper_is_an_optimizer_sharing_the_wrapped_groups_and_defaults():
    params, _, groups = quadratic()
    inner = sgd(groups)
    bare_attributes = set(vars(sgd(quadratic()[2])))
    for kind, make in WRAPPERS.items():
        optimizer = make(inner)
        assert isinstance(optimizer, torch.optim.Optimizer), kind
        assert optimizer.param_groups is inner.param_groups
        assert optimizer.defaults is inner.defaults
        assert innermost(optimizer) is inner
        missing = [a for a in bare_attributes if not hasattr(optimizer, a)]
        assert not missing, f"{kind} lacks what torch.optim.Optimizer.__init__ sets: {missing}"
    # loading a checkpoint replaces the wrapped optimizer's list of groups: still shared
    plp = PLP(inner)
    plp.load_state_dict(plp.state_dict())
    assert plp.param_groups is inner.param_groups and plp.param_groups[0]["params"][0] is params[0]


def test_groups_added_through_the_wrapper_reach_the_wrapped_optimizer_and_its_schedulers():
    params, closure, groups = quadratic()
    plp = PLP(sgd(groups[:1]), step=0.5)
    plp.add_param_group(groups[1])
    assert len(plp.optimizer.param_groups) == 2 and plp.param_groups[1]["plp_step"] == 0.5
    schedule = lr_scheduler.StepLR(plp, step_size=1, gamma=0.5)
    plp.step(closure(plp))
    schedule.step()
    assert [g["lr"] for g in plp.optimizer.param_groups] == [0.025, 0.01]
    plp.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("kind", ["introspection", "noise-jumps"])
def test_jumps_refuse_parameters_added_after_their_first_copy(kind):
    _, _, groups = quadratic()
    jumps = WRAPPERS[kind](sgd(groups[:1]))
    with pytest.raises(ValueError, match="cannot be added"):
        jumps.add_param_group(groups[1])


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_step_hooks_run_around_the_wrappers_whole_step(kind):
    params, closure, groups = quadratic()
    optimizer = WRAPPERS[kind](sgd(groups))
    calls = []
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: calls.append(("pre", opt, innermost(opt).state[params[0]]
                                                .get("momentum_buffer") is None)))
    optimizer.register_step_post_hook(
        lambda opt, args, kwargs: calls.append(("post", opt, params[0].detach().clone())))
    inner_calls = []
    innermost(optimizer).register_step_post_hook(lambda opt, *_: inner_calls.append(opt))
    global_calls = []
    handle = register_optimizer_step_post_hook(
        lambda opt, *_: global_calls.append(opt))
    try:
        for _ in range(3):
            optimizer.step(closure(optimizer))
    finally:
        handle.remove()
    assert [c[0] for c in calls] == ["pre", "post"] * 3
    assert all(c[1] is optimizer for c in calls)
    assert calls[0][2] is True  # the pre hook ran before the first update
    # on the momentum path the cycle's last update is PLP's own: the wrapped SGD's own hooks
    # see the two it makes
    inner_steps = 2 if getattr(optimizer, "path", None) == "sgd-momentum" else 3
    assert inner_calls == [innermost(optimizer)] * inner_steps
    assert global_calls.count(optimizer) == 3
    # the post hook saw the wrapper's own work too: PLP's prediction after the third step
    assert torch.equal(calls[-1][2], params[0].detach())


def test_a_pre_hook_may_replace_the_closure():
    _params, closure, groups = quadratic()
    plp = PLP(sgd(groups))
    called = []

    def counted():
        called.append(1)
        return closure(plp)()

    plp.register_step_pre_hook(lambda opt, args, kwargs: ((opt, counted), {}))
    plp.step(closure(plp))
    assert called == [1]


def test_state_dict_hooks_see_and_change_the_whole_checkpoint():
    _params, closure, groups = quadratic()
    plp = PLP(sgd(groups))
    plp.step(closure(plp))
    plp.register_state_dict_pre_hook(lambda opt: opt.param_groups[0].update(note=1))
    plp.register_state_dict_post_hook(lambda opt, sd: {**sd, "label": "mine"})
    saved = plp.state_dict()
    assert saved["label"] == "mine" and saved["param_groups"][0]["note"] == 1
    assert set(saved) == {"state", "param_groups", "wrapped", "extra", "label"}
    assert "param_groups" not in saved["wrapped"]

    fresh = PLP(sgd(quadratic()[2]))
    loaded = []
    fresh.register_load_state_dict_pre_hook(
        lambda opt, sd: {**sd, "param_groups": [{**g, "lr": 0.5} for g in sd["param_groups"]]})
    fresh.register_load_state_dict_post_hook(lambda opt: loaded.append(opt.steps))
    fresh.load_state_dict(saved)
    assert [g["lr"] for g in fresh.optimizer.param_groups] == [0.5, 0.5]
    assert loaded == [1]


def test_a_chain_checkpoints_each_level_once():
    _params, closure, groups = quadratic()
    chain = PLP(WRAPPERS["xgrad"](torch.optim.Adam(groups, lr=0.01)))
    for _ in range(4):
        chain.step(closure(chain))
    saved = chain.state_dict()
    assert set(saved["wrapped"]) == {"state", "wrapped", "extra"}
    assert set(saved["wrapped"]["wrapped"]) == {"state"}  # Adam's moments
    assert saved["extra"]["steps"] == 4


def test_a_mid_cycle_checkpoint_resumes_bit_for_bit_in_a_fresh_process(tmp_path):
    """Every wrapper under the paper's cyclic rate, saved after 7 steps (mid PLP cycle, before
    the first jump) and resumed by a fresh interpreter into other weights and settings."""
    checkpoints, expected = {}, {}
    for kind in WRAPPERS:
        model, optimizer, schedule = training(kind, seed=0)
        for i in range(RESUME_AT):
            train_step(model, optimizer, schedule, i)
        checkpoints[kind] = copy.deepcopy({"model": model.state_dict(),
                                           "optimizer": optimizer.state_dict(),
                                           "schedule": schedule.state_dict()})
        expected[kind] = []
        for i in range(RESUME_AT, RESUME_AT + RESUMED_STEPS):
            train_step(model, optimizer, schedule, i)
            expected[kind].append([p.detach().clone() for p in model.parameters()])
    torch.save(checkpoints, tmp_path / "checkpoint.pt")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    subprocess.run([sys.executable, str(TESTS / "wrapper_cases.py"),
                    str(tmp_path / "checkpoint.pt"), str(tmp_path / "resumed.pt")],
                   check=True, env=env, timeout=120)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert set(resumed) == set(WRAPPERS)
    for kind, trajectory in expected.items():
        assert len(resumed[kind]) == RESUMED_STEPS
        for step, (mine, theirs) in enumerate(zip(trajectory, resumed[kind], strict=True)):
            for a, b in zip(mine, theirs, strict=True):
                assert torch.equal(a, b), f"{kind}: step {RESUME_AT + step + 1} differs"


def scaled_training(kind, skip_at=None, poison_at=None):
    """Float32 training through a GradScaler (:func:`wrapper_cases.scaled_steps`)."""
    model, optimizer, _ = training(kind, seed=0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    scaled_steps(model, optimizer, scaler, [batch(i) for i in range(12)],
                 predict="xgrad" in kind, skip_at=skip_at, poison_at=poison_at)
    return model, optimizer, scaler


@pytest.mark.parametrize("kind", ["plp", "noise-jumps", "fit-jumps", "xgrad", "plp-over-xgrad"])
def test_a_step_the_grad_scaler_skips_skips_the_wrappers_bookkeeping_too(kind):
    # step 4 is the second of a PLP cycle: counting it would shift every later prediction;
    # XGrad's weights stay at the prediction of the unchanged state, which the next batch uses
    poisoned, optimizer, scaler = scaled_training(kind, poison_at=4)
    assert scaler.get_scale() == 2.0 ** 9  # the scaler did see the inf and back off
    clean, reference, _ = scaled_training(kind, skip_at=4)
    for a, b in zip(poisoned.parameters(), clean.parameters(), strict=True):
        assert torch.equal(a, b)
    counter = {"plp": "steps", "plp-over-xgrad": "steps"}.get(kind, "steps_taken")
    if kind != "xgrad":
        assert getattr(optimizer, counter) == getattr(reference, counter) == 11


def test_xgrad_without_a_prediction_says_what_it_needs():
    _, closure, groups = quadratic()
    optimizer = WRAPPERS["xgrad"](sgd(groups))
    closure(optimizer)()  # a backward pass at the current weights
    with pytest.raises(RuntimeError, match=r"call predict_weights\(\) before the forward pass"):
        optimizer.step()


@pytest.mark.parametrize("level", ["wrapper", "wrapped"])
def test_demon_on_either_level_of_a_chain_gives_the_same_run(level):
    def run(on):
        params, closure, groups = quadratic()
        inner = sgd(groups)
        plp = PLP(WRAPPERS["xgrad"](inner))
        momentum = DemonMomentum(plp if on == "wrapper" else inner, total_steps=STEPS)
        for _ in range(STEPS):
            plp.step(closure(plp))
            momentum.step()
        return params, [g["momentum"] for g in inner.param_groups]

    params, momenta = run(level)
    reference, reference_momenta = run("wrapper" if level == "wrapped" else "wrapped")
    assert momenta == reference_momenta == [0.0, 0.0]
    for a, b in zip(params, reference, strict=True):
        assert torch.equal(a, b)


def test_deepcopy_gives_an_independent_working_optimizer():
    params, closure, groups = quadratic()
    plp = PLP(sgd(groups))
    plp.step(closure(plp))
    clone = copy.deepcopy(plp)
    assert isinstance(clone, OptimizerWrapper) and clone.steps == 1
    assert clone.param_groups is clone.optimizer.param_groups
    assert clone.param_groups[0]["params"][0] is not params[0]
    assert torch.equal(clone.param_groups[0]["params"][0], params[0])
    hooked = []
    clone.register_step_post_hook(lambda *_: hooked.append(1))
    for p in clone.parameters():
        p.grad = torch.ones_like(p)
    before = params[0].detach().clone()
    clone.step()
    assert hooked == [1] and clone.steps == 2 and plp.steps == 1
    assert torch.equal(params[0], before)
    assert not torch.equal(clone.param_groups[0]["params"][0], before)


def readme_loop_examples():
    """The README's Python blocks introduced by "In your own loop:"."""
    lines = (TESTS.parent / "README.md").read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.rstrip().endswith("In your own loop:") and lines[i + 2] == "```python":
            end = lines.index("```", i + 3)
            blocks.append("\n".join(lines[i + 3:end]))
    return blocks


def test_the_readmes_own_loop_examples_run_as_written(tmp_path, monkeypatch):
    blocks = readme_loop_examples()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        namespace = {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec(compile(block, "README.md", "exec"), namespace)
        assert isinstance(namespace["optimizer"], torch.optim.Optimizer)
    assert (tmp_path / "checkpoint.pt").exists()


def test_a_profiler_sees_the_wrappers_step_as_torch_names_it():
    _, closure, groups = quadratic()
    plp = PLP(WRAPPERS["xgrad"](sgd(groups)))
    with torch.profiler.profile() as recorded:
        plp.step(closure(plp))
    names = [e.name for e in recorded.events() if e.name.startswith("Optimizer.step#")]
    assert names == ["Optimizer.step#PLP.step", "Optimizer.step#WeightPrediction.step",
                     "Optimizer.step#SGD.step"]
