"""Small workloads for fast tests."""

from plp_bench import workloads


def tiny(name="breast_cancer-mlp", **changes):
    """A shipped workload cut down to a few steps (validated like any override)."""
    body = {"steps": 24, "eval_every": 4, **changes}
    return workloads.override(workloads.get(name), body)
