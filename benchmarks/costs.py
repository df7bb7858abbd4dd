"""What a method costs per step and in memory, apart from the forward and backward passes.

The update rules are measured on the parameter sets of real backbones with synthetic
gradients (seeded), so no training happens: ``StepBench`` holds a built method and runs whole
cycles of it, and :func:`held_bytes` counts the tensors a method keeps. The ``step_cost`` and
``jumps`` suites and the tests use these; the harness is reached through
:func:`benchmarks.common.harness` (see there).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from .common import harness, interface_name

# (model, classes, input shape) of the parameter sets named in the step-cost goals
PARAMETER_SETS: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "mlp": ("mlp", 10, (64,)),
    "resnet18": ("resnet18", 10, (3, 32, 32)),
    "vgg16": ("vgg16", 10, (3, 32, 32)),
    "googlenet": ("googlenet", 10, (3, 32, 32)),
}

# Steps per measured call: PLP's cycle, so its amortised cost is what is timed.
STEPS_PER_CALL = 3
# The batch of whole training steps on the CPU
TRAINING_BATCH = 32
# A jump method is stepped past jumps scheduled up to here before it is timed (the registry's
# and the workloads' jump at steps 30, 40 and 50); later jumps are too far to reach.
JUMP_HORIZON = 200


def _model(name: str, seed: int, device: torch.device) -> torch.nn.Module:
    with harness():
        from plp_bench import models
    model_name, classes, shape = PARAMETER_SETS[name]
    torch.manual_seed(seed)
    return models.create(model_name, num_classes=classes, input_shape=shape).to(device)


def parameter_set(name: str, seed: int = 0, device: str | torch.device = "cpu"
                  ) -> list[torch.nn.Parameter]:
    """The parameters of backbone ``name`` on ``device``, each with a seeded random gradient
    (drawn on the host, so the values are the same on every device)."""
    device = torch.device(device)
    params = list(_model(name, seed, device).parameters())
    generator = torch.Generator().manual_seed(seed + 1)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=generator) * 1e-3).to(device)
    return params


def ramp_parameter_set(name: str) -> list[torch.nn.Parameter]:
    """Parameter set ``name``'s shapes (the model built on the meta device: nothing drawn or
    allocated), each filled with a fixed ramp and given a ramp gradient 500 times smaller:
    where the values do not matter and drawing them costs (11 million random values take 20 s
    under Valgrind, :mod:`benchmarks.instructions`)."""
    with torch.device("meta"):
        shapes = [p.shape for p in _model(name, 0, torch.device("meta")).parameters()]
    params = []
    for shape in shapes:
        size = math.prod(shape)
        p = torch.nn.Parameter(torch.linspace(-0.05, 0.05, size).reshape(shape))
        p.grad = torch.linspace(1e-4, -1e-4, size).reshape(shape)
        params.append(p)
    return params


def _keep_gradients():
    """A closure for wrappers that need one: the synthetic gradients stay as they are."""
    return None


def _random_batch(name: str, batch_size: int, seed: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed random batch for parameter set ``name``'s model."""
    _, classes, shape = PARAMETER_SETS[name]
    generator = torch.Generator().manual_seed(seed + 2)
    x = torch.randn((batch_size, *shape), generator=generator).to(device)
    y = torch.randint(0, classes, (batch_size,), generator=generator).to(device)
    return x, y


def _batch_closure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   optimizer: Any) -> Callable[[], torch.Tensor]:
    """Forward and backward of ``model`` on the batch ``(x, y)``, as a step closure."""
    model.train()

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


