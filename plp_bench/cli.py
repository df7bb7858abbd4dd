"""The ``plp-bench`` command line.

``plp-bench`` alone runs the embedded default: the offline workloads (data bundled with
scikit-learn) with every method of the default run and 3 seeds. User mistakes (a bad config, an
unknown name, a missing data file, no CUDA) print one message and exit non-zero without a
traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape

from . import __version__, data, methods, models, summary, workloads
from .config import ConfigError
from .data.fetch import fetch
from .registry import UnknownNameError
from .results import ResultError
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
                     help="method to run (repeatable); default: the methods of the default run")
    run.add_argument("--seeds", type=int, metavar="N", help="number of seeds (default 3)")
    run.add_argument("--device", help="cpu or cuda[:N] (default cpu)")
    run.add_argument("--results", metavar="DIR", help="where run records go (default results)")
    run.add_argument("--data-dir", metavar="DIR", help="data root (default $PLP_BENCH_DATA, "
                     "else ~/.cache/plp-bench)")
    _add_execution_flags(run)

    speed = sub.add_parser("throughput", help="seconds per training step and images/s of the "
                           "CIFAR backbones (CIFAR-shaped inputs)")
    speed.add_argument("--model", action="append", metavar="NAME",
                       help="vgg16, resnet18 or googlenet (repeatable; default: all three)")
    speed.add_argument("--method", default="sgd", help="method whose update is stepped "
                       "(default sgd)")
    speed.add_argument("--inputs", default="synthetic", choices=["synthetic", "cifar100"],
                       help="seeded CIFAR-shaped tensors (default) or the real CIFAR-100 "
                       "training split")
    speed.add_argument("--batch-size", type=int, default=128)
    speed.add_argument("--steps", type=int, default=20, help="steps per timed block (default 20)")
    speed.add_argument("--repeats", type=int, default=5, help="timed blocks; the median is "
                       "reported (default 5)")
    speed.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    speed.add_argument("--device", default="cuda", help="cuda[:N] (default) or cpu")
    speed.add_argument("--data-dir", metavar="DIR")
    speed.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    _add_execution_flags(speed)

    lister = sub.add_parser("list", help="list registered names")
    lister.add_argument("kind", nargs="?", default="all",
                        choices=["all", "workloads", "methods", "datasets", "models"])

    ode = sub.add_parser("ode-table", help="the linear-model ODE paper's table: time to "
                         "training accuracy, gradient descent vs the linearised network's ODE")
    ode.add_argument("--workload", action="append", metavar="NAME",
                     help="an MLP workload (repeatable); default: banknote-mlp and magic-mlp")
    ode.add_argument("--lr", action="append", type=float, metavar="ETA",
                     help="learning rate (repeatable); default: the workload's gd rate and "
                     "a tenth of it")
    ode.add_argument("--threshold", action="append", type=float, metavar="ACC",
                     help="training-accuracy threshold (repeatable); default 0.80 0.85 0.90 0.95")
    ode.add_argument("--max-steps", type=int, metavar="N",
                     help="budget in GD steps / ODE time (default: the workload's)")
    ode.add_argument("--solver", default="bdf", help="bdf (default), lsoda, radau or rk45")
    ode.add_argument("--space", default="auto", choices=["auto", "parameter", "function"])
    ode.add_argument("--seed", type=int, default=0)
    ode.add_argument("--data-dir", metavar="DIR")
    ode.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")

    report_cmd = sub.add_parser("report", aliases=["summary"],
                                help="the tables of run records (a sweep's results, the asv "
                                "suite's runs), the change against another commit, and the "
                                "HTML report")
    report_cmd.add_argument("folder", nargs="*", help="folders of run records (default: "
                            "./results, else the asv run cache of the checked-out commit)")
    report_cmd.add_argument("--workload", action="append", metavar="NAME",
                            help="only this workload (repeatable)")
    report_cmd.add_argument("--compare", metavar="REV", help="also show the change against "
                            "another commit's records (a git revision, looked up in the asv "
                            "run cache, or a folder of records)")
    report_cmd.add_argument("--html", action="store_true", help="also write "
                            "OUT/<commit>/index.html and the index of every commit OUT/index.html")
    report_cmd.add_argument("--out", default="reports", metavar="DIR",
                            help="where --html writes (default reports)")
    report_cmd.add_argument("--asv-results", default=".asv/results", metavar="DIR",
                            help="asv's results folder, read for the commit's own asv values "
                            "(default .asv/results)")

    rerun_cmd = sub.add_parser("rerun", help="train a record's run again from the config it "
                               "stores and say whether the result matches")
    rerun_cmd.add_argument("record", help="a run record (seed-*.json)")
    rerun_cmd.add_argument("--device", help="device for the rerun (default: the record's)")
    rerun_cmd.add_argument("--data-dir", metavar="DIR")
    rerun_cmd.add_argument("--out", metavar="FILE", help="also save the new record here")

    intro = sub.add_parser("introspection", help="the introspection network of the weight-jump "
                           "methods: train it from real weight histories, or check a trained one")
    intro_sub = intro.add_subparsers(dest="introspection_command", required=True)
    train = intro_sub.add_parser("train", help="train N0 on MNIST recording weight histories, "
                                 "then the introspection nets (ReLU and linear) on them")
    train.add_argument("--out", default="introspection.pt", metavar="FILE",
                       help="weights file to write (a .json record goes next to it; default "
                       "introspection.pt)")
    train.add_argument("--data-dir", metavar="DIR", help="data root holding MNIST (without it, "
                       "scikit-learn's digits are used and the record says so)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--n0-steps", type=int, default=10000, metavar="N",
                       help="steps of the reference network N0 (default 10000)")
    train.add_argument("--fit-steps", type=int, default=30000, metavar="N",
                       help="training steps of each introspection net (default 30000)")
    train.add_argument("--pool-size", type=int, default=20000, metavar="N",
                       help="scalar weights of N0 whose history is recorded (default 20000)")
    train.add_argument("--train-examples", type=int, default=100000, metavar="N")
    train.add_argument("--ratio", type=float, default=2.0,
                       help="jump ratio: predict the weight at ratio * t (default 2)")
    check = intro_sub.add_parser("check", help="L1 error of a weights file's nets and of the "
                                 "no-change prediction on its held-out validation histories")
    check.add_argument("file", nargs="?", help="weights file (default: the shipped one)")

    data_cmd = sub.add_parser("data", help="dataset files")
    data_sub = data_cmd.add_subparsers(dest="data_command", required=True)
    fetch_cmd = data_sub.add_parser("fetch", help="download and verify a dataset's files")
    fetch_cmd.add_argument("name", help=f"one of: {', '.join(data.list_datasets())}")
    fetch_cmd.add_argument("--data-dir", metavar="DIR")
    return parser


def _add_execution_flags(parser: argparse.ArgumentParser) -> None:
    """How the model executes (:mod:`plp_bench.execution`); unset flags leave the config's."""
    from .execution import COMPILE_CHOICES, PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS,
                        help="fp32 (default), tf32 (CUDA) or bf16 (autocast)")
    parser.add_argument("--channels-last", action="store_const", const=True,
                        help="convolutional models and batches in NHWC memory order")
    parser.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                        choices=COMPILE_CHOICES,
                        help="torch.compile the training forward pass; MODE: "
                        f"{', '.join(COMPILE_CHOICES[1:])} (default: default)")
    parser.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_const",
                        const=False, help="turn off cuDNN autotuning on CUDA")


