"""The ``plp-bench`` command line: the commands of :mod:`plp_bench.commands` assembled under
one parser, and the one place where errors become exit codes.

``plp-bench`` alone runs the embedded default: the offline workloads (data bundled with
scikit-learn) with every method of the default run and 3 seeds. User mistakes (a bad config, an
unknown name, a missing data file, no CUDA) print one message and exit non-zero without a
traceback (2 for a value that is not allowed, 1 for missing data); ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from . import __version__, data
from .commands import COMMANDS
from .commands import run as run_command
from .commands.common import Streams
from .core.config import ConfigError
from .core.environment import check_commit_variables
from .core.record import ResultError
from .core.registry import UnknownNameError
from .runs.device import DeviceError

EXIT_CONFIG = 2  # a value the user gave is not allowed
EXIT_DATA = 1  # a data file is missing or malformed (a non-canonical one is EXIT_CONFIG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plp-bench",
        description="Steps and seconds to a target accuracy for training-acceleration methods.",
    )
    parser.add_argument("--version", action="version", version=f"plp-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command")
    for command in COMMANDS:
        command.register(commands)
    return parser


def _console(stream) -> Console:
    interactive = stream.isatty()
    # paths and values in messages are printed as they are: no markup is read from them,
    # and no ":name:" in a path (":train:" between an archive and its member) becomes an emoji
    return Console(file=stream, width=None if interactive else 160, emoji=False)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    streams = Streams(_console(sys.stdout), _console(sys.stderr), argv)
    handle = getattr(args, "handle", run_command.handle)  # no command: the default run
    try:
        check_commit_variables()
        return handle(args, streams)
    except OSError as error:  # a folder that cannot be written, a disk that is full, ...
        if args.debug:
            traceback.print_exc()
        where = f"{error.filename}: " if error.filename else ""
        streams.err.print(f"[red]error:[/] {escape(where + (error.strerror or str(error)))}",
                          highlight=False)
        return EXIT_CONFIG
    except (ConfigError, UnknownNameError, DeviceError, ResultError, data.DataError) as error:
        if args.debug:
            traceback.print_exc()
        streams.err.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        missing = isinstance(error, data.DataError) and not isinstance(error,
                                                                      data.NotCanonicalError)
        return EXIT_DATA if missing else EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
