"""Instructions a method executes, counted by Valgrind's callgrind: a cost the machine's load
cannot move. Three kinds (:data:`KINDS`), each over a reference on the same parameters: the
update (``step_cost.UpdateInstructions``), whole training steps
(``step_cost.TrainingStepInstructions``) and a weight jump (``jumps.JumpInstructions``).

A memory-bound update's time on a shared 2-core machine moves with the host: one copy of
ResNet18's PLP and SGD optimizers, timed again and again in one process, read 1.149 to 1.268
over half a minute, and the medians of two processes moved up to 7% apart on an unchanged
package (README, "Comparing commits"). The number of instructions the update executes does
not depend on the load or the clock. One install counts the same to the instruction every
time; two installs of one package (two virtualenvs) moved the MLP's ratios by up to 0.1% and
ResNet18's by 0.0003% (the MLP's update is mostly Python, whose work depends a little on where
its objects lie), so the noise model gives it the floor of every measured value, 3%. It
leaves out what the instructions cost (memory traffic, vector width), which the time ratios
keep.

How (Valgrind's manual, callgrind: "client requests"; ``valgrind.h``'s amd64 convention):

* The count runs in a child process (:func:`main`), started under
  ``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``: nothing is counted,
  and nothing is instrumented, until the child asks.
* Around each counted call, the child issues callgrind's client requests: start
  instrumentation, zero the counters, toggle collection on; the call; toggle collection off,
  dump the counters under a label. A client request is a no-op instruction sequence that
  Valgrind recognises (four rotations of ``rdi`` summing to 128 bits, then ``xchg rbx, rbx``,
  with ``rax`` pointing at the request and its arguments); :class:`ClientRequests` runs it
  from a page of machine code, so nothing is compiled. Outside Valgrind it returns 0 and
  does nothing.
* The parent reads each dump's ``totals:`` line (instructions read, ``Ir``), validated and
  bounded, and returns the ratio of the method's count to its reference's.
* Each counted thing runs :data:`WARM_CALLS` times first on the MLP, so that Python's
  specialised bytecode, not what ran before in the process, sets its count.
* The child runs torch on one thread with ``PYTHONHASHSEED=0``, on parameters filled with a
  fixed ramp (not random: drawing ResNet18's 11 million values under Valgrind takes 20 s a
  set, and an element-wise update executes the same instructions whatever the values).
* It runs torch's baseline CPU kernels (``ATEN_CPU_CAPABILITY=default``), not the AVX2 ones
  Valgrind would select (it has no AVX-512): Valgrind runs AVX2 code about ten times slower
  (a PLP cycle on ResNet18: 2.7 s against 0.24 s). So the count is of the kernels every
  x86-64 machine runs: the same on every machine, proportional to the update's arithmetic,
  not the count of the wider kernels a native run picks.

Only on x86-64 Linux with ``valgrind`` on the ``PATH``; elsewhere :func:`available` says why
not, and the suites' points are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import mmap
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# callgrind's client requests (callgrind.h): VG_USERREQ_TOOL_BASE('C', 'T') + n
_CALLGRIND = (ord("C") << 24) | (ord("T") << 16)
_DUMP_STATS_AT, _ZERO_STATS, _TOGGLE_COLLECT = _CALLGRIND + 3, _CALLGRIND + 1, _CALLGRIND + 2
_START_INSTRUMENTATION, _STOP_INSTRUMENTATION = _CALLGRIND + 4, _CALLGRIND + 5
_RUNNING_ON_VALGRIND = 0x1001  # valgrind.h: VG_USERREQ__RUNNING_ON_VALGRIND

# f(args: uint64*, default: uint64) -> uint64, valgrind.h's VALGRIND_DO_CLIENT_REQUEST_EXPR
_REQUEST_CODE = bytes([
    0x48, 0x89, 0xF8,        # mov rax, rdi: the request and its arguments
    0x48, 0x89, 0xF2,        # mov rdx, rsi: the result outside Valgrind
    0x48, 0xC1, 0xC7, 0x03,  # rol rdi, 3
    0x48, 0xC1, 0xC7, 0x0D,  # rol rdi, 13
    0x48, 0xC1, 0xC7, 0x3D,  # rol rdi, 61
    0x48, 0xC1, 0xC7, 0x33,  # rol rdi, 51
    0x48, 0x87, 0xDB,        # xchg rbx, rbx: the request
    0x48, 0x89, 0xD0,        # mov rax, rdx
    0xC3,                    # ret
])

LABEL = re.compile(r"[a-z][a-z0-9]{0,15}")  # the dumps' labels: w0, r1, ...
MAX_DUMP_BYTES = 64 * 2**20
MAX_DUMPS = 256
MAX_REPORT_BYTES = 2**20
UNITS = re.compile(r"[1-9][0-9]{0,5}")  # a report's reference given as a number of units
CHILD_TIMEOUT_SECONDS = 1200
# The child imports this folder as ``benchmarks`` by its path, as asv does: the folder above
# it (a checkout) must not come first on ``sys.path``, or its ``plp_bench`` would be counted
# instead of the installed commit's.
_CHILD = ("import importlib.util, sys; folder = sys.argv[1]; "
          "spec = importlib.util.spec_from_file_location('benchmarks', folder + '/__init__.py', "
          "submodule_search_locations=[folder]); "
          "package = sys.modules['benchmarks'] = importlib.util.module_from_spec(spec); "
          "spec.loader.exec_module(package); "
          "from benchmarks.instructions import main; sys.exit(main(sys.argv[2:]))")


X86_64 = ("x86_64", "AMD64")  # platform.machine()'s names for the code above


def available() -> str | None:
    """None where instructions can be counted here, else why not (a sentence)."""
    if sys.platform != "linux" or platform.machine() not in X86_64:
        return f"instruction counts need x86-64 Linux, not {sys.platform} {platform.machine()}"
    if shutil.which("valgrind") is None:
        return "instruction counts need valgrind on the PATH"
    return None


class ClientRequests:
    """Valgrind's client requests, issued from a page of machine code (see the module)."""

    def __init__(self) -> None:
        if platform.machine() not in X86_64:
            raise RuntimeError(f"client requests are x86-64 code; this is {platform.machine()}")
        self._page = mmap.mmap(-1, mmap.PAGESIZE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(_REQUEST_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        self._call = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)(address)

    def __call__(self, request: int, *arguments: int) -> int:
        if len(arguments) > 5:
            raise ValueError("a client request takes at most five arguments")
        words = (ctypes.c_uint64 * 6)(request, *arguments, *([0] * (5 - len(arguments))))
        return int(self._call(ctypes.cast(words, ctypes.c_void_p), 0))

    def on_valgrind(self) -> bool:
        return self(_RUNNING_ON_VALGRIND) > 0

    def start_counting(self) -> None:
        """Instrument, zero the counters and collect."""
        self(_START_INSTRUMENTATION)
        self(_ZERO_STATS)
        self(_TOGGLE_COLLECT)

    def dump(self, label: str) -> None:
        """Dump what was collected since the last dump or zero under ``label`` (zeroing the
        counters) and go on collecting; the requests themselves are outside the count."""
        if not LABEL.fullmatch(label):
            raise ValueError(f"label {label!r}: allowed {LABEL.pattern}")
        name = ctypes.create_string_buffer(label.encode())
        self(_TOGGLE_COLLECT)
        self(_DUMP_STATS_AT, ctypes.addressof(name))
        self(_TOGGLE_COLLECT)

    def stop_counting(self) -> None:
        """Stop collecting and instrumenting; what was collected since the last dump is
        dropped (zeroed at the next start)."""
        self(_TOGGLE_COLLECT)
        self(_STOP_INSTRUMENTATION)

    @contextmanager
    def counted(self, label: str) -> Iterator[None]:
        """Count the instructions of the block, dumped under ``label``."""
        if not LABEL.fullmatch(label):
            raise ValueError(f"label {label!r}: allowed {LABEL.pattern}")
        name = ctypes.create_string_buffer(label.encode())
        self(_START_INSTRUMENTATION)
        self(_ZERO_STATS)
        self(_TOGGLE_COLLECT)
        try:
            yield
        finally:
            self(_TOGGLE_COLLECT)
            self(_DUMP_STATS_AT, ctypes.addressof(name))
            self(_STOP_INSTRUMENTATION)


def read_dumps(folder: Path) -> dict[str, int]:
    """The instructions of each labelled dump callgrind wrote into ``folder``: its
    ``desc: Trigger: Client Request: LABEL`` and ``totals: N`` lines. Files are bounded in
    number and size, labels must match :data:`LABEL`, a label seen twice is an error."""
    counts: dict[str, int] = {}
    dumps = sorted(folder.glob("callgrind.out*"))
    if len(dumps) > MAX_DUMPS:
        raise ValueError(f"{folder}: {len(dumps)} callgrind dumps; at most {MAX_DUMPS}")
    for dump in dumps:
        if dump.stat().st_size > MAX_DUMP_BYTES:
            raise ValueError(f"{dump}: larger than {MAX_DUMP_BYTES} bytes")
        label = total = None
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("desc: Trigger: Client Request: "):
                label = line.removeprefix("desc: Trigger: Client Request: ").strip()
            elif line.startswith("totals:"):
                field = line.removeprefix("totals:").split()
                total = int(field[0]) if field and field[0].isdigit() else None
        if label is None:
            continue  # the dump at the program's end: nothing collected
        if not LABEL.fullmatch(label) or total is None:
            raise ValueError(f"{dump}: label {label!r} or its totals line is not as "
                             f"callgrind writes them")
        if label in counts:
            raise ValueError(f"{folder}: label {label!r} dumped twice")
        counts[label] = total
    return counts


Point = tuple[str, str, str]  # (kind of count, parameter set, method); for the kind "ode":
# (kind, workload, threshold or benchmarks.ode_counting.GD_STEP)


def ratios_from(report: dict[str, Any], counts: dict[str, int],
                points: Sequence[Point]) -> dict[Point, float]:
    """Each counted ``(kind, parameters, method)`` point's value from the child's report
    (``{"labels": [[kind, parameters, method, work, reference], ...]}``) and the dumps'
    counts: the instructions of ``work`` (a dump's label, or several joined by ``+``, summed)
    over ``reference``'s (a label), or per unit where ``reference`` is a number of units (the
    ODE's absolute counts: ``1``; one gradient-descent step of 20 counted: ``20``). A point
    the report leaves out (the commit lacks the method, or it is not counted there) is left
    out."""
    rows = report.get("labels")
    if not isinstance(rows, list):
        raise ValueError("the counting child's report has no 'labels' list")
    ratios = {}
    for row in rows:
        if (not isinstance(row, list) or len(row) != 5
                or not all(isinstance(field, str) for field in row)):
            raise ValueError(f"the counting child's report: {row!r} is not "
                             f"[kind, parameters, method, work label, reference label]")
        kind, parameters, method, work_labels, reference = row
        if (kind, parameters, method) not in points:
            raise ValueError(f"the counting child reported {kind} {parameters}/{method}, "
                             f"not asked for")
        summed = work_labels.split("+")
        units = int(reference) if UNITS.fullmatch(reference) else None
        labels = summed if units else [*summed, reference]
        if not all(label in counts for label in labels):
            raise ValueError(f"{kind} {parameters}/{method}: labels {labels!r} match no "
                             f"callgrind dump")
        work = sum(counts[label] for label in summed)
        below = units or counts[reference]
        if work <= 0 or below <= 0:
            raise ValueError(f"{kind} {parameters}/{method}: no instructions counted")
        ratios[(kind, parameters, method)] = work / below
    return ratios


# The points of each kind are counted in one of three children run side by side (the counts
# do not depend on the load, and a machine with two cores takes about half the time):
# the MLP's whole training steps take about as long as the updates and jumps together, the
# ODE's work (one workload) about two thirds of that.
CHILD_KINDS = (("update", "jump"), ("step",), ("ode",))


def count_ratios(points: Sequence[Point],
                 timeout: float = CHILD_TIMEOUT_SECONDS) -> dict[Point, float]:
    """For each ``(kind, parameters, method)`` of ``points`` (a kind of :data:`KINDS`, a
    parameter set of :data:`benchmarks.costs.PARAMETER_SETS`, the installed commit's
    method): the instructions of the method's work over its reference's (see :data:`KINDS`),
    counted under callgrind (see the module) in a child per group of :data:`CHILD_KINDS`,
    the children side by side. A point the commit lacks, or that is not counted there
    (:func:`counted_on`), is left out. Raises ``RuntimeError`` where a child fails."""
    why_not = available()
    if why_not:
        raise RuntimeError(why_not)
    unknown = sorted({kind for kind, _, _ in points} - set(KINDS))
    if unknown:
        raise ValueError(f"kinds {unknown}; allowed: {', '.join(KINDS)}")
    environment = dict(os.environ, PYTHONHASHSEED="0", ATEN_CPU_CAPABILITY="default")
    groups = [[point for point in points if point[0] in kinds] for kinds in CHILD_KINDS]
    ratios: dict[Point, float] = {}
    with contextlib.ExitStack() as stack:
        children = []
        for group in filter(None, groups):
            folder = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="plp-bench-callgrind-"))
            command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                       "--collect-atstart=no", f"--callgrind-out-file={folder}/callgrind.out",
                       sys.executable, "-c", _CHILD, str(Path(__file__).resolve().parent),
                       *(":".join(point) for point in group)]
            output, errors = (stack.enter_context(tempfile.TemporaryFile()) for _ in "12")
            child = subprocess.Popen(command, stdout=output, stderr=errors, env=environment,
                                     cwd=folder)
            stack.callback(child.kill)
            children.append((group, folder, output, errors, child))
        deadline = time.monotonic() + timeout
        for group, folder, output, errors, child in children:
            try:
                code = child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"counting instructions took over {timeout:g} s") from None
            if code != 0:
                raise RuntimeError(f"counting instructions failed (exit {code}): "
                                   f"{_tail(errors, 2000)}")
            ratios.update(ratios_from(_report(_tail(output, MAX_REPORT_BYTES)),
                                      read_dumps(Path(folder)), group))
    return ratios


