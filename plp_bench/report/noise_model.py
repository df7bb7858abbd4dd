"""The measured noise of each benchmark, and the thresholds it implies.

A noise model is built from repeated measurements of one and the same package (A/A rounds:
``asv run`` of one commit several times, or ``asv continuous`` between two commits whose
package is identical), grouped by what was measured together (see :func:`build`). It has a row
for each benchmark over all its parameter points, and, where the benchmark's first parameter
(the parameter set or workload) takes two values or more, a row for each value: the noise is
the workload's, not the benchmark's (measured: the MLP's update ratios moved at most 1.8%
between an A/A pair, ResNet18's up to 7%, so one threshold for both hides 5% on the MLP).
For each row, over its points and groups:

* ``spread``: the largest relative difference between two measurements' medians of one point,
  ``max / min - 1``: what an unchanged commit moved by at worst;
* ``threshold = ceil_1%(MARGIN * spread)``, at least ``FLOOR`` for a value with samples (the
  shift between two packages that A/A rounds cannot see, see ``FLOOR``), and 0 for a
  deterministic one (every measurement of every point equal, no samples): the change a
  comparison must exceed (:mod:`plp_bench.report.comparison`). ``MARGIN`` covers a spread that
  few rounds underestimate;
* ``detectable``: the smallest change, on a grid of 1%, that the comparison rule
  (:func:`plp_bench.report.comparison.decide`: beyond the threshold, and the samples differ)
  flags in the right direction at least 19 times in 20 when it is put into the measured A/A
  pairs: each pair of measurements of one point within a group, one side's median, samples
  and interval multiplied by ``1 + change`` (a slowdown) or divided by it (a speed-up), each
  side in turn. It is the rule's power on the noise as measured, the sample test's included
  (a normal model of the medians alone, ``(1 + threshold) * exp(1.645 * sqrt(2) * sd) - 1``
  with ``sd`` the pooled deviation of a point's log-median, claimed 6% for the ODE over GD
  ratio, whose 8 samples a side spread 4%: put into the pairs, 6% was flagged 20 times in 48
  with the test at p < 0.002). Exactly 0 for a deterministic value.

The model is JSON (``benchmarks/noise-model.json``); :func:`config_thresholds` turns it into
``asv.conf.json``'s ``regressions_thresholds`` (a pattern for each first parameter's row, and
the benchmark's row for the points of any other value, a workload added since), and
:func:`write_config_thresholds` writes them there, so ``asv publish``, ``plp-bench compare``
and ``plp-bench report --compare`` apply the measured thresholds.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.config import ConfigError
from .asv_results import AsvValue, Thresholds
from .comparison import MARGIN, ROUNDS, Measured, decide

# An A/A pair installs one and the same package, so both sides share its memory layout; two
# real commits do not. Measured on the scratch commit of the README's rounds, on benchmarks
# whose code it did not touch: GD's seconds moved 2.2-2.3% in two rounds whose A/A pair moved
# them 0.1-1.2%, and times to target up to 2.7%. The floor covers that shift.
FLOOR = 0.03
POWER = 0.95  # detectable: flagged at least 19 times in 20
# 3: the rounds a side; 2: rows per first parameter (read as ROUNDS a side); 1: no such rows,
# and a sigma no longer used (read likewise)
SCHEMA = 3
MAX_ROUNDS_A_SIDE = 10
MAX_MODEL_BYTES = 4 * 2**20
MAX_THRESHOLD = 10.0
# a first parameter's value as asv stores it (quotes stripped): a parameter set, a workload
PARAMETER_VALUE = re.compile(r"[\w.+\-]{1,100}")


@dataclass(frozen=True)
class BenchmarkNoise:
    benchmark: str
    points: int
    measurements: int
    deterministic: bool
    spread: float
    threshold: float
    detectable: float
    # the value of the benchmark's first parameter whose points the row covers (a parameter
    # set, a workload); None: every point of the benchmark
    first_parameter: str | None = None

    @property
    def suite(self) -> str:
        return self.benchmark.split(".", 1)[0]

    @property
    def label(self) -> str:
        """The row as asv names a point: ``benchmark(first parameter, ...)``."""
        return (self.benchmark if self.first_parameter is None
                else f"{self.benchmark}({self.first_parameter}, ...)")


@dataclass(frozen=True)
class NoiseModel:
    benchmarks: tuple[BenchmarkNoise, ...]
    measurements: tuple[str, ...]  # what each measurement was (machine and commit)
    # the rounds (processes) each measurement's timings came from: the comparisons whose sides
    # carry as many are the ones its thresholds hold for (asv continuous: ROUNDS; CI without
    # its second rounds: 1)
    rounds_a_side: int = ROUNDS

    def of(self, benchmark: str, first_parameter: str | None = None) -> BenchmarkNoise | None:
        """The row of ``benchmark`` (over all its points), or of its points whose first
        parameter is ``first_parameter``."""
        return next((b for b in self.benchmarks if b.benchmark == benchmark
                     and b.first_parameter == first_parameter), None)

    def over(self, earlier: NoiseModel) -> NoiseModel:
        """This model's rows, and ``earlier``'s rows of every benchmark this model has no row
        of (rounds that measured some suites again, over a model whose other rounds are not
        at hand); the measurements of both, this model's first. Both must be models of as
        many rounds a side."""
        if earlier.rounds_a_side != self.rounds_a_side:
            raise ConfigError(f"the model kept is of {earlier.rounds_a_side} round(s) a side, "
                              f"these rounds of {self.rounds_a_side}: their thresholds hold "
                              "for different comparisons", path=("--keep-others",))
        measured = {row.benchmark for row in self.benchmarks}
        kept = tuple(row for row in earlier.benchmarks if row.benchmark not in measured)
        labels = self.measurements + tuple(m for m in earlier.measurements
                                           if m not in self.measurements)
        return NoiseModel(self.benchmarks + kept, labels, self.rounds_a_side)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "margin": MARGIN, "floor": FLOOR,
                "rounds_a_side": self.rounds_a_side,
                "measurements": list(self.measurements),
                "benchmarks": [asdict(b) for b in self.benchmarks]}

    @classmethod
    def from_json(cls, data: object, source: str) -> NoiseModel:
        """A model read back from JSON, every field checked (a refusal names ``source`` and
        the field)."""
        def fail(where: str, what: str) -> ConfigError:
            return ConfigError(f"{source}: {where}: {what}", path=("noise model", where))

        if not isinstance(data, dict) or data.get("schema") not in (1, 2, SCHEMA):
            raise fail("schema", f"expected a noise model of schema 1 to {SCHEMA}")
        rounds_a_side = data.get("rounds_a_side") if data["schema"] == SCHEMA \
            else ROUNDS
        if not isinstance(rounds_a_side, int) or isinstance(rounds_a_side, bool) \
                or not 1 <= rounds_a_side <= MAX_ROUNDS_A_SIDE:
            raise fail("rounds_a_side", f"expected an integer in [1, {MAX_ROUNDS_A_SIDE}]")
        fields = set(BenchmarkNoise.__dataclass_fields__)
        if data["schema"] == 1:
            fields = fields - {"first_parameter"} | {"sigma"}
        rows = data.get("benchmarks")
        measurements = data.get("measurements")
        if not isinstance(rows, list) or not isinstance(measurements, list) \
                or not all(isinstance(m, str) for m in measurements):
            raise fail("benchmarks", "expected a list of benchmarks and of measurements")
        parsed = []
        for index, row in enumerate(rows):
            where = f"benchmarks[{index}]"
            if not isinstance(row, dict) or set(row) != fields:
                raise fail(where, "expected the fields " + ", ".join(sorted(fields)))
            if not isinstance(row["benchmark"], str) or not re.fullmatch(
                    r"[A-Za-z_][\w.]{0,199}", row["benchmark"]):
                raise fail(f"{where}.benchmark", "expected a dotted benchmark name")
            for key in ("points", "measurements"):
                if not isinstance(row[key], int) or isinstance(row[key], bool) \
                        or not 0 <= row[key] <= 10**6:
                    raise fail(f"{where}.{key}", "expected an integer in [0, 1000000]")
            first = row.get("first_parameter")
            if first is not None and not (isinstance(first, str)
                                          and PARAMETER_VALUE.fullmatch(first)):
                raise fail(f"{where}.first_parameter",
                           "expected null or a parameter value (letters, digits, '_.+-', "
                           "at most 100)")
            if not isinstance(row["deterministic"], bool):
                raise fail(f"{where}.deterministic", "expected true or false")
            row = {k: v for k, v in row.items() if k != "sigma"}  # schema 1's, not used
            for key in ("spread", "threshold", "detectable"):
                value = row[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not 0 <= value <= MAX_THRESHOLD * 100:
                    raise fail(f"{where}.{key}", "expected a number >= 0")
            parsed.append(BenchmarkNoise(**row))
        return cls(tuple(parsed), tuple(measurements), rounds_a_side)

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
          groups: Sequence[Hashable] | None = None, rounds_a_side: int = ROUNDS
          ) -> NoiseModel:
    """The model of repeated measurements of one package (each a list of asv values, its
    timings from ``rounds_a_side`` rounds).

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
        row = _noise_row(benchmark, None, points)
        rows.append(row)
        firsts = sorted({params[0] for _, params in points if params})
        if row.deterministic or len(firsts) < 2 \
                or not all(PARAMETER_VALUE.fullmatch(first) for first in firsts):
            # exact everywhere, one value (its row would be the benchmark's), or values a
            # model file does not hold
            continue
        for first in firsts:
            part = {p: vs for p, vs in points.items() if p[1] and p[1][0] == first}
            rows.append(_noise_row(benchmark, first, part, timing=True))
    return NoiseModel(tuple(rows), tuple(labels), rounds_a_side)


