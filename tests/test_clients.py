"""The update rules inside training loops other people wrote: Lightning (fp16 mixed precision
with a GradScaler, gradient accumulation, resuming from a checkpoint), accelerate (accumulate,
save_state/load_state), timm (its scheduler and its NativeScaler), pytorch_optimizer (a
third-party optimizer's checkpoint through PLP), and mypy on a typed user script.

Each client run is compared with a plain torch loop that does what the client documents it
does (autocast, scaling, loss division, when zero_grad and step run): the client's run must
equal it bit for bit. CPU only: Lightning's fp16 plugin is given a CPU GradScaler.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap
import types
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from wrapper_cases import scaled_steps

from plp_baselines.demon import DemonMomentum
from plp_baselines.xgrad import WeightPrediction, weight_prediction
from plp_bench import PLP

ROOT = Path(__file__).resolve().parents[1]
BATCHES = 8
POISONED = 3  # the batch whose gradient gets an inf: the scaler skips that step


def data(count=BATCHES, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 6, generator=g), torch.randint(0, 3, (size,), generator=g))
            for _ in range(count)]


def network(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))


def xgrad(model, lr=0.1):
    return WeightPrediction(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))


def plp_over_xgrad(model, lr=0.1):
    return PLP(xgrad(model, lr))


def assert_same(a, b):
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p.detach(), q.detach())


def poison(model):
    with torch.no_grad():
        next(model.parameters()).grad[0, 0] = float("inf")


# -- Lightning --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lightning():
    L = pytest.importorskip("lightning")  # a requirement of the tests: never skipped in CI
    warnings.filterwarnings("ignore", module="lightning")
    return L


def trainer(L, root, **options):
    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir=str(root))
    return L.Trainer(**{**defaults, **options})


def lightning_module(L, build, *, predict=True, poison_at=None, scheduler=None):
    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = network()

        def training_step(self, batch, index):
            if predict:  # the two-phase form: the prediction before the forward pass
                weight_prediction(self.optimizers()).predict_weights()
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def on_after_backward(self):
            if self.global_step == poison_at and poison_at is not None:
                poison(self.net)

        def configure_optimizers(self):
            optimizer = build(self.net)
            if scheduler is None:
                return optimizer
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler(optimizer), "interval": "step"}}

    return Module()


def loader(batches):
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, ys),
                                       batch_size=len(batches[0][1]), shuffle=False)


def test_lightning_fp16_with_a_grad_scaler_equals_the_plain_two_phase_loop(lightning, tmp_path):
    """Lightning's '16-mixed' plugin runs the closure itself and then calls
    ``scaler.step(optimizer)`` without one: the two-phase form. A poisoned batch is skipped by
    the scaler, and the weights stay at the prediction of the unchanged state."""
    from lightning.pytorch.plugins import MixedPrecision

    batches = data()
    module = lightning_module(lightning, xgrad, poison_at=POISONED)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    fit = trainer(lightning, tmp_path, max_epochs=1,
                  plugins=[MixedPrecision("16-mixed", "cpu", scaler)])
    fit.fit(module, loader(batches))

    model = network()
    reference = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    # Lightning's global_step counts skipped steps: the poisoned batch is the same one
    scaled_steps(model, xgrad(model), reference, batches, predict=True, poison_at=POISONED,
                 autocast_dtype=torch.float16)
    assert reference.get_scale() == scaler.get_scale() == 2.0 ** 7  # one step was skipped
    assert_same(module.net, model)


def test_lightning_accumulation_predicts_once_per_optimizer_step(lightning, tmp_path):
    batches = data()
    module = lightning_module(lightning, xgrad)
    trainer(lightning, tmp_path, max_epochs=1, accumulate_grad_batches=4).fit(
        module, loader(batches))

    model = network()
    optimizer = xgrad(model)
    for start in range(0, BATCHES, 4):
        optimizer.zero_grad()
        for x, y in batches[start:start + 4]:
            optimizer.predict_weights()  # the second to fourth calls do nothing
            (F.cross_entropy(model(x), y) / 4).backward()
        optimizer.step()
    assert_same(module.net, model)


def test_lightning_accumulation_with_the_closure_form_is_refused_not_trained_wrong(
        lightning, tmp_path):
    """Lightning runs the first micro-batches' closures itself, at the current weights; only
    the last one goes through ``step(closure)``. XGrad refuses the mix."""
    module = lightning_module(lightning, xgrad, predict=False)
    with pytest.raises(RuntimeError, match="micro-batches accumulated outside the closure"):
        trainer(lightning, tmp_path, max_epochs=1, accumulate_grad_batches=4).fit(
            module, loader(data()))


def test_lightning_resumes_plp_over_xgrad_with_demon_bit_for_bit(lightning, tmp_path):
    """PLP over XGrad with DEMON as Lightning's step-interval scheduler, resumed from a
    checkpoint taken mid-cycle (5 batches an epoch, a 3-step cycle), equals one straight run."""
    batches = data(count=5)

    def demon(optimizer):
        return DemonMomentum(optimizer, total_steps=10, beta_init=0.9)

    straight = lightning_module(lightning, plp_over_xgrad, scheduler=demon)
    trainer(lightning, tmp_path / "straight", max_epochs=2).fit(straight, loader(batches))

    first = lightning_module(lightning, plp_over_xgrad, scheduler=demon)
    fit = trainer(lightning, tmp_path / "first", max_epochs=1)
    fit.fit(first, loader(batches))
    checkpoint = tmp_path / "mid-cycle.ckpt"
    fit.save_checkpoint(checkpoint)
    resumed = lightning_module(lightning, plp_over_xgrad, scheduler=demon)
    fit = trainer(lightning, tmp_path / "resumed", max_epochs=2)
    fit.fit(resumed, loader(batches), ckpt_path=str(checkpoint))
    assert fit.global_step == 10
    assert fit.lr_scheduler_configs[0].scheduler.last_step == 10
    assert_same(resumed.net, straight.net)


# -- accelerate -------------------------------------------------------------------------------

@contextmanager
def accelerator(**options):
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        yield accelerate.Accelerator(cpu=True, **options)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def accelerate_run(batches, steps=4, state_in=None, state_out=None, start=0):
    """accelerate's documented loop, with XGrad's prediction before each forward pass."""
    with accelerator(gradient_accumulation_steps=steps) as acc:
        model = network()
        optimizer = plp_over_xgrad(model)
        model, optimizer = acc.prepare(model, optimizer)
        if state_in is not None:
            acc.load_state(str(state_in))
        for x, y in batches[start:]:
            with acc.accumulate(model):
                weight_prediction(optimizer).predict_weights()
                acc.backward(F.cross_entropy(model(x), y))
                optimizer.step()
                optimizer.zero_grad()
        if state_out is not None:
            acc.save_state(str(state_out))
        return model


def test_accelerate_accumulation_trains_on_every_micro_batch_at_one_prediction():
    batches = data(count=16)
    trained = accelerate_run(batches)
    model = network()
    optimizer = plp_over_xgrad(model)
    for start in range(0, 16, 4):
        weight_prediction(optimizer).predict_weights()
        for x, y in batches[start:start + 4]:
            (F.cross_entropy(model(x), y) / 4).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert_same(trained, model)


def test_accelerate_save_and_load_state_resume_bit_for_bit(tmp_path):
    batches = data(count=16)
    straight = accelerate_run(batches)
    accelerate_run(batches[:8], state_out=tmp_path / "state")
    resumed = accelerate_run(batches, state_in=tmp_path / "state", start=8)
    assert_same(resumed, straight)


# -- timm -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def timm():
    """timm's scheduler and NativeScaler modules, loaded without timm's package: its
    ``__init__`` imports torchvision, which the registry's build cannot import over the CPU
    build of torch (requirements-nodeps.txt). The modules themselves import only torch and
    NumPy; they are taken from the installed timm and dropped again afterwards."""
    spec = importlib.util.find_spec("timm")
    if spec is None:
        pytest.skip("timm is not installed (requirements-nodeps.txt)")
    root = Path(spec.origin).parent
    saved = {name: module for name, module in sys.modules.items()
             if name == "timm" or name.startswith("timm.")}
    for name, folder in (("timm", root), ("timm.utils", root / "utils")):
        stand_in = types.ModuleType(name)
        stand_in.__path__ = [str(folder)]
        sys.modules[name] = stand_in
    try:
        scheduler = importlib.import_module("timm.scheduler")
        cuda = importlib.import_module("timm.utils.cuda")
        yield types.SimpleNamespace(scheduler=scheduler, cuda=cuda)
    finally:
        for name in [n for n in sys.modules if n == "timm" or n.startswith("timm.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_timm_scheduler_and_native_scaler_drive_plp_over_xgrad(timm):
    """timm's train loop: NativeScaler (scale, backward, step through the scaler every
    ``accum`` micro-batches) and a per-update cosine schedule with warm-up; the rates it sets
    on the wrapper are the ones it sets on a bare SGD, and the run equals a plain loop fed
    those rates."""
    batches = data(count=12)
    accum = 2

    def schedule(optimizer):
        return timm.scheduler.CosineLRScheduler(optimizer, t_initial=6, warmup_t=2,
                                                warmup_lr_init=0.01, t_in_epochs=False)

    bare = torch.optim.SGD(network().parameters(), lr=0.1, momentum=0.9)
    bare_schedule = schedule(bare)
    rates = []
    for update in range(len(batches) // accum):
        rates.append(bare.param_groups[0]["lr"])
        bare_schedule.step_update(update + 1)

    model = network()
    optimizer = plp_over_xgrad(model)
    timm_schedule = schedule(optimizer)
    scaler = timm.cuda.NativeScaler(device="cpu")
    seen, updates = [], 0
    for i, (x, y) in enumerate(batches):
        weight_prediction(optimizer).predict_weights()
        need_update = (i + 1) % accum == 0
        if need_update:
            seen.append(optimizer.param_groups[0]["lr"])
        scaler(F.cross_entropy(model(x), y) / accum, optimizer, clip_grad=1.0,
               parameters=model.parameters(), need_update=need_update)
        if need_update:
            optimizer.zero_grad()
            updates += 1
            timm_schedule.step_update(updates)
    assert seen == rates

    reference = network()
    by_hand = plp_over_xgrad(reference)
    scale = torch.amp.GradScaler("cpu")
    for update, lr in enumerate(rates):
        for group in by_hand.param_groups:
            group["lr"] = lr
        weight_prediction(by_hand).predict_weights()
        for x, y in batches[update * accum:(update + 1) * accum]:
            scale.scale(F.cross_entropy(reference(x), y) / accum).backward()
        scale.unscale_(by_hand)
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        scale.step(by_hand)
        scale.update()
        by_hand.zero_grad()
    assert_same(model, reference)


# -- pytorch_optimizer ------------------------------------------------------------------------

def test_a_third_party_optimizers_checkpoint_round_trips_through_plp(tmp_path):
    """pytorch_optimizer's Lookahead keeps its own state-dict layout (``lookahead_state``,
    ``base_optimizer``): PLP stores it whole and gives it back whole."""
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    batches = data(count=14)

    def build(model):
        return PLP(pytorch_optimizer.Lookahead(
            torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), k=3, alpha=0.5))

    def train(model, optimizer, part):
        for x, y in part:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

    straight = network()
    train(straight, build(straight), batches)

    model = network()
    optimizer = build(model)
    train(model, optimizer, batches[:7])  # mid-cycle for both PLP (3) and Lookahead (k=3)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
               tmp_path / "checkpoint.pt")
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["optimizer"]["param_groups"] is None
    assert set(saved["optimizer"]["wrapped"]) == {"lookahead_state", "base_optimizer"}
    resumed = network(seed=5)
    resumed.load_state_dict(saved["model"])
    optimizer = build(resumed)
    optimizer.load_state_dict(saved["optimizer"])
    train(resumed, optimizer, batches[7:])
    assert_same(resumed, straight)


# -- mypy -------------------------------------------------------------------------------------

USER_SCRIPT = '''
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from plp_baselines.demon import DemonMomentum
from plp_baselines.introspection import FitJumps, IntrospectionJumps, NoiseJumps
from plp_baselines.introspection.jumps import WeightJumps
from plp_baselines.xgrad import WeightPrediction, weight_prediction
from plp_bench import PLP


def train(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    optimizer: torch.optim.Optimizer = PLP(
        WeightPrediction(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), horizon=1),
        step=1.0, cycle=3)
    schedule: LRScheduler = DemonMomentum(optimizer, total_steps=len(batches), beta_init=0.9)
    last = 0.0
    for x, y in batches:
        optimizer.zero_grad()
        weight_prediction(optimizer).predict_weights()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        torch.autograd.backward(loss)  # Tensor.backward has no annotations in torch
        optimizer.step()
        schedule.step()
        last = float(loss)

    def closure() -> float:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batches[0][0]), batches[0][1])
        torch.autograd.backward(loss)
        return float(loss)

    returned: float = optimizer.step(closure)
    jumps: WeightJumps = IntrospectionJumps(torch.optim.SGD(model.parameters(), lr=0.1),
                                            jump_steps=[3])
    fits: WeightJumps = FitJumps(model.parameters(), jump_steps=[4], degree=2, ratio=1.3)
    noise: WeightJumps = NoiseJumps(model.parameters(), jump_steps=[4], std=0.01)
    details: dict[str, Any] = jumps.run_details()
    momentum: float = DemonMomentum(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                    total_steps=5).momentum()
    return last + returned + momentum + len(details) + len(fits.jumps) + len(noise.jumps)
'''


def test_a_typed_user_script_is_mypy_clean(tmp_path):
    """As a user with the package installed sees it: the package is installed (not editable:
    mypy does not follow setuptools' editable import hook) into a folder, its modules are
    read for their types (``py.typed``), and their own errors are not the user's
    (``--follow-imports=silent``)."""
    pytest.importorskip("mypy")
    installed = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(installed), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    assert (installed / "plp_baselines" / "py.typed").is_file()
    assert (installed / "plp_bench" / "py.typed").is_file()
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    env = {**os.environ, "MYPYPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