def _tail(file: Any, size: int) -> str:
    """The last ``size`` bytes of an open binary file, as text."""
    file.seek(max(0, file.seek(0, os.SEEK_END) - size))
    return file.read().decode(errors="replace")


def _report(output: str) -> dict[str, Any]:
    """The counting child's report: the last line of its output (its last
    :data:`MAX_REPORT_BYTES`), one JSON mapping."""
    last = output.strip().splitlines()[-1:] or [""]
    try:
        report = json.loads(last[0])
    except json.JSONDecodeError:
        raise RuntimeError(f"the counting child printed no report: {output[-500:]!r}"
                           ) from None
    if not isinstance(report, dict):
        raise RuntimeError("the counting child's report is not a mapping")
    return report


# What is counted, each over its reference on the same parameter set (built by ``prepare`` in
# :func:`_count_in_this_process`):
KINDS = {
    "update": "one PLP cycle of the method's update (3 steps) on synthetic gradients, over "
              "its bare optimizer's",
    "step": "one PLP cycle of whole training steps (forward, backward, update on a fixed "
            "batch), over its bare optimizer's",
    "jump": "one weight jump (the predictor over every weight), over one step of its bare "
            "optimizer: how many steps a jump is worth",
    "ode": "the ODE comparison's work on a workload: the ODE's instructions to each "
           "training-accuracy threshold, and one full-batch gradient-descent step's "
           "(benchmarks.ode_counting)",
}
# The parameter sets on which every kind and method is counted; on the others (ResNet18's 11
# million parameters, VGG16's) only the updates of the methods over SGD without jumps: under
# Valgrind a cycle of Adam's update on ResNet18 took 10 s against SGD's 0.24 s (its square
# roots), a jump method steps up to 200 times past its jumps before it is counted, and
# counting one point of ResNet18's whole training steps ran over 8 minutes, one jump (Introspection)
# 4.5 minutes.
EVERY_METHOD_ON = ("mlp",)
COUNTED_OPTIMIZERS_ELSEWHERE = ("sgd",)
# Calls of each counted thing before its count where its Python dominates (the MLP's): steps of
# an optimizer, calls of a jump. Python's interpreter specialises a function's bytecode after
# it has run 8 times (PEP 659), on the types it has seen, and torch's optimizers share
# functions, so a count after fewer calls depends on what ran before it in the process:
# counted after 3 steps, the MLP's XGrad update over SGD read 1.638 alone and 1.609 after
# PLP's count; after 30, 1.6957 and 1.6970; a jump over one SGD step counted after 4 steps of
# SGD moved 6% when the order of the points was reversed, and no count moved more than 0.75%
# after 18. ResNet18's counts, its kernels', moved under 0.01% either way.
WARM_CALLS = 18