def _noise_row(benchmark: str, first_parameter: str | None,
               points: dict[tuple, list[AsvValue]], timing: bool = False) -> BenchmarkNoise:
    """The row of ``points`` (``(group, params)``: the values measured of that point in that
    group), by the rules of the module. ``timing``: a row of a benchmark that is not exact
    (a workload whose values happened not to move still gets the floor)."""
    spread, sampled = 0.0, False
    for values in points.values():
        medians = [v.value for v in values]
        sampled = sampled or any(v.samples is not None for v in values)
        spread = max(spread, max(medians) / min(medians) - 1.0)
    deterministic = not timing and not sampled and spread == 0.0
    if deterministic:
        threshold = detectable = 0.0
    else:
        threshold = min(MAX_THRESHOLD, max(FLOOR, _ceil_percent(MARGIN * spread)))
        detectable = smallest_detected_change(points, threshold)
    return BenchmarkNoise(benchmark, len({p for _, p in points}),
                          max(len(v) for v in points.values()), deterministic,
                          round(spread, 6), threshold, detectable,
                          first_parameter)


def flagged_share(points: dict[tuple, list[AsvValue]], threshold: float,
                  change: float) -> float:
    """The share of the A/A pairs of ``points`` (each two measurements of one point in one
    group, each side in turn) that :func:`decide` flags in the right direction once the change
    is put into one side: a slowdown (``* (1 + change)``) and a speed-up (``/ (1 + change)``)."""
    flagged = trials = 0
    for values in points.values():
        measured = [Measured.of(v) for v in values]
        for before, now in itertools.permutations(measured, 2):
            for factor, direction in ((1 + change, "worse"), (1 / (1 + change), "better")):
                trials += 1
                flagged += decide(before, now.scaled(factor), threshold) == direction
    return flagged / trials if trials else 0.0


