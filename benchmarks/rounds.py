"""Timings measured in rounds, so that two commits compared are measured interleaved in time.

asv runs a benchmark whose ``rounds`` attribute is N in N rounds, each a separate process, and
appends each round's samples to the last. Across commits (``asv continuous``, or ``asv run
--interleave-rounds`` over several) it interleaves the rounds, reversing the order of the
commits in every other round: with two rounds two commits A and B are measured B A A B, so a
machine that drifts slowly (the 2-core CI machine's speed wandered by up to 14% over ten
minutes with no change in its load) drifts under both equally, and each commit's samples come
from two processes and two moments. ``.ci/run`` measures a commit and its parent in the same
pattern, one round per ``asv run``.

asv_runner reads ``rounds`` only on ``time_`` benchmarks; the suites' timings are ``track_``
values with samples (:mod:`benchmarks.sampling`), so :func:`honour_track_rounds` makes its
track benchmarks read the attribute too, where it is set (:data:`TIMING_ROUNDS` on every
timing; exact values run once). Outside asv (the tests) there is nothing to change.
"""

from __future__ import annotations

import re
from typing import Any

TIMING_ROUNDS = 2


def honour_track_rounds() -> bool:
    """Teach asv_runner's ``TrackBenchmark`` to carry a ``rounds`` attribute (found on the
    function, its class or module, like every other attribute) into the benchmark list asv
    schedules from; ``False`` where asv_runner is absent (nothing to teach: outside asv every
    benchmark runs once)."""
    try:
        from asv_runner.benchmarks._base import _get_first_attr
        from asv_runner.benchmarks.track import TrackBenchmark
    except ImportError:
        return False
    if getattr(TrackBenchmark, "_reads_rounds", False):
        return True
    original = TrackBenchmark.__init__

    def __init__(self: Any, name: str, func: Any, attr_sources: list) -> None:
        original(self, name, func, attr_sources)
        rounds = _get_first_attr(attr_sources, "rounds", None)
        if rounds is not None:
            self.rounds = int(rounds)

    TrackBenchmark.__init__ = __init__
    TrackBenchmark._reads_rounds = True
    return True


def timings_pattern(suites: str) -> str:
    """asv's ``-b`` pattern for the benchmarks of ``suites`` (a benchmark folder) that are
    measured in rounds: what a further round must run again (exact values need not)."""
    from asv_runner.discovery import disc_benchmarks

    names = sorted(b.name for b in disc_benchmarks(suites) if b.__dict__.get("rounds", 1) > 1)
    # asv matches a parameterised benchmark as "name(param, ...)"
    return "^(" + "|".join(re.escape(name) for name in names) + r")(\(|$)"