def warm_calls(parameters: str) -> int:
    """Calls before a count on parameter set ``parameters`` (see :data:`WARM_CALLS`)."""
    return WARM_CALLS if parameters in EVERY_METHOD_ON else 1


def kind_counted_on(kind: str, parameters: str) -> bool:
    """Whether ``kind`` is counted for any method on parameter set ``parameters``: every
    kind on :data:`EVERY_METHOD_ON`, elsewhere the update only."""
    return parameters in EVERY_METHOD_ON or kind == "update"


def counted_on(kind: str, parameters: str, optimizer: str, jumps: bool) -> bool:
    """Whether ``kind`` is counted for a method over ``optimizer`` (with weight ``jumps`` or
    not) on parameter set ``parameters`` (see :data:`EVERY_METHOD_ON`)."""
    if parameters in EVERY_METHOD_ON:
        return True
    return (kind_counted_on(kind, parameters)
            and optimizer in COUNTED_OPTIMIZERS_ELSEWHERE and not jumps)


def _count_in_this_process(points: Sequence[Point],
                           requests: ClientRequests) -> dict[str, Any]:
    """The child's work. Per parameter set, one ramp parameter set on which each method's
    update and its bare optimizer's are built (they share it, and each one's steps move it:
    the instructions of an element-wise update do not depend on the values, and a copy per
    optimizer took longer than the counts); whole training steps build their seeded model
    and batch as the time ratios do; a jump reads the ramp set. Each is stepped past its
    jumps, then called :func:`warm_calls` times, then counted for one call. A reference
    shared by several methods is counted once. The ODE's points are counted by
    :func:`benchmarks.ode_counting.count_ode`."""
    from .sampling import collector_off, prepare_timing

    prepare_timing()  # one thread, freed memory kept: as every timing runs
    rows: list[list[str]] = []
    if any(kind == "ode" for kind, _, _ in points):
        from . import ode_counting

        rows += ode_counting.count_ode([p for p in points if p[0] == "ode"], requests)
        points = [point for point in points if point[0] != "ode"]
        if not points:  # the ODE's child: nothing else to import
            return {"labels": rows}
    from .costs import (
        PARAMETER_SETS,
        TRAINING_BATCH,
        StepBench,
        bare,
        jump_parts,
        jump_wrapper,
        named_method,
        ramp_parameter_set,
    )

    references: dict[tuple[str, str, str], str] = {}
    sets: dict[str, list[Any]] = {}

    def counted(label: str, call: Any) -> str:
        # a collection the allocations so far happen to trigger is not the work: with the
        # collector on, the MLP's update counts moved up to 0.3% between two installs
        with collector_off(), requests.counted(label):
            call()
        return label

    def warmed(bench: Any, parameters: str) -> Any:
        bench.steps()
        bench.past_jumps()
        bench.steps(warm_calls(parameters))
        return bench

    def prepare(kind: str, parameters: str, method: str, config: Any, reference_config: Any,
                params: list[Any]) -> tuple[Any, Any] | None:
        """The counted call of the point, warmed, and a function that makes its reference's;
        None where the point is not counted (:func:`counted_on`)."""
        if kind == "jump":
            if not counted_on(kind, parameters, config.optimizer, jumps=True):
                return None
            parts = jump_parts(parameters, method, params=params)
            for _ in range(warm_calls(parameters)):
                parts.fresh_jump()()
            parts.reference.steps(warm_calls(parameters))
            return parts.fresh_jump(), lambda: (lambda: parts.reference.steps(1))
        batch = TRAINING_BATCH if kind == "step" else None
        bench = StepBench.build(config, parameters, batch_size=batch,
                                params=None if batch else params)
        if not counted_on(kind, parameters, config.optimizer,
                          jump_wrapper(bench.optimizer) is not None):
            return None  # before its steps: those are what take long under Valgrind
        return warmed(bench, parameters).steps, lambda: warmed(StepBench.build(
            reference_config, parameters, batch_size=batch, params=None if batch else params),
            parameters).steps

    for index, (kind, parameters, method) in enumerate(points):
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}; allowed: {', '.join(KINDS)}")
        if parameters not in PARAMETER_SETS:
            raise ValueError(f"parameter set {parameters!r}; allowed: "
                             f"{', '.join(PARAMETER_SETS)}")
        try:
            config = named_method(method)
        except NotImplementedError:
            continue
        if parameters not in sets:
            sets[parameters] = ramp_parameter_set(parameters)
        params = sets[parameters]
        reference_config = bare(config)
        try:
            prepared = prepare(kind, parameters, method, config, reference_config, params)
        except NotImplementedError:  # the commit's package lacks what the kind needs
            continue
        if prepared is None:
            continue
        work, reference_call = prepared
        key = (kind, parameters, repr((reference_config.optimizer,
                                       sorted(reference_config.hyperparameters.items()))))
        if key not in references:
            references[key] = counted(f"r{len(references)}", reference_call())
        rows.append([kind, parameters, method, counted(f"w{index}", work), references[key]])
    return {"labels": rows}