def smallest_detected_change(points: dict[tuple, list[AsvValue]], threshold: float) -> float:
    """The smallest change on a grid of 1% (at most ``MAX_THRESHOLD``) whose
    :func:`flagged_share` is at least ``POWER``: bisection, the share growing with the change
    (every step of the rule is monotone in it)."""
    low = round(threshold * 100)  # a change at the threshold is not beyond it
    high = round(MAX_THRESHOLD * 100)
    if flagged_share(points, threshold, high / 100) < POWER:
        return MAX_THRESHOLD
    while high - low > 1:
        middle = (low + high) // 2
        if flagged_share(points, threshold, middle / 100) >= POWER:
            high = middle
        else:
            low = middle
    return high / 100


def config_thresholds(model: NoiseModel) -> dict[str, float]:
    """``regressions_thresholds`` entries of the model. asv ``re.match``-es the name of a
    graph, which carries the point's parameters and the branch (``name('mlp', 'plp')@main``;
    :attr:`AsvValue.label` is the same without the quotes), and takes the largest matching
    threshold, so the patterns of one benchmark never overlap: one for each first parameter's
    row, and the benchmark's row for every other point (none of those values follows the
    name). Each pattern stops at the name's end so that no other benchmark's name it begins
    matches."""
    def first_parameter_is(values: list[str]) -> str:  # quoted by asv, bare in a label
        either = "|".join(map(re.escape, values))
        return r"\('?" + (either if len(values) == 1 else f"(?:{either})") + r"'?[,)]"

    entries: dict[str, float] = {}
    for benchmark in sorted({b.benchmark for b in model.benchmarks}):
        rows = [b for b in model.benchmarks if b.benchmark == benchmark]
        values = [b.first_parameter for b in rows if b.first_parameter is not None]
        name = re.escape(benchmark)
        for row in rows:
            if row.first_parameter is not None:
                entries[name + first_parameter_is([row.first_parameter])] = row.threshold
        whole = next((b for b in rows if b.first_parameter is None), None)
        if whole is not None:
            others = f"(?!{first_parameter_is(values)})" if values else ""
            entries[name + others + r"(?=$|\(|@)"] = whole.threshold
    return entries


def model_thresholds(model: NoiseModel, source: str, configured: Thresholds) -> Thresholds:
    """The thresholds of a comparison of ``model.rounds_a_side`` rounds a side: for each
    benchmark the larger of the model's (:func:`config_thresholds`) and ``configured``'s (an
    asv configuration's, from comparisons of more rounds a side). Fewer rounds a side can only
    be noisier, so the configuration's are a floor; a model of one round a side measures only
    the timings, and the exact values keep the configuration's (0)."""
    return Thresholds(tuple(config_thresholds(model).items()) + configured.patterns,
                      f"{source} and {configured.source}")


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


def row_order(row: BenchmarkNoise) -> tuple:
    """Rows sorted by benchmark, each benchmark's own row before its first parameters'."""
    return row.benchmark, row.first_parameter is not None, row.first_parameter or ""


def markdown(model: NoiseModel) -> str:
    """The model as a Markdown table, one row per benchmark (then one per first parameter),
    grouped by suite."""
    lines = ["| suite | benchmark | points | A/A spread | threshold | detects (19 in 20) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for b in sorted(model.benchmarks, key=row_order):
        suite, _, rest = b.label.partition(".")
        detects = "any change (exact)" if b.deterministic else f"{b.detectable:.0%}"
        lines.append(f"| `{suite}` | `{rest}` | {b.points} | {b.spread:.1%} | "
                     f"{b.threshold:.0%} | {detects} |")
    return "\n".join(lines)
