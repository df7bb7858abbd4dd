"""``plp-bench rerun RECORD``: train a record's run again from the config it stores and say
whether every deterministic field came out the same (:mod:`plp_bench.sweeps.reproduce`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from .common import Streams


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rerun", help="train a record's run again from the config it "
                            "stores and say whether the result matches")
    parser.add_argument("record", help="a run record (seed-*.json)")
    parser.add_argument("--device", help="device for the rerun (default: the record's)")
    parser.add_argument("--data-dir", metavar="DIR")
    parser.add_argument("--out", metavar="FILE", help="also save the new record here")
    parser.set_defaults(handle=handle)


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def handle(args: argparse.Namespace, streams: Streams) -> int:
    from ..core.config import ConfigError
    from ..core.record import save
    from ..sweeps.reproduce import differences, environment_changes, rerun_record

    out, err = streams.out, streams.err
    path = Path(args.record)
    if not path.is_file():
        raise ConfigError(f"no such record file: {path}", path=("record",))
    with err.status(f"rerunning {escape(str(path))} ..."):
        recorded, fresh = rerun_record(path, device=args.device, data_root=args.data_dir)
    if args.out:
        save(fresh, args.out)
        out.print(f"new record written to {args.out}", highlight=False, markup=False)
    for change in environment_changes(recorded, fresh):
        out.print(f"  environment: {change.field} was {change.recorded!r}, now "
                  f"{change.rerun!r}", highlight=False, markup=False)
    found = differences(recorded, fresh)
    label = f"{recorded.workload} / {recorded.method} / seed {recorded.seed}"
    if not found:
        out.print(f"[green]identical[/]: the rerun of {escape(label)} reproduces every "
                  "deterministic field of the record (seconds are not compared)")
        return 0
    out.print(f"[red]differs[/]: the rerun of {escape(label)} changed {len(found)} field(s):")
    for d in found:
        out.print(f"  {d.field}: recorded {_short(d.recorded)}, rerun {_short(d.rerun)}",
                  highlight=False, markup=False)
    return 1