def _execution_overrides(args) -> dict:
    """The execution flags given on the command line (unset ones are left out)."""
    given = {name: getattr(args, name, None)
             for name in ("precision", "channels_last", "compile", "cudnn_benchmark")}
    return {name: value for name, value in given.items() if value is not None}


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


@contextmanager
def _sigterm_interrupts():
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


def _cmd_run(args, out: Console, err: Console) -> int:
    from .execution import check_device
    from .progress import RichSweepProgress
    from .runconfig import load_run_config, resolve
    from .sweeps import sweep
    from .training import resolve_device

    config, source = load_run_config(
        getattr(args, "config", None),
        workloads=getattr(args, "workload", None), methods=getattr(args, "method", None),
        seeds=getattr(args, "seeds", None), device=getattr(args, "device", None),
        results=getattr(args, "results", None), data_dir=getattr(args, "data_dir", None),
        **_execution_overrides(args),
    )
    plan = resolve(config, source=source)
    try:
        check_device(plan.settings, resolve_device(plan.device))
    except ConfigError as error:
        raise ConfigError(error.problem, source=source, path=error.path) from None
    for dataset in sorted({w.dataset for w in plan.workloads}):
        data.check_available(dataset, plan.data_dir)
    with RichSweepProgress(err) as observer, _sigterm_interrupts() as stopped:
        try:
            report = sweep(plan.workloads, plan.methods, plan.seeds, plan.device, plan.results,
                           data_root=plan.data_dir, observer=observer, settings=plan.settings)
        except KeyboardInterrupt:
            observer.bars.stop()
            why = "terminated" if stopped else "interrupted"
            err.print(f"[yellow]{why}[/]: every finished run is saved under "
                      f"{escape(str(plan.results))}; the run in progress left no file; run the "
                      "same command again to resume.", highlight=False)
            return 143 if stopped else 130
    for item in summary.summarize(report.results):
        out.print(summary.table(item))
        out.print()
    out.print(f"{report.ran} runs done, {report.skipped} skipped (already in {plan.results}), "
              f"{len(report.failed)} failed.", highlight=False)
    for task, error in report.failed:
        out.print(f"  failed: {task.label}: {error} (details in {task.failure_path})",
                  highlight=False)
    for path, why in report.invalid:
        out.print(f"  invalid record set aside and rerun: {path}: {why}", highlight=False)
    for workload_name, method_name, backbones in report.not_applicable:
        out.print(f"  not run: {method_name} does not apply to {workload_name} (backbones: "
                  f"{', '.join(backbones)})", highlight=False)
    return 1 if report.failed else 0


