"""asv's own results: the values a commit's benchmarks recorded, and the noise thresholds.

asv writes one file per machine, commit and environment (``<results>/<machine>/<hash8>-<env>
.json``): ``results`` maps each benchmark to a row laid out by ``result_columns``, whose
``result`` holds one value per point of the cartesian product of ``params`` (``None``: failed;
NaN: skipped), and ``version`` the version of the benchmark that measured it. Units, parameter
names and each benchmark's current version (that of the last ``asv run``'s benchmarks) are in
``<results>/benchmarks.json``. A value measured by another version of its benchmark (one whose
definition changed since: what it measures is not today's) is compared with nothing: as in
``asv compare``, two commits' values of different versions are not compared, and a noise
model is built from the current version's values only (:attr:`AsvValue.current`).

The regression thresholds are those of ``asv.conf.json`` (JSON with ``//`` comments), matched
as asv matches them: every regular expression that ``re.match``-es the benchmark name counts,
and the largest threshold wins.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.config import ConfigError

DEFAULT_THRESHOLD = 0.05  # asv's own default


def default_results_dir() -> str:
    """asv's results folder: ``$PLP_BENCH_TRENDS/results`` where a folder of trends is set
    (``.ci/run`` keeps asv's results there), else ``.asv/results`` (``asv.conf.json``'s)."""
    trends = os.environ.get("PLP_BENCH_TRENDS")
    return str(Path(trends) / "results") if trends else ".asv/results"


def add_results_option(parser: argparse.ArgumentParser, flag: str = "--results") -> None:
    """The command-line option naming asv's results folder (see :func:`default_results_dir`)."""
    parser.add_argument(flag, metavar="DIR", help="asv's results folder (default "
                        "$PLP_BENCH_TRENDS/results, else .asv/results)")


@dataclass(frozen=True)
class AsvValue:
    """One benchmark at one parameter point of one commit."""

    benchmark: str
    params: tuple[str, ...]
    value: float | None  # None: failed or skipped
    unit: str
    machine: str
    skipped: bool = False  # asv skipped the point (NotImplementedError in setup)
    samples: tuple[float, ...] | None = None  # where asv recorded them (--record-samples)
    interval: tuple[float, float] | None = None  # asv's 99% confidence interval of the median
    version: str | None = None  # the benchmark's version that measured it, where asv wrote one
    current: bool = True  # measured by the benchmark's current version (or no version known)

    def comparable(self, other: AsvValue) -> bool:
        """Whether the two were measured by the same version of the benchmark (an unknown
        version is taken to match)."""
        return self.version is None or other.version is None or self.version == other.version

    @property
    def suite(self) -> str:
        return self.benchmark.split(".", 1)[0]

    @property
    def key(self) -> tuple[str, tuple[str, ...], str]:
        return self.benchmark, self.params, self.machine

    @property
    def label(self) -> str:
        return point_name(self.benchmark, self.params)


def point_name(benchmark: str, params: tuple[str, ...]) -> str:
    """A benchmark's point as asv names its graph, without quotes or branch:
    ``name(mlp, plp)``; the name alone where the benchmark has no parameters. The thresholds'
    patterns (:class:`Thresholds`) are matched against it."""
    return f"{benchmark}({', '.join(params)})" if params else benchmark


def _param_text(value: str) -> str:
    # asv stores parameter values as their repr: "'mlp'" -> mlp
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" \
        else value


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: unreadable asv results ({error})",
                          path=("asv results",)) from None


MAX_VERSION_CHARS = 200


def _version(value: object) -> str | None:
    """A benchmark version as asv writes it (a string, a hash of the code or the benchmark's
    ``version`` attribute); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    return text if len(text) <= MAX_VERSION_CHARS else None


def _benchmark_meta(results_dir: Path) -> tuple[dict[str, str], dict[str, str | None]]:
    """Each benchmark's unit and current version, from ``benchmarks.json``."""
    path = results_dir / "benchmarks.json"
    if not path.is_file():
        return {}, {}
    meta = _read_json(path)
    if not isinstance(meta, dict):
        return {}, {}
    infos = {name: info for name, info in meta.items() if isinstance(info, dict)}
    return ({name: str(info.get("unit", "")) for name, info in infos.items()},
            {name: _version(info.get("version")) for name, info in infos.items()})


