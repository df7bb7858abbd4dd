"""``plp-bench data fetch``: download a dataset's files into the data root and verify them."""

from __future__ import annotations

import argparse

from .common import Streams


def register(sub: argparse._SubParsersAction) -> None:
    from ..data import list_datasets

    parser = sub.add_parser("data", help="dataset files")
    actions = parser.add_subparsers(dest="data_command", required=True)
    fetch = actions.add_parser("fetch", help="download and verify a dataset's files")
    fetch.add_argument("name", help=f"one of: {', '.join(list_datasets())}")
    fetch.add_argument("--data-dir", metavar="DIR")
    fetch.set_defaults(handle=handle_fetch)


def handle_fetch(args: argparse.Namespace, streams: Streams) -> int:
    from ..data.fetch import fetch

    for line in fetch(args.name, args.data_dir):
        streams.out.print(line, highlight=False, markup=False)
    return 0
