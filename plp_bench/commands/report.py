"""``plp-bench report`` (alias ``summary``): the record tables in the terminal, the change
against another commit, asv's own values, and (``--html``) the commit's page and the index of
every commit."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..core.config import ConfigError
from ..core.environment import git_commit
from ..core.record import shared_names
from ..core.tables import to_rich
from ..report import asv_results, summary
from ..report.changes import asv_table, record_changes
from ..report.record_sources import RecordSet, commit_folders, read_folders, records_of
from .common import Streams

DEFAULT_FOLDER = "results"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", aliases=["summary"],
                            help="the tables of run records (a sweep's results, the asv "
                            "suite's runs), the change against another commit, and the "
                            "HTML report")
    parser.add_argument("folder", nargs="*", help="folders of run records (default: "
                        "./results, else the asv run cache of the checked-out commit)")
    parser.add_argument("--workload", action="append", metavar="NAME",
                        help="only this workload (repeatable)")
    parser.add_argument("--compare", metavar="REV", help="also show the change against "
                        "another commit's records (a git revision, looked up in the asv "
                        "run cache, or a folder of records)")
    parser.add_argument("--html", action="store_true", help="also write "
                        "OUT/<commit>/index.html and the index of every commit OUT/index.html")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="where --html writes (default reports)")
    asv_results.add_results_option(parser, "--asv-results")
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace, streams: Streams) -> int:
    return report(args.folder, workloads=args.workload, compare=args.compare, html=args.html,
                  out_dir=args.out,
                  asv_dir=args.asv_results or asv_results.default_results_dir(),
                  out=streams.out, err=streams.err)



def _default_folders() -> list[str]:
    """``results`` when it exists, else the asv run cache of the checked-out commit."""
    if Path(DEFAULT_FOLDER).is_dir():
        return [DEFAULT_FOLDER]
    commit = git_commit()
    cached = commit_folders(commit) if commit else []
    if cached:
        return [str(p) for p in cached]
    raise ConfigError(f"no run records: no ./{DEFAULT_FOLDER} folder and no asv run cache of "
                      "the checked-out commit; name a folder of records", path=("folder",))


def _filter(found: RecordSet, names: list[str] | None) -> RecordSet:
    if not names:
        return found
    present = sorted({r.workload for r in found.records})
    for name in names:
        if name not in present:
            raise ConfigError(f"no records of workload {name!r} under "
                              f"{', '.join(map(str, found.folders))}; present: "
                              f"{', '.join(present) or '(none)'}", path=("--workload",))
    return found.only(names)


def _check_writable(folder: Path) -> None:
    """Refuse an output folder that cannot be written before any work is done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".plp-bench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"{folder}: cannot write the HTML report there ({error.strerror})",
                          path=("--out",)) from None


def report(folders: list[str], *, workloads: list[str] | None, compare: str | None,
           html: bool, out_dir: str, asv_dir: str, out: Console, err: Console) -> int:
    if html:
        _check_writable(Path(out_dir))
    thresholds = asv_results.Thresholds.load()
    found = _filter(read_folders(folders or _default_folders()), workloads)
    commit = found.commit
    values = asv_results.commit_values(asv_dir, commit) if commit else []
    baseline = None
    if compare is not None:
        from ..pages.html import Baseline

        base_found, base_commit = records_of(compare)
        base_found = base_found.only({r.workload for r in found.records})
        base_values = asv_results.commit_values(asv_dir, base_commit) if base_commit else []
        baseline = Baseline(compare, base_found.records, base_values)
    summaries = summary.summarize(found.records)
    changes = (record_changes(found.records, baseline.records, thresholds=thresholds,
                              label=compare) if baseline else {})
    for item in summaries:
        out.print(summary.table(item))
        if item.workload in changes:
            out.print(to_rich(changes[item.workload]))
        out.print()
    if len(summaries) > 1:
        out.print(to_rich(summary.overall_table(summary.overall(summaries))))
        out.print()
    shown = asv_table(values, baseline.asv_values if baseline else None, thresholds=thresholds,
                      label=compare or "")
    if shown.rows:
        out.print(to_rich(shown))
        out.print()
    where = ", ".join(map(str, found.folders))
    out.print(f"{len(found.records)} run records under {where}"
              + (f" (commit {commit[:12]})" if commit else "")
              + (f"; {len(values)} asv values" if values else "")
              + (f"; compared with {compare}: {len(baseline.records)} records"
                 if baseline else ""), highlight=False, markup=False)
    for label, count in shared_names(found.records).items():
        out.print(f"{label}: {count} configurations under one workload name (other steps, "
                  f"targets or batch size); shown apart as {label}#<configuration>",
                  highlight=False, markup=False)
    for line in found.unreadable:
        err.print(f"[yellow]skipped:[/] {escape(line)}", highlight=False)
    if found.failures:
        out.print(f"{len(found.failures)} failed run(s) recorded (not in the tables; a sweep "
                  "retries them):", highlight=False, markup=False)
        for line in found.failures:
            out.print(f"  failed: {line}", highlight=False, markup=False)
    if html and found.records:
        from ..pages.html import build_commit_page, build_index

        started = time.perf_counter()
        with err.status("building the HTML report ..."):
            page = build_commit_page(found, Path(out_dir), commit=commit, asv_values=values,
                                     thresholds=thresholds, baseline=baseline,
                                     summaries=summaries, changes=changes)
            index = build_index(Path(out_dir))
        out.print(f"HTML report: {page} (index: {index}; {time.perf_counter() - started:.1f} s)",
                  highlight=False, markup=False)
    return 0 if found.records else 1
