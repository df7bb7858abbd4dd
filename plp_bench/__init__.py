"""plp-bench: time and steps to a target accuracy for training-acceleration methods.

``run(workload, method, seed, device)`` trains once and returns a :class:`RunResult`;
``sweep(...)`` runs a resumable grid of them. See ``plp_bench.workloads`` and
``plp_bench.methods`` for the registries.
"""

__version__ = "0.1.0"

from .plp import PLP
from .results import RunResult
from .sweeps import sweep
from .training import run

__all__ = ["PLP", "RunResult", "__version__", "run", "sweep"]