def _cmd_throughput(args, out: Console, err: Console) -> int:
    from dataclasses import asdict

    from rich.table import Table

    from .environment import device_name
    from .execution import ExecutionSettings, check_device
    from .results import write_json_atomic
    from .throughput import THROUGHPUT_MODELS, ThroughputBench
    from .training import resolve_device

    names = args.model or list(THROUGHPUT_MODELS)
    for name in names:
        if name not in THROUGHPUT_MODELS:
            raise ConfigError(f"unknown model {name!r}; allowed: {', '.join(THROUGHPUT_MODELS)}",
                              path=("--model",))
    methods.get_method(args.method)
    for flag, value in (("--batch-size", args.batch_size), ("--steps", args.steps),
                        ("--repeats", args.repeats)):
        if value < 1:
            raise ConfigError(f"{value} is below the minimum 1", path=(flag,))
    if args.warmup < 0:
        raise ConfigError(f"{args.warmup} is below the minimum 0", path=("--warmup",))
    settings = ExecutionSettings(**_execution_overrides(args))
    device = resolve_device(args.device)
    try:
        check_device(settings, device)
    except ConfigError as error:
        raise ConfigError(error.problem, path=("--precision",)) from None
    if args.inputs == "cifar100":
        data.check_available("cifar100", args.data_dir)
    table = Table(title=f"training throughput: {args.method}, batch {args.batch_size}, "
                  f"{args.inputs} CIFAR-shaped inputs, {device} "
                  f"({device_name(device)})")
    for column in ("model", "step (ms)", "images/s", "peak memory (MiB)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    rows = []
    for name in names:
        with err.status(f"{name}: warming up and timing ..."):
            bench = ThroughputBench.build(name, method=args.method, inputs=args.inputs,
                                          batch_size=args.batch_size, device=device,
                                          settings=settings, data_root=args.data_dir)
            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                result = bench.measure(steps=args.steps, repeats=args.repeats,
                                       warmup=args.warmup)
                peak = (torch.cuda.max_memory_allocated(device) / 2**20
                        if device.type == "cuda" else None)
            finally:
                bench.close()
        rows.append({"model": name, "step_seconds": result.step_seconds,
                     "images_per_second": result.images_per_second, "peak_memory_mib": peak})
        table.add_row(name, f"{1e3 * result.step_seconds:.2f}",
                      f"{result.images_per_second:,.0f}",
                      "-" if peak is None else f"{peak:,.0f}")
    out.print(table)
    if args.json:
        from . import environment

        write_json_atomic(args.json, {
            "method": args.method, "inputs": args.inputs, "batch_size": args.batch_size,
            "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup,
            "settings": asdict(settings), "environment": environment.describe(device),
            "results": rows})
        out.print(f"numbers written to {args.json}", highlight=False)
    return 0


def _cmd_rerun(args, out: Console, err: Console) -> int:
    from .rerun import differences, environment_changes, rerun_record
    from .results import save

    path = Path(args.record)
    if not path.is_file():
        raise ConfigError(f"no such record file: {path}", path=("record",))
    with err.status(f"rerunning {path} ..."):
        recorded, fresh = rerun_record(path, device=args.device, data_root=args.data_dir)
    if args.out:
        save(fresh, args.out)
        out.print(f"new record written to {args.out}", highlight=False)
    for change in environment_changes(recorded, fresh):
        out.print(f"  environment: {change.field} was {change.recorded!r}, now "
                  f"{change.rerun!r}", highlight=False)
    found = differences(recorded, fresh)
    label = f"{recorded.workload} / {recorded.method} / seed {recorded.seed}"
    if not found:
        out.print(f"[green]identical[/]: the rerun of {escape(label)} reproduces every "
                  "deterministic field of the record (seconds are not compared)")
        return 0
    out.print(f"[red]differs[/]: the rerun of {escape(label)} changed {len(found)} field(s):")
    for d in found:
        out.print(f"  {d.field}: recorded {_short(d.recorded)}, rerun {_short(d.rerun)}",
                  highlight=False)
    return 1


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def _cmd_ode_table(args, out: Console, err: Console) -> int:
    from dataclasses import asdict

    from .ode_table import PAPER_THRESHOLDS, compare, table
    from .results import write_json_atomic
    from .solvers import SOLVERS

    names = args.workload or ["banknote-mlp", "magic-mlp"]
    chosen = [workloads.get(name) for name in names]
    for workload in chosen:
        if workload.model != "mlp":
            raise ConfigError(f"the ODE table linearises MLPs; {workload.name} uses "
                              f"{workload.model!r}", path=("--workload",))
        data.check_available(workload.dataset, args.data_dir)
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(f"{args.max_steps} is below the minimum 1", path=("--max-steps",))
    for value in (args.lr or []):
        if not value > 0:
            raise ConfigError(f"{value} is not a learning rate > 0", path=("--lr",))
    thresholds = tuple(args.threshold or PAPER_THRESHOLDS)
    if any(not 0 < t <= 1 for t in thresholds):
        raise ConfigError("thresholds are training accuracies in (0, 1]", path=("--threshold",))
    try:
        solver = SOLVERS.get(args.solver)(space=args.space)
    except UnknownNameError as error:
        raise ConfigError(str(error), path=("--solver",)) from None
    results = []
    for workload in chosen:
        gd = methods.MethodConfig(name="gd", optimizer="gd")
        tuned = methods.resolve_hyperparameters(gd, workload.optimizers)[0]["lr"]
        for lr in args.lr or [tuned, tuned / 10]:
            with err.status(f"{workload.name}, eta = {lr:g}: gradient descent and the ODE ..."):
                try:
                    comparison = compare(workload, lr, seed=args.seed, solver=solver,
                                         thresholds=thresholds, max_steps=args.max_steps,
                                         data_root=args.data_dir)
                except MemoryError as error:
                    err.print(f"[red]refused:[/] {escape(str(error))}", highlight=False)
                    return 1
            results.append(comparison)
            out.print(table(comparison))
            out.print()
    if args.json:
        write_json_atomic(args.json, [asdict(c) for c in results])
        out.print(f"numbers written to {args.json}", highlight=False)
    return 0


def _cmd_introspection_train(args, argv: Sequence[str], out: Console, err: Console) -> int:
    import shlex
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .introspection_training import PipelineSettings, save, train_pipeline

    for flag, value, minimum in (("--n0-steps", args.n0_steps, 100),
                                 ("--fit-steps", args.fit_steps, 1),
                                 ("--pool-size", args.pool_size, 10),
                                 ("--train-examples", args.train_examples, 1)):
        if value < minimum:
            raise ConfigError(f"{value} is below the minimum {minimum}", path=(flag,))
    if not args.ratio > 1:
        raise ConfigError(f"{args.ratio} is not a jump ratio > 1", path=("--ratio",))
    target = Path(args.out)
    if target.is_dir() or not target.parent.is_dir():
        raise ConfigError(f"{args.out}: give a file name in an existing folder", path=("--out",))
    defaults = PipelineSettings()
    settings = replace(defaults, seed=args.seed, n0_steps=args.n0_steps,
                       pool_size=args.pool_size, train_examples=args.train_examples,
                       ratio=args.ratio, fit=replace(defaults.fit, steps=args.fit_steps,
                                                     seed=args.seed))
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err) as bars:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            if done % 50 == 0 or done == total:
                bars.update(tasks[stage], completed=done)

        result = train_pipeline(settings, data_root=args.data_dir, progress=progress)
    # the data root is this machine's; the record identifies the data by checksums instead
    portable = ["<data root>" if i > 0 and argv[i - 1] == "--data-dir" else arg
                for i, arg in enumerate(argv)]
    command = shlex.join(["plp-bench", *[a.split("=", 1)[0] + "=<data root>"
                                         if a.startswith("--data-dir=") else a
                                         for a in portable]])
    weights, record = save(result, target, command)
    _print_introspection_metrics(result.record, out)
    out.print(f"weights written to {weights}, record to {record}", highlight=False)
    return 0


