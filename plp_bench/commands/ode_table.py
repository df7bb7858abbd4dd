"""``plp-bench ode-table``: the linear-model ODE paper's table, time to training accuracy of
full-batch gradient descent against the linearised network's flow
(:mod:`plp_bench.studies.ode_comparison`)."""

from __future__ import annotations

import argparse

from .common import Streams

MAX_WIDTH = 4096  # hidden units: the Jacobian of the widest is already gigabytes on MAGIC


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ode-table", help="the linear-model ODE paper's table: time to "
                            "training accuracy, gradient descent vs the linearised network's "
                            "ODE")
    parser.add_argument("--workload", action="append", metavar="NAME",
                        help="an MLP workload (repeatable); default: banknote-mlp and "
                        "magic-mlp")
    parser.add_argument("--lr", action="append", type=float, metavar="ETA",
                        help="learning rate (repeatable); default: the workload's gd rate and "
                        "a tenth of it")
    parser.add_argument("--threshold", action="append", type=float, metavar="ACC",
                        help="training-accuracy threshold (repeatable); default 0.80 0.85 "
                        "0.90 0.95")
    parser.add_argument("--width", action="append", type=int, metavar="UNITS",
                        help="hidden units of the two-layer network (repeatable: one table per "
                        "width and a summary over them, e.g. --width 8 --width 32 --width 128 "
                        "--width 512); default: the workload's")
    parser.add_argument("--max-steps", type=int, metavar="N",
                        help="budget in GD steps / ODE time (default: the workload's)")
    parser.add_argument("--solver", default="bdf", help="bdf (default), lsoda, radau or rk45")
    parser.add_argument("--space", default="auto", choices=["auto", "parameter", "function"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", metavar="DIR")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace, streams: Streams) -> int:
    from dataclasses import asdict

    from rich.markup import escape

    from .. import data, workloads
    from ..core.config import MAX_STEPS, ConfigError
    from ..core.record import write_json_atomic
    from ..core.registry import UnknownNameError
    from ..core.tables import to_rich
    from ..methods import catalogue as methods
    from ..methods.solvers import SOLVERS
    from ..studies.ode_comparison import PAPER_THRESHOLDS, compare, table, width_table

    out, err = streams.out, streams.err
    names = args.workload or ["banknote-mlp", "magic-mlp"]
    chosen = [workloads.get(name) for name in names]
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(f"{args.max_steps} is below the minimum 1", path=("--max-steps",))
    if args.max_steps is not None and args.max_steps > MAX_STEPS:
        raise ConfigError(f"{args.max_steps} is above the maximum {MAX_STEPS}",
                          path=("--max-steps",))
    for workload in chosen:
        if workload.model != "mlp":
            raise ConfigError(f"the ODE table linearises MLPs; {workload.name} uses "
                              f"{workload.model!r}", path=("--workload",))
        data.check_available(workload.dataset, args.data_dir)
    for value in (args.lr or []):
        if not value > 0:
            raise ConfigError(f"{value} is not a learning rate > 0", path=("--lr",))
    for units in (args.width or []):
        if not 1 <= units <= MAX_WIDTH:
            raise ConfigError(f"{units} hidden units: allowed 1 to {MAX_WIDTH}",
                              path=("--width",))
    thresholds = tuple(args.threshold or PAPER_THRESHOLDS)
    if any(not 0 < t <= 1 for t in thresholds):
        raise ConfigError("thresholds are training accuracies in (0, 1]", path=("--threshold",))
    try:
        solver = SOLVERS.get(args.solver)(space=args.space)
    except UnknownNameError as error:
        raise ConfigError(error.problem, path=("--solver",)) from None
    if args.width:  # a two-layer network: one hidden layer of each width
        chosen = [workloads.override(w, {"model_options": {**w.model_options, "hidden": [units]}})
                  for w in chosen for units in args.width]
    results = []
    for workload in chosen:
        gd = methods.MethodConfig(name="gd", optimizer="gd")
        tuned = methods.resolve_hyperparameters(gd, workload.optimizers)[0]["lr"]
        for lr in args.lr or [tuned, tuned / 10]:
            hidden = workload.model_options.get("hidden")
            with err.status(f"{workload.name} (hidden {hidden}), eta = {lr:g}: gradient "
                            f"descent and the ODE ..."):
                try:
                    comparison = compare(workload, lr, seed=args.seed, solver=solver,
                                         thresholds=thresholds, max_steps=args.max_steps,
                                         data_root=args.data_dir)
                except MemoryError as error:
                    err.print(f"[red]refused:[/] {escape(str(error))}", highlight=False)
                    return 1
            results.append(comparison)
            out.print(to_rich(table(comparison)))
            out.print()
    if args.width:
        out.print(to_rich(width_table(results)))
    if args.json:
        write_json_atomic(args.json, [asdict(c) for c in results])
        out.print(f"numbers written to {args.json}", highlight=False)
    return 0
