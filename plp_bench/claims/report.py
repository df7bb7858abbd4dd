"""The claims' results as the terminal, JSON and the HTML page show them: one row per claim,
workload and check (the paper's value, ours with its interval, the verdict), the learning rate
where a speedup crosses 1, and one figure per claim (the paper's value against ours).

The JSON (``claims.json`` in the results folder, :data:`CLAIMS_SCHEMA`) is what the HTML report
reads back, so the page shows the numbers the terminal showed.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..core.tables import Cell, Column, TableData
from .verdicts import CONFIRMED, CONTRADICTED, NOT_TESTABLE, VERDICTS

CLAIMS_SCHEMA = 1
CLAIMS_FILE = "claims.json"
if TYPE_CHECKING:
    from .measurement import CheckOutcome, ClaimOutcome, Measured

VERDICT_STYLE = {CONFIRMED: "better", CONTRADICTED: "worse", NOT_TESTABLE: "warn",
                 "failed": "warn"}


def _number(value: float | None, effect: str) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}x" if effect == "speedup" else f"{value:+.4f}"


def _check_row(outcome: ClaimOutcome, result: CheckOutcome, size: str,
               step_cap: int | None) -> dict[str, Any]:
    p, check = outcome.planned, result.check
    found = result.found
    capped = step_cap is not None and p.not_testable is None
    flags = [f for f, on in (("proxy workload", p.measurement.proxy),
                             (f"capped at {step_cap} steps", capped)) if on]
    return {
        "claim": p.claim.name, "measurement": p.index, "workload": p.workload.name,
        "dataset": p.workload.dataset,
        "treatment": p.treatment.name, "control": p.control.name,
        "learning_rate": p.learning_rate, "hidden": _hidden(p.workload), "flags": flags,
        "size": size,
        "metric": check.metric, "at": check.at, "effect": check.effect,
        "judged": check.judged,
        "direction": check.direction, "threshold": check.bar,
        "paper": p.paper_value(check),
        "estimate": found.estimate if found else None, "low": found.low if found else None,
        "high": found.high if found else None, "look_level": found.level if found else None,
        "pairs": len(result.treatment), "seeds": outcome.seeds,
        "treatment_values": result.treatment, "control_values": result.control,
        "missed": list(result.missed), "excluded": result.excluded,
        "check_verdict": (NOT_TESTABLE if p.not_testable else
                          "failed" if outcome.error else result.verdict or "not confirmed"),
        "verdict": outcome.verdict, "reason": p.not_testable or outcome.error,
    }


def _hidden(workload) -> list[int] | None:
    """The hidden widths of an MLP workload (what the ODE claims vary beside the rate)."""
    hidden = workload.model_options.get("hidden") if workload.model == "mlp" else None
    return list(hidden) if isinstance(hidden, (list, tuple)) else None


def crossover(points: list[tuple[float, float]]) -> float | None:
    """The learning rate where the speedup crosses 1, interpolated on log-log axes between the
    two measured rates that bracket it (below it the treatment wins); ``None`` when the
    speedups measured do not cross 1."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if (y0 - 1.0) * (y1 - 1.0) <= 0 and y0 != y1:
            a, b = math.log(y0), math.log(y1)
            t = a / (a - b)
            return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))
    return None


def to_json(measured: Measured, claims: list, *, size: str, max_seeds: int,
            step_cap: int | None, seconds: float) -> dict[str, Any]:
    """Everything a later reader needs: the claims as registered, each row, the crossovers."""
    rows = [_check_row(o, c, size, step_cap) for o in measured.outcomes for c in o.checks]
    crossovers = []
    for claim in claims:
        if not claim.crossover:
            continue
        # one crossover per dataset and network width: the rates of one network
        by_network: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
        for row in rows:
            # the judged speedup: a shown one (validation beside training) is not the claim's
            if row["claim"] == claim.name and row["effect"] == "speedup" and \
                    row["judged"] and row["estimate"] is not None and row["learning_rate"]:
                key = (row["dataset"], tuple(row["hidden"] or ()))
                by_network[key].append((row["learning_rate"], row["estimate"]))
        for (dataset, hidden), points in by_network.items():
            crossovers.append({"claim": claim.name, "dataset": dataset,
                               "hidden": list(hidden) or None,
                               "rates": [x for x, _ in sorted(points)],
                               "speedups": [y for _, y in sorted(points)],
                               "crossover": crossover(points)})
    return {
        "schema": CLAIMS_SCHEMA, "size": size, "max_seeds": max_seeds, "step_cap": step_cap,
        "seconds": seconds, "trained": measured.trained, "reused": measured.reused,
        "claims": [{"name": c.name, "paper": c.paper, "claim": c.claim,
                    "settings": c.settings, "assumptions": list(c.assumptions),
                    "checks": [_check_text(check) + ("" if check.judged else
                                                     " (shown, not judged)")
                               for check in c.checks]}
                   for c in claims],
        "rows": rows, "crossovers": crossovers,
    }


def _check_text(check) -> str:
    """A check in words: what is compared, and what the verdict needs."""
    from .registry import METRICS

    effect = "treatment - control" if check.effect == "difference" else "control / treatment"
    return (f"{METRICS[check.metric].describe}: {effect}, {check.direction} than "
            f"{check.bar:g} to confirm")


def _interval_text(row: dict[str, Any]) -> str:
    if row["estimate"] is None:
        return "—"
    effect = row["effect"]
    return (f"{_number(row['estimate'], effect)} [{_number(row['low'], effect)}, "
            f"{_number(row['high'], effect)}]")


