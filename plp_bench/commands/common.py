"""What the commands share: the output streams, and the flags of the execution settings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from ..core.execution_settings import COMPILE_CHOICES, PRECISIONS


@dataclass(frozen=True)
class Streams:
    """Where a command writes: results to ``out``, progress and problems to ``err``; ``argv``
    is the command line as given (a record may store it)."""

    out: Console
    err: Console
    argv: Sequence[str] = ()


def add_execution_flags(parser: argparse.ArgumentParser) -> None:
    """How the model executes (:mod:`plp_bench.runs.execution`); unset flags leave the config's."""
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


def execution_overrides(args: argparse.Namespace) -> dict:
    """The execution flags given on the command line (unset ones are left out)."""
    given = {name: getattr(args, name, None)
             for name in ("precision", "channels_last", "compile", "cudnn_benchmark")}
    return {name: value for name, value in given.items() if value is not None}


RAY_FLAGS = ("executor", "address", "workers", "cpus_per_run", "gpus_per_run", "retries")


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    """Where the runs happen: in this process, or as Ray tasks (:mod:`plp_bench.sweeps.ray`)."""
    ray = parser.add_argument_group("distributed runs (--executor ray)")
    ray.add_argument("--executor", choices=["in-process", "ray"],
                     help="in-process (default: one run after another here) or ray (each run a "
                     "Ray task: an embedded Ray on this machine, or a cluster with --address)")
    ray.add_argument("--address", metavar="HOST:PORT", help="a running Ray cluster's head "
                     "(default $RAY_ADDRESS, else an embedded Ray)")
    ray.add_argument("--workers", type=int, metavar="N", help="runs in flight at most, no "
                     "more than the cluster can run at once (default: as many as its GPUs, or "
                     "CPUs, allow)")
    ray.add_argument("--cpus-per-run", type=int, metavar="N", help="CPUs and torch threads of "
                     "each run (default: the cluster's CPUs split evenly over the workers)")
    ray.add_argument("--gpus-per-run", type=float, metavar="G", help="GPUs of each run "
                     "(default 1 with --device cuda, else 0)")
    ray.add_argument("--retries", type=int, metavar="N", help="retries of a run whose worker "
                     "process or node died (default 3)")