@dataclass
class StepBench:
    """A built method over a parameter set. Stepped on the synthetic gradients alone (the
    update's own cost), or with ``batch_size`` set, as whole training steps on a random batch
    (forward, backward and update). On CUDA, :meth:`steps` waits for the device at the end, so
    a timed call covers the work it queued."""

    optimizer: Any
    schedules: Any  # plp_bench.methods.schedules.ScheduleRunner
    params: list[torch.nn.Parameter]
    closure: Callable[[], Any]
    step_count: int = 0
    device: torch.device = torch.device("cpu")
    model: torch.nn.Module | None = None  # whole training steps: the model and its batch
    batch: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def build(cls, method: Any, parameters: str, *, batch_size: int | None = None,
              seed: int = 0, total_steps: int = 10_000,
              device: str | torch.device = "cpu",
              params: list[torch.nn.Parameter] | None = None) -> StepBench:
        """``method`` (a ``MethodConfig``) over parameter set ``parameters``, with synthetic
        gradients, or with ``batch_size`` as whole training steps on a random batch.
        ``params``: the parameters, with their gradients, to use instead of the seeded set
        (synthetic gradients only)."""
        if params is not None and batch_size is not None:
            raise ValueError("params replaces the synthetic set; whole training steps build "
                             "their model's own")
        with harness():
            ScheduleRunner = interface_name("plp_bench.methods.schedules", "ScheduleRunner")

            from plp_bench.methods import build_method
        device = torch.device(device)
        model = batch = None
        if batch_size is None:
            params = parameter_set(parameters, seed, device) if params is None else params
        else:
            model = _model(parameters, seed, device)
            params = list(model.parameters())
            batch = _random_batch(parameters, batch_size, seed, device)
        built = build_method(method, params, tuned={})
        closure = (_keep_gradients if batch is None
                   else _batch_closure(model, *batch, built.optimizer))
        return cls(built.optimizer, ScheduleRunner(built.optimizer, built.schedules, total_steps),
                   params, closure, device=device, model=model, batch=batch)

    @classmethod
    def on_workload(cls, method: Any, workload: Any, dataset: Any, *,
                    seed: int = 0) -> StepBench:
        """``method`` training ``workload``'s model as the harness builds it (the workload's
        tuned hyperparameters and schedules), whole steps on the first batch of ``dataset``:
        what one training step of the method costs on that workload."""
        with harness():
            ScheduleRunner = interface_name("plp_bench.methods.schedules", "ScheduleRunner")

            from plp_bench import models
            from plp_bench.methods import build_method
        torch.manual_seed(seed)
        model = models.create(workload.model, num_classes=dataset.num_classes,
                              input_shape=dataset.input_shape, **workload.model_options)
        params = list(model.parameters())
        built = build_method(method, params, tuned=workload.optimizers)
        first = slice(0, workload.batch_size)
        batch = (dataset.x_train[first], dataset.y_train[first])
        closure = _batch_closure(model, *batch, built.optimizer)
        return cls(built.optimizer, ScheduleRunner(built.optimizer, built.schedules, 10_000),
                   params, closure, model=model, batch=batch)

    def fresh_copy(self) -> StepBench:
        """The same bench, at the same step, on newly allocated memory: parameters, gradients,
        optimizer state, schedules and model copied together (one ``deepcopy``, so what
        shared a tensor still does). What a timing sample runs on (see
        :mod:`benchmarks.sampling`: where tensors lie moves a memory-bound step's time)."""
        optimizer, schedules, params, model = copy.deepcopy(
            (self.optimizer, self.schedules, self.params, self.model))
        if self.batch is None:
            for new, old in zip(params, self.params, strict=True):
                # a Parameter's deepcopy leaves its gradient behind
                new.grad = None if old.grad is None else old.grad.clone()
            closure = _keep_gradients
        else:
            closure = _batch_closure(model, *self.batch, optimizer)
        return replace(self, optimizer=optimizer, schedules=schedules, params=params,
                       closure=closure, model=model)

    def past_jumps(self) -> None:
        """Step past every weight jump scheduled within ``JUMP_HORIZON`` steps, and the weight
        copies those jumps read, so that the steps timed next are a jump method's steady
        state."""
        jumps = jump_wrapper(self.optimizer)
        if jumps is None:
            return
        reachable = [step for step in jumps.schedule.jump_steps if step <= JUMP_HORIZON]
        if reachable and max(reachable) >= self.step_count:
            self.steps(max(reachable) + 1 - self.step_count)

    def steps(self, count: int = STEPS_PER_CALL) -> None:
        for _ in range(count):
            self.schedules.apply(self.step_count)
            self.optimizer.step(self.closure)
            self.step_count += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def jump_wrapper(optimizer: Any) -> Any:
    """The weight-jump wrapper (``plp_baselines.introspection.jumps.WeightJumps``) in a method's
    chain of wrapped optimizers, or ``None``: found by its jump schedule, so that a method
    without jumps needs nothing of the introspection package."""
    for _ in range(8):  # wrappers nest a few deep
        if hasattr(getattr(optimizer, "schedule", None), "jump_steps"):
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None)
        if optimizer is None:
            return None
    return None


def fresh_pair(work: StepBench, reference: StepBench,
               steps: int = STEPS_PER_CALL) -> Callable[[], tuple[Callable, Callable]]:
    """For each timing sample, fresh copies of two benches (:meth:`StepBench.fresh_copy`) as a
    pair of calls of ``steps`` steps each: what :func:`benchmarks.sampling.interleaved_ratios`
    takes."""

    def make() -> tuple[Callable, Callable]:
        work_copy, reference_copy = work.fresh_copy(), reference.fresh_copy()
        return (lambda: work_copy.steps(steps)), (lambda: reference_copy.steps(steps))

    return make