def main(argv: Sequence[str] | None = None) -> int:
    """The counting child (see the module), given ``KIND:PARAMETERS:METHOD...``: prints its
    report as one line of JSON."""
    parser = argparse.ArgumentParser(prog="benchmarks.instructions")
    parser.add_argument("points", nargs="+", metavar="KIND:PARAMETERS:METHOD")
    arguments = parser.parse_args(argv)
    points = []
    for point in arguments.points:
        fields = point.split(":")
        if len(fields) != 3 or not all(fields):
            parser.error(f"{point!r}: expected KIND:PARAMETERS:METHOD")
        points.append((fields[0], fields[1], fields[2]))
    requests = ClientRequests()
    if not requests.on_valgrind():
        print("benchmarks.instructions counts only under valgrind --tool=callgrind",
              file=sys.stderr)
        return 2
    print(json.dumps(_count_in_this_process(points, requests)))
    return 0


def suite_points() -> list[Point]:
    """Every point the suites of counts ask for at the current size (``PLP_BENCH_SIZE``):
    updates on its parameter sets, whole training steps on its training-step sets, jumps on
    its parameter sets (a kind not counted on a set for any method, :func:`kind_counted_on`,
    is not asked for), and the ODE comparison's work on its ODE workloads
    (:func:`ode_points`) except at the smoke size (:data:`SMOKE_WITHOUT_ODE`)."""
    from .common import current_size

    size = current_size()
    asked = ([("update", p, m) for p in size.parameter_sets for m in size.composed_methods]
             + [("step", p, m) for p in size.training_step_sets for m in size.composed_methods]
             + [("jump", p, m) for p in size.parameter_sets for m in size.jump_methods])
    counted = [(kind, p, m) for kind, p, m in asked if kind_counted_on(kind, p)]
    if size.name == SMOKE_WITHOUT_ODE:
        return counted
    return counted + ode_points(size.ode_workloads)


