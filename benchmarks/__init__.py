"""The asv suites (see the README, "Benchmarks (asv)")."""

from .rounds import honour_track_rounds

honour_track_rounds()
