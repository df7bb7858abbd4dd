"""What a method's components may know about the run they are built for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildContext:
    """The run's step budget, the workload's jump steps (weight-jump methods) and a seed
    stream of the run for a component's own randomness."""

    total_steps: int
    jump_steps: tuple[int, ...] = ()
    seed: int = 0


# what components are built with when a config is checked, before any run exists
PROBE_CONTEXT = BuildContext(total_steps=100)
