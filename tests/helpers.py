"""Small workloads for fast tests, random YAML-like values for property tests, and what the
Ray tests look at: the records in a folder and the Ray workers running a run."""

import json
from pathlib import Path

from hypothesis import strategies as st

from plp_bench import workloads

# Any value a YAML file can hold: scalars (NaN included), lists and mappings of them.
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def tiny(name="breast_cancer-mlp", **changes):
    """A shipped workload cut down to a few steps (validated like any override)."""
    body = {"steps": 24, "eval_every": 4, **changes}
    return workloads.override(workloads.get(name), body)


class FakeTime:
    """A stand-in for the ``time`` module of the clocked code: every ``perf_counter()`` reading
    advances the fake clock by 1 ms, and ``advance(s)`` makes ``s`` seconds pass at once, so a
    test of what is on or off the clock counts instead of timing (the machine's load cannot
    change it)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.001
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def data_available(dataset: str) -> bool:
    """Whether the real files of ``dataset`` are in the data root (CI points it at them)."""
    from plp_bench import data

    try:
        data.check_available(dataset)
    except data.DataError:
        return False
    return True


def records(folder: Path) -> dict[Path, dict]:
    """The run records under ``folder``, by path."""
    return {p: json.loads(p.read_text()) for p in sorted(folder.rglob("seed-*.json"))}


def running_ray_tasks() -> list[int]:
    """PIDs of Ray worker processes executing a run (Ray titles them ``ray::run_on_worker``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::run_on_worker"):
                found.append(int(entry.name))
    return found
