"""The ``plp-bench`` executable: checks that the harness is installed, then hands over to
:mod:`plp_bench.cli`.

``pip install plp-bench`` installs the update rules, which need torch alone; the harness (the
command line, workloads, reports, the ODE baseline) needs the ``[harness]`` extra. Without it
the command says which extra and which modules are missing, and exits 1 without a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

EXIT_MISSING = 1
# import name -> distribution of the [harness] extra (pyproject.toml)
HARNESS_MODULES = {"numpy": "numpy", "scipy": "scipy", "rich": "rich", "yaml": "PyYAML",
                   "sklearn": "scikit-learn", "matplotlib": "matplotlib", "jinja2": "Jinja2"}
INSTALL_HINT = "pip install 'plp-bench[harness]'"


def missing_harness() -> list[str]:
    """The distributions of the ``[harness]`` extra whose modules cannot be found."""
    return [dist for module, dist in HARNESS_MODULES.items()
            if importlib.util.find_spec(module) is None]


def harness_message(missing: Sequence[str], what: str = "plp-bench's command line") -> str:
    return (f"{what} needs the harness, installed with the [harness] extra: {INSTALL_HINT} "
            f"(missing: {', '.join(missing)}). The update rules (plp_bench.PLP, "
            f"plp_baselines) need torch alone.")


def main(argv: Sequence[str] | None = None) -> int:
    missing = missing_harness()
    if missing:
        print(f"error: {harness_message(missing)}", file=sys.stderr)
        return EXIT_MISSING
    from .cli import main as cli_main

    return cli_main(argv)
