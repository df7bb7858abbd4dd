"""What ``pip install plp-bench`` installs: the update rules under import names no other
distribution claims, needing torch alone; the harness with the ``[harness]`` extra, and a
command line that names that extra when it is missing."""

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from plp_bench.entry_point import HARNESS_MODULES, main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FOLDERS = {"plp_baselines": "baselines", "plp_bench": "plp_bench"}


def test_the_package_list_names_every_package_folder_under_its_installed_name():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == FOLDERS
    found = set()
    for name, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    assert set(setuptools["packages"]) == found
    assert "baselines" not in {p.split(".")[0] for p in setuptools["packages"]}


def test_the_install_needs_torch_alone_and_the_harness_extra_brings_the_rest():
    project = PYPROJECT["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["torch"]
    harness = {d.split(">")[0].split("=")[0].lower()
               for d in project["optional-dependencies"]["harness"]}
    assert harness == {dist.lower() for dist in HARNESS_MODULES.values()}
    assert project["scripts"]["plp-bench"] == "plp_bench.entry_point:main"


def torch_alone(folder: Path) -> Path:
    """A folder holding what ``pip install plp-bench`` installs: torch and the distributions
    it requires (from their metadata, as pip resolves them), plus this package's two import
    packages, as links into the test environment. A ``python -S`` with only this folder on
    its path sees nothing else of the environment."""
    seen: dict[str, metadata.Distribution] = {}

    def add(name: str) -> None:
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            return
        seen[key] = distribution = metadata.distribution(name)
        for requirement in map(Requirement, distribution.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                add(requirement.name)

    add("torch")
    folder.mkdir()
    for distribution in seen.values():
        base = Path(distribution.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in distribution.files or []}:
            if top not in ("..", "__pycache__") and not (folder / top).exists():
                (folder / top).symlink_to(base / top)
    for name, source in FOLDERS.items():
        (folder / name).symlink_to(ROOT / source)
    return folder


TORCH_ALONE = """
import json, sys
HARNESS = set(sys.argv[1].split(","))
import torch
from plp_bench import PLP
from plp_baselines.demon import DemonMomentum
from plp_baselines.introspection import FitJumps, IntrospectionJumps, NoiseJumps
from plp_baselines.xgrad import WeightPrediction

torch.manual_seed(0)
x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
finals = {}
builds = {
    "plp": lambda ps: PLP(torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "xgrad": lambda ps: WeightPrediction(torch.optim.Adam(ps, lr=0.01)),
    "plp-over-xgrad": lambda ps: PLP(WeightPrediction(torch.optim.SGD(ps, lr=0.1, momentum=0.9))),
    "introspection": lambda ps: IntrospectionJumps(torch.optim.SGD(ps, lr=0.1), jump_steps=[10]),
    "fit-jumps": lambda ps: FitJumps(torch.optim.SGD(ps, lr=0.1), jump_steps=[10], degree=2,
                                     ratio=1.3),
    "noise-jumps": lambda ps: NoiseJumps(torch.optim.SGD(ps, lr=0.1), jump_steps=[10], std=1e-3),
}
for name, build in builds.items():
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = build(list(model.parameters()))
    demon = DemonMomentum(optimizer, total_steps=30) if name != "xgrad" else None
    first = None
    for _ in range(30):
        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        loss = float(optimizer.step(closure))
        first = loss if first is None else first
        if demon is not None:
            demon.step()
    finals[name] = [first, loss]

errors = {}
from plp_bench.entry_point import main
try:
    import plp_bench
    plp_bench.run
except ModuleNotFoundError as error:
    errors["run"] = str(error)
try:
    import plp_baselines.linearized
except ModuleNotFoundError as error:
    errors["linearized"] = str(error)
loaded = sorted({m.split(".")[0] for m in sys.modules} & HARNESS)
print(json.dumps({"finals": finals, "errors": errors, "loaded": loaded,
                  "exit": main(["list"])}))
"""


def test_the_update_rules_train_without_the_harness_installed(tmp_path):
    folder = torch_alone(tmp_path / "site")
    done = subprocess.run([sys.executable, "-S", "-c", TORCH_ALONE, ",".join(HARNESS_MODULES)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"PYTHONPATH": str(folder), "PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == ["jinja2"] or result["loaded"] == []  # torch requires Jinja2
    assert set(result["finals"]) == {"plp", "xgrad", "plp-over-xgrad", "introspection",
                                     "fit-jumps", "noise-jumps"}
    # the same training where the harness is installed: the same losses, bit for bit
    full = subprocess.run([sys.executable, "-c", TORCH_ALONE, ",".join(HARNESS_MODULES)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout.strip().splitlines()[-1])["finals"] == result["finals"]
    assert "plp_bench.run needs the harness" in result["errors"]["run"]
    assert "pip install 'plp-bench[harness]'" in result["errors"]["run"]
    assert "plp-bench[harness]" in result["errors"]["linearized"]
    assert result["exit"] == 1
    assert "plp-bench's command line needs the harness" in done.stderr
    assert "missing: numpy, scipy, rich, PyYAML, scikit-learn, matplotlib)" in done.stderr


def test_the_command_line_runs_where_the_harness_is_installed(capsys):
    assert main(["list", "methods"]) == 0
    assert "plp" in capsys.readouterr().out


def test_the_readmes_commands_install_the_harness_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    main_job, tests = commands[:2]
    assert "-e '.[harness]'" in main_job and main_job.endswith(".venv/bin/plp-bench")
    assert "-e '.[harness]'" in tests and "--no-deps -r requirements-nodeps.txt" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in {line.replace(" -q", "") for line in ci.splitlines()}


def test_help_of_each_update_rule_states_its_algorithm_source_and_parameters():
    import inspect

    from plp_baselines.demon import DemonMomentum
    from plp_baselines.introspection import FitJumps, IntrospectionJumps, NoiseJumps, WeightJumps
    from plp_baselines.xgrad import WeightPrediction
    from plp_bench import PLP

    for public in (PLP, WeightPrediction, DemonMomentum, WeightJumps):
        doc = inspect.getdoc(public)
        assert re.search(r"et al\.|\b20\d\d\b", doc) and ".. math::" in doc, public.__name__
        assert "differ" in doc.lower() or "beyond the paper" in doc.lower(), public.__name__
        assert len(doc) > 800, public.__name__  # the algorithm, not a pointer to the module
        for name in inspect.signature(public.__init__).parameters:
            if name != "self":
                assert f"{name}:" in doc, f"{public.__name__}: {name} is not described"
        step = inspect.signature(public.step)
        assert step.return_annotation != inspect.Signature.empty, public.__name__
    for factory in (IntrospectionJumps, FitJumps, NoiseJumps):
        doc = inspect.getdoc(factory)
        assert ":math:" in doc and "WeightJumps" in doc, factory.__name__
