"""``plp-bench run`` (and ``plp-bench`` alone): a resumable sweep of workloads x methods x
seeds from a YAML run config and flags, with a progress bar, then the summary tables."""

from __future__ import annotations

import argparse
import signal
from contextlib import contextmanager

from rich.markup import escape

from ..core.config import MAX_SEEDS
from .common import RAY_FLAGS, Streams, add_execution_flags, add_ray_flags, execution_overrides


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run a sweep of workloads x methods x seeds (the "
                            "default)")
    parser.add_argument("config", nargs="?", help="YAML run config (workloads, methods, "
                        "seeds, ...)")
    parser.add_argument("--workload", action="append", metavar="NAME",
                        help="workload to run (repeatable); default: the offline workloads")
    parser.add_argument("--method", action="append", metavar="NAME",
                        help="method to run (repeatable); default: the methods of the default "
                        "run")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help=f"number of seeds, 1 to {MAX_SEEDS} (default 3)")
    parser.add_argument("--device", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--results", metavar="DIR", help="where run records go (default "
                        "results)")
    parser.add_argument("--data-dir", metavar="DIR", help="data root (default "
                        "$PLP_BENCH_DATA, else ~/.cache/plp-bench)")
    add_execution_flags(parser)
    add_ray_flags(parser)
    parser.set_defaults(handle=handle)


@contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM stops the work as Ctrl-C does (``KeyboardInterrupt``), so a
    terminated sweep ends as cleanly as an interrupted one; the list is non-empty after a
    SIGTERM."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def handle(args: argparse.Namespace, streams: Streams) -> int:
    """Run the sweep (``args`` may come from the top-level parser alone: ``plp-bench``)."""
    import torch

    from .. import data
    from ..core.config import ConfigError
    from ..runs.device import check_settings_on_device
    from ..sweeps.config_file import load_run_config, resolve
    from ..sweeps.grid import SequentialExecutor

    seeds = getattr(args, "seeds", None)
    if seeds is not None and seeds < 1:
        raise ConfigError(f"{seeds} is below the minimum 1", path=("--seeds",))
    if seeds is not None and seeds > MAX_SEEDS:
        raise ConfigError(f"{seeds} is above the maximum {MAX_SEEDS}", path=("--seeds",))
    config, source = load_run_config(
        getattr(args, "config", None),
        workloads=getattr(args, "workload", None), methods=getattr(args, "method", None),
        seeds=getattr(args, "seeds", None), device=getattr(args, "device", None),
        results=getattr(args, "results", None), data_dir=getattr(args, "data_dir", None),
        **execution_overrides(args), **{key: getattr(args, key, None) for key in RAY_FLAGS},
    )
    plan = resolve(config, source=source)
    if plan.ray is None:
        executor = SequentialExecutor()
    else:
        from ..sweeps.ray import RayExecutor

        executor = RayExecutor(plan.ray)
    device = executor.device_for_runs(plan.device)
    try:
        check_settings_on_device(plan.settings, torch.device(device))
    except ConfigError as error:
        raise ConfigError(error.problem, source=source, path=error.path) from None
    for dataset in sorted({w.dataset for w in plan.workloads}):
        data.check_available(dataset, plan.data_dir, contents=True)
    if plan.ray is not None:
        executor.start(device)  # connects; a cluster that cannot run them is exit 2
        streams.err.print(executor.describe(), highlight=False, markup=False)
    try:
        return _sweep(plan, executor, device, streams)
    finally:
        if plan.ray is not None:
            executor.close()


def _sweep(plan, executor, device: str, streams: Streams) -> int:
    """The sweep with its progress display, then the tables; Ctrl-C and SIGTERM end it with
    every finished record kept."""
    from ..report import summary
    from ..sweeps.grid import sweep
    from ..sweeps.progress import RichSweepProgress

    out, err = streams.out, streams.err
    with RichSweepProgress(err) as observer, sigterm_interrupts() as stopped:
        try:
            report = sweep(plan.workloads, plan.methods, plan.seeds, device, plan.results,
                           data_root=plan.data_dir, observer=observer, settings=plan.settings,
                           executor=executor)
        except KeyboardInterrupt:
            observer.bars.stop()
            why = "terminated" if stopped else "interrupted"
            left = "the run in progress left no file" if plan.ray is None else \
                "the runs in flight were cancelled and left no file"
            err.print(f"[yellow]{why}[/]: every finished run is saved under "
                      f"{escape(str(plan.results))}; {left}; run the same command again to "
                      "resume.", highlight=False)
            return 143 if stopped else 130
    for item in summary.summarize(report.results):
        out.print(summary.table(item))
        out.print()
    out.print(f"{report.ran} runs done, {report.skipped} skipped (already in {plan.results}), "
              f"{len(report.failed)} failed.", highlight=False, markup=False)
    for task, error in report.failed:
        out.print(f"  failed: {task.label}: {error} (details in {task.failure_path})",
                  highlight=False, markup=False)
    for path, why in report.invalid:
        out.print(f"  invalid record set aside and rerun: {path}: {why}", highlight=False,
                  markup=False)
    for workload_name, method_name, backbones in report.not_applicable:
        out.print(f"  not run: {method_name} does not apply to {workload_name} (backbones: "
                  f"{', '.join(backbones)})", highlight=False)
    return 1 if report.failed else 0
