"""``plp-bench throughput``: milliseconds per training step, images per second and peak GPU
memory of the CIFAR backbones on CIFAR-shaped inputs (:mod:`plp_bench.studies.image_throughput`)."""

from __future__ import annotations

import argparse

from .common import Streams, add_execution_flags, execution_overrides


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("throughput", help="seconds per training step and images/s of "
                            "the CIFAR backbones (CIFAR-shaped inputs)")
    parser.add_argument("--model", action="append", metavar="NAME",
                        help="vgg16, resnet18 or googlenet (repeatable; default: all three)")
    parser.add_argument("--method", default="sgd", help="method whose update is stepped "
                        "(default sgd)")
    parser.add_argument("--inputs", default="synthetic", choices=["synthetic", "cifar100"],
                        help="seeded CIFAR-shaped tensors (default) or the real CIFAR-100 "
                        "training split")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block "
                        "(default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks; the median is "
                        "reported (default 5)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first "
                        "(default 10)")
    parser.add_argument("--device", default="cuda", help="cuda[:N] (default) or cpu")
    parser.add_argument("--data-dir", metavar="DIR")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    add_execution_flags(parser)
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace, streams: Streams) -> int:
    from dataclasses import asdict

    import torch
    from rich.table import Table

    from .. import data
    from ..core import environment
    from ..core.config import ConfigError
    from ..core.execution_settings import ExecutionSettings
    from ..core.record import write_json_atomic
    from ..methods import catalogue as methods
    from ..runs.device import check_settings_on_device, resolve_device
    from ..studies.image_throughput import THROUGHPUT_MODELS, ThroughputBench

    out, err = streams.out, streams.err
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
    settings = ExecutionSettings(**execution_overrides(args))
    device = resolve_device(args.device)
    try:
        check_settings_on_device(settings, device)
    except ConfigError as error:
        raise ConfigError(error.problem, path=("--precision",)) from None
    if args.inputs == "cifar100":
        data.check_available("cifar100", args.data_dir)
    table = Table(title=f"training throughput: {args.method}, batch {args.batch_size}, "
                  f"{args.inputs} CIFAR-shaped inputs, {device} "
                  f"({environment.device_name(device)})")
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
        write_json_atomic(args.json, {
            "method": args.method, "inputs": args.inputs, "batch_size": args.batch_size,
            "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup,
            "settings": asdict(settings), "environment": environment.describe(device),
            "results": rows})
        out.print(f"numbers written to {args.json}", highlight=False)
    return 0
