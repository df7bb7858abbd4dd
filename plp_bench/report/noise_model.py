"""The measured noise of each benchmark, and the thresholds it implies.

A noise model is built from repeated measurements of one and the same package (A/A rounds:
``asv run`` of one commit several times, or ``asv continuous`` between two commits whose
package is identical), grouped by what was measured together (see :func:`build`). For each
benchmark, over all its parameter points and groups:

* ``spread``: the largest relative difference between two measurements' medians of one point,
  ``max / min - 1``: what an unchanged commit moved by at worst;
* ``sigma``: the standard deviation of a point's log-median across measurements, pooled over
  the points (a relative standard deviation for small values);
* ``threshold = ceil_1%(MARGIN * spread)``, at least ``FLOOR`` for a value with samples (the
  shift between two packages that A/A rounds cannot see, see ``FLOOR``), and 0 for a
  deterministic one (every measurement of every point equal, no samples): the change a
  comparison must exceed (:mod:`plp_bench.report.comparison`). ``MARGIN`` covers a spread that
  few rounds underestimate;
* ``detectable``: the smallest true change that clears the threshold at least 19 times in 20,
  ``(1 + threshold) * exp(1.645 * sigma * sqrt(2)) - 1`` (the measured change of two
  independent medians has ``sqrt(2) * sigma``); exactly 0 for a deterministic value.

The model is JSON (``benchmarks/noise-model.json``); :func:`config_thresholds` turns it into
``asv.conf.json``'s ``regressions_thresholds``, and :func:`write_config_thresholds` writes them
there, so ``asv publish``, ``plp-bench compare`` and ``plp-bench report --compare`` apply the
measured thresholds.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.config import ConfigError
from .asv_results import AsvValue

MARGIN = 1.5
# An A/A pair installs one and the same package, so both sides share its memory layout; two
# real commits do not. Measured on the scratch commit of the README's rounds, on benchmarks
# whose code it did not touch: GD's seconds moved 2.2-2.3% in two rounds whose A/A pair moved
# them 0.1-1.2%, and times to target up to 2.7%. The floor covers that shift.
FLOOR = 0.03
Z_19_IN_20 = 1.645  # one-sided 95% quantile of the normal distribution
SCHEMA = 1
MAX_MODEL_BYTES = 4 * 2**20
MAX_THRESHOLD = 10.0


@dataclass(frozen=True)
class BenchmarkNoise:
    benchmark: str
    points: int
    measurements: int
    deterministic: bool
    spread: float
    sigma: float
    threshold: float
    detectable: float

    @property
    def suite(self) -> str:
        return self.benchmark.split(".", 1)[0]


@dataclass(frozen=True)
class NoiseModel:
    benchmarks: tuple[BenchmarkNoise, ...]
    measurements: tuple[str, ...]  # what each measurement was (machine and commit)

    def of(self, benchmark: str) -> BenchmarkNoise | None:
        return next((b for b in self.benchmarks if b.benchmark == benchmark), None)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "margin": MARGIN, "floor": FLOOR,
                "measurements": list(self.measurements),
                "benchmarks": [asdict(b) for b in self.benchmarks]}

    @classmethod
    def from_json(cls, data: object, source: str) -> NoiseModel:
        """A model read back from JSON, every field checked (a refusal names ``source`` and
        the field)."""
        def fail(where: str, what: str) -> ConfigError:
            return ConfigError(f"{source}: {where}: {what}", path=("noise model", where))

        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise fail("schema", f"expected a noise model of schema {SCHEMA}")
        rows = data.get("benchmarks")
        measurements = data.get("measurements")
        if not isinstance(rows, list) or not isinstance(measurements, list) \
                or not all(isinstance(m, str) for m in measurements):
            raise fail("benchmarks", "expected a list of benchmarks and of measurements")
        parsed = []
        for index, row in enumerate(rows):
            where = f"benchmarks[{index}]"
            if not isinstance(row, dict) or set(row) != set(BenchmarkNoise.__dataclass_fields__):
                raise fail(where, "expected the fields "
                           + ", ".join(BenchmarkNoise.__dataclass_fields__))
            if not isinstance(row["benchmark"], str) or not re.fullmatch(
                    r"[A-Za-z_][\w.]{0,199}", row["benchmark"]):
                raise fail(f"{where}.benchmark", "expected a dotted benchmark name")
            for key in ("points", "measurements"):
                if not isinstance(row[key], int) or isinstance(row[key], bool) \
                        or not 0 <= row[key] <= 10**6:
                    raise fail(f"{where}.{key}", "expected an integer in [0, 1000000]")
            if not isinstance(row["deterministic"], bool):
                raise fail(f"{where}.deterministic", "expected true or false")
            for key in ("spread", "sigma", "threshold", "detectable"):
                value = row[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not 0 <= value <= MAX_THRESHOLD * 100:
                    raise fail(f"{where}.{key}", "expected a number >= 0")
            parsed.append(BenchmarkNoise(**row))
        return cls(tuple(parsed), tuple(measurements))

    @classmethod
    def load(cls, path: str | Path) -> NoiseModel:
        path = Path(path)
        try:
            if path.stat().st_size > MAX_MODEL_BYTES:
                raise ConfigError(f"{path}: larger than {MAX_MODEL_BYTES} bytes",
                                  path=("noise model",))
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: unreadable noise model ({error})",
                              path=("noise model",)) from None
        return cls.from_json(data, str(path))


def _ceil_percent(value: float) -> float:
    return math.ceil(round(value * 100, 9)) / 100


def build(measurements: Sequence[Sequence[AsvValue]], labels: Sequence[str],
          groups: Sequence[Hashable] | None = None) -> NoiseModel:
    """The model of repeated measurements of one package (each a list of asv values).

    ``groups`` (one key per measurement) says which measurements were taken together, as
    the two sides of one comparison are (both commits of one ``asv continuous``; a commit and
    its parent in one CI job): spreads and deviations are then taken within each group, the
    noise a comparison sees, not the drift between days. Without groups, all measurements
    are one group."""
    if len(measurements) < 2:
        raise ConfigError("a noise model needs at least two measurements of the same package; "
                          f"got {len(measurements)}", path=("measurements",))
    groups = list(groups) if groups is not None else [None] * len(measurements)
    if len(groups) != len(measurements):
        raise ValueError("one group per measurement")
    by_point: dict[str, dict[tuple, list[AsvValue]]] = defaultdict(lambda: defaultdict(list))
    for values, group in zip(measurements, groups, strict=True):
        for value in values:
            if value.value is not None and math.isfinite(value.value) and value.value > 0:
                by_point[value.benchmark][(group, value.params)].append(value)
    rows = []
    for benchmark in sorted(by_point):
        points = {p: vs for p, vs in by_point[benchmark].items() if len(vs) >= 2}
        if not points:
            continue
        spread, deviations, sampled = 0.0, [], False
        for values in points.values():
            medians = [v.value for v in values]
            sampled = sampled or any(v.samples is not None for v in values)
            spread = max(spread, max(medians) / min(medians) - 1.0)
            logs = [math.log(m) for m in medians]
            mean = statistics.fmean(logs)
            deviations.append((sum((x - mean) ** 2 for x in logs), len(logs) - 1))
        freedom = sum(d for _, d in deviations)
        sigma = math.sqrt(sum(s for s, _ in deviations) / freedom) if freedom else 0.0
        deterministic = not sampled and spread == 0.0
        if deterministic:
            threshold = detectable = 0.0
        else:
            threshold = min(MAX_THRESHOLD, max(FLOOR, _ceil_percent(MARGIN * spread)))
            detectable = _ceil_percent(
                (1 + threshold) * math.exp(Z_19_IN_20 * sigma * math.sqrt(2)) - 1)
        rows.append(BenchmarkNoise(benchmark, len({p for _, p in points}),
                                   max(len(v) for v in points.values()),
                                   deterministic, round(spread, 6), round(sigma, 6), threshold,
                                   detectable))
    return NoiseModel(tuple(rows), tuple(labels))


def config_thresholds(model: NoiseModel) -> dict[str, float]:
    """``regressions_thresholds`` entries of the model: one pattern per benchmark. asv
    ``re.match``-es the name of a graph, which carries the point's parameters and the branch
    (``name(params)@main``), and takes the largest matching threshold; the pattern stops at
    the name's end so that no other benchmark's name it begins matches."""
    return {re.escape(b.benchmark) + r"(?=$|\(|@)": b.threshold for b in model.benchmarks}


BEGIN = "// noise model: begin (written by `plp-bench noise`; do not edit by hand)"
END = "// noise model: end"


def write_config_thresholds(config_path: str | Path, model: NoiseModel,
                            source: str) -> None:
    """Replace the lines between ``BEGIN`` and ``END`` inside ``regressions_thresholds`` of
    the asv configuration with the model's thresholds; entries outside the markers (GPU
    benchmarks this machine cannot measure) are left as they are."""
    path = Path(config_path)
    text = path.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ConfigError(f"{path}: no '{BEGIN}' ... '{END}' block inside "
                          "regressions_thresholds to write the thresholds into",
                          path=("regressions_thresholds",))
    line_start = text.rfind("\n", 0, start) + 1
    indent = text[line_start:start]
    entries = config_thresholds(model)
    lines = [BEGIN, f"// from {source}"]
    lines += [f"{json.dumps(pattern)}: {threshold:g}," for pattern, threshold
              in entries.items()]
    block = ("\n" + indent).join(lines) + "\n" + indent
    path.write_text(text[:start] + block + text[end:])


def markdown(model: NoiseModel) -> str:
    """The model as a Markdown table, one row per benchmark, grouped by suite."""
    lines = ["| suite | benchmark | points | A/A spread | threshold | detects (19 in 20) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for b in sorted(model.benchmarks, key=lambda b: b.benchmark):
        suite, _, rest = b.benchmark.partition(".")
        detects = "any change (exact)" if b.deterministic else f"{b.detectable:.0%}"
        lines.append(f"| `{suite}` | `{rest}` | {b.points} | {b.spread:.1%} | "
                     f"{b.threshold:.0%} | {detects} |")
    return "\n".join(lines)