def _comparison(row: dict[str, Any]) -> str:
    from .registry import METRICS

    split = "train err" if METRICS[row["metric"]].training_split else "err"
    at = f" ({split} {row['at']:g})" if row["at"] is not None else ""
    sign = "/" if row["effect"] == "speedup" else "-"
    first, second = (row["control"], row["treatment"]) if row["effect"] == "speedup" else \
        (row["treatment"], row["control"])
    return f"{METRICS[row['metric']].short}{at}: {first} {sign} {second}"


def verdict_table(report: dict[str, Any]) -> TableData:
    """The verdict table: a row per claim, workload and check."""
    table = TableData(
        f"claims ({report['size']} size): the papers' numbers re-measured",
        [Column("claim", numeric=False), Column("verdict", numeric=False),
         Column("effect", numeric=False), Column("paper"), Column("ours [95% interval]"),
         Column("pairs"), Column("workload", numeric=False)],
        caption=("effect: treatment - control, or control / treatment for a speedup; the "
                 "interval is Student's t on paired seeds, 95% over the sequential looks "
                 "(Bonferroni); the verdict needs the interval clear of the threshold in the "
                 "paper's direction"))
    for row in report["rows"]:
        where = row["workload"]
        if row["flags"]:
            where += f" ({', '.join(row['flags'])})"
        verdict = row["check_verdict"]
        text = verdict if not row["reason"] else f"{verdict}: {row['reason']}"
        treated, controlled = row["missed"]
        if treated or controlled:
            text += (f" ({treated} treatment and {controlled} control runs missed the target: "
                     "their whole budget counts)")
        if row["excluded"]:
            text += f" ({row['excluded']} pairs without a usable value left out)"
        if not row.get("judged", True):
            text += " (shown beside the verdict, not part of it)"
        table.add_row(row["claim"], Cell(text, VERDICT_STYLE.get(verdict)), _comparison(row),
                      _number(row["paper"], row["effect"]), _interval_text(row),
                      str(row["pairs"]) if row["pairs"] else "—", where)
    return table


def crossover_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for item in report["crossovers"]:
        points = ", ".join(f"lr {x:g}: {y:.2f}x" for x, y in zip(item["rates"],
                                                                 item["speedups"], strict=True))
        where = (f"crosses 1 at lr {item['crossover']:.3g} (the treatment wins below it)"
                 if item["crossover"] is not None else "does not cross 1 over the rates measured")
        width = f" (hidden {item['hidden']})" if item.get("hidden") else ""
        lines.append(f"{item['claim']} on {item['dataset']}{width}: speedup {where}; {points}")
    return lines



def counts(report: dict[str, Any]) -> dict[str, int]:
    """How many claim measurements got each verdict."""
    seen = {(r["claim"], r["measurement"]): r["verdict"] for r in report["rows"]}
    out = {v: 0 for v in (*VERDICTS, "failed")}
    for verdict in seen.values():
        out[verdict] += 1
    return {k: v for k, v in out.items() if v}


def figure(report: dict[str, Any], claim: str) -> str:
    """One claim's figure (SVG): for each check, ours with its interval per workload beside
    the paper's value, and the threshold the verdict needs."""
    from matplotlib.figure import Figure

    from ..report.figures import to_svg

    rows = [r for r in report["rows"] if r["claim"] == claim]
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    if not rows:
        return ""
    fig = Figure(figsize=(6.4, 0.6 + 0.45 * len(rows)), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        mine = [r for r in rows if r["metric"] == metric]
        names = [r["workload"] for r in mine]
        labels, legend = [], {"ours (95%)", "paper"}
        for y, r in enumerate(mine):
            label = r["workload"]
            if names.count(label) > 1 and r["learning_rate"]:
                label += f" lr {r['learning_rate']:g}"
            if len({m["treatment"] for m in mine}) > 1:
                label += f" ({r['treatment']})"
            labels.append(label)
            if r["estimate"] is not None:
                ax.errorbar([r["estimate"]], [y], xerr=[[r["estimate"] - r["low"]],
                                                        [r["high"] - r["estimate"]]],
                            fmt="o", color="#1f77b4", capsize=3,
                            label=_once(legend, "ours (95%)"))
            if r["paper"] is not None:
                ax.plot([r["paper"]], [y], marker="D", color="#d62728", linestyle="none",
                        label=_once(legend, "paper"))
        ax.axvline(mine[0]["threshold"], color="#888888", linewidth=0.8, linestyle="--")
        if mine[0]["effect"] == "speedup":
            ax.set_xscale("log")
        ax.set_yticks(range(len(mine)), labels)
        ax.set_ylim(-0.6, len(mine) - 0.4)
        ax.invert_yaxis()
        ax.set_title(metric, fontsize=9)
        ax.tick_params(labelsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    return to_svg(fig, f"claim-{claim}")


def _once(unused: set[str], label: str) -> str | None:
    """``label`` the first time it is asked for (one legend entry per kind of mark)."""
    if label in unused:
        unused.discard(label)
        return label
    return None


def html_section(report: dict[str, Any]) -> dict[str, Any]:
    """What the commit page's "Claims" section shows: the table, the crossovers, and for each
    claim its statement, settings, assumptions and figure."""
    from markupsafe import Markup

    return {
        "table": verdict_table(report), "crossovers": crossover_lines(report),
        "counts": counts(report), "size": report["size"], "seconds": report["seconds"],
        "claims": [{**claim, "figure": Markup(figure(report, claim["name"]))}
                   for claim in report["claims"]],
    }


def read(path) -> dict[str, Any] | None:
    """A ``claims.json`` written by ``plp-bench claims``; ``None`` if absent or of another
    schema (a page without the section, not a failed report)."""
    import json

    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("schema") == CLAIMS_SCHEMA else None
