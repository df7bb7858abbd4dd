"""Training the introspection network (Sinha et al., ICLR 2017, section 4.1): Adam (learning
rate 5e-4, multiplied by ``decay`` every ``decay_every`` steps), mini-batches of 20 examples,
L1 loss, about 30k steps. Errors are reported as the paper reports them, in the network's
scaled units: the mean absolute error times ``scale`` (1000), i.e. in thousandths of a weight
unit (the paper: 3.1 on training and 3.4 on validation examples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .histories import Examples
from .net import IntrospectionNet


@dataclass(frozen=True)
class FitSettings:
    steps: int = 30000
    batch_size: int = 20
    lr: float = 5e-4
    decay_every: int = 8000
    decay: float = 0.5  # the paper decays every 8k steps without naming the factor
    seed: int = 0


@torch.no_grad()
def l1_error(predicted: torch.Tensor, targets: torch.Tensor, scale: float = 1000.0) -> float:
    """Mean absolute error in the paper's units (weight units times ``scale``)."""
    return float((predicted.double() - targets.double()).abs().mean() * scale)


@torch.no_grad()
def net_error(net: IntrospectionNet, examples: Examples, batch: int = 1 << 16) -> float:
    predicted = torch.cat([net(examples.inputs[i:i + batch])
                           for i in range(0, len(examples), batch)])
    return l1_error(predicted, examples.targets, net.scale)


def fit(net: IntrospectionNet, examples: Examples, settings: FitSettings = FitSettings(),
        progress: Callable[[int, float], None] | None = None) -> list[tuple[int, float]]:
    """Train ``net`` in place; returns ``(step, mean training loss in paper units)`` every
    1000 steps. ``progress(step, loss)`` is called as it goes."""
    if settings.steps < 1 or settings.batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {settings}")
    torch.manual_seed(settings.seed)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, settings.decay_every, settings.decay)
    generator = torch.Generator().manual_seed(settings.seed)
    n = len(examples)
    order = torch.randperm(n, generator=generator)
    position = 0
    curve, running, counted = [], 0.0, 0
    for step in range(1, settings.steps + 1):
        if position + settings.batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        index = order[position:position + settings.batch_size]
        position += settings.batch_size
        loss = F.l1_loss(net(examples.inputs[index]), examples.targets[index]) * net.scale
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running += loss.item()
        counted += 1
        if step % 1000 == 0 or step == settings.steps:
            curve.append((step, running / counted))
            running, counted = 0.0, 0
        if progress is not None:
            progress(step, loss.item())
    net.eval()
    return curve
