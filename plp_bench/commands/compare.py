"""``plp-bench compare BASE HEAD``: every asv benchmark of two commits side by side, each change
decided by the measured noise (:mod:`plp_bench.report.comparison`), ending with one line:
``compared with <base>: no change`` or the changed benchmarks. Report only: the exit code is 0
whatever changed, unless ``--fail-on-change``.

The thresholds are ``asv.conf.json``'s (``--config``): those of comparisons whose timings come
from two rounds a side, as ``asv continuous`` measures them. ``--model FILE`` adds those of a
noise model of comparisons of fewer rounds a side (``plp-bench noise --rounds-a-side 1``: one
round a side, as ``.ci/run`` compares where its budget leaves no time for the second rounds):
each benchmark's threshold is then the larger of the two, since fewer rounds a side are never
less noisy."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.config import ConfigError
from ..core.tables import to_rich
from ..report import asv_results
from ..report.changes import asv_changes, asv_table
from ..report.comparison import MARGIN, Measured, within_own_rounds
from ..report.noise_model import NoiseModel, model_thresholds
from ..report.record_sources import resolve_revision
from .common import Streams

EXIT_CHANGED = 1


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("compare", help="asv's values of two commits side by side, each "
                            "change decided by the measured noise (report only)")
    parser.add_argument("base", help="the commit compared against (a git revision)")
    parser.add_argument("head", nargs="?", default="HEAD", help="the commit compared "
                        "(default HEAD)")
    asv_results.add_results_option(parser)
    parser.add_argument("--config", default="asv.conf.json", metavar="FILE",
                        help="the asv configuration whose regressions_thresholds hold the "
                        "noise model's thresholds (default asv.conf.json)")
    parser.add_argument("--model", metavar="FILE",
                        help="the thresholds of this noise model (plp-bench noise) too, where "
                        "the sides carry fewer rounds than asv continuous's two, e.g. "
                        "benchmarks/noise-model-one-round.json: each benchmark's threshold is "
                        "the larger of its and --config's")
    parser.add_argument("--all", action="store_true", help="show every benchmark, not only "
                        "the changed ones")
    parser.add_argument("--fail-on-change", action="store_true",
                        help=f"exit {EXIT_CHANGED} when a benchmark changed")
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace, streams: Streams) -> int:
    results = Path(args.results or asv_results.default_results_dir())
    base = resolve_revision(args.base, option="base")
    head = resolve_revision(args.head, option="head")
    thresholds = configured = asv_results.Thresholds.load(args.config)
    if args.model is not None:
        model = NoiseModel.load(args.model)
        thresholds = model_thresholds(model, args.model, configured)
        streams.out.print(f"thresholds: the larger of {args.model}'s (comparisons of "
                          f"{model.rounds_a_side} round(s) a side) and {configured.source}'s",
                          highlight=False, soft_wrap=True)
    before = asv_results.commit_values(results, base)
    now = asv_results.commit_values(results, head)
    for commit, values, option in ((base, before, "base"), (head, now, "head")):
        if not values:
            raise ConfigError(f"{results}: asv recorded nothing for {commit[:12]} (run asv "
                              "for it first)", path=(option,))
    table = asv_table(now, before, thresholds=thresholds, label=base[:8], skip_suites=())
    changed = [row for row in table.rows if any(c.style in ("worse", "better") for c in row)]
    if not args.all:
        table.rows = changed
    if table.rows:
        streams.out.print(to_rich(table))
    unsure = changes_within_own_rounds(before, now, thresholds)
    if unsure:
        streams.out.print(
            f"{len(unsure)} of the changes are no larger than {MARGIN:g} times the shift between "
            "the two halves of one side's own samples (its two rounds, processes of one "
            "package, where it ran two) on this machine: "
            + ", ".join(f"{name} {ratio:.2f}x (halves {shift:.1%} apart)"
                        for name, ratio, shift in unsure)
            + f". The thresholds of {thresholds.source} may not hold on this machine or under "
            "this load; `plp-bench noise` measures its own", highlight=False, soft_wrap=True)
    if changed:
        names = ", ".join(f"{row[0].text}({row[1].text}) {row[-1].text}x "
                          f"{'worse' if any(c.style == 'worse' for c in row) else 'better'}"
                          for row in changed)
        streams.out.print(f"compared with {base[:12]}: {len(changed)} changed: {names}",
                          highlight=False, soft_wrap=True)
    else:
        streams.out.print(f"compared with {base[:12]}: no change", highlight=False)
    return EXIT_CHANGED if changed and args.fail_on_change else 0


def changes_within_own_rounds(before: list[asv_results.AsvValue],
                              now: list[asv_results.AsvValue],
                              thresholds: asv_results.Thresholds
                              ) -> list[tuple[str, float, float]]:
    """The changes the rule flags (:func:`plp_bench.report.changes.asv_changes`) that lie
    within the noise between one side's own rounds (:func:`within_own_rounds`): each as its
    label, its ratio and that shift. A warning, not a verdict."""
    found = []
    for value, previous, change in asv_changes(now, before, thresholds):
        if change not in ("worse", "better") or value.skipped:
            continue
        shift = within_own_rounds(Measured.of(previous), Measured.of(value))
        if shift is not None:
            found.append((value.label, value.value / previous.value, shift))
    return found