# The size that leaves the ODE's counts out: counting them takes about 40 s of a core under
# Valgrind, whatever the size (most of it loading torch.func's and SciPy's code), more than
# the rest of the smoke size's counts together.
SMOKE_WITHOUT_ODE = "smoke"


def ode_points(workloads: Sequence[str]) -> list[Point]:
    """The ``"ode"`` points of ``workloads``: one gradient-descent step's count
    (:data:`benchmarks.ode_counting.GD_STEP`) and the ODE's to each threshold the timed
    comparison tracks there."""
    from .ode_counting import GD_STEP
    from .ode_settings import SETTINGS

    return [("ode", workload, point) for workload in workloads
            for point in [GD_STEP, *(f"{t:.2f}" for t in SETTINGS[workload][1])]]


class CountedSuite:
    """What the suites of counts share (no benchmark of its own, so asv collects nothing from
    it): one ``setup_cache``, so asv runs one child for every kind's points of a commit and
    hands its counts to each point; ``setup`` skips a point not counted, saying why (every
    point where Valgrind is missing)."""

    param_names = ["parameters", "method"]
    timeout = CHILD_TIMEOUT_SECONDS
    version = 1
    kind = "update"

    def setup_cache(self) -> dict[Point, float] | str:
        why_not = available()
        if why_not:
            return why_not
        return count_ratios(suite_points())

    def setup(self, counts, parameters, method):
        if isinstance(counts, str):
            raise NotImplementedError(counts)
        if (self.kind, parameters, method) not in counts:
            raise NotImplementedError(
                f"{self.kind} of {method} on {parameters} is not counted (the commit lacks "
                f"the method, or it is not counted on that set: "
                f"benchmarks.instructions.counted_on)")

    def count(self, counts, parameters, method) -> float:
        return counts[(self.kind, parameters, method)]


if __name__ == "__main__":
    sys.exit(main())
