"""Files and values from someone else: records that lie, paths that climb, YAML that explodes,
counts without a ceiling, a folder two sweeps want. For each case: the exit code, no
traceback, a message naming the file and the field, nothing written outside the chosen
folders, and every good record byte-identical after (reading never rewrites one)."""

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plp_bench.cli import main
from plp_bench.core import record as results
from plp_bench.core.config import MAX_SEEDS, ConfigError, load_yaml_text
from plp_bench.report.summary import summarize
from plp_bench.sweeps.grid import FolderLock
from plp_bench.sweeps.ray import RaySettings, check_reachable, plan_placement
from plp_bench.sweeps.reproduce import rebuild

TINY = {"workloads": [{"name": "breast_cancer-mlp", "steps": 8, "eval_every": 4}],
        "methods": ["sgd", "adam"], "seeds": 2}


def said(capsys) -> tuple[str, str]:
    out = capsys.readouterr()
    return " ".join(out.out.split()), " ".join(out.err.split())


def write_config(folder: Path, body: dict | str, name: str = "run.yaml") -> Path:
    path = folder / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A folder of four good records of a tiny sweep, made through the command line."""
    root = tmp_path_factory.mktemp("made")
    config = write_config(root, {**TINY, "results": str(root / "results")})
    assert main(["run", str(config)]) == 0
    return root / "results"


@pytest.fixture
def folder(made, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(made, copy)
    return copy


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("seed-*.json"))}


def forge(path: Path, change, *, keep_checksum: bool = True) -> None:
    """Edit a record as someone who knows the checksum rule would: change, then re-sign."""
    data = json.loads(path.read_text())
    change(data)
    if keep_checksum:
        data["checksum"] = results.checksum(data)
    path.write_text(json.dumps(data))


def first(folder: Path) -> Path:
    return sorted(folder.rglob("seed-*.json"))[0]


# --- records that lie ------------------------------------------------------------------------

FORGERIES = [
    ("relabelled", lambda d: (d.pop("checksum"), d.update(schema_version=1),
                              d["targets"][0].update(steps=1)), False, "schema version 1"),
    ("seed", lambda d: d.update(seed="zero"), True, "seed: expected an integer"),
    ("method", lambda d: d.update(method=["sgd"]), True, "method: expected a string"),
    ("environment", lambda d: d.update(environment=[1, 2]), True,
     "environment: expected a mapping"),
    ("targets", lambda d: d.update(targets=[]), True, "targets: a record has at least one"),
    ("commit", lambda d: d["environment"].update(commit="../../escape"), True,
     "environment.commit"),
    ("absolute commit", lambda d: d["environment"].update(commit="/tmp/escape"), True,
     "environment.commit"),
    ("threads", lambda d: d["environment"].update(threads=10**6), True,
     "environment.threads"),
    ("error rate", lambda d: d["curves"]["val_error"].__setitem__(0, 7.5), True,
     "curves.val_error.0"),
    ("curve lengths", lambda d: d["curves"]["step"].append(99), True, "lengths differ"),
    ("training curve length", lambda d: d["curves"]["train_error"].pop(), True,
     "lengths differ"),
    ("training error rate", lambda d: d["curves"]["train_error"].__setitem__(1, -0.5), True,
     "curves.train_error.1"),
    ("schema 2 with training curves", lambda d: d.update(schema_version=2), True,
     "a schema 2 record has no curves scored on the training split"),
    ("schema 4", lambda d: d.update(schema_version=4), True, "newer plp-bench"),
    ("huge integer", lambda d: d.update(steps_run=10**400), True, "steps_run"),
    ("settings", lambda d: d["config"].update(settings={"precision": "fp8"}), True,
     "config.settings.precision"),
    ("workload name", lambda d: d.update(workload="../x"), True, "workload"),
    ("deep", lambda d: d["details"].update(deep=_nested(100_000)), False, "nested"),
]


def test_a_schema_2_record_is_read_with_empty_training_split_curves(folder):
    """Records written before the training split was scored stay readable: the same fields,
    the two curves absent."""
    victim = first(folder)

    def as_schema_2(data):
        data.update(schema_version=2)
        for name in results.TRAINING_SPLIT_CURVES:
            del data["curves"][name]

    forge(victim, as_schema_2)
    record = results.load(victim)
    assert record.curves.train_error == [] and record.curves.train_scored_loss == []
    assert len(record.curves.val_error) > 1


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _write_deep(path: Path) -> None:
    """A record nested 100,000 levels deep, written as text (json.dumps itself would recurse)."""
    text = path.read_text()
    path.write_text(text.rstrip()[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")


@pytest.mark.parametrize("name, change, resign, message", FORGERIES,
                         ids=[f[0] for f in FORGERIES])
def test_a_forged_record_is_skipped_by_report_and_set_aside_by_run(folder, tmp_path, capsys,
                                                                 name, change, resign, message):
    victim = first(folder)
    if name == "deep":
        _write_deep(victim)
    else:
        forge(victim, change, keep_checksum=resign)
    good = {p: b for p, b in snapshot(folder).items() if p != victim}
    pages = tmp_path / "pages"
    code = main(["report", str(folder), "--html", "--out", str(pages)])
    out, err = said(capsys)
    assert code == 0 and "Traceback" not in out + err
    assert "3 run records" in out
    flat = "".join(err.split())
    assert f"skipped:{victim}" in flat and "".join(message.split()) in flat, err
    assert {p.parent for p in pages.rglob("index.html")} <= {pages, *pages.glob("*")}
    assert not (tmp_path / "escape").exists() and not Path("/tmp/escape").exists()
    # run: the forged record is set aside under its name and its cell trained again
    config = write_config(tmp_path, {**TINY, "results": str(folder)})
    assert main(["run", str(config)]) == 0
    out, err = said(capsys)
    assert "Traceback" not in out + err
    assert victim.with_name(victim.name + ".invalid").is_file()
    results.load(victim)  # a genuine record in its place
    assert {p: p.read_bytes() for p in good} == good


@pytest.mark.parametrize("name, change, resign, message", FORGERIES,
                         ids=[f[0] for f in FORGERIES])
def test_rerun_refuses_a_forged_record(folder, capsys, name, change, resign, message):
    victim = first(folder)
    if name == "deep":
        _write_deep(victim)
    else:
        forge(victim, change, keep_checksum=resign)
    assert main(["rerun", str(victim)]) == 2
    out, err = said(capsys)
    assert "Traceback" not in out + err
    assert "".join(str(victim).split()) in "".join(err.split())


def test_a_commit_from_the_environment_is_a_token_not_a_path(folder, tmp_path, capsys,
                                                             monkeypatch):
    from plp_bench.core import environment

    environment.git_commit.cache_clear()
    monkeypatch.setenv("PLP_BENCH_COMMIT", "../../escape")
    try:
        code = main(["report", str(folder), "--html", "--out", str(tmp_path / "pages")])
    finally:
        environment.git_commit.cache_clear()
    _, err = said(capsys)
    assert code == 2 and "$PLP_BENCH_COMMIT='../../escape' is not a commit" in err
    assert not (tmp_path / "pages").exists() and not (tmp_path.parent / "escape").exists()


def test_records_of_two_configurations_under_one_name_are_not_pooled(tmp_path, capsys):
    results_dir = tmp_path / "results"
    for steps in (8, 12):
        body = {**TINY, "methods": ["sgd"],
                "workloads": [{"name": "breast_cancer-mlp", "steps": steps, "eval_every": 4}],
                "results": str(results_dir)}
        assert main(["run", str(write_config(tmp_path, body, f"{steps}.yaml"))]) == 0
    capsys.readouterr()
    assert main(["report", str(results_dir)]) == 0
    out, _ = said(capsys)
    assert "breast_cancer-mlp: 2 configurations under one workload name" in out
    labels = {s.workload for s in summarize(results.load(p)
                                            for p in results_dir.rglob("seed-*.json"))}
    assert len(labels) == 2 and all(label.startswith("breast_cancer-mlp#") for label in labels)
    assert all(row.runs == 2 for s in summarize(results.load(p) for p in
                                                results_dir.rglob("seed-*.json"))
               for row in s.rows)


# --- a folder two sweeps want ----------------------------------------------------------------

def test_a_second_sweep_into_a_held_folder_is_refused_and_removes_nothing(folder, tmp_path,
                                                                        capsys):
    theirs = first(folder).parent / ".seed-9-in-flight.json.tmp"
    theirs.write_text("{}")
    config = write_config(tmp_path, {**TINY, "seeds": 3, "results": str(folder)})
    with FolderLock(folder):
        code = main(["run", str(config)])
    out, err = said(capsys)
    assert code == 2 and "Traceback" not in out + err
    assert f"{folder} is in use by another sweep (pid " in err and "--results" in err
    assert theirs.is_file()  # the other sweep's file in flight is left alone
    assert not list(folder.rglob("seed-2-*.json"))  # and nothing was trained
    assert main(["run", str(config)]) == 0  # released: the next sweep owns the folder


# --- YAML that explodes or is not text ---------------------------------------------------------

BOMB = """a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
workloads: *i
"""


@pytest.mark.parametrize("command", [["run"], ["claims", "--registry"]])
def test_an_alias_bomb_is_refused_before_anything_is_built(tmp_path, capsys, monkeypatch,
                                                          command):
    """Refused on the count of the node graph: no value of it is ever constructed (a count,
    not a clock)."""
    from plp_bench.core import config as config_module

    built = []
    real = config_module.SAFE_LOADER.construct_document
    monkeypatch.setattr(config_module.SAFE_LOADER, "construct_document",
                        lambda loader, node: built.append(node) or real(loader, node))
    config = write_config(tmp_path, BOMB)
    code = main([*command, str(config)])
    out, err = said(capsys)
    assert code == 2 and "Traceback" not in out + err
    assert f"{config}: (top level): expands to more than 100000 values" in err
    assert built == []


def test_the_expansion_count_is_exact_below_the_bound():
    assert load_yaml_text("a: &a [1, 2]\nb: [*a, *a, *a]") == {"a": [1, 2], "b": [[1, 2]] * 3}
    with pytest.raises(ConfigError, match="nested deeper than 64"):
        load_yaml_text("[" * 65 + "]" * 65)


@pytest.mark.parametrize("command", [["run"], ["claims", "--registry"]])
def test_a_file_that_is_not_utf8_is_refused_by_name(tmp_path, capsys, command):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("seeds: 2  # réglé\n".encode("latin-1"))
    code = main([*command, str(config)])
    out, err = said(capsys)
    assert code == 2 and "Traceback" not in out + err
    assert f"{config}: (top level): not UTF-8 text" in err


@pytest.mark.parametrize("body, message", [
    ({"methods": [{"name": "big", "optimizer": "sgd", "hyperparameters": {"lr": 10**400}}]},
     "methods.0.hyperparameters.lr: "),
    ({"workloads": [{"name": "breast_cancer-mlp", "targets": [10**400]}]}, "targets"),
    ({"workloads": [{"name": "breast_cancer-mlp", "steps": 10**400}]}, "too large"),
    ({"seeds": 10**9}, "seeds: 1000000000 is above the maximum 1000"),
    ({"workloads": [{"name": "digits-mlp", "model_options": {"hidden": [0]}}]},
     "hidden widths must be positive"),
    ({"workloads": [{"name": "digits-mlp", "model_options": {"hiden": [3]}}]},
     "has no option 'hiden' (did you mean 'hidden'?)"),
    ({"workers": 0, "executor": "ray"}, "run.yaml: workers: 0 is below the minimum 1"),
])
def test_values_out_of_range_in_a_run_config_exit_2_naming_the_key(tmp_path, capsys, body,
                                                                   message):
    config = write_config(tmp_path, {**body, "results": str(tmp_path / "out")})
    code = main(["run", str(config)])
    out, err = said(capsys)
    assert code == 2 and "Traceback" not in out + err
    assert message in err, err
    assert not (tmp_path / "out").exists()  # refused before any run


@pytest.mark.parametrize("args, message", [
    (["run", "--seeds", "1000000000"], f"--seeds: 1000000000 is above the maximum {MAX_SEEDS}"),
    (["run", "--executor", "ray", "--workers", "0"], "--workers: 0 is below the minimum 1"),
    (["claims", "--max-seeds", "1000000000"], "--max-seeds: 1000000000 is above the maximum"),
    (["claims", "--step-cap", str(10**9)], "--step-cap: 1000000000 is above the maximum"),
    (["ode-table", "--max-steps", str(10**12)], "--max-steps: 1000000000000 is above"),
])
def test_counts_have_ceilings_named_by_their_flag(tmp_path, capsys, args, message):
    code = main([*args, "--results", str(tmp_path / "out")] if args[0] != "ode-table" else args)
    out, err = said(capsys)
    assert code == 2 and "Traceback" not in out + err
    assert message in err, err


def test_ray_names_where_an_address_came_from_and_what_a_port_is(monkeypatch):
    with pytest.raises(ConfigError, match=r"^--address: 'localhost:99999': port 99999 is not"):
        check_reachable("localhost:99999")
    with pytest.raises(ConfigError, match=r"^\$RAY_ADDRESS: 'nowhere' is not a Ray address"):
        check_reachable("nowhere", "$RAY_ADDRESS")


def test_no_more_runs_in_flight_than_the_cluster_can_run():
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}]
    with pytest.raises(ConfigError, match=r"--workers: 1000 runs in flight, but the cluster "
                                          r"can run at most 2 at once"):
        plan_placement(RaySettings(workers=1000), "cpu", nodes)
    assert plan_placement(RaySettings(workers=2), "cpu", nodes).workers == 2


# --- data checked before the first run ----------------------------------------------------------

def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _mnist(root: Path, labels: np.ndarray, *, truncate: bool = False) -> None:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for name, array in (("train-images-idx3-ubyte", images), ("t10k-images-idx3-ubyte", images),
                        ("train-labels-idx1-ubyte", labels), ("t10k-labels-idx1-ubyte", labels)):
        data = _idx(array)
        (folder / name).write_bytes(data[:-7] if truncate and "images" in name else data)


@pytest.mark.parametrize("labels, truncate, message", [
    (np.arange(20) % 10, True, "truncated or corrupt"),
    (np.arange(20) % 10 + 5, False, "labels run from 5 to 14; allowed: 0 to 9"),
])
def test_an_unverifiable_data_file_is_read_whole_before_any_run(tmp_path, capsys, labels,
                                                                truncate, message):
    _mnist(tmp_path / "data", labels, truncate=truncate)
    code = main(["run", "--workload", "mnist-mnist3", "--method", "sgd", "--seeds", "2",
                 "--data-dir", str(tmp_path / "data"), "--results", str(tmp_path / "out")])
    out, err = said(capsys)
    assert code == 1 and "Traceback" not in out + err
    assert message in err, err
    assert not (tmp_path / "out").exists()  # no run started, no failure file per cell


# --- random records ------------------------------------------------------------------------------

LEAVES = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=6)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _paths(value, (*prefix, i))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(choice=st.integers(0, 10**6), value=VALUES, drop=st.booleans())
def test_random_records_never_crash_the_readers(made, tmp_path_factory, choice, value, drop):
    """Any field of a genuine record replaced by any JSON value (or removed), and re-signed:
    reading refuses it by name or accepts it, and what is accepted summarises, groups and
    rebuilds (rerun's first step) without an exception other than a ConfigError."""
    source = first(made)
    data = json.loads(source.read_text())
    paths = [p for p in _paths(data) if p and p[0] != "checksum"]
    where = paths[choice % len(paths)]
    parent = data
    for key in where[:-1]:
        parent = parent[key]
    if drop and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    data["checksum"] = results.checksum(data)
    path = tmp_path_factory.mktemp("random") / "seed-0-0000000000000000.json"
    path.write_text(json.dumps(data))
    try:
        record = results.load(path)
    except results.ResultError as error:
        assert str(path) in str(error)
        return
    summarize([record, results.load(source)])
    results.group_runs([record])
    with contextlib.suppress(ConfigError):  # refused by name is an answer too
        rebuild(record, str(path))


def test_reading_never_rewrites_a_good_record(made, capsys):
    before = snapshot(made)
    assert main(["report", str(made)]) == 0
    assert snapshot(made) == before
