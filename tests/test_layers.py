"""The package's structure: the folders are the layers (each subpackage states its ``LAYER``),
every module imports alone, imports point down the layers (imports inside functions included),
and the imports between subpackages form no circle."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import plp_bench

PACKAGE = Path(plp_bench.__file__).parent
ROOT = PACKAGE.parent


TOP = 10  # top-level modules beside the face (the command line's entry) stand above every folder


def declared_layer(init: Path) -> int | None:
    """The ``LAYER = N`` a subpackage's ``__init__.py`` states, read without importing it."""
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] \
                == ["LAYER"] and isinstance(node.value, ast.Constant):
            return node.value.value
    return None


def folder_layers() -> dict[str, int]:
    """``unit -> layer``: each subpackage of plp_bench at the layer its ``__init__.py``
    states; each top-level module (beside the face) above them all."""
    layers = {}
    for entry in sorted(PACKAGE.iterdir()):
        if entry.is_dir() and (entry / "__init__.py").is_file():
            layers[entry.name] = declared_layer(entry / "__init__.py")
        elif entry.suffix == ".py" and entry.name != "__init__.py":
            layers[entry.stem] = TOP
    return layers


def unit_of(module: str) -> str | None:
    """The layer unit of a dotted module name: a top-level module or subpackage of plp_bench
    (``plp_bench.data.readers`` -> ``data``); ``None`` for the package face itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "plp_bench" else None


def source_files(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file; ``from X import name`` counts as
    ``X.name`` when that is a module of the package, else as ``X``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                is_module = (ROOT / candidate.replace(".", "/")).with_suffix(".py").is_file() \
                    or (ROOT / candidate.replace(".", "/") / "__init__.py").is_file()
                found.add(candidate if is_module else module)
    return {m for m in found if m.split(".")[0] in ("plp_bench", "plp_baselines")}


def unit_imports() -> dict[str, set[str]]:
    """``unit -> the other units it imports``, over every file of the package."""
    edges: dict[str, set[str]] = {}
    for path in source_files(PACKAGE):
        unit = unit_of(module_name(path))
        if unit is None:
            continue
        targets = {unit_of(m) for m in imported_modules(path)} - {None, unit}
        edges.setdefault(unit, set()).update(targets)
    return edges


def test_every_folder_states_its_layer_and_the_top_level_is_small():
    layers = folder_layers()
    unstated = [unit for unit, layer in layers.items() if not isinstance(layer, int)]
    assert not unstated, f"subpackages without a LAYER = N in __init__.py: {unstated}"
    assert len({layer for layer in layers.values()}) >= 8
    top_level = [p for p in PACKAGE.glob("*.py")]
    assert len(top_level) <= 12, sorted(p.name for p in top_level)
    units = {unit_of(module_name(p)) for p in source_files(PACKAGE)} - {None}
    assert units == set(layers)


def test_the_face_lists_the_folders_at_their_layers():
    """The package docstring's map of the layers says what the folders say."""
    listed = {}
    for names, number in re.findall(r"^\* ((?:``\w+``(?:, )?)+) \((\d+)\):", plp_bench.__doc__,
                                    re.M):
        for name in re.findall(r"``(\w+)``", names):
            listed[name] = int(number)
    assert listed == {u: n for u, n in folder_layers().items() if n != TOP}


def test_no_module_imports_one_above_it():
    layers = folder_layers()
    upward = [f"{unit} (layer {layers[unit]}) imports {target} (layer {layers[target]})"
              for unit, targets in unit_imports().items() for target in targets
              if layers[target] > layers[unit]]
    assert not upward, "\n".join(upward)


def test_the_imports_form_no_circle():
    edges = unit_imports()
    state: dict[str, str] = {}

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = "open"
        for target in sorted(edges.get(unit, ())):
            assert state.get(target) != "open", f"circle: {' -> '.join([*path, target])}"
            if target not in state:
                visit(target, [*path, target])
        state[unit] = "done"

    for unit in sorted(edges):
        if unit not in state:
            visit(unit, [unit])


def test_baselines_know_nothing_of_the_harness():
    for path in source_files(ROOT / "baselines"):
        harness = {m for m in imported_modules(path) if m.startswith("plp_bench")}
        assert not harness, f"{path.relative_to(ROOT)} imports {sorted(harness)}"


def test_the_layer_check_sees_an_upward_import_inside_a_function(tmp_path):
    """The checks read imports made inside functions too (that is where a circle hides)."""
    fake = tmp_path / "plp_bench" / "core" / "config.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..sweeps.grid import sweep\n    return sweep\n")
    global ROOT
    real_root, ROOT = ROOT, tmp_path
    try:
        assert imported_modules(fake) == {"plp_bench.sweeps.grid"}
    finally:
        ROOT = real_root


IMPORT_EACH_ALONE = """
import importlib, json, sys
results = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("plp_bench", "plp_baselines")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        results[name] = {"error": f"{type(error).__name__}: {error}"}
        continue
    results[name] = {"loaded": sorted(m for m in sys.modules if m.startswith("plp_bench."))}
print(json.dumps(results))
"""


def test_each_module_imports_alone_and_loads_nothing_above_it():
    """In a fresh interpreter, each module is imported with no other module of the package
    loaded before it: it must import (no circle that only one order hides), and what it loads
    at import time must lie in its own layer or below."""
    import json

    names = [module_name(p) for p in source_files(PACKAGE)]
    out = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, *names], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    results = json.loads(out)
    layers = folder_layers()
    errors = {name: r["error"] for name, r in results.items() if "error" in r}
    assert not errors, errors
    for name, result in results.items():
        unit = unit_of(name)
        if unit is None:
            assert result["loaded"] == []  # the face imports nothing until a name is used
            continue
        above = [m for m in result["loaded"] if layers[unit_of(m)] > layers[unit]]
        assert not above, f"importing {name} loads {above}"


def test_the_face_exports_resolve_lazily():
    from plp_bench import PLP, RunResult, run, sweep

    assert run.__module__ == "plp_bench.runs.entry" and sweep.__module__ == "plp_bench.sweeps.grid"
    assert PLP.__module__ == "plp_bench.methods.plp" and RunResult.__module__ == "plp_bench.core.record"
    assert set(plp_bench.__all__) <= set(dir(plp_bench))
