"""The HTML report (``plp-bench report --html``), the change against another commit, and asv's
own results: built from small real run records, checked against the terminal's tables, and
opened in headless Chromium."""

import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, open_page
from helpers import tiny

from plp_bench.cli import main
from plp_bench.core.record import load, save
from plp_bench.core.stats import censored
from plp_bench.methods.catalogue import MethodConfig, get_method
from plp_bench.pages import html as html_report
from plp_bench.report import figures, summary
from plp_bench.report.asv_results import Thresholds, commit_values, strip_comments
from plp_bench.report.changes import STEPS, record_changes, verdict
from plp_bench.report.record_sources import read_folders
from plp_bench.sweeps.grid import sweep

ROOT = Path(__file__).resolve().parent.parent
BLOWUP = MethodConfig(name="sgd-blowup", optimizer="sgd", hyperparameters={"lr": 1e30})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real records: two workloads, SGD, PLP and a method that diverges, three seeds; and the
    ODE comparison that ``plp-bench ode-table --json`` writes beside them."""
    root = tmp_path_factory.mktemp("records")
    workloads = [tiny("breast_cancer-mlp", steps=30, eval_every=5, targets=[0.3, 0.1]),
                 tiny("digits-mlp", steps=30, eval_every=5, targets=[0.5, 0.3])]
    report = sweep(workloads, [get_method("sgd"), get_method("plp"), BLOWUP], [0, 1, 2], "cpu",
                   root)
    assert not report.failed and len(report.results) == 18
    (root / "ode-table.json").write_text(json.dumps([{
        "workload": "banknote-mlp", "lr": 0.01,
        "rows": [{"threshold": 0.8, "gd_seconds": 0.5, "ode_seconds": 0.25},
                 {"threshold": 0.95, "gd_seconds": 2.0, "ode_seconds": None}]}]))
    return root


class _Page(HTMLParser):
    """Table titles, tables (rows of (text, classes)), figures and links of a page."""

    def __init__(self, text):
        super().__init__()
        self.titles, self.tables, self.svgs, self.links, self.ids = [], [], 0, [], []
        self._title = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs and tag == "h2":
            self.ids.append(attrs["id"])
        if tag == "div" and attrs.get("class") == "table-title":
            self._title = ""
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ["", attrs.get("class") or ""]
        elif tag == "svg":
            self.svgs += 1
        elif tag == "a":
            self.links.append(attrs.get("href") or attrs.get("xlink:href"))

    def handle_endtag(self, tag):
        if tag == "div" and self._title is not None:
            self.titles.append(self._title)
            self._title = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._title is not None:
            self._title += data
        if self._cell is not None:
            self._cell[0] += data


@pytest.fixture(scope="module")
def page(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    found = read_folders([folder])
    path = html_report.build_commit_page(found, out, commit=found.commit, asv_values=[],
                                         thresholds=Thresholds.load(ROOT / "asv.conf.json"))
    html_report.build_index(out)
    return path, found


def test_commit_page_has_the_terminal_tables_cell_for_cell(page):
    path, found = page
    parsed = _Page(path.read_text())
    expected = []
    for item in summary.summarize(found.records):
        expected += [summary.time_table(item), summary.outcome_table(item)]
    expected.insert(0, summary.overall_table(summary.overall(summary.summarize(found.records))))
    by_title = dict(zip(parsed.titles, parsed.tables, strict=True))
    for table in expected:
        rows = by_title[table.title]
        assert [text for text, _ in rows[0]] == [c.header for c in table.columns]
        assert [[text for text, _ in row] for row in rows[1:]] == \
            [[c.text for c in row] for row in table.rows]
        for row, cells in zip(rows[1:], table.rows, strict=True):
            for (_, classes), cell in zip(row, cells, strict=True):
                assert ("best" in classes.split()) == (cell.style == "best")
    assert any(c.style == "best" for t in expected for row in t.rows for c in row)


def test_commit_page_has_curves_bars_profiles_ode_and_environment(page):
    path, found = page
    text = path.read_text()
    parsed = _Page(text)
    # profiles; per workload the curves, the bars, training accuracy and SGD - PLP's losses
    assert parsed.svgs == 1 + 4 * 2
    assert text.count("<h3>Training accuracy</h3>") == 2
    assert text.count("<h3>Validation loss differences</h3>") == 2
    assert "sgd - plp (mean " in text and "plp - demon" not in text  # no DEMON runs here
    assert parsed.ids == ["overall", "breast_cancer-mlp", "digits-mlp", "ode", "environment"]
    assert "diverged run (stopped)" in text  # the diverged runs are drawn
    assert "target 0.3" in text and "target 0.1" in text
    assert "not reached (0/3)" in text  # the diverged method never reaches a target
    ode = dict(zip(parsed.titles, parsed.tables, strict=True))[
        "linearised-model ODE (BDF) against gradient descent"]
    assert [t for t, _ in ode[1]] == ["banknote-mlp", "0.01", "0.80", "0.500", "0.250",
                                      "0.50"]
    assert [t for t, _ in ode[2]] == ["banknote-mlp", "0.01", "0.95", "2.000", "—", "—"]
    environment = {row[0][0]: row[1][0] for row in
                   dict(zip(parsed.titles, parsed.tables, strict=True))[
                       "environment of the runs"][1:]}
    assert environment["torch"] == found.records[0].environment["torch"]
    assert "runs made" in environment and "threads" in environment
    import re

    # nothing fetched: no external stylesheet, script, image or link target
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<link" not in text and "@import" not in text and "<script" not in text


def test_loss_differences_are_paired_by_seed_as_by_hand(folder):
    """SGD - PLP at each evaluation: the median over seeds of the two runs' validation losses
    of the same seed."""
    records = [r for r in read_folders([folder]).records if r.workload == "digits-mlp"]
    runs = {m: [r for r in records if r.method == m] for m in ("sgd", "plp")}
    epochs, medians = figures.paired_loss_differences(runs, "sgd", "plp")
    by_seed = {r.seed: r for r in runs["plp"]}
    for i, median in enumerate(medians):
        by_hand = sorted(r.curves.val_loss[i] - by_seed[r.seed].curves.val_loss[i]
                         for r in runs["sgd"])
        assert median == pytest.approx(by_hand[1])  # three seeds: the middle one
    assert list(epochs) == runs["sgd"][0].curves.epoch
    assert figures.paired_loss_differences(runs, "plp", "demon") is None
    assert figures.loss_differences("digits-mlp", {"sgd": runs["sgd"]}, {}) is None


def test_report_json_holds_the_asv_suite_headline_numbers(page):
    path, found = page
    data = json.loads((path.parent / "report.json").read_text())
    runs = [r for r in found.records if r.workload == "digits-mlp" and r.method == "plp"]
    entry = data["workloads"]["digits-mlp"]["methods"]["plp"]
    assert entry["steps"] == censored(runs, 1, "steps")
    assert entry["seconds"] == censored(runs, 1, "seconds")
    assert entry["runs"] == 3 and data["records"] == 18


def test_figures_are_reproducible_svg(folder):
    found = read_folders([folder])
    item = summary.summarize(found.records)[0]
    colours = figures.method_colours(["sgd", "plp", "sgd-blowup"])
    first = figures.time_to_target_bars(item, colours)
    assert first == figures.time_to_target_bars(item, colours)
    assert first.startswith("<svg") and first.rstrip().endswith("</svg>")


def test_index_lists_commits_newest_first_and_links_every_trend_point(folder, tmp_path,
                                                                       monkeypatch):
    found = read_folders([folder])
    dates = {"a" * 40: "2026-01-01T00:00:00+00:00", "b" * 40: "2026-02-01T00:00:00+00:00"}
    monkeypatch.setattr(html_report, "commit_date", dates.get)
    for commit in dates:
        html_report.build_commit_page(found, tmp_path, commit=commit, asv_values=[],
                                      thresholds=Thresholds())
    (tmp_path / "asv").mkdir()
    (tmp_path / "asv" / "index.html").write_text("<html></html>")
    index = html_report.build_index(tmp_path)
    parsed = _Page(index.read_text())
    commit_links = [link for link in parsed.links if link.endswith("/index.html")
                    and not link.startswith("asv")]
    table_links = commit_links[:2]
    assert table_links == [f"{'b' * 40}/index.html", f"{'a' * 40}/index.html"]  # newest first
    assert "asv/index.html" in parsed.links
    assert parsed.svgs == 2  # one trend figure per workload
    # each commit: its table row, and its point of every method in every panel of both
    # workloads (steps, seconds: 3 methods; speedup: plp only, as sgd is the reference and
    # the diverged method has no pair)
    for commit in dates:
        assert commit_links.count(f"{commit}/index.html") == 1 + 2 * (3 + 3 + 1)


def _altered(folder: Path, out: Path, method: str, factor: float) -> Path:
    """A copy of the records with one method's steps to every target multiplied."""
    for path in folder.rglob("seed-*.json"):
        record = load(path)
        if record.method == method:
            for target in record.targets:
                if target.steps is not None:
                    target.steps = round(target.steps * factor)
        save(record, out / path.relative_to(folder))
    return out


