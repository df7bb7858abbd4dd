"""The training clock: the seconds a run spends training, and nothing else (AlgoPerf's rule).

The training loop starts it at the beginning of each training segment and stops it before each
evaluation, so evaluations, the set-up and the finishing of the record are off the clock; steps
that compiled a graph have their compilation taken off it (:meth:`TrainingClock.exclude`). On
CUDA the device is synchronised when the clock starts and stops, so the work queued while it ran
is counted and nothing queued before it is; nothing else in a training step waits for the
device.
"""

from __future__ import annotations

import time

import torch


class TrainingClock:
    """Accumulates training time only. On CUDA the device is synchronised when the clock starts
    and stops, so the work queued while it ran is counted, and nothing queued before it is."""

    def __init__(self, device: torch.device):
        self.seconds = 0.0
        self._sync = torch.cuda.synchronize if device.type == "cuda" else None
        self._device = device
        self._started: float | None = None

    @property
    def running(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        if self._sync:
            self._sync(self._device)
        self._started = time.perf_counter()

    def stop(self) -> None:
        if self._sync:
            self._sync(self._device)
        self.seconds += time.perf_counter() - self._started
        self._started = None

    def exclude(self, seconds: float) -> None:
        """Take ``seconds`` that passed while the clock ran off it (e.g. compilation)."""
        self.seconds -= seconds

    def peek(self) -> float:
        """The seconds so far without synchronising (for progress displays: on CUDA it can
        run ahead of the device)."""
        if self._started is None:
            return self.seconds
        return self.seconds + time.perf_counter() - self._started
