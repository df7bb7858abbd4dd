"""``plp-bench introspection train | check``: the introspection network of the weight-jump
methods, trained from real weight histories (:mod:`plp_bench.studies.introspection_net`), or a
trained one checked on its held-out histories."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from .common import Streams


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("introspection", help="the introspection network of the "
                            "weight-jump methods: train it from real weight histories, or "
                            "check a trained one")
    actions = parser.add_subparsers(dest="introspection_command", required=True)
    train = actions.add_parser("train", help="train N0 on MNIST recording weight histories, "
                               "then the introspection nets (ReLU and linear) on them")
    train.add_argument("--out", default="introspection.pt", metavar="FILE",
                       help="weights file to write (a .json record goes next to it; default "
                       "introspection.pt)")
    train.add_argument("--data-dir", metavar="DIR", help="data root holding MNIST (without "
                       "it, scikit-learn's digits are used and the record says so)")
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
    train.set_defaults(handle=handle_train)
    check = actions.add_parser("check", help="L1 error of a weights file's nets and of the "
                               "no-change prediction on its held-out validation histories")
    check.add_argument("file", nargs="?", help="weights file (default: the shipped one)")
    check.set_defaults(handle=handle_check)


def _portable_command(argv) -> str:
    """The command line as a record stores it: the data root is this machine's, so it is
    written as a placeholder (the record names the data by the files' checksums instead)."""
    import shlex

    portable = ["<data root>" if i > 0 and argv[i - 1] == "--data-dir" else arg
                for i, arg in enumerate(argv)]
    return shlex.join(["plp-bench", *[a.split("=", 1)[0] + "=<data root>"
                                      if a.startswith("--data-dir=") else a
                                      for a in portable]])


def handle_train(args: argparse.Namespace, streams: Streams) -> int:
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ..core.config import ConfigError
    from ..studies.introspection_net import PipelineSettings, save, train_pipeline

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
                  console=streams.err) as bars:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            if done % 50 == 0 or done == total:
                bars.update(tasks[stage], completed=done)

        result = train_pipeline(settings, data_root=args.data_dir, progress=progress)
    weights, record = save(result, target, _portable_command(streams.argv))
    _print_metrics(result.record, streams.out)
    streams.out.print(f"weights written to {weights}, record to {record}", highlight=False,
                      markup=False)
    return 0


def _print_metrics(record: dict, out: Console) -> None:
    from rich.table import Table

    table = Table(title=f"introspection nets: L1 error x 1000 (data: {record['data']['name']})")
    table.add_column("predictor")
    table.add_column("train", justify="right")
    table.add_column("validation (held-out weights)", justify="right")
    for name, m in record["metrics_paper_units"].items():
        table.add_row(name, f"{m['train_l1']:.3f}" if "train_l1" in m else "-",
                      f"{m['val_l1']:.3f}")
    out.print(table)


def handle_check(args: argparse.Namespace, streams: Streams) -> int:
    import torch

    from plp_baselines.introspection.fitting import l1_error
    from plp_baselines.introspection.net import load_net, read_weights_file, shipped_path

    from ..core.config import ConfigError

    path = Path(args.file) if args.file else shipped_path()
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
    _print_metrics({"data": {"name": str(path)}, "metrics_paper_units": metrics}, streams.out)
    return 0
