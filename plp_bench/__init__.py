"""plp-bench: time and steps to a target accuracy for training-acceleration methods.

``run(workload, method, seed, device)`` trains once and returns a :class:`RunResult`;
``sweep(...)`` runs a resumable grid of them. See ``plp_bench.workloads`` and
``plp_bench.methods`` for the registries. These names are imported on first use, so importing
one module of the package imports only what that module needs.

Layers, from the bottom up. A module imports from its own layer and the layers below it, never
from one above (``tests/test_layers.py`` checks this list against every import, those inside
functions included, and that the imports form no circle):

1. foundations: config, registry, stats, verdicts, tables, profiles, environment, build_context
2. parts: data, models, execution, schedules, solvers, plp_momentum, plp, weight_jumps, results
3. definitions: option_schemas, methods, workloads
4. one run's protocol: run_protocol, scoring, training_clock
5. runs and measurements: training, linearized_run, throughput, introspection_training
6. the run entry: runner
7. many runs: runconfig, sweeps, ray_executor, rerun, ode_table, claim_registry, claim_runs
8. reading records: summary, figures, record_sources, asv_results, changes, claim_report, html_report
9. display: sweep_progress
10. the command line: commands, cli

``baselines`` (the methods PLP is compared with) sits below all of them and imports nothing of
the harness.
"""

__version__ = "0.1.0"

__all__ = ["PLP", "RunResult", "__version__", "run", "sweep"]

# public name -> the module that defines it
_EXPORTS = {"PLP": "plp", "RunResult": "results", "run": "runner", "sweep": "sweeps"}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
