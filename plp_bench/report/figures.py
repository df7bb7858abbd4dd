"""The report's figures, drawn with matplotlib and returned as inline SVG text.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no display).
Each SVG gets its own ``svg.hashsalt`` so element ids never collide between the figures of
one page, and no date, so the same records give the same bytes. Text stays text
(``svg.fonttype = none``) and takes the page's font.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from ..core.record import RunResult
from .performance_profiles import R_MAX
from .summary import WorkloadSummary

ERROR_FLOOR = 1e-3  # a validation error of 0 is drawn here on the log axis
REFERENCE_COLOUR = "#222222"


def method_colours(methods: Sequence[str], reference: str = "sgd") -> dict[str, str]:
    """One colour per method, the same in every figure of a report (the reference black)."""
    from matplotlib import colormaps

    others = sorted(m for m in set(methods) if m != reference)
    palette = colormaps["tab20"].colors + colormaps["tab20b"].colors
    colours = {m: "#{:02x}{:02x}{:02x}".format(*tuple(int(255 * c) for c in palette[i % len(palette)][:3]))
               for i, m in enumerate(others)}
    colours[reference] = REFERENCE_COLOUR
    return colours


def to_svg(figure: Figure, name: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), ids salted with ``name``."""
    buffer = io.StringIO()
    with rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _quantiles(columns: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = np.array([np.quantile(c, [0.25, 0.5, 0.75]) for c in columns])
    return q[:, 1], q[:, 0], q[:, 2]


def learning_curves(workload: str, runs: Mapping[str, list[RunResult]], targets: list[float],
                    colours: Mapping[str, str]) -> str:
    """Validation error against steps and against training seconds: per method the median
    over seeds (line) and the interquartile range (band) at each evaluation; the targets as
    dotted lines; every diverged run drawn on its own, dashed, with an x where it stopped."""
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    diverged_drawn = False
    ends: dict[str, float] = {}
    for method in sorted(runs, key=lambda m: (colours.get(m) != REFERENCE_COLOUR, m)):
        alive = [r for r in runs[method] if not r.diverged]
        colour = colours[method]
        if alive:
            length = min(len(r.curves.val_error) for r in alive)
            errors = [[max(r.curves.val_error[i], ERROR_FLOOR) for r in alive]
                      for i in range(length)]
            mid, low, high = _quantiles(errors)
            steps = np.array(alive[0].curves.step[:length], dtype=float)
            seconds = np.median([r.curves.train_seconds[:length] for r in alive], axis=0)
            ends[method] = float(seconds[-1])
            for ax, x in zip(axes, (steps, seconds), strict=True):
                ax.plot(x, mid, color=colour, lw=1.4, label=method if ax is axes[0] else None)
                if len(alive) > 1:
                    ax.fill_between(x, low, high, color=colour, alpha=0.15, lw=0)
        for r in runs[method]:
            if not r.diverged:
                continue
            errors = [ERROR_FLOOR if not math.isfinite(e) else max(e, ERROR_FLOOR)
                      for e in r.curves.val_error]
            for ax, x in zip(axes, (r.curves.step, r.curves.train_seconds), strict=True):
                ax.plot(x, errors, color=colour, lw=0.9, ls="--",
                        label=None if alive or ax is not axes[0] else method)
                ax.plot(x[-1:], errors[-1:], marker="x", color="#d62728", ms=8, mew=2,
                        label="diverged run (stopped)" if not diverged_drawn
                        and ax is axes[0] else None)
            diverged_drawn = True
    for ax, label in zip(axes, ("optimizer steps", "training seconds"), strict=True):
        for target in targets:
            ax.axhline(max(target, ERROR_FLOOR), color="#555555", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.grid(True, which="major", alpha=0.3)
    for target in targets:
        axes[1].annotate(f"target {target:g}", (1, max(target, ERROR_FLOOR)),
                         xycoords=("axes fraction", "data"), xytext=(3, 0),
                         textcoords="offset points", va="center", fontsize=8, color="#555555")
    _cut_slow_tail(axes[1], ends)
    axes[0].set_ylabel("validation error (log)")
    figure.suptitle(f"{workload}: validation error, median over seeds (band: interquartile "
                    "range)", fontsize=11)
    figure.legend(loc="outside lower center", ncol=min(6, max(1, len(runs))), fontsize=8,
                  frameon=False)
    return to_svg(figure, f"curves-{workload}")


def training_accuracy_curves(workload: str, runs: Mapping[str, list[RunResult]],
                             colours: Mapping[str, str]) -> str | None:
    """Training-split accuracy against epochs (the PLP paper's Fig. 3): per method the median
    over its runs that scored the training split (line) and the interquartile range (band).
    None when no run did (records of schema 2)."""
    figure = Figure(figsize=(11, 4.0), layout="constrained")
    ax = figure.subplots()
    drawn = False
    for method in sorted(runs, key=lambda m: (colours.get(m) != REFERENCE_COLOUR, m)):
        scored = [r for r in runs[method] if r.curves.train_error and not r.diverged]
        if not scored:
            continue
        length = min(len(r.curves.train_error) for r in scored)
        accuracy = [[1.0 - r.curves.train_error[i] for r in scored] for i in range(length)]
        mid, low, high = _quantiles(accuracy)
        epochs = np.array(scored[0].curves.epoch[:length], dtype=float)
        ax.plot(epochs, mid, color=colours[method], lw=1.4, label=method)
        if len(scored) > 1:
            ax.fill_between(epochs, low, high, color=colours[method], alpha=0.15, lw=0)
        drawn = True
    if not drawn:
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel("training accuracy")
    ax.grid(True, alpha=0.3)
    figure.suptitle(f"{workload}: accuracy on the training split at each evaluation, median "
                    "over seeds (band: interquartile range)", fontsize=11)
    figure.legend(loc="outside lower center", ncol=min(6, max(1, len(runs))), fontsize=8,
                  frameon=False)
    return to_svg(figure, f"train-{workload}")


# the PLP paper's Fig. 4: SGD - PLP and PLP - DEMON, per epoch
LOSS_DIFFERENCE_PAIRS = (("sgd", "plp"), ("plp", "demon"))


def paired_loss_differences(runs: Mapping[str, list[RunResult]], first: str, second: str
                            ) -> tuple[np.ndarray, np.ndarray] | None:
    """Epochs and the median over seeds of ``first``'s validation loss minus ``second``'s at
    each evaluation, the runs paired by seed (same initial weights and batches); None without
    a pair. Evaluations where either loss was not finite are left out of the median."""
    by_seed = {r.seed: r for r in runs.get(second, []) if not r.diverged}
    pairs = [(r, by_seed[r.seed]) for r in runs.get(first, [])
             if r.seed in by_seed and not r.diverged]
    if not pairs:
        return None
    length = min(min(len(a.curves.val_loss), len(b.curves.val_loss)) for a, b in pairs)
    medians = []
    for i in range(length):
        values = [a.curves.val_loss[i] - b.curves.val_loss[i] for a, b in pairs
                  if a.curves.val_loss[i] is not None and b.curves.val_loss[i] is not None]
        medians.append(float(np.median(values)) if values else math.nan)
    return np.array(pairs[0][0].curves.epoch[:length], dtype=float), np.array(medians)


def loss_differences(workload: str, runs: Mapping[str, list[RunResult]],
                     colours: Mapping[str, str]) -> str | None:
    """The PLP paper's Fig. 4: per epoch, SGD's validation loss minus PLP's and PLP's minus
    DEMON's (paired by seed, median over seeds), each with its mean over the run as a dashed
    line (above 0: the first method's loss is higher). None without either pair."""
    curves = {pair: paired_loss_differences(runs, *pair) for pair in LOSS_DIFFERENCE_PAIRS}
    curves = {pair: c for pair, c in curves.items() if c is not None}
    if not curves:
        return None
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    ax = figure.subplots()
    for (first, second), (epochs, differences) in curves.items():
        # each line in the colour of the method PLP is compared with
        colour = colours.get(first if second == "plp" else second, REFERENCE_COLOUR)
        mean = float(np.nanmean(differences))
        ax.plot(epochs, differences, color=colour, lw=1.3,
                label=f"{first} - {second} (mean {mean:+.4f})")
        ax.axhline(mean, color=colour, ls="--", lw=1)
    ax.axhline(0.0, color="#555555", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss difference")
    ax.grid(True, alpha=0.3)
    figure.suptitle(f"{workload}: validation loss differences, paired by seed (median; dashed: "
                    "the mean over the run)", fontsize=11)
    figure.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return to_svg(figure, f"loss-differences-{workload}")


def _cut_slow_tail(ax, ends: Mapping[str, float], factor: float = 5.0) -> None:
    """End the seconds axis at the slowest method within ``factor`` times the median method's
    run time, naming the methods that run on past it (an ODE solver taking a minute would
    otherwise squash every other curve against the axis)."""
    if len(ends) < 3:
        return
    typical = float(np.median(list(ends.values())))
    beyond = {m: e for m, e in ends.items() if e > factor * typical}
    if not beyond:
        return
    cut = max(e for e in ends.values() if e <= factor * typical)
    ax.set_xlim(0, 1.05 * cut)
    ax.text(0.98, 0.97, "axis cut; run on to: " + ", ".join(
        f"{m} {e:.3g} s" for m, e in sorted(beyond.items(), key=lambda x: x[1])),
        transform=ax.transAxes, ha="right", va="top", fontsize=8, color="#555555")


def time_to_target_bars(summary: WorkloadSummary, colours: Mapping[str, str]) -> str:
    """Steps and seconds to the primary target: median of the runs that reached it with the
    interquartile range as the interval; methods that missed in every run are labelled."""
    rows = summary.rows
    figure = Figure(figsize=(11, 0.9 + 0.32 * len(rows)), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(rows))
    for ax, attr, label in ((axes[0], "steps_spread", "steps"),
                            (axes[1], "seconds_spread", "training seconds")):
        spreads = [getattr(r, attr)[-1] for r in rows]
        top = max((s.q3 for s in spreads if s is not None), default=1.0)
        for i, (row, spread) in enumerate(zip(rows, spreads, strict=True)):
            if spread is None:
                ax.text(0, i, f"  not reached (0/{row.runs})", va="center", fontsize=8,
                        color="#d62728")
                continue
            ax.barh(i, spread.median, color=colours[row.method], alpha=0.85, height=0.7)
            ax.errorbar(spread.median, i, xerr=[[spread.median - spread.q1],
                                                [spread.q3 - spread.median]],
                        color="#333333", capsize=3, lw=1)
            reached = row.reached[-1]
            if reached < row.runs:
                ax.text(spread.q3 + 0.01 * top, i, f" {reached}/{row.runs}", va="center",
                        fontsize=8, color="#d62728")
        ax.set_xlabel(f"{label} to val error ≤ {summary.targets[-1]:g}")
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_xlim(0, top * 1.12)
    axes[0].set_yticks(y, [r.method for r in rows], fontsize=9)
    axes[0].invert_yaxis()
    figure.suptitle(f"{summary.workload}: time to the primary target (median, interquartile "
                    "range; k/n where some runs missed)", fontsize=11)
    return to_svg(figure, f"bars-{summary.workload}")


def performance_profiles(ratios: Mapping[str, Mapping[str, Mapping[str, float]]],
                         colours: Mapping[str, str]) -> str:
    """``rho(tau)`` for steps and for seconds: the fraction of workloads a method solves within
    ``tau`` times the fastest (``ratios[measure][method][workload]``), ``tau`` from 1 to
    ``R_MAX``."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    taus = np.linspace(1.0, R_MAX, 400)
    for ax, measure in zip(axes, ("steps", "seconds"), strict=True):
        for method, per in sorted(ratios[measure].items()):
            values = np.array(list(per.values()), dtype=float)
            rho = [(values <= tau).mean() for tau in taus] if values.size else [0.0] * len(taus)
            ax.step(taus, rho, where="post", color=colours[method], lw=1.4,
                    label=method if ax is axes[0] else None)
        ax.set_xlabel(f"τ (within τ × the fastest, {measure})")
        ax.set_xlim(1, R_MAX)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction of workloads")
    figure.suptitle("performance profiles at the primary target", fontsize=11)
    figure.legend(loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    return to_svg(figure, "profiles")


def trend_chart(workload: str, commits: Sequence[str], panels: Mapping[str, Mapping[str, list]],
                colours: Mapping[str, str], links: Sequence[str]) -> str:
    """Headline numbers across commits (oldest left): ``panels[title][method]`` is one value
    (or ``None``) per commit; each point links to ``links[i]``, that commit's page."""
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    axes = figure.subplots(1, len(panels))
    x = np.arange(len(commits))
    for ax, (title, series) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        for method, values in sorted(series.items()):
            ys = np.array([np.nan if v is None else v for v in values], dtype=float)
            ax.plot(x, ys, color=colours[method], lw=1.2,
                    label=method if ax is np.atleast_1d(axes)[0] else None)
            points = ax.scatter(x, ys, color=colours[method], s=18, zorder=3)
            points.set_urls(list(links))
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x, [c[:8] for c in commits], rotation=45, fontsize=8, ha="right")
        ax.grid(True, alpha=0.3)
        if len(commits) == 1:
            ax.set_xlim(-0.5, 0.5)
    figure.suptitle(f"{workload} across commits (oldest left; a point opens that commit's "
                    "report)", fontsize=11)
    figure.legend(loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    return to_svg(figure, f"trend-{workload}")
