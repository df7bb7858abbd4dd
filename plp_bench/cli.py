"""The ``plp-bench`` command line.

``plp-bench`` alone runs the embedded default: the offline workloads (data bundled with
scikit-learn) with every registered method and 3 seeds. User mistakes (a bad config, an
unknown name, a missing data file, no CUDA) print one message and exit non-zero without a
traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from . import __version__, data, methods, models, summary, workloads
from .config import ConfigError
from .data.fetch import fetch
from .registry import UnknownNameError
from .training import DeviceError

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plp-bench",
        description="Steps and seconds to a target accuracy for training-acceleration methods.",
    )
    parser.add_argument("--version", action="version", version=f"plp-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a sweep of workloads x methods x seeds (the default)")
    run.add_argument("config", nargs="?", help="YAML run config (workloads, methods, seeds, ...)")
    run.add_argument("--workload", action="append", metavar="NAME",
                     help="workload to run (repeatable); default: the offline workloads")
    run.add_argument("--method", action="append", metavar="NAME",
                     help="method to run (repeatable); default: every registered method")
    run.add_argument("--seeds", type=int, metavar="N", help="number of seeds (default 3)")
    run.add_argument("--device", help="cpu or cuda[:N] (default cpu)")
    run.add_argument("--results", metavar="DIR", help="where run records go (default results)")
    run.add_argument("--data-dir", metavar="DIR", help="data root (default $PLP_BENCH_DATA, "
                     "else ~/.cache/plp-bench)")

    lister = sub.add_parser("list", help="list registered names")
    lister.add_argument("kind", nargs="?", default="all",
                        choices=["all", "workloads", "methods", "datasets", "models"])

    data_cmd = sub.add_parser("data", help="dataset files")
    data_sub = data_cmd.add_subparsers(dest="data_command", required=True)
    fetch_cmd = data_sub.add_parser("fetch", help="download and verify a dataset's files")
    fetch_cmd.add_argument("name", help=f"one of: {', '.join(data.list_datasets())}")
    fetch_cmd.add_argument("--data-dir", metavar="DIR")
    return parser


def _console(stream) -> Console:
    interactive = stream.isatty()
    return Console(file=stream, width=None if interactive else 160)


def _cmd_list(kind: str, out: Console) -> int:
    listings = {
        "workloads": workloads.list_workloads,
        "methods": methods.list_methods,
        "datasets": data.list_datasets,
        "models": models.list_models,
    }
    for name, lister in listings.items():
        if kind in ("all", name):
            if kind == "all":
                out.print(f"[bold]{name}[/]")
            for item in lister():
                out.print(f"  {item}" if kind == "all" else item, highlight=False)
    return 0


def _cmd_fetch(args, out: Console) -> int:
    for line in fetch(args.name, args.data_dir):
        out.print(line, highlight=False)
    return 0


def _cmd_run(args, out: Console, err: Console) -> int:
    from .progress import RichSweepProgress
    from .runconfig import load_run_config, resolve
    from .sweeps import sweep
    from .training import resolve_device

    config, source = load_run_config(
        getattr(args, "config", None),
        workloads=getattr(args, "workload", None), methods=getattr(args, "method", None),
        seeds=getattr(args, "seeds", None), device=getattr(args, "device", None),
        results=getattr(args, "results", None), data_dir=getattr(args, "data_dir", None),
    )
    plan = resolve(config, source=source)
    resolve_device(plan.device)
    for dataset in sorted({w.dataset for w in plan.workloads}):
        data.check_available(dataset, plan.data_dir)
    with RichSweepProgress(err) as observer:
        try:
            report = sweep(plan.workloads, plan.methods, plan.seeds, plan.device, plan.results,
                           data_root=plan.data_dir, observer=observer)
        except KeyboardInterrupt:
            observer.bars.stop()
            err.print("[yellow]interrupted[/]: every finished run is saved under "
                      f"{plan.results}; run the same command again to resume.")
            return 130
    for item in summary.summarize(report.results):
        out.print(summary.table(item))
        out.print()
    out.print(f"{report.ran} runs done, {report.skipped} skipped (already in {plan.results}), "
              f"{len(report.failed)} failed.", highlight=False)
    for task, error in report.failed:
        out.print(f"  failed: {task.label}: {error}", highlight=False)
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    out, err = _console(sys.stdout), _console(sys.stderr)
    try:
        if args.command in (None, "run"):
            return _cmd_run(args, out, err)
        if args.command == "list":
            return _cmd_list(args.kind, out)
        if args.command == "data":
            return _cmd_fetch(args, out)
    except (ConfigError, UnknownNameError, DeviceError) as error:
        if args.debug:
            traceback.print_exc()
        err.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        return EXIT_CONFIG
    except data.DataError as error:
        if args.debug:
            traceback.print_exc()
        err.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
