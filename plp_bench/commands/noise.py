"""``plp-bench noise``: measure the suites' noise in repeated A/A rounds and keep the
thresholds in step with it (:mod:`plp_bench.report.noise_model`).

Two sources of rounds:

* ``--rounds N`` (default 3): ``asv run`` of the checked-out commit N times in this Python's
  environment, each round on a machine name of its own (``noise-1`` ...), samples recorded;
  ``--bench`` narrows the suites as asv's ``-b`` does;
* ``--commit REV`` (repeatable): measurements already in asv's results folder, every
  (machine, commit) file of the named commits one round. Name commits whose package is
  identical (an ``asv continuous`` between two such commits is two rounds). The rounds of one
  machine name were measured together (one ``asv continuous``, one CI job) and are compared
  with each other only: the noise a comparison sees. Values measured by another version of
  their benchmark than ``benchmarks.json``'s (its definition changed since) are left out, so
  rounds measured before a benchmark changed still count for the others.

``--rounds-a-side 1`` models the comparisons whose sides carry one round each (``.ci/run``
when its budget leaves no time for the second rounds), where every timing of the suites is
measured in ``ROUNDS`` rounds otherwise: ``asv run -a rounds=1`` for each round, and the model
goes to ``benchmarks/noise-model-one-round.json`` (``plp-bench compare --model``), never into
``asv.conf.json``, whose thresholds are those of ``asv continuous``'s ``ROUNDS`` rounds a side.

``--add`` runs the ``--rounds`` as rounds after those this command already measured of the
checked-out commit (same rounds a side, same results folder) and builds the model from all of
them: a model measured on a quiet machine grows by rounds under load without measuring the
quiet ones again (``--add --rounds 0`` builds it again from the rounds measured). Rounds of
two rounds a side are named ``noise-K``, of one ``noise-one-round-K``.

``--keep-others`` keeps, from the model already written, the rows of every benchmark the
rounds did not measure: a suite measured again (its definition changed) updates its own rows
without the rounds behind the others.

It prints each benchmark's spread, the threshold it implies and the smallest change detected
19 times in 20, writes the model (``--model``) and the thresholds into ``asv.conf.json``
(``--config``), which ``asv publish``, ``plp-bench compare`` and ``plp-bench report --compare``
read. ``--dry-run`` writes nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from ..core.config import ConfigError
from ..core.tables import Column, TableData, to_rich
from ..data.files import ENV_VAR as DATA_ROOT_VARIABLE
from ..report import asv_results, noise_model
from ..report.comparison import ROUNDS
from ..report.record_sources import resolve_revision
from .common import Streams

MAX_ROUNDS = 50
DEFAULT_MODEL = "benchmarks/noise-model.json"
ONE_ROUND_MODEL = "benchmarks/noise-model-one-round.json"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("noise", help="measure the asv suites' noise in repeated A/A "
                            "rounds; write the thresholds it implies")
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help=f"asv runs of the checked-out commit (default 3, at most "
                        f"{MAX_ROUNDS})")
    parser.add_argument("--bench", metavar="REGEX", help="only the benchmarks matching "
                        "(asv's -b)")
    parser.add_argument("--commit", action="append", metavar="REV",
                        help="read rounds already measured for this commit instead of "
                        "running asv (repeatable; commits with the same package)")
    parser.add_argument("--rounds-a-side", type=int, choices=(1, ROUNDS), default=ROUNDS,
                        help=f"the rounds (processes) each measurement's timings come from: "
                        f"{ROUNDS} (default) as asv continuous measures, 1 as CI does without "
                        "its second rounds (a model of its own, not written into --config)")
    asv_results.add_results_option(parser)
    parser.add_argument("--model", metavar="FILE",
                        help=f"where the model is written (default {DEFAULT_MODEL}; "
                        f"{ONE_ROUND_MODEL} with --rounds-a-side 1)")
    parser.add_argument("--config", default="asv.conf.json", metavar="FILE",
                        help="the asv configuration whose thresholds are written "
                        "(default asv.conf.json)")
    parser.add_argument("--add", action="store_true",
                        help="run the --rounds after the rounds already measured of this "
                        "commit (same --rounds-a-side, same results folder) and build the "
                        "model from all of them")
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the rows of the benchmarks these rounds did not measure "
                        "from the model already at --model (its rounds need not be at hand)")
    parser.add_argument("--dry-run", action="store_true", help="print, write nothing")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown "
                        "(the README's)")
    parser.set_defaults(handle=handle)


def round_machine(rounds_a_side: int, number: int) -> str:
    """The asv machine name of round ``number`` of this command: the rounds of one round a
    side apart from those of two, so that ``--add`` adds to rounds of its own kind."""
    return f"{_round_prefix(rounds_a_side)}{number}"


def _round_prefix(rounds_a_side: int) -> str:
    return "noise-" if rounds_a_side == ROUNDS else "noise-one-round-"


def measured_rounds(results: Path, commit: str, rounds_a_side: int) -> list[int]:
    """The numbers of the rounds of ``rounds_a_side`` this command measured of ``commit``
    under ``results``: the machines of the commit's results (as the model reads them) named
    as :func:`round_machine` names them; any other name, or a number past ``MAX_ROUNDS``, is
    not one of its rounds."""
    name = re.compile(re.escape(_round_prefix(rounds_a_side)) + r"([1-9][0-9]{0,2})")
    matches = (name.fullmatch(value.machine)
               for value in asv_results.commit_values(results, commit))
    return sorted({int(m[1]) for m in matches if m and int(m[1]) <= MAX_ROUNDS})


def benchmark_environment() -> dict[str, str]:
    """This process's environment for asv's benchmark processes, which run in a folder of
    asv's: a relative data root is made absolute here, where it was given (relative to asv's
    folder, the suites that read the real files would be skipped, ``n/a``)."""
    environment = dict(os.environ)
    root = environment.get(DATA_ROOT_VARIABLE)
    if root and not os.path.isabs(root):
        environment[DATA_ROOT_VARIABLE] = os.path.abspath(root)
    return environment


def run_rounds(rounds: int, bench: str | None, streams: Streams,
               rounds_a_side: int = ROUNDS, first: int = 1) -> tuple[str, list[str]]:
    """``asv run`` of HEAD ``rounds`` times in this environment, each timing in
    ``rounds_a_side`` rounds of its own, numbered from ``first``; the commit and the machine
    name of each round."""
    commit = resolve_revision("HEAD", option="--rounds")
    machines = [round_machine(rounds_a_side, k) for k in range(first, first + rounds)]
    asv = [sys.executable, "-m", "asv"]
    for number, machine in enumerate(machines, start=first):
        streams.err.print(f"round {number} of {first + rounds - 1} ({machine}): asv run "
                          f"{commit[:12]}", highlight=False)
        subprocess.run([*asv, "machine", "--yes", "--machine", machine], check=True,
                       stdout=subprocess.DEVNULL)
        command = [*asv, "run", "--environment", f"existing:{sys.executable}",
                   "--set-commit-hash", commit, "--machine", machine, "--record-samples"]
        if bench:
            command += ["--bench", bench]
        if rounds_a_side != ROUNDS:
            command += ["--attribute", f"rounds={rounds_a_side}"]
        done = subprocess.run(command, check=False, env=benchmark_environment())
        if done.returncode not in (0, 2):  # 2: some benchmark failed, the rest is recorded
            raise ConfigError(f"asv run exited {done.returncode} in round {machine}",
                              path=("--rounds",))
    return commit, machines


def handle(args: argparse.Namespace, streams: Streams) -> int:
    results = Path(args.results or asv_results.default_results_dir())
    if args.model is None:
        args.model = DEFAULT_MODEL if args.rounds_a_side == ROUNDS else ONE_ROUND_MODEL
    if args.commit and args.add:
        raise ConfigError("--add runs rounds of the checked-out commit; --commit reads rounds "
                          "measured elsewhere: give one of them", path=("--add",))
    if args.commit:
        commits = [resolve_revision(rev, option="--commit") for rev in args.commit]
        machines = None
    else:
        earlier = (measured_rounds(results, resolve_revision("HEAD", option="--add"),
                                   args.rounds_a_side) if args.add else [])
        least = max(0, 2 - len(earlier))  # a model compares two rounds at least
        if not least <= args.rounds <= MAX_ROUNDS - max(earlier, default=0):
            raise ConfigError(
                f"{args.rounds} is not allowed; allowed: {least} to "
                f"{MAX_ROUNDS - max(earlier, default=0)}"
                + (f" (rounds up to {max(earlier)} are measured already)" if earlier else ""),
                path=("--rounds",))
        if args.bench is not None:
            try:
                re.compile(args.bench)
            except re.error as error:
                raise ConfigError(f"{args.bench!r} is not a regular expression ({error})",
                                  path=("--bench",)) from None
        commit, machines = run_rounds(args.rounds, args.bench, streams, args.rounds_a_side,
                                      first=max(earlier, default=0) + 1)
        machines = [round_machine(args.rounds_a_side, k) for k in earlier] + machines
        commits = [commit]
    measurements, labels, groups = [], [], []
    for commit in commits:
        for machine, values in sorted(_by_machine(results, commit).items()):
            if machines is not None and machine not in machines:
                continue
            if args.bench:
                values = [v for v in values if re.search(args.bench, v.benchmark)]
            # a benchmark whose definition changed since: its noise is not today's
            values = [v for v in values if v.current]
            measurements.append(values)
            labels.append(f"{machine}/{commit[:12]}")
            # read rounds: one machine name is one asv continuous, its commits measured
            # together; run rounds: all of one commit, measured one after the other
            groups.append(machine if machines is None else "")
    model = noise_model.build(measurements, labels, groups, args.rounds_a_side)
    if args.keep_others:
        model = model.over(noise_model.NoiseModel.load(args.model))
    if args.markdown:
        print(noise_model.markdown(model))
    else:
        streams.out.print(to_rich(_table(model)))
    if not args.dry_run:
        from ..core.record import write_json_atomic

        write_json_atomic(Path(args.model), model.to_json())
        if model.rounds_a_side == ROUNDS:
            noise_model.write_config_thresholds(args.config, model, args.model)
            streams.out.print(f"wrote {args.model} and the thresholds of {args.config}",
                              highlight=False)
        else:
            streams.out.print(f"wrote {args.model}, the thresholds of comparisons of "
                              f"{model.rounds_a_side} round(s) a side (plp-bench compare "
                              f"--model {args.model}); {args.config} keeps those of {ROUNDS}",
                              highlight=False)
    return 0


def _by_machine(results: Path, commit: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for value in asv_results.commit_values(results, commit):
        found.setdefault(value.machine, []).append(value)
    if not found:
        raise ConfigError(f"{results}: asv recorded nothing for {commit[:12]}",
                          path=("--commit",))
    return found


def _table(model: noise_model.NoiseModel) -> TableData:
    table = TableData(
        f"noise of {len(model.measurements)} A/A rounds, {model.rounds_a_side} round(s) a side "
        f"in each: {', '.join(model.measurements)}",
        [Column("benchmark", numeric=False), Column("points"), Column("kind", numeric=False),
         Column("spread"), Column("threshold"), Column("detects")],
        caption="a benchmark's row covers all its points, a row 'benchmark(x, ...)' those "
        "whose first parameter is x; spread: largest max/min - 1 of a point's medians; threshold: "
        f"{noise_model.MARGIN:g} x spread rounded up to 1%, at least "
        f"{noise_model.FLOOR:.0%} (0 for an exact value); detects: smallest change flagged 19 "
        "times in 20")
    for b in sorted(model.benchmarks, key=noise_model.row_order):
        table.add_row(b.label, str(b.points), "exact" if b.deterministic else "timing",
                      f"{b.spread:.1%}", f"{b.threshold:.0%}",
                      "any" if b.deterministic else f"{b.detectable:.0%}")
    return table