def test_change_is_flagged_only_beyond_the_threshold(folder, tmp_path):
    before = read_folders([folder]).records
    slower = read_folders([_altered(folder, tmp_path / "slow", "plp", 1.5)]).records
    tables = record_changes(slower, before, thresholds=Thresholds.load(ROOT / "asv.conf.json"),
                            label="base")
    for table in tables.values():
        steps = dict(zip([c.text for c in table.column("method")],
                         table.column("steps (median)"), strict=True))
        assert steps["plp"].style == "worse" and "%)" in steps["plp"].text
        assert steps["sgd"].style is None and steps["sgd"].text.endswith("(=)")
        assert all(c.style is None for c in table.column("sec (median)"))


def test_verdict_agrees_with_asv_compare():
    from asv.commands.compare import _is_result_better

    for before in (1.0, 10.0, 123.0):
        for ratio in np.linspace(0.5, 2.0, 61):
            now = before * ratio
            for threshold in (0.01, 0.2, 0.5):
                factor = 1 + threshold
                expected = ("worse" if _is_result_better(before, now, None, None, factor)
                            else "better" if _is_result_better(now, before, None, None, factor)
                            else None)
                assert verdict(before, now, threshold) == expected


def test_thresholds_are_read_as_asv_reads_them():
    from asv import util

    config = util.load_json(ROOT / "asv.conf.json", js_comments=True)
    assert json.loads(strip_comments((ROOT / "asv.conf.json").read_text())) == config
    thresholds = Thresholds.load(ROOT / "asv.conf.json")
    assert thresholds.of(STEPS) == max(v for k, v in config["regressions_thresholds"].items()
                                       if k in (".*",))
    gpu = "step_cost.UpdateOverheadCuda.track_update_time_ratio"
    assert thresholds.of(gpu) == 0.2 and thresholds.of("nothing.measured") == 0
    assert Thresholds().of("anything") == 0.05