def _print_introspection_metrics(record: dict, out: Console) -> None:
    from rich.table import Table

    table = Table(title=f"introspection nets: L1 error x 1000 (data: {record['data']['name']})")
    table.add_column("predictor")
    table.add_column("train", justify="right")
    table.add_column("validation (held-out weights)", justify="right")
    for name, m in record["metrics_paper_units"].items():
        table.add_row(name, f"{m['train_l1']:.3f}" if "train_l1" in m else "-",
                      f"{m['val_l1']:.3f}")
    out.print(table)


def _cmd_introspection_check(file: str | None, out: Console) -> int:
    from baselines.introspection.fitting import l1_error
    from baselines.introspection.net import load_net, read_weights_file, shipped_path

    path = Path(file) if file else shipped_path()
    try:
        contents = read_weights_file(path)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(str(error), path=("file",)) from None
    inputs, targets = contents["validation"]["inputs"], contents["validation"]["targets"]
    metrics = {}
    for name in contents["nets"]:
        with torch.no_grad():
            metrics[name] = {"val_l1": l1_error(load_net(name, path)(inputs), targets)}
    metrics["no-change"] = {"val_l1": l1_error(inputs[:, -1], targets)}
    _print_introspection_metrics({"data": {"name": str(path)}, "metrics_paper_units": metrics},
                                 out)
    return 0


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
        if args.command in ("summary", "report"):
            from .report_command import report

            return report(args.folder, workloads=args.workload, compare=args.compare,
                          html=args.html, out_dir=args.out, asv_dir=args.asv_results,
                          out=out, err=err)
        if args.command == "rerun":
            return _cmd_rerun(args, out, err)
        if args.command == "throughput":
            return _cmd_throughput(args, out, err)
        if args.command == "ode-table":
            return _cmd_ode_table(args, out, err)
        if args.command == "introspection" and args.introspection_command == "train":
            return _cmd_introspection_train(args, argv, out, err)
        if args.command == "introspection":
            return _cmd_introspection_check(args.file, out)
    except (ConfigError, UnknownNameError, DeviceError, ResultError) as error:
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