def commit_values(results_dir: str | Path, commit: str) -> list[AsvValue]:
    """Every value asv recorded for ``commit`` (a full hash) on any machine under the results
    folder; empty when there are none."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return []
    units, versions = _benchmark_meta(results_dir)
    values: list[AsvValue] = []
    for path in sorted(results_dir.glob(f"*/{commit[:8]}-*.json")):
        data = _read_json(path)
        if data.get("commit_hash") != commit:
            continue
        machine = data.get("params", {}).get("machine", path.parent.name)
        columns = data.get("result_columns", ["result", "params"])
        for name, row in sorted(data.get("results", {}).items()):
            entry = dict(zip(columns, row, strict=False))
            results, params = entry.get("result"), entry.get("params") or []
            if results is None:
                continue
            points = list(itertools.product(*params)) if params else [()]
            if not isinstance(results, list):
                results = [results]
            lows, highs = _column(entry, "stats_ci_99_a"), _column(entry, "stats_ci_99_b")
            samples = _column(entry, "samples")
            version, today = _version(entry.get("version")), versions.get(name)
            current = version is None or today is None or version == today
            for index, (point, value) in enumerate(zip(points, results, strict=False)):
                skipped = isinstance(value, float) and math.isnan(value)
                number = _finite(value)
                values.append(AsvValue(
                    name, tuple(_param_text(p) for p in point),
                    None if value is None or skipped or number is None else number,
                    units.get(name, ""), machine, skipped, _samples(samples, index),
                    _interval(lows, highs, index), version, current))
    return values


MAX_SAMPLES = 10_000


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _column(entry: dict, name: str) -> list:
    column = entry.get(name)
    return column if isinstance(column, list) else []


def _samples(column: list, index: int) -> tuple[float, ...] | None:
    """The samples of one point, where asv recorded a list of numbers for it."""
    if index >= len(column) or not isinstance(column[index], list):
        return None
    values = [_finite(v) for v in column[index][:MAX_SAMPLES]]
    kept = tuple(v for v in values if v is not None and math.isfinite(v))
    return kept or None


def _interval(lows: list, highs: list, index: int) -> tuple[float, float] | None:
    if index >= len(lows) or index >= len(highs):
        return None
    low, high = _finite(lows[index]), _finite(highs[index])
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    return (low, high) if low <= high else None


def strip_comments(text: str) -> str:
    """JSON text without ``//`` line comments (outside strings, so URLs survive)."""
    out, in_string, escaped, i = [], False, False, 0
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Thresholds:
    """The regression thresholds of an asv configuration."""

    patterns: tuple[tuple[str, float], ...] = ()
    source: str = "asv's default"

    def of(self, benchmark: str) -> float:
        """The threshold of a benchmark, or of one point given as asv names it
        (:attr:`AsvValue.label`: ``name(mlp, plp)``), where the configuration has one for the
        point's first parameter."""
        matching = [t for pattern, t in self.patterns if re.match(pattern, benchmark)]
        return max(matching) if matching else DEFAULT_THRESHOLD

    @classmethod
    def load(cls, path: str | Path = "asv.conf.json") -> Thresholds:
        """The thresholds of ``path``; asv's default when the file is absent."""
        path = Path(path)
        if not path.is_file():
            return cls()
        try:
            config = json.loads(strip_comments(path.read_text()))
            raw = config.get("regressions_thresholds", {})
            patterns = tuple((str(k), float(v)) for k, v in raw.items())
            for pattern, _ in patterns:
                re.compile(pattern)
        except (OSError, json.JSONDecodeError, TypeError, ValueError, re.error) as error:
            raise ConfigError(f"{path}: cannot read regressions_thresholds ({error})",
                              path=("regressions_thresholds",)) from None
        return cls(patterns, str(path))
