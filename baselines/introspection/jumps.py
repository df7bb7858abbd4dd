"""Weight jumps at chosen steps: the introspection network's (Sinha et al., ICLR 2017,
section 3.2) and the paper's alternatives, as a wrapper over any ``torch.optim`` optimizer or
as a step post-hook on a list of parameters.

At each jump step ``t`` every weight ``w`` is replaced by ``predict([w_0, w_a, w_b, w_t])``
with ``a = round(0.4 t)`` and ``b = round(0.7 t)`` (halves round up). Step counts are
optimizer steps taken since the wrapper was created; the weights at a step are those after the
update of that step *and* after any jump made at it, i.e. the weights training goes on from.

Memory: the jump steps are known in advance, so the weights are copied at exactly the steps
some later jump reads (0, and ``a`` and ``b`` of every jump) and each copy is freed once the
last jump that reads it is done. No history is stored beyond that: ``snapshot_bytes`` is what
is held now, ``peak_snapshot_bytes`` the most held at once (e.g. jumps at 3000, 4000, 5000
hold at most 6 copies: steps 0, 1200, 1600, 2000, 2100, 2800).

The prediction is batched: all parameters of one dtype and device are flattened into one
vector and the predictor runs over ``(chunk, 4)`` blocks of it (``chunk_size`` rows at a
time, bounding the working memory of the network's hidden layer), then the result is copied
back into the parameters.

Optimizer state (momentum buffers, Adam moments) is left as it is by default, as the paper
describes only the weight update: after a jump, momentum keeps pushing in the direction it
had. ``reset_state=True`` clears the wrapped optimizer's per-parameter state at each jump, so
it restarts from the new weights as from an initialisation.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, overload

import torch

from ..optimizer_wrapper import OptimizerWrapper
from .net import HISTORY_FRACTIONS, IntrospectionNet, load_net
from .predictors import GaussianNoise, IntrospectionPredictor, PolynomialFit, Predictor

# rows a block: the hidden layer of a block of 2**16 rows (10.5 MB) stays under the 32 MiB
# above which glibc maps every allocation afresh, so a jump reuses its working memory
# instead of faulting it in page by page (a ResNet18 jump on the CPU: 0.27 s against 1.19 s
# at 2**18 rows)
DEFAULT_CHUNK = 1 << 16


def history_steps(t: int) -> tuple[int, int, int, int]:
    """The steps whose weights the jump at ``t`` reads: 0, round(0.4 t), round(0.7 t), t."""
    steps = []
    for fraction in HISTORY_FRACTIONS:
        f = Fraction(fraction).limit_denominator(1000)
        steps.append((2 * f.numerator * t + f.denominator) // (2 * f.denominator))
    return tuple(steps)


def check_jump_steps(jump_steps: Iterable[int]) -> tuple[int, ...]:
    steps = list(jump_steps)
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"jump_steps must be positive integers, got {s!r}")
    if len(set(steps)) != len(steps):
        raise ValueError(f"jump_steps lists a step twice: {steps}")
    if not steps:
        raise ValueError("jump_steps is empty: give at least one step to jump at")
    return tuple(sorted(steps))


def predict_flat(predictor: Predictor, columns: list[torch.Tensor], positions: tuple[int, ...],
                 chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """New values for flat weight vectors whose values at ``positions`` are ``columns``: the
    predictor runs on ``(chunk_size, 4)`` blocks, so working memory stays bounded."""
    new = torch.empty_like(columns[-1])
    for start in range(0, new.numel(), chunk_size):
        stop = start + chunk_size
        history = torch.stack([c[start:stop] for c in columns], dim=1)
        new[start:stop] = predictor.predict(history, positions)
    return new


class JumpSchedule:
    """Which weights to copy when, for a fixed set of jump steps."""

    def __init__(self, jump_steps: Iterable[int]):
        self.jump_steps = check_jump_steps(jump_steps)
        # a copy at step s is needed by every later jump reading s; at the jump itself the
        # current weights are read, so s == t needs no copy
        self.readers: dict[int, list[int]] = defaultdict(list)
        for t in self.jump_steps:
            for s in history_steps(t)[:3]:
                if s < t:
                    self.readers[s].append(t)
        self.last_reader = {s: max(ts) for s, ts in self.readers.items()}

    def copies_at(self, step: int) -> bool:
        return step in self.readers

    def freed_after(self, jump: int) -> list[int]:
        return [s for s, last in self.last_reader.items() if last == jump]


@dataclass
class JumpRecord:
    step: int
    seconds: float
    mean_abs_change: float


class _Unstepped(torch.optim.Optimizer):
    """The optimizer under jumps used as a step post-hook on bare parameters: it holds them
    and updates nothing (the user's own optimizer does); a closure still runs."""

    def __init__(self, params: Iterable[torch.Tensor]):
        params = list(params)
        if not params or not all(isinstance(p, torch.Tensor) for p in params):
            raise ValueError("expected an optimizer or a non-empty iterable of tensors")
        super().__init__(params, {})

    def step(self, closure=None):
        if closure is not None:
            with torch.enable_grad():
                return closure()
        return None


class WeightJumps(OptimizerWrapper):
    r"""Weight jumps (Sinha et al., "Introspection: Accelerating Neural Network Training by
    Learning Weight Evolution", ICLR 2017, section 3.2): training runs with the wrapped
    optimizer; at each jump step :math:`t` every weight jumps to

    .. math::

        w \leftarrow P(w_0, w_{\lfloor 0.4 t \rceil}, w_{\lfloor 0.7 t \rceil}, w_t)

    where :math:`w_k` is the weight after step :math:`k` and :math:`P` the ``predictor``: the
    introspection network :math:`I` (:func:`IntrospectionJumps`), the paper's least-squares
    linear or quadratic fit evaluated at ``ratio * t`` (:func:`FitJumps`), or Gaussian noise
    (:func:`NoiseJumps`).

    Args:
        optimizer_or_params: an optimizer (the wrapper steps it) or an iterable of parameters
            (then call :meth:`step` after each update of your own optimizer, or
            :meth:`attach` it as a step post-hook).
        jump_steps: the steps after which to jump (the paper's MNIST_1: 3000, 4000, 5000).
        predictor: :math:`P` (:mod:`.predictors`).
        reset_state: clear the wrapped optimizer's per-parameter state at each jump (beyond
            the paper, which keeps it; default off).
        chunk_size: rows of weights predicted at once (bounds the working memory).

    How it differs from the paper: only the weights at the steps a later jump reads are
    copied, and freed after their last jump (the paper keeps the history); every weight
    jumps, in one batched pass per dtype and device. Steps a ``GradScaler`` skips are not
    counted. See the module for the step arithmetic.
    """

    def __init__(self, optimizer_or_params: Any, *, jump_steps: Iterable[int],
                 predictor: Predictor, reset_state: bool = False,
                 chunk_size: int = DEFAULT_CHUNK) -> None:
        if not isinstance(optimizer_or_params, torch.optim.Optimizer):
            optimizer_or_params = _Unstepped(optimizer_or_params)
        super().__init__(optimizer_or_params)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if reset_state and isinstance(self.optimizer, _Unstepped):
            raise ValueError("reset_state needs the optimizer: wrap it rather than its "
                             "parameters")
        self.schedule = JumpSchedule(jump_steps)
        self.predictor = predictor
        self.reset_state = reset_state
        self.chunk_size = chunk_size
        self.steps_taken = 0
        self.jumps: list[JumpRecord] = []
        self.snapshots: dict[int, list[torch.Tensor]] = {}
        self.peak_snapshot_bytes = 0
        self._snapshot(0)

    # -- the parameters, flattened per (device, dtype) ---------------------------------------
    def _blocks(self) -> list[list[torch.Tensor]]:
        groups: dict[tuple, list[torch.Tensor]] = {}
        for p in self.parameters():
            groups.setdefault((p.device, p.dtype), []).append(p)
        return list(groups.values())

    @torch.no_grad()
    def _flat(self) -> list[torch.Tensor]:
        return [torch.cat([p.detach().reshape(-1) for p in block]) for block in self._blocks()]

    @property
    def snapshot_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for ts in self.snapshots.values() for t in ts)

    def _snapshot(self, step: int) -> None:
        if self.schedule.copies_at(step) and step not in self.snapshots:
            self.snapshots[step] = self._flat()
            self.peak_snapshot_bytes = max(self.peak_snapshot_bytes, self.snapshot_bytes)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise ValueError("weight jumps keep copies of the weights from step 0 on: parameters "
                         "cannot be added after the jumps are set up")

    # -- stepping -------------------------------------------------------------------------
    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """The wrapped optimizer's step, then :meth:`after_step`."""
        loss = self.optimizer.step(closure)
        self.after_step()
        return loss

    def _settings_repr(self) -> str:
        predictor = ", ".join(f"{k}={v}" for k, v in self.predictor.describe().items()
                              if not isinstance(v, (dict, list)))
        return (f"predictor=({predictor}), jump_steps={list(self.schedule.jump_steps)}, "
                f"reset_state={self.reset_state}, steps_taken={self.steps_taken}, "
                f"jumps_made={len(self.jumps)}")

    def attach(self, optimizer: torch.optim.Optimizer):
        """Run :meth:`after_step` after every ``optimizer.step()`` (a step post-hook); returns
        the hook's handle (``handle.remove()`` detaches it)."""
        return optimizer.register_step_post_hook(lambda *_: self.after_step())

    @torch.no_grad()
    def after_step(self) -> None:
        """Count one optimizer step; jump if it is a jump step; copy the weights if a later
        jump reads them."""
        self.steps_taken += 1
        step = self.steps_taken
        if step in self.schedule.jump_steps:
            self._jump(step)
        self._snapshot(step)

    @torch.no_grad()
    def _jump(self, t: int) -> None:
        blocks = self._blocks()
        device = blocks[0][0].device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        positions = history_steps(t)
        current = self._flat()
        past = [self.snapshots[s] if s < t else current for s in positions[:3]]
        change, count = 0.0, 0
        for b, block in enumerate(blocks):
            columns = [past[0][b], past[1][b], past[2][b], current[b]]
            new = predict_flat(self.predictor, columns, positions, self.chunk_size)
            change += (new - current[b]).abs().sum().item()
            count += new.numel()
            views = [v.view_as(p) for v, p in zip(new.split([p.numel() for p in block]), block,
                                                  strict=True)]
            torch._foreach_copy_(block, views)
        if self.reset_state:
            inner = self.innermost()
            for p in self.parameters():
                inner.state.pop(p, None)
        for s in self.schedule.freed_after(t):
            self.snapshots.pop(s, None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.jumps.append(JumpRecord(t, time.perf_counter() - started, change / max(count, 1)))

    # -- records and checkpoints ------------------------------------------------------------
    def run_details(self) -> dict[str, Any]:
        """What a benchmark record keeps about the jumps made."""
        parameter_bytes = sum(p.numel() * p.element_size() for p in self.parameters())
        return {"predictor": self.predictor.describe(),
                "jump_steps": list(self.schedule.jump_steps),
                "jumps": [asdict(j) for j in self.jumps],
                "peak_snapshot_bytes": self.peak_snapshot_bytes,
                "parameter_bytes": parameter_bytes}

    def _extra_state(self) -> dict[str, Any]:
        extra = {"steps_taken": self.steps_taken,
                 "snapshots": {s: [t.clone() for t in ts] for s, ts in self.snapshots.items()},
                 "jumps": [asdict(j) for j in self.jumps]}
        generator = getattr(self.predictor, "generator", None)
        if generator is not None:
            extra["generator"] = generator.get_state()
        return extra

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.steps_taken = int(extra["steps_taken"])
        like = self._flat()
        self.snapshots = {int(s): [t.to(device=x.device, dtype=x.dtype, copy=True)
                                   for t, x in zip(ts, like, strict=True)]
                          for s, ts in extra["snapshots"].items()}
        self.jumps = [JumpRecord(**j) for j in extra["jumps"]]
        if "generator" in extra and isinstance(self.predictor, GaussianNoise):
            device = like[0].device
            self.predictor.generator = torch.Generator(device)
            self.predictor.generator.set_state(extra["generator"])


def IntrospectionJumps(optimizer_or_params: Any, *, jump_steps: Iterable[int],
                       net: IntrospectionNet | None = None, reset_state: bool = False,
                       chunk_size: int = DEFAULT_CHUNK) -> WeightJumps:
    """:class:`WeightJumps` whose predictor is the introspection network :math:`I` (Sinha et
    al., ICLR 2017, section 3.2; default: the shipped, ReLU one, see :mod:`.net`): at each
    jump step :math:`t`, :math:`w \\leftarrow I(w_0, w_{0.4t}, w_{0.7t}, w_t)`, a prediction of
    the weight at step :math:`2t` (the jump ratio :math:`I` was trained for). The other
    arguments are :class:`WeightJumps`'s."""
    return WeightJumps(optimizer_or_params, jump_steps=jump_steps,
                       predictor=IntrospectionPredictor(net if net is not None else load_net()),
                       reset_state=reset_state, chunk_size=chunk_size)


def FitJumps(optimizer_or_params: Any, *, jump_steps: Iterable[int], degree: int,
             ratio: float, reset_state: bool = False,
             chunk_size: int = DEFAULT_CHUNK) -> WeightJumps:
    """:class:`WeightJumps` to the least-squares polynomial of ``degree`` (1: the paper's
    linear fit, 2: its quadratic fit) through the four points :math:`(k / t, w_k)`,
    :math:`k \\in \\{0, 0.4t, 0.7t, t\\}`, evaluated at ``ratio`` (> 1; the paper: 1.1 and
    1.075 linear, 1.25 to 1.4 quadratic). The other arguments are :class:`WeightJumps`'s."""
    return WeightJumps(optimizer_or_params, jump_steps=jump_steps,
                       predictor=PolynomialFit(degree, ratio), reset_state=reset_state,
                       chunk_size=chunk_size)


def NoiseJumps(optimizer_or_params: Any, *, jump_steps: Iterable[int], std: float,
               seed: int = 0, reset_state: bool = False,
               chunk_size: int = DEFAULT_CHUNK) -> WeightJumps:
    """:class:`WeightJumps` that add zero-mean Gaussian noise of standard deviation ``std``
    to every weight, :math:`w \\leftarrow w_t + \\mathcal{N}(0, \\sigma^2)` (the paper's noise
    baseline), drawn from a generator seeded with ``seed``. The other arguments are
    :class:`WeightJumps`'s."""
    return WeightJumps(optimizer_or_params, jump_steps=jump_steps,
                       predictor=GaussianNoise(std, seed=seed), reset_state=reset_state,
                       chunk_size=chunk_size)