def test_asv_results_written_by_asv_are_read_back(tmp_path):
    from asv.results import Results
    from asv.runner import BenchmarkResult

    commit = "c" * 40
    results = Results({"machine": "box", "python": "3.11"}, {}, commit, 1000, "3.11", "env", {})
    results.add_result(
        {"name": "step_cost.UpdateTime.time_update", "version": "1",
         "params": [["'mlp'", "'resnet18'"], ["'sgd'", "'plp'"]]},
        BenchmarkResult(result=[1.0, 2.0, float("nan"), None], samples=[[1.0], [2.0], None, None],
                        number=[1] * 4, errcode=0, stderr="", profile=None))
    results.save(str(tmp_path))
    (tmp_path / "benchmarks.json").write_text(json.dumps(
        {"step_cost.UpdateTime.time_update": {"unit": "seconds"}, "version": 2}))
    values = commit_values(tmp_path, commit)
    assert [(v.params, v.value, v.skipped) for v in values] == [
        (("mlp", "sgd"), 1.0, False), (("mlp", "plp"), 2.0, False),
        (("resnet18", "sgd"), None, True), (("resnet18", "plp"), None, False)]
    assert {v.unit for v in values} == {"seconds"} and {v.machine for v in values} == {"box"}
    assert commit_values(tmp_path, "d" * 40) == []


