"""``plp-bench list``: the registered workloads, methods, datasets and models."""

from __future__ import annotations

import argparse

from .common import Streams

KINDS = ("all", "workloads", "methods", "datasets", "models")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="list registered names")
    parser.add_argument("kind", nargs="?", default="all", choices=KINDS)
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace, streams: Streams) -> int:
    from .. import data, models, workloads
    from ..methods import catalogue as methods

    listings = {
        "workloads": workloads.list_workloads,
        "methods": methods.list_methods,
        "datasets": data.list_datasets,
        "models": models.list_models,
    }
    for name, lister in listings.items():
        if args.kind in ("all", name):
            if args.kind == "all":
                streams.out.print(f"[bold]{name}[/]")
            for item in lister():
                streams.out.print(f"  {item}" if args.kind == "all" else item, highlight=False,
                                  markup=False)
    return 0
