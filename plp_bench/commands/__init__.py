"""The commands of ``plp-bench``, one module each: its parser (``register``) and its handler
(``handle``) side by side. :mod:`plp_bench.cli` assembles them in the order listed here."""

from . import (
    claims,
    compare,
    data_files,
    introspection,
    listing,
    noise,
    ode_table,
    report,
    rerun,
    run,
    throughput,
)

LAYER = 9

COMMANDS = (run, throughput, listing, ode_table, claims, report, compare, noise, rerun,
            introspection, data_files)

__all__ = ["COMMANDS"]
