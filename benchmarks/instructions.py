"""Instructions a method's update executes, counted by Valgrind's callgrind: a cost the
machine's load cannot move.

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
  bounded, and returns the ratio of the method's count to its bare optimizer's.
* The child runs torch on one thread with ``PYTHONHASHSEED=0``, on parameters filled with a
  fixed ramp (not random: drawing ResNet18's 11 million values under Valgrind takes 20 s a
  set, and an element-wise update executes the same instructions whatever the values).
* It runs torch's baseline CPU kernels (``ATEN_CPU_CAPABILITY=default``), not the AVX2 ones
  Valgrind would select (it has no AVX-512): Valgrind runs AVX2 code about ten times slower
  (a PLP cycle on ResNet18: 2.7 s against 0.24 s). So the count is of the kernels every
  x86-64 machine runs: the same on every machine, proportional to the update's arithmetic,
  not the count of the wider kernels a native run picks.

Only on x86-64 Linux with ``valgrind`` on the ``PATH``; elsewhere :func:`available` says why
not, and the suite's points are skipped.
"""

from __future__ import annotations

import argparse
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


def ratios_from(report: dict[str, Any], counts: dict[str, int],
                points: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """Each counted ``(parameters, method)`` point's instructions over its bare optimizer's,
    from the child's report (``{"labels": [[parameters, method, work label, reference
    label], ...]}``) and the dumps' counts; a point the report leaves out (the commit lacks
    the method) is left out."""
    rows = report.get("labels")
    if not isinstance(rows, list):
        raise ValueError("the counting child's report has no 'labels' list")
    ratios = {}
    for row in rows:
        if (not isinstance(row, list) or len(row) != 4
                or not all(isinstance(field, str) for field in row)):
            raise ValueError(f"the counting child's report: {row!r} is not "
                             f"[parameters, method, work label, reference label]")
        parameters, method, *labels = row
        if (parameters, method) not in points:
            raise ValueError(f"the counting child reported {parameters}/{method}, "
                             f"not asked for")
        if not all(label in counts for label in labels):
            raise ValueError(f"{parameters}/{method}: labels {labels!r} match no "
                             f"callgrind dump")
        work, reference = (counts[label] for label in labels)
        if work <= 0 or reference <= 0:
            raise ValueError(f"{parameters}/{method}: no instructions counted")
        ratios[(parameters, method)] = work / reference
    return ratios


def count_ratios(points: Sequence[tuple[str, str]],
                 timeout: float = CHILD_TIMEOUT_SECONDS) -> dict[tuple[str, str], float]:
    """For each ``(parameters, method)`` of ``points`` (a parameter set of
    :data:`benchmarks.costs.PARAMETER_SETS`, the installed commit's method): the
    instructions of one PLP cycle's worth of the method's update (3 steps) over its bare
    optimizer's, counted in one child under callgrind (see the module). A method the commit
    lacks is left out. Raises ``RuntimeError`` where the child fails."""
    why_not = available()
    if why_not:
        raise RuntimeError(why_not)
    environment = dict(os.environ, PYTHONHASHSEED="0", ATEN_CPU_CAPABILITY="default")
    with tempfile.TemporaryDirectory(prefix="plp-bench-callgrind-") as folder:
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   "--collect-atstart=no", f"--callgrind-out-file={folder}/callgrind.out",
                   sys.executable, "-c", _CHILD, str(Path(__file__).resolve().parent),
                   *(f"{parameters}:{method}" for parameters, method in points)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=environment, cwd=folder, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"counting instructions failed (exit {done.returncode}): "
                               f"{done.stderr[-2000:]}")
        last = done.stdout.strip().splitlines()[-1:] or [""]
        if len(last[0]) > MAX_REPORT_BYTES:
            raise RuntimeError("the counting child's report is too long")
        try:
            report = json.loads(last[0])
        except json.JSONDecodeError:
            raise RuntimeError(f"the counting child printed no report: {done.stdout[-500:]!r}"
                               ) from None
        if not isinstance(report, dict):
            raise RuntimeError("the counting child's report is not a mapping")
        return ratios_from(report, read_dumps(Path(folder)), points)


# The parameter sets on which every method is counted; on the others (ResNet18's 11 million
# parameters, VGG16's) only the methods over SGD without jumps: under Valgrind a cycle of
# Adam's update on ResNet18 took 10 s against SGD's 0.24 s (its square roots), and a jump
# method steps up to 200 times past its jumps before it is counted.
EVERY_METHOD_ON = ("mlp",)
COUNTED_OPTIMIZERS_ELSEWHERE = ("sgd",)


def counted_on(parameters: str, optimizer: str, jumps: bool) -> bool:
    """Whether a method over ``optimizer`` (with weight ``jumps`` or not) is counted on
    parameter set ``parameters`` (see :data:`EVERY_METHOD_ON`)."""
    return parameters in EVERY_METHOD_ON or (optimizer in COUNTED_OPTIMIZERS_ELSEWHERE
                                              and not jumps)


def _count_in_this_process(points: Sequence[tuple[str, str]],
                           requests: ClientRequests) -> dict[str, Any]:
    """The child's work: for each parameter set, one ramp parameter set on which each
    method and its bare optimizer are built, stepped once (state allocated) and counted for
    one call (a reference shared by several methods is counted once). They share the
    parameters, which each one's steps move: the instructions of an element-wise update do
    not depend on the values, and a copy per optimizer took longer than the counts."""
    from .costs import PARAMETER_SETS, StepBench, bare, jump_wrapper, named_method, ramp_parameter_set
    from .sampling import collector_off, prepare_timing

    prepare_timing()
    rows: list[list[str]] = []
    references: dict[tuple[str, str], str] = {}
    sets: dict[str, list[Any]] = {}

    def counted(label: str, bench: Any) -> str:
        bench.steps()
        bench.past_jumps()
        # a collection the allocations so far happen to trigger is not the update's work:
        # with the collector on, the MLP's counts moved up to 0.3% between two installs
        with collector_off(), requests.counted(label):
            bench.steps()
        return label

    for index, (parameters, method) in enumerate(points):
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
        work = StepBench.build(config, parameters, params=params)
        if not counted_on(parameters, config.optimizer,
                          jump_wrapper(work.optimizer) is not None):
            continue
        reference = bare(config)
        key = (parameters,
               repr((reference.optimizer, sorted(reference.hyperparameters.items()))))
        if key not in references:
            references[key] = counted(f"r{len(references)}",
                                      StepBench.build(reference, parameters, params=params))
        rows.append([parameters, method, counted(f"w{index}", work), references[key]])
    return {"labels": rows}


def main(argv: Sequence[str] | None = None) -> int:
    """The counting child (see the module), given ``PARAMETERS:METHOD...``: prints its
    report as one line of JSON."""
    parser = argparse.ArgumentParser(prog="benchmarks.instructions")
    parser.add_argument("points", nargs="+", metavar="PARAMETERS:METHOD")
    arguments = parser.parse_args(argv)
    points = []
    for point in arguments.points:
        parameters, _, method = point.partition(":")
        if not parameters or not method:
            parser.error(f"{point!r}: expected PARAMETERS:METHOD")
        points.append((parameters, method))
    requests = ClientRequests()
    if not requests.on_valgrind():
        print("benchmarks.instructions counts only under valgrind --tool=callgrind",
              file=sys.stderr)
        return 2
    print(json.dumps(_count_in_this_process(points, requests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
