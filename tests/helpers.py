"""Small workloads for fast tests, and random YAML-like values for property tests."""

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
