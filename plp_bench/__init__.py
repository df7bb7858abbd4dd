"""plp-bench: time and steps to a target accuracy for training-acceleration methods.

``run(workload, method, seed, device)`` trains once and returns a :class:`RunResult`;
``sweep(...)`` runs a resumable grid of them. See ``plp_bench.workloads`` and
``plp_bench.methods`` for the registries. These names are imported on first use, so importing
one module of the package imports only what that module needs.

The folders are the layers. Each subpackage states its ``LAYER`` in its ``__init__.py``; a
module imports from its own subpackage and from those of lower layers, never from one above,
and the subpackages' imports form no circle (``tests/test_layers.py`` reads every import,
those inside functions included). From the bottom up:

* ``core`` (1): configuration, registries, the run record, statistics, the table model
* ``data``, ``models`` (2): datasets as tensors; backbones by name
* ``methods`` (3): PLP, schedules, solvers, weight jumps, option schemas, the method catalogue
* ``workloads`` (4): everything but the update rule
* ``runs`` (5): one run, trained or solved, to its record
* ``sweeps``, ``studies``, ``report`` (6): many runs; measurements beside the grid; reading
  records
* ``claims`` (7): the papers' claims re-measured, with verdicts
* ``pages`` (8): the HTML report
* ``commands`` (9): one module per command of ``plp-bench``, assembled by ``cli.py``

``plp_baselines`` (the methods PLP is compared with; the folder ``baselines/``) sits below all
of them and imports nothing of the harness.
"""

__version__ = "0.1.0"

__all__ = ["PLP", "RunResult", "__version__", "run", "sweep"]

# public name -> the module that defines it
_EXPORTS = {"PLP": "methods.plp", "RunResult": "core.record", "run": "runs.entry",
            "sweep": "sweeps.grid"}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    try:
        module = import_module(f"{__name__}.{_EXPORTS[name]}")
    except ModuleNotFoundError as error:
        from .entry_point import HARNESS_MODULES, harness_message

        if error.name is None or error.name.split(".")[0] not in HARNESS_MODULES:
            raise
        raise ModuleNotFoundError(harness_message([HARNESS_MODULES[error.name.split(".")[0]]],
                                                  f"plp_bench.{name}"),
                                  name=error.name) from error
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
