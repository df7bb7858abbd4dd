"""Timings the machine's load cancels out of, returned to asv with their samples.

Three rules, each measured on the 2-core CPU machine before it was chosen (see the README,
"Comparing commits"):

* **One thread.** Every suite runs torch on one thread (:func:`one_thread`, applied when the
  suites are imported). Two intra-op threads on two cores wait for each other whenever a
  neighbour holds one core; one thread keeps the other core's load out of the timing.
* **Paired, interleaved timings.** A cost is the ratio of the measured call to a reference call
  (the bare optimizer, the hand-written loop, SGD's step on the same model), the two timed call
  by call in alternation in one process. A slower machine, a busy neighbour or a frequency
  change moves both sides of the ratio together. Within a sample each side is summarised by
  its median over the alternations (robust to the odd preempted call); the sample is the
  ratio of the two medians.
* **Samples, not one number.** A ``track_`` benchmark that returns ``{"samples": [...],
  "number": 1}`` is stored by asv as a timing result: asv keeps the median and a 99%
  confidence interval of it, and ``asv compare``/``asv continuous`` call a change only when
  the intervals of the two commits do not overlap (``asv._stats.is_different``) and the
  medians differ by more than ``--factor``. The same samples feed
  ``plp-bench compare``'s own test (:mod:`plp_bench.report.comparison`).

The garbage collector is off while a sample is timed (as in :mod:`timeit`), so a collection
triggered by one side is not charged to it.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# Samples per tracked timing, and calls per side within one sample. With 12 samples the 99%
# confidence interval of the median is the 2nd to 11th order statistic; the between-process
# spread of the median of 12 interleaved PLP/SGD update ratios (8 calls a side) was 1% (MLP)
# to 1.5% (ResNet18) quiet and 4% (ResNet18) with a busy second core. Calls per side are
# as many as fit BUDGET_SECONDS, between MIN_CALLS and MAX_CALLS: the MLP's sub-millisecond
# calls get 7, a ResNet18's 50 ms calls 3.
SAMPLES = 12
MIN_CALLS = 3
MAX_CALLS = 7
BUDGET_SECONDS = 3.0


def one_thread() -> None:
    """Run torch's intra-op work on one thread (see the module)."""
    import torch

    torch.set_num_threads(1)


def sampled(values: Sequence[float]) -> dict[str, Any]:
    """A ``track_`` value asv stores with its samples (see the module)."""
    samples = [float(v) for v in values]
    if not samples:
        raise ValueError("a sampled value needs at least one sample")
    return {"samples": samples, "number": 1}


def sample_values(value: Any) -> list[float]:
    """The samples of a value a ``track_`` benchmark returned (one sample if it is a plain
    number)."""
    if isinstance(value, dict):
        return [float(v) for v in value["samples"]]
    return [float(value)]


@contextmanager
def collector_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def seconds(call: Callable[[], Any]) -> float:
    """Wall seconds of ``call()``."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def calls_within(budget: float, samples: int, pair_seconds: float) -> int:
    """Calls per side that fit ``budget`` seconds for ``samples`` samples of pairs lasting
    ``pair_seconds``, between ``MIN_CALLS`` and ``MAX_CALLS``."""
    fitting = int(budget / (samples * max(pair_seconds, 1e-9)))
    return max(MIN_CALLS, min(MAX_CALLS, fitting))


def interleaved_ratios(work: Callable[[], Any], reference: Callable[[], Any], *,
                       samples: int = SAMPLES, calls: int | None = None,
                       budget: float = BUDGET_SECONDS) -> list[float]:
    """``samples`` ratios time(work) / time(reference). Within a sample the two are called
    ``calls`` times each in alternation (by default as many as fit the budget, from one
    discarded probing call of each); each side is its median call, so that a call a
    neighbour preempted does not move the sample."""
    ratios = []
    with collector_off():
        # one discarded pair first: a first call pays for allocations the others reuse
        probe = seconds(work) + seconds(reference)
        if calls is None:
            calls = calls_within(budget, samples, probe)
        for _ in range(samples):
            worked, referenced = [], []
            for _ in range(calls):
                worked.append(seconds(work))
                referenced.append(seconds(reference))
            ratios.append(statistics.median(worked) / statistics.median(referenced))
    return ratios


def repeated(measure: Callable[[], float], samples: int = SAMPLES) -> list[float]:
    """``samples`` values of ``measure()``, with the collector off."""
    with collector_off():
        return [float(measure()) for _ in range(samples)]
