"""The update rules as the harness names and builds them. The method under study, PLP
(``plp``, with its buffer-free momentum path in ``plp_momentum``), the harness's side of the
weight jumps (``weight_jumps``), per-step schedules such as DEMON (``schedules``), the ODE
solvers of the linearised model (``solvers``), the options each accepts (``option_schemas``)
and the catalogue of named methods read from ``catalogue.yaml`` (``catalogue``). The methods
PLP is compared with live in ``plp_baselines`` (the folder ``baselines/``), which knows nothing
of the harness.

The catalogue's names are served from here on first use (``plp_bench.methods.get_method``,
``list_methods``, ``build_method``, ``MethodConfig``, ...), so importing ``plp_bench.methods.plp``
loads PLP alone.
"""

LAYER = 3

# public name -> the catalogue module that defines it (loaded on first use)
_CATALOGUE_NAMES = {"METHODS", "OPTIMIZERS", "WRAPPERS", "BuiltMethod", "ComponentConfig",
                    "MethodConfig", "OptimizerSpec", "build_method", "check_method",
                    "default_methods", "get_method", "list_methods", "load_methods_file",
                    "resolve_hyperparameters"}


def __getattr__(name: str):
    if name not in _CATALOGUE_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import catalogue

    return getattr(catalogue, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_CATALOGUE_NAMES})