def _head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_cli_compare_with_a_revision_from_the_run_cache(folder, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(folder, runs / _head() / "ci")
    monkeypatch.setenv("PLP_BENCH_ASV_RUNS", str(runs))
    monkeypatch.chdir(ROOT)
    slower = _altered(folder, tmp_path / "slow", "plp", 1.5)
    assert main(["report", str(slower), "--compare", "HEAD", "--workload", "digits-mlp"]) == 0
    printed = capsys.readouterr().out
    assert "digits-mlp: change against HEAD" in printed and "(+" in printed
    assert "compared with HEAD: 9 records" in printed


@pytest.mark.parametrize("revision", ["no-such-revision-anywhere", "HEAD~0"])
def test_cli_compare_without_records_exits_2_naming_it(folder, tmp_path, monkeypatch, capsys,
                                                       revision):
    monkeypatch.setenv("PLP_BENCH_ASV_RUNS", str(tmp_path / "empty"))
    monkeypatch.chdir(ROOT)
    assert main(["report", str(folder), "--compare", revision]) == 2
    assert revision in capsys.readouterr().err


def test_cli_html_writes_the_page_and_the_index(folder, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["report", str(folder), "--html", "--out", str(out)]) == 0
    assert "HTML report:" in capsys.readouterr().out
    pages = list(out.glob("*/index.html"))
    assert len(pages) == 1 and (out / "index.html").is_file()
    assert (pages[0].stat().st_mode & 0o777) == 0o644


def test_cli_html_into_an_unwritable_place_exits_2_naming_it(folder, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(folder), "--html", "--out", str(blocker / "site")]) == 2
    captured = capsys.readouterr()
    assert "--out" in captured.err and str(blocker / "site") in captured.err
    assert "Traceback" not in captured.err


needs_chromium = pytest.mark.skipif(chromium() is None, reason="Chromium is not installed")


def _not_blank(png: bytes) -> bool:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    inked = (pixels.min(axis=1) < 200).mean()
    colours = len(np.unique(pixels // 8, axis=0))
    return inked > 0.02 and colours > 20


@needs_chromium
def test_pages_open_in_chromium_without_console_errors_and_are_not_blank(page):
    path, _ = page
    for target in (path, path.parent.parent / "index.html"):
        visit = open_page(target)
        assert visit.errors == [], target
        assert visit.title.startswith("plp-bench")
        assert _not_blank(visit.screenshot), target


@needs_chromium
def test_the_browser_check_sees_errors_and_blank_pages(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><img src="missing.png">'
                      '<script>console.error("boom")</script></body></html>')
    visit = open_page(broken)
    assert any("boom" in e for e in visit.errors)
    assert any("missing.png" in e for e in visit.errors)
    assert not _not_blank(visit.screenshot)


def test_the_ode_table_command_output_in_a_record_folder_joins_the_page(folder, tmp_path):
    records = tmp_path / "records"
    shutil.copytree(folder, records, ignore=shutil.ignore_patterns("ode-table*.json"))
    out = records / "ode-table.json"
    assert main(["ode-table", "--workload", "breast_cancer-mlp", "--lr", "0.5",
                 "--threshold", "0.9", "--max-steps", "300", "--json", str(out)]) == 0
    row = json.loads(out.read_text())[0]["rows"][0]
    table = html_report.ode_section([], [records])
    assert [c.text for c in table.rows[0]] == [
        "breast_cancer-mlp", "0.5", "0.90", f"{row['gd_seconds']:.3f}",
        f"{row['ode_seconds']:.3f}", f"{row['ode_seconds'] / row['gd_seconds']:.2f}"]


def test_a_method_far_slower_than_the_rest_cuts_the_seconds_axis_and_is_named():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    ax.plot([0, 60], [0, 1])
    figures._cut_slow_tail(ax, {"sgd": 1.0, "plp": 1.2, "adam": 0.8, "ode": 60.0})
    assert ax.get_xlim() == pytest.approx((0, 1.05 * 1.2))
    assert "ode 60 s" in ax.texts[0].get_text()
    untouched = Figure().subplots()
    untouched.plot([0, 3], [0, 1])
    limits = untouched.get_xlim()
    figures._cut_slow_tail(untouched, {"sgd": 1.0, "plp": 1.2, "adam": 3.0})
    assert untouched.get_xlim() == limits and not untouched.texts


def test_each_loss_difference_is_drawn_in_the_colour_of_the_method_plp_meets(folder):
    import dataclasses

    records = [r for r in read_folders([folder]).records if r.workload == "digits-mlp"]
    runs = {m: [r for r in records if r.method == m] for m in ("sgd", "plp")}
    runs["demon"] = [dataclasses.replace(r, method="demon") for r in runs["sgd"]]
    colours = figures.method_colours(list(runs))
    svg = figures.loss_differences("digits-mlp", runs, colours)
    assert "sgd - plp (mean" in svg and "plp - demon (mean" in svg
    assert colours["sgd"] in svg and colours["demon"] in svg and colours["plp"] not in svg