def named_method(name: str) -> Any:
    """The installed commit's method ``name`` (``NotImplementedError`` where it has none)."""
    with harness():
        from plp_bench.methods import get_method, list_methods
    if name not in list_methods():
        raise NotImplementedError(f"this commit has no method {name!r}")
    return get_method(name)


def bare(method: Any) -> Any:
    """``method``'s base optimizer alone, with its hyperparameters: the reference a method's
    cost is measured against."""
    with harness():
        from plp_bench.methods import MethodConfig
    return MethodConfig(name=f"bare-{method.optimizer}", optimizer=method.optimizer,
                        hyperparameters=method.hyperparameters)


def held_bytes(optimizer: Any, params: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct tensors an optimizer (and every optimizer it wraps) holds,
    parameters and gradients excluded: its state, buffers and scratch copies."""
    excluded = set()
    for p in params:
        excluded.add(p.untyped_storage().data_ptr())
        if p.grad is not None:
            excluded.add(p.grad.untyped_storage().data_ptr())
    seen: dict[int, int] = {}
    visited: set[int] = set()

    def walk(obj: Any) -> None:
        if id(obj) in visited:
            return
        visited.add(id(obj))
        if torch.is_tensor(obj):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in excluded:
                seen[storage.data_ptr()] = storage.nbytes()
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value)
        elif isinstance(obj, (list, tuple, set)):
            for value in obj:
                walk(value)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            for value in vars(obj).values():
                walk(value)

    walk(optimizer)
    return sum(seen.values())


def parameter_bytes(params: Iterable[torch.Tensor]) -> int:
    return sum(p.numel() * p.element_size() for p in params)


# A jump's cost (the jumps suite, and its count in benchmarks.instructions): the step whose
# weight history a jump reads, and the most groups of whole chunks a jump is timed in
JUMP_STEP = 5000
GROUPS = 16


@dataclass
class JumpParts:
    """A jump method's jump over a parameter set, and a step of its bare optimizer."""

    fresh_jump: Callable[[], Callable[[], Any]]  # the whole jump, on fresh copies
    fresh_blocks: Callable[[], list[Callable[[], Any]]]  # the jump in groups of whole chunks
    groups: int
    reference: StepBench  # the bare optimizer, stepped once


def jump_parts(parameters: str, method: str,
               params: list[torch.nn.Parameter] | None = None) -> JumpParts:
    """The installed package's jump (``predict_flat`` with the method's predictor and chunk
    size) over parameter set ``parameters`` (or ``params``), on four columns of weight
    history drifting from the set's weights, and the bare optimizer over the same set."""
    with harness():
        history_steps = interface_name("plp_baselines.introspection.jumps", "history_steps")
        predict_flat = interface_name("plp_baselines.introspection.jumps", "predict_flat")
        from plp_bench.methods import build_method
    config = named_method(method)
    weights = parameter_set(parameters) if params is None else params
    jumps = jump_wrapper(build_method(config, weights, tuned={}).optimizer)
    flat = torch.cat([p.detach().reshape(-1) for p in weights])
    generator = torch.Generator().manual_seed(0)
    drift = torch.randn(flat.shape, generator=generator) * 1e-3
    columns = [flat + k * drift for k in (0.0, 0.4, 0.7, 1.0)]
    steps = history_steps(JUMP_STEP)

    def fresh_jump():
        copies = [column.clone() for column in columns]
        return lambda: predict_flat(jumps.predictor, copies, steps, jumps.chunk_size)

    chunk = jumps.chunk_size
    chunks = -(-flat.numel() // chunk)
    per_group = -(-chunks // min(GROUPS, chunks))
    rows = per_group * chunk

    def fresh_blocks():
        """The jump in groups of whole chunks on fresh copies: ``predict_flat`` on each
        group's rows, as the jump runs them."""
        copies = [column.clone() for column in columns]
        return [(lambda part=slice(start, start + rows): predict_flat(
                    jumps.predictor, [c[part] for c in copies], steps, chunk))
                for start in range(0, flat.numel(), rows)]

    # its own seeded set, or the ramp set given (that the jump only reads)
    reference = StepBench.build(bare(config), parameters, params=params)
    reference.steps(1)
    return JumpParts(fresh_jump, fresh_blocks, -(-chunks // per_group), reference)
