"""Static HTML reports: one page per commit, and an index of every commit with trend charts.

``<out>/<commit>/index.html`` holds the record tables, learning curves, time-to-target bars,
performance profiles, the linearised-ODE table, asv's other values and the environment;
``<out>/<commit>/report.json`` keeps the headline numbers (steps and seconds to the primary
target, speedup against SGD, per workload and method) from which ``<out>/index.html`` draws
its trends across every commit present. Pages are Jinja2 templates with matplotlib figures
inlined as SVG: no script, no network, viewable from the file system.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from .. import __version__
from ..claims import report as claim_report
from ..core.config import ConfigError, shown
from ..core.record import (
    COMMIT,
    RunResult,
    group_runs,
    write_json_atomic,
    write_text_atomic,
)
from ..core.stats import censored
from ..core.tables import Cell, Column, TableData
from ..report import figures, summary
from ..report.asv_results import AsvValue, Thresholds
from ..report.changes import asv_table, record_changes
from ..report.performance_profiles import performance_ratios
from ..report.record_sources import RecordSet, commit_date

REPORT_SCHEMA = 1
PAGE_MODE = 0o644  # pages are served and read by others
ENVIRONMENT_KEYS = ("commit", "plp_bench", "python", "torch", "numpy", "scipy", "platform",
                    "device", "device_name", "cuda", "threads", "cpu_count")


@dataclass
class Baseline:
    """The other side of a comparison: its label (a revision or folder), records, asv values."""

    label: str
    records: list[RunResult]
    asv_values: list[AsvValue]


def _templates() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                       autoescape=select_autoescape(["html"]), trim_blocks=True,
                       lstrip_blocks=True)


def environment_table(records: list[RunResult]) -> TableData:
    """Each environment field with its distinct values over the records (and how many)."""
    table = TableData("environment of the runs", [Column("field", numeric=False),
                                                  Column("value", numeric=False)],
                      caption="from the run records; several values are listed with counts")
    for key in ENVIRONMENT_KEYS:
        counts = Counter(str(r.environment.get(key)) for r in records
                         if r.environment.get(key) is not None)
        if counts:
            text = ", ".join(v if len(counts) == 1 else f"{v} ({n})"
                             for v, n in counts.most_common())
            table.add_row(Cell(key), Cell(text))
    dates = sorted(r.environment["date"] for r in records if r.environment.get("date"))
    if dates:
        table.add_row(Cell("runs made"), Cell(dates[0] if dates[0] == dates[-1]
                                              else f"{dates[0]} … {dates[-1]}"))
    return table


def ode_section(asv_values: list[AsvValue], folders: list[Path]) -> TableData | None:
    """Wall seconds to each training accuracy, full-batch gradient descent against the
    linearised network's ODE (BDF), from the two published forms of that comparison: asv's
    ``ode`` suite values, and the ``ode-table*.json`` files that ``plp-bench ode-table --json``
    wrote into a record folder."""
    rows: dict[tuple[str, str, str], dict[str, float | None]] = defaultdict(dict)
    for v in asv_values:
        if v.benchmark.startswith("ode.") and len(v.params) == 2:
            side = v.benchmark.rsplit("_", 2)[-2]  # track_gd_seconds -> gd, ...
            rows[(v.params[0], "suite's", v.params[1])][side] = v.value
    for folder in folders:
        for path in sorted(folder.rglob("ode-table*.json")):
            rows.update(_ode_rows(path))
    if not rows:
        return None
    table = TableData(
        "linearised-model ODE (BDF) against gradient descent",
        [Column("workload", numeric=False), Column("learning rate"), Column("train accuracy"),
         Column("GD seconds"), Column("ODE seconds"), Column("ODE / GD")],
        caption="wall seconds to reach the training accuracy; the ODE's time includes the "
        "Jacobian; ODE / GD below 1: the ODE is faster; — not reached within the budget; "
        "suite's: the learning rate of the asv ode suite")
    for (workload, lr, accuracy), sides in sorted(rows.items()):
        gd, ode = sides.get("gd"), sides.get("ode")
        ratio = ode / gd if gd and ode is not None else None
        table.add_row(Cell(workload), Cell(lr), Cell(accuracy),
                      Cell("—" if gd is None else f"{gd:.3f}"),
                      Cell("—" if ode is None else f"{ode:.3f}"),
                      Cell("—" if ratio is None else f"{ratio:.2f}",
                           "best" if ratio is not None and ratio < 1 else None))
    return table


def _ode_rows(path: Path) -> dict[tuple[str, str, str], dict[str, float | None]]:
    """The rows of one ``ode-table*.json``; none from a file that is not one (it is read, not
    trusted: a malformed file leaves the table without it)."""
    def seconds(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
            else None

    try:
        comparisons = json.loads(path.read_text())
        rows = {}
        for comparison in comparisons:
            for row in comparison["rows"]:
                key = (str(comparison["workload"])[:80], f"{float(comparison['lr']):g}",
                       f"{float(row['threshold']):.2f}")
                rows[key] = {"gd": seconds(row["gd_seconds"]), "ode": seconds(row["ode_seconds"])}
        return rows
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return {}


def headline(records: list[RunResult], summaries: list[summary.WorkloadSummary]
             ) -> dict[str, Any]:
    """Per workload and method: the numbers the index trends (as the asv suite tracks them:
    censored medians at the primary target) and the paired speedups against SGD."""
    grouped = group_runs(records)
    out: dict[str, Any] = {}
    for s in summaries:
        primary = len(s.targets) - 1
        methods = {}
        for row in s.rows:
            runs = grouped[s.workload][row.method]
            methods[row.method] = {
                "runs": row.runs, "reached": row.reached[-1],
                "steps": censored(runs, primary, "steps"),
                "seconds": censored(runs, primary, "seconds"),
                "speedup_steps": row.speedup_steps.estimate if row.speedup_steps else None,
                "speedup_seconds": (row.speedup_seconds.estimate if row.speedup_seconds
                                    else None),
            }
        out[s.workload] = {"target": s.targets[-1], "methods": methods}
    return out


def build_commit_page(found: RecordSet, out_dir: Path, *, commit: str | None,
                      asv_values: list[AsvValue], thresholds: Thresholds,
                      baseline: Baseline | None = None,
                      summaries: list[summary.WorkloadSummary] | None = None,
                      changes: dict[str, TableData] | None = None) -> Path:
    """Write ``<out_dir>/<commit>/index.html`` and its ``report.json``; returns the page.
    ``summaries`` and ``changes`` are those of ``found`` (and ``baseline``) when the caller
    has already computed them for the terminal; otherwise they are computed here."""
    name = commit or "unknown-commit"
    records = found.records
    if summaries is None:
        summaries = summary.summarize(records)
    colours = figures.method_colours(sorted({r.method for r in records}))
    grouped = group_runs(records)
    if changes is None:
        changes = (record_changes(records, baseline.records, thresholds=thresholds,
                                  label=baseline.label) if baseline else {})
    sections = []
    for s in summaries:
        sections.append({
            "workload": s.workload,
            "tables": [summary.time_table(s), summary.outcome_table(s)],
            "change": changes.get(s.workload),
            "curves": Markup(figures.learning_curves(s.workload, grouped[s.workload],
                                                     s.targets, colours)),
            "bars": Markup(figures.time_to_target_bars(s, colours)),
            "train_curves": _markup(figures.training_accuracy_curves(
                s.workload, grouped[s.workload], colours)),
            "loss_differences": _markup(figures.loss_differences(
                s.workload, grouped[s.workload], colours)),
        })
    steps, seconds = summary.primary_times(summaries)
    profiles = Markup(figures.performance_profiles(
        {"steps": performance_ratios(steps), "seconds": performance_ratios(seconds)}, colours))
    asv_shown = asv_table(asv_values, baseline.asv_values if baseline else None,
                          thresholds=thresholds, label=baseline.label if baseline else "")
    date = commit_date(commit) if commit else None
    built = datetime.now(UTC).isoformat(timespec="seconds")
    page = _templates().get_template("commit.html").render(
        commit=name, commit_date=date, built=built, version=__version__,
        records=len(records), unreadable=found.unreadable, failures=found.failures,
        folders=[str(f) for f in found.folders], other_commits=[
            c for c in found.commits if c != commit],
        overall=summary.overall_table(summary.overall(summaries)) if summaries else None,
        profiles=profiles if summaries else None, sections=sections,
        ode=ode_section(asv_values, found.folders),
        asv=asv_shown if asv_shown.rows else None, claims=claims_section(found.folders),
        baseline=baseline.label if baseline else None,
        environment=environment_table(records))
    folder = page_folder(out_dir, name)
    write_json_atomic(folder / "report.json", {
        "schema": REPORT_SCHEMA, "commit": name, "commit_date": date, "built": built,
        "records": len(records), "workloads": headline(records, summaries),
        "environment": {k: v for k, v in (records[0].environment.items() if records else ())
                        if k in ("device_name", "torch", "threads")},
    }, mode=PAGE_MODE)
    return write_text_atomic(folder / "index.html", page, mode=PAGE_MODE)


def _markup(svg: str | None) -> Markup | None:
    return None if svg is None else Markup(svg)


def page_folder(out_dir: Path, commit: str) -> Path:
    """``<out_dir>/<commit>``, only for a commit that is a plain token (records and
    ``$PLP_BENCH_COMMIT`` are checked for that already; this is the last guard before a
    write): never a path that leaves ``out_dir``."""
    if commit != "unknown-commit" and not COMMIT.fullmatch(commit):
        raise ConfigError(f"{shown(commit)} is not a commit (letters, digits, _ . -); the "
                          "page folder is named after it", path=("commit",))
    folder = out_dir / commit
    if folder.resolve().parent != out_dir.resolve():
        raise ConfigError(f"{commit}: the page folder would leave {out_dir}", path=("commit",))
    return folder


def claims_section(folders: list[Path]) -> dict[str, Any] | None:
    """The "Claims" section from the first ``claims.json`` among the record folders."""
    for folder in folders:
        report = claim_report.read(Path(folder) / claim_report.CLAIMS_FILE)
        if report is not None:
            try:
                return claim_report.html_section(report)
            except (KeyError, TypeError, ValueError, AttributeError):
                return None  # a claims.json that is not one: the page goes without it
    return None


def _load_history(out_dir: Path) -> list[dict[str, Any]]:
    history = []
    for path in sorted(out_dir.glob("*/report.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("schema") == REPORT_SCHEMA \
                and isinstance(data.get("commit"), str) \
                and (COMMIT.fullmatch(data["commit"]) or data["commit"] == "unknown-commit"):
            history.append(data)
    # commits without a date (not in this clone) sort by when their page was built
    return sorted(history, key=lambda d: (d.get("commit_date") or d.get("built") or ""))


def build_index(out_dir: Path) -> Path:
    """Write ``<out_dir>/index.html`` from every commit page's ``report.json`` there."""
    history = _load_history(out_dir)
    commits = [h["commit"] for h in history]
    links = [f"{c}/index.html" for c in commits]
    methods = sorted({m for h in history for w in h["workloads"].values() for m in w["methods"]})
    colours = figures.method_colours(methods)
    workload_names = sorted({w for h in history for w in h["workloads"]})
    trends = []
    for workload in workload_names:
        panels: dict[str, dict[str, list]] = {}
        for title, key in (("steps to target", "steps"), ("seconds to target", "seconds"),
                           ("speedup vs sgd (steps)", "speedup_steps")):
            series: dict[str, list] = {}
            for method in methods:
                values = [h["workloads"].get(workload, {}).get("methods", {}).get(method, {})
                          .get(key) for h in history]
                if any(v is not None for v in values):
                    series[method] = values
            panels[title] = series
        trends.append({"workload": workload, "svg": Markup(figures.trend_chart(
            workload, commits, panels, colours, links))})
    rows = []
    for h in reversed(history):
        best = {}
        for w, data in h["workloads"].items():
            fastest = min(((v["steps"], m) for m, v in data["methods"].items()
                           if v["reached"] * 2 > v["runs"]), default=None)
            best[w] = fastest[1] if fastest else "—"
        rows.append({"commit": h["commit"], "date": h.get("commit_date") or h.get("built"),
                     "records": h["records"], "workloads": len(h["workloads"]),
                     "fastest": best, "device": h.get("environment", {}).get("device_name")})
    page = _templates().get_template("index.html").render(
        rows=rows, trends=trends, workloads=workload_names, version=__version__,
        asv_site=(out_dir / "asv" / "index.html").is_file(),
        built=datetime.now(UTC).isoformat(timespec="seconds"))
    return write_text_atomic(out_dir / "index.html", page, mode=PAGE_MODE)
