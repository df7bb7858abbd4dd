"""Scoring a model's logits: mean cross-entropy, top-1 and top-k error (k = min(5, classes)).

The PLP paper reports top-1 and top-5 error; AlgoPerf's time to target is read off the
validation error. The sums are accumulated on the device and read by the host once per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .protocol import stream_seed


@dataclass
class Scores:
    loss: float
    error: float
    top5_error: float


def _counts(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Summed cross-entropy (float64), top-1 and top-k misses (k = min(5, classes))."""
    loss = F.cross_entropy(logits.float(), target, reduction="sum").double()
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return loss, (top[:, 0] != target).sum(), (~(top == target[:, None]).any(dim=1)).sum()


@torch.no_grad()
def score_logits(logits: torch.Tensor, y: torch.Tensor) -> Scores:
    """Mean cross-entropy, top-1 and top-k error of given logits."""
    loss, wrong, wrong5 = _counts(logits, y)
    n = len(y)
    return Scores(loss.item() / n, wrong.item() / n, wrong5.item() / n)


def training_rows_scored(rows: int, seed: int, most: int) -> torch.Tensor | None:
    """The training rows a run scores at each evaluation: ``None`` (all of them) when there
    are at most ``most``, else ``most`` row indices drawn once without replacement from the
    run's ``"train-scoring"`` seed stream, in increasing order (so the score is the same
    whatever the batch size)."""
    if rows <= most:
        return None
    generator = torch.Generator().manual_seed(stream_seed(seed, "train-scoring"))
    return torch.randperm(rows, generator=generator)[:most].sort().values


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Scores:
    """Mean cross-entropy, top-1 and top-k error (k = min(5, classes)) over ``(x, y)``, in
    batches of ``batch_size``; ``forward`` (default: ``model``) computes the logits of a batch.
    The sums stay on the device; the host reads them once at the end."""
    model.eval()
    forward = model if forward is None else forward
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    wrong = torch.zeros((), dtype=torch.int64, device=x.device)
    wrong5 = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(y), batch_size):
        counts = _counts(forward(x[start:start + batch_size]), y[start:start + batch_size])
        total_loss += counts[0]
        wrong += counts[1]
        wrong5 += counts[2]
    n = len(y)
    return Scores(total_loss.item() / n, wrong.item() / n, wrong5.item() / n)
