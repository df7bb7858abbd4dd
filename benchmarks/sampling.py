"""Timings the machine's load cancels out of, returned to asv with their samples.

Six rules, each measured on the 2-core CPU machine before it was chosen (see the README,
"Comparing commits"):

* **One thread.** Every suite runs torch, and the OpenBLAS under NumPy and SciPy, on one
  thread (:func:`prepare_timing`, called by every timed suite's setup). Two threads on two
  cores wait for each other whenever a neighbour holds one core.
* **The thread's CPU time.** On the CPU a timing reads the clock of the timing thread's own
  CPU time (``time.thread_time``: user and system time, page faults included), not the wall
  clock (:func:`clock_for`). With one thread doing all the work, that is the work's cost; the
  time the thread waited for a core a neighbour held is not in it. Measured with both cores
  kept busy by two other processes: ResNet18 update ratios spread over 0.026-0.028 of their
  median (interquartile) on this clock against 0.32-0.62 on the wall clock. Where the host
  waits for a device (CUDA), the wait is the cost, and the wall clock is read.
* **Freed memory stays in the process.** glibc hands large blocks (over 128 KiB) back to the
  kernel when they are freed, so an update that makes temporaries faults in fresh zeroed pages
  on every call: 55,000 page faults in every three XGrad-Adam steps on ResNet18, 40% of its
  update time, and its ratio to Adam's ranged over 1.42-2.91 in eight samples (1.88-2.02 with
  the blocks kept).
  :func:`retain_freed_memory` keeps freed blocks in the heap, whatever their size (glibc maps
  a block of 32 MiB or more on its own and unmaps it when freed, whatever the mmap
  threshold: a weight jump's 42 MB working block on ResNet18 then faulted in 190,000 to
  440,000 pages a jump, two levels from one sample to the next, and the jump took 0.83-1.36 s
  against 0.40-0.50 s with its blocks kept), so an update or a jump is timed as it runs in a
  long training process once the heap has grown: the method's arithmetic and memory traffic,
  not the kernel's page zeroing. Between two samples the free pages go back to the kernel
  (:func:`release_freed_memory`), so that
  the next sample's fresh copy lands on new pages (the rule below): kept for the whole
  process, every sample reused one placement, and the medians of ResNet18's PLP ratio in
  four processes spread over 1.09-1.30; released between samples, over 1.17-1.23.
* **Paired, interleaved timings.** A cost is the ratio of the measured call to a reference call
  (the bare optimizer, the hand-written loop, SGD's step on the same model), the two timed call
  by call in alternation in one process. A slower machine or a frequency change moves both
  sides of the ratio together. Within a sample each side is summarised by its median over the
  alternations (robust to the odd disturbed call); the sample is the ratio of the two medians.
  A call longer than the host's slow spells (a weight jump on ResNet18, about a second) is cut
  into blocks, each followed by a reference call (:func:`blockwise_ratios`).
* **Every sample on fresh memory.** Where the tensors lie decides a memory-bound update's
  speed: one pair of ResNet18 optimizers, built once, kept its PLP/SGD ratio within 1% for a
  minute (1.24 to 1.27), while each new build settled on its own level (1.10 to 1.34 over six
  builds). Timing one build for every sample hides that spread from the test and moves the
  median from one run to the next. So every sample is timed on a fresh copy of the work
  (:func:`interleaved_ratios` and :func:`call_seconds` take a factory): the samples carry the
  spread of placements, their median averages over twelve of them, and the confidence
  interval says how well.
* **Rounds interleaved across commits.** Each timing is measured in two asv rounds, separate
  processes, and two commits compared are measured B A A B (:mod:`benchmarks.rounds`): a
  machine whose speed drifts over minutes drifts under both.

A ``track_`` benchmark that returns ``{"samples": [...], "number": 1}`` is stored by asv as a
timing result: asv keeps the median and a 99% confidence interval of it, and ``asv
compare``/``asv continuous`` call a change only when the samples of the two commits differ
(``asv._stats.is_different``) and the medians differ by more than ``--factor``. The same
samples feed ``plp-bench compare``'s own test (:mod:`plp_bench.report.comparison`).

The garbage collector is off while a sample is timed (as in :mod:`timeit`), so a collection
triggered by one side is not charged to it; it runs between samples, when the last copy is
dropped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# Samples per tracked timing in each of its asv rounds (benchmarks.rounds: two, so twelve in
# all), and calls per side within one sample. With 12 samples the 99% confidence interval of
# the median is the 2nd to 11th order statistic. Calls per side are as many as fit
# BUDGET_SECONDS, between MIN_CALLS and MAX_CALLS: the MLP's millisecond steps get 40, a
# ResNet18's 50 ms calls 3. Why 40 and not fewer: the MLP's training-step ratios (plp-adam,
# xgrad-sgd), twelve samples each beside a busy core, spread over 0.04-0.12 of their median
# (interquartile) at 7 calls a side and over 0.02-0.04 at 40, for a second more per point.
SAMPLES = 6
MIN_CALLS = 3
MAX_CALLS = 40
BUDGET_SECONDS = 1.5

Pair = tuple[Callable[[], Any], Callable[[], Any]]


# mallopt's parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def prepare_timing() -> None:
    """What every timed suite's setup does first: one thread, freed memory kept (see the
    module)."""
    one_thread()
    retain_freed_memory()


def _glibc_function(name: str) -> Any | None:
    """The C library's function ``name``, or None where the library is not glibc."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def retain_freed_memory() -> bool:
    """Keep freed blocks in the process's heap instead of returning them to the kernel
    (glibc's ``mallopt``: no block mapped on its own, no trimming, heap grown 64 MiB at a
    time). False where the C library is not glibc, which is left as it is."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1),
                (_M_TOP_PAD, 64 * 1024 * 1024))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def release_freed_memory() -> bool:
    """Hand the heap's free pages back to the kernel (glibc's ``malloc_trim(0)``, which also
    releases whole free pages inside the heap); False where the C library is not glibc."""
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def clock_for(device: str = "cpu") -> Callable[[], float]:
    """The clock a timing of work on ``device`` reads (see the module): the timing thread's
    CPU time on the CPU, the wall clock where the host waits for an accelerator."""
    return time.thread_time if str(device) == "cpu" else time.perf_counter


@contextmanager
def package_clock_reads(clock: Callable[[], float]) -> Iterator[None]:
    """While inside, ``time.perf_counter`` (the clock the installed package times its own
    phases with, e.g. the ODE comparison's times to each threshold) reads ``clock``. For the
    suites whose timings the package takes itself; the suites' own timings read
    :func:`clock_for`'s clock directly."""
    wall = time.perf_counter
    time.perf_counter = clock
    try:
        yield
    finally:
        time.perf_counter = wall


def one_thread() -> None:
    """Run torch's intra-op work, and the BLAS under NumPy and SciPy (the ODE solver's LU
    factorisations), on one thread (see the module).

    SciPy loads its own OpenBLAS only when ``scipy.linalg`` is first used, after this has run,
    with a thread per core: the environment variables hold it to one thread as it loads, and
    ``threadpoolctl`` limits the libraries already loaded. (Before this, its second thread
    spin-waited on a busy core: the ODE's LU solves took up to 10x their CPU time.)"""
    import torch

    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the BLAS keeps its threads
        return
    threadpool_limits(limits=1)


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


def seconds(call: Callable[[], Any], clock: Callable[[], float] | None = None) -> float:
    """Seconds of ``call()`` on ``clock`` (default: the thread's CPU time, :func:`clock_for`)."""
    clock = clock or clock_for()
    start = clock()
    call()
    return clock() - start


def calls_within(budget: float, samples: int, pair_seconds: float,
                 least: int = MIN_CALLS) -> int:
    """Calls per side that fit ``budget`` seconds for ``samples`` samples of pairs lasting
    ``pair_seconds``, between ``least`` and ``MAX_CALLS``."""
    fitting = int(budget / (samples * max(pair_seconds, 1e-9)))
    return max(least, min(MAX_CALLS, fitting))


def _fresh_samples(fresh: Callable[[], Any], samples: int,
                   measure: Callable[[Any], float]) -> list[float]:
    """``measure(fresh())`` for each of ``samples`` fresh copies, with the collector
    off while measuring and run between copies (a dropped copy may hold reference cycles),
    and the copy's pages handed back before the next is made (see the module)."""
    values = []
    with collector_off():
        for _ in range(samples):
            made = fresh()
            values.append(float(measure(made)))
            del made
            gc.collect(0)  # with the collector off, everything the copy made is still young
            release_freed_memory()
    return values


def interleaved_ratios(fresh_pair: Callable[[], Pair], *, samples: int = SAMPLES,
                       calls: int | None = None, budget: float = BUDGET_SECONDS,
                       least: int = MIN_CALLS, device: str = "cpu") -> list[float]:
    """``samples`` ratios time(work) / time(reference), each on a fresh ``(work, reference)
    = fresh_pair()``. Within a sample the two are called ``calls`` times each in alternation
    after one discarded pair (a first call on new memory pays its page faults; skipped where
    a side is called once, as a weight jump is: long enough to outweigh them). By default
    ``calls`` is as many as fit the budget, judged from the first sample's discarded pair, and
    at least ``least``. Each side is its median call, so that a call a neighbour disturbed does
    not move the sample. ``device``: where the work runs, which chooses the clock
    (:func:`clock_for`)."""
    clock = clock_for(device)

    def ratio(pair: Pair) -> float:
        nonlocal calls
        work, reference = pair
        if calls is None:
            calls = calls_within(budget, samples,
                                 seconds(work, clock) + seconds(reference, clock), least)
        elif calls > 1:  # a single call a side (a jump: a second) is long enough alone
            seconds(work, clock), seconds(reference, clock)
        worked, referenced = [], []
        for _ in range(calls):
            worked.append(seconds(work, clock))
            referenced.append(seconds(reference, clock))
        return statistics.median(worked) / statistics.median(referenced)

    return _fresh_samples(fresh_pair, samples, ratio)


def blockwise_ratios(fresh_blocks: Callable[[], tuple[Sequence[Callable[[], Any]],
                                                     Callable[[], Any]]], *,
                     samples: int = SAMPLES, budget: float = BUDGET_SECONDS,
                     least: int = 1, device: str = "cpu") -> list[float]:
    """``samples`` ratios time(work) / time(reference) for a long work cut into blocks,
    each on a fresh ``(blocks, reference) = fresh_blocks()``: the blocks are called in turn,
    each followed by one reference call, so that work and reference alternate every few
    milliseconds however long the whole work is. The ratio is the sum over blocks of each
    block's median call over the median of the reference calls that followed it: each block
    is measured in units of the reference timed beside it, so a spell that slows a few blocks
    slows their references too (ResNet18's jumps, one pass a sample, twelve samples beside a
    busy core: interquartile spread 0.031 and 0.050 of the median, against 0.054 and 0.062
    with every block over the median of all reference calls). The blocks are passed over as
    many times as fit the budget (judged from the first sample), at least ``least``.

    Why blocks: a call of a second or more (a weight jump on ResNet18) outlasts the spells
    in which the host's other guests slow this core (up to seconds), so one call of it
    against one reference call timed before or after it pairs two different speeds. Measured
    on ResNet18's Introspection jump timed whole against ten SGD steps: samples of one
    process at 72 and 170 steps. One reference call and one block are discarded first (page
    faults on new memory)."""
    clock = clock_for(device)
    passes: int | None = None

    def ratio(made: tuple[Sequence[Callable[[], Any]], Callable[[], Any]]) -> float:
        nonlocal passes
        blocks, reference = made
        seconds(reference, clock), seconds(blocks[0], clock)
        per_block: list[list[float]] = [[] for _ in blocks]
        beside: list[list[float]] = [[] for _ in blocks]  # the reference calls after each
        done = 0
        while passes is None or done < passes:
            for timed, referenced, block in zip(per_block, beside, blocks, strict=True):
                timed.append(seconds(block, clock))
                referenced.append(seconds(reference, clock))
            done += 1
            if passes is None:
                pass_seconds = sum(t[0] for t in per_block) + sum(r[0] for r in beside)
                passes = calls_within(budget, samples, pass_seconds, least)
        return sum(statistics.median(timed) / statistics.median(referenced)
                   for timed, referenced in zip(per_block, beside, strict=True))

    return _fresh_samples(fresh_blocks, samples, ratio)


def call_seconds(fresh_work: Callable[[], Callable[[], Any]], *, samples: int = SAMPLES,
                 budget: float = BUDGET_SECONDS, max_calls: int = 100,
                 device: str = "cpu") -> list[float]:
    """``samples`` times of one call at the host's full speed, on ``device``'s clock
    (:func:`clock_for`): each sample is one fresh
    ``work = fresh_work()``, all of them called in turn (round robin, after one discarded
    call each) as many rounds as fit ``budget`` (at least ``MIN_CALLS``, at most
    ``max_calls``), and a sample's value is the lower quartile of its calls.

    An absolute time has no reference to cancel the load against. Measured on the 2-core
    machine: a fifth of 24 ms windows ran 1.3x to 2.5x slower with no steal time and the
    thread on the CPU throughout (the host's other guests), in spells of up to seconds. Round
    robin spreads every sample's calls over the whole measurement, so a spell reaches all
    samples alike and only a part of each; the lower quartile then reads the calls it did
    not reach. (On the CPU the thread's clock already leaves out the time it waited for a
    core; the spells of a slower host remain.)"""
    clock = clock_for(device)
    with collector_off():
        works = [fresh_work() for _ in range(samples)]
        probe = min(seconds(work, clock) for work in works)  # discarded: first calls on new memory
        fitting = int(budget / (samples * max(probe, 1e-9)))
        rounds = max(MIN_CALLS, min(max_calls, fitting))
        calls: list[list[float]] = [[] for _ in works]
        for _ in range(rounds):
            for timed, work in zip(calls, works, strict=True):
                timed.append(seconds(work, clock))
    return [statistics.quantiles(timed, n=4, method="inclusive")[0] for timed in calls]


def repeated(measure: Callable[[], float], samples: int = SAMPLES) -> list[float]:
    """``samples`` values of ``measure()``, with the collector off."""
    with collector_off():
        return [float(measure()) for _ in range(samples)]
