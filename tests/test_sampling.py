"""The suites' load-robust timing (benchmarks.sampling) on a fake clock: what each sample is
made of, not how fast anything runs."""

from __future__ import annotations

import gc
import os
import re
import sys
from pathlib import Path

import pytest

from benchmarks import common, rounds, sampling


class SteppedClock:
    """The thread's CPU clock that moves only when a timed call says how long it took; the
    wall clock is never read on the CPU."""

    def __init__(self):
        self.now = 0.0

    def thread_time(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        raise AssertionError("a CPU timing read the wall clock")


def test_each_sample_is_a_ratio_of_median_calls_in_alternation(monkeypatch):
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    order, calls = [], {"work": 0}

    def work():
        calls["work"] += 1
        order.append("w")
        # every third call is preempted by a neighbour: 25x its cost
        clock.now += 0.050 if calls["work"] % 3 == 0 else 0.002

    def reference():
        order.append("r")
        clock.now += 0.001

    made = []

    def fresh_pair():
        made.append(len(order))
        return work, reference

    ratios = sampling.interleaved_ratios(fresh_pair, samples=5, calls=7)
    assert ratios == [pytest.approx(2.0)] * 5
    # each sample: a fresh pair, its discarded probing pair, then 7 pairs in alternation
    assert order == ["w", "r"] * 40 and made == [0, 16, 32, 48, 64]


def test_a_long_work_is_timed_block_by_block_each_block_beside_a_reference_call(monkeypatch):
    """Three blocks of 4, 6 and 10 ms alternate with a 1 ms reference call; a load spell that
    makes one block and the reference call after it 20x slower moves neither median."""
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    order, made = [], []
    spell = {"left": 0}

    def block(name, cost):
        def call():
            order.append(name)
            slow = 20 if spell["left"] > 0 else 1
            spell["left"] = max(0, spell["left"] - 1)
            clock.now += cost * slow
        return call

    def fresh_blocks():
        made.append(len(order))
        if len(made) == 2:
            spell["left"] = 4  # the second sample's warm-up pair and its first alternation
        return [block("a", 0.004), block("b", 0.006), block("c", 0.010)], block("r", 0.001)

    ratios = sampling.blockwise_ratios(fresh_blocks, samples=3, budget=3 * 0.023 * 5)
    assert ratios == [pytest.approx(20.0)] * 3
    # each sample: a discarded reference call and first block, then five passes (the budget
    # fits five passes of 23 ms per sample), every block followed by a reference call
    one_sample = ["r", "a"] + ["a", "r", "b", "r", "c", "r"] * 5
    assert order == one_sample * 3 and made == [0, 32, 64]


def test_each_block_is_measured_in_units_of_the_reference_call_beside_it(monkeypatch):
    """One pass a sample (a ResNet18 jump): a spell that makes the second block and the
    reference call after it 3x slower leaves the sample at its quiet value, 4 + 6 + 10 ms in
    1 ms reference calls; over the median of all reference calls it would read 32."""
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    calls = []

    def call(name, cost):
        def timed():
            calls.append(name)
            # the spell: the second block's timed call and the reference call after it
            slow = 3 if calls[-2:] in (["r", "b"], ["b", "r"]) and len(calls) > 3 else 1
            clock.now += cost * slow
        return timed

    ratios = sampling.blockwise_ratios(
        lambda: ([call("a", 0.004), call("b", 0.006), call("c", 0.010)], call("r", 0.001)),
        samples=1, budget=1e-9, least=1)
    assert calls == ["r", "a", "a", "r", "b", "r", "c", "r"]
    assert ratios == [pytest.approx(20.0)]


def test_a_blockwise_sample_passes_at_least_least_times(monkeypatch):
    """Blocks far over the budget still get ``least`` passes (plus the discarded warm-up)."""
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    calls = []

    def slow(name):
        def call():
            calls.append(name)
            clock.now += 10.0
        return call

    ratios = sampling.blockwise_ratios(lambda: ([slow("a"), slow("b")], slow("r")), samples=2,
                                       least=2, budget=1.0)
    assert ratios == [pytest.approx(2.0)] * 2
    assert calls == (["r", "a"] + ["a", "r", "b", "r"] * 2) * 2


def test_the_collector_is_off_while_timing_and_restored_after():
    seen = []
    assert gc.isenabled()
    pair = (lambda: seen.append(gc.isenabled()), lambda: None)
    sampling.interleaved_ratios(lambda: pair, samples=2, calls=2)
    assert seen == [False] * 6 and gc.isenabled()


def test_sampled_values_are_what_asv_stores_as_a_timing():
    from asv_runner.statistics import compute_stats

    value = sampling.sampled([1.0, 3.0, 2.0])
    assert value == {"samples": [1.0, 3.0, 2.0], "number": 1}
    median, stats = compute_stats(value["samples"], value["number"])
    assert median == 2.0 and stats["repeat"] == 3
    assert sampling.sample_values(value) == [1.0, 3.0, 2.0]
    assert sampling.sample_values(4.0) == [4.0]
    with pytest.raises(ValueError):
        sampling.sampled([])


def test_timings_are_kept_within_one_asv_run_and_measured_again_by_the_next(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PLP_BENCH_ASV_RUNS", str(tmp_path))
    monkeypatch.setenv("PLP_BENCH_COMMIT", "a" * 40)
    measured = []

    def measure():
        measured.append(1)
        return [float(len(measured))]

    token = common.measurement_token()
    assert token == common.measurement_token() and token.startswith(f"{os.getppid()}-")
    assert common.memo_per_run("cost", measure) == [1.0]
    assert common.memo_per_run("cost", measure) == [1.0]  # the same run: kept
    monkeypatch.setattr(common, "measurement_token", lambda: "another-run")
    assert common.memo_per_run("cost", measure) == [2.0]  # the next run: measured again


def test_calls_per_side_fit_the_budget_within_bounds(monkeypatch):
    assert sampling.calls_within(3.0, 12, 0.0002) == sampling.MAX_CALLS  # an MLP's steps
    assert sampling.calls_within(3.0, 12, 0.1) == sampling.MIN_CALLS  # a ResNet18's
    assert sampling.calls_within(3.0, 12, 0.04) == 6  # 3 / (12 * 0.04) = 6.25
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    count = {"work": 0}

    def work():
        count["work"] += 1
        clock.now += 0.05

    def reference():
        clock.now += 0.01

    sampling.interleaved_ratios(lambda: (work, reference), samples=12)
    calls = sampling.calls_within(sampling.BUDGET_SECONDS, 12, 0.06)
    assert count["work"] == 12 * (1 + calls)


def test_absolute_times_are_lower_quartiles_of_fresh_copies_called_in_turn(monkeypatch):
    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)
    copies, order = [], []

    def fresh_work():
        copy = {"index": len(copies), "calls": 0}
        copies.append(copy)

        def work():
            copy["calls"] += 1
            order.append(copy["index"])
            # copy i costs (i + 1) ms; the first call on a copy pays its page faults, and a
            # slow spell of the host doubles every call of rounds 2 and 3
            cost = 0.001 * (copy["index"] + 1)
            if copy["calls"] == 1:
                cost *= 10
            elif copy["calls"] in (3, 4):
                cost *= 2
            clock.now += cost

        return work

    # the probe (a first call: 10 ms for copy 0) fits 8 rounds in the budget
    values = sampling.call_seconds(fresh_work, samples=3, budget=3 * 8 * 0.010, max_calls=8)
    assert values == [pytest.approx(0.001), pytest.approx(0.002), pytest.approx(0.003)]
    assert [c["calls"] for c in copies] == [9, 9, 9]  # a discarded call, then 8 rounds
    assert order[3:9] == [0, 1, 2, 0, 1, 2]  # in turn


def test_a_fresh_copy_of_a_bench_steps_as_the_original_on_its_own_memory():
    import torch

    from benchmarks.costs import StepBench
    from plp_bench.methods import get_method

    for batch_size in (None, 8):
        bench = StepBench.build(get_method("plp-adam"), "mlp", batch_size=batch_size)
        bench.steps()
        before = [p.detach().clone() for p in bench.params]
        copy = bench.fresh_copy()
        assert not {p.data_ptr() for p in copy.params} & {p.data_ptr() for p in bench.params}
        copy.steps(6)
        assert all(torch.equal(b, p) for b, p in zip(before, bench.params, strict=True))
        bench.steps(6)
        assert all(torch.equal(a, b) for a, b in zip(copy.params, bench.params, strict=True))
        assert not all(torch.equal(a, b) for a, b in zip(before, copy.params, strict=True))


def test_a_jump_method_is_timed_past_its_jumps():
    from benchmarks.costs import JUMP_HORIZON, StepBench, jump_wrapper
    from plp_baselines.introspection.jumps import WeightJumps
    from plp_bench.methods import get_method

    bench = StepBench.build(get_method("jump-linear"), "mlp")
    bench.steps()
    bench.past_jumps()
    assert bench.step_count == 51  # jumps at 30, 40 and 50
    jumps = jump_wrapper(bench.optimizer)
    assert isinstance(jumps, WeightJumps)
    assert [record.step for record in jumps.jumps] == [30, 40, 50]
    assert JUMP_HORIZON >= 50
    plain = StepBench.build(get_method("plp"), "mlp")
    assert jump_wrapper(plain.optimizer) is None
    plain.past_jumps()
    assert plain.step_count == 0


def test_a_loops_cost_per_step_is_paired_turn_by_turn_with_the_reference(monkeypatch):
    import torch

    from benchmarks import loop

    clock = SteppedClock()
    monkeypatch.setattr(sampling, "time", clock)  # the loop reads sampling.clock_for()

    class Reference:
        """A reference loop whose step costs 2 ms in a quiet spell, 4 ms in a slow one, and
        1 ms more on the first step of a turn (a cold cache)."""

        def __init__(self):
            weight = torch.nn.Parameter(torch.ones(2))
            self.optimizer = torch.optim.SGD([weight], lr=0.1)
            self.weight, self.steps, self.slow = weight, 0, False

        def step(self):
            self.weight.grad = torch.ones(2)
            self.optimizer.step()  # its own step passes through the hook untimed
            cold = 0.001 if self.steps % 3 == 0 else 0.0
            clock.now += (0.004 if self.slow else 0.002) + cold
            self.steps += 1

    reference = Reference()
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    with loop.InterleavedSteps(reference, block=3) as steps:
        for step in range(12):
            # the harness's step: 2.2 ms, 4.4 ms in the slow spell (turns 2 and 3), 5 ms more
            # on a turn's first step (cold) and 0.5 s at step 7 (an evaluation)
            reference.slow = 3 <= step < 9
            weight.grad = torch.ones(2)
            optimizer.step()
            clock.now += (0.0044 if reference.slow else 0.0022) \
                + (0.005 if step % 3 == 0 else 0.0) + (0.5 if step == 7 else 0.0)
    optimizer.step()  # the hook is gone once the block ends
    assert reference.steps == 12
    assert [len(tested) for tested, _ in steps.turns] == [2, 2, 2, 1]
    assert [len(referenced) for _, referenced in steps.turns] == [2, 2, 2, 2]
    # per turn: 1.1, 1.1, (4.4 and 504.4 ms over 4 ms), 1.1: a slow spell and a one-off cost
    # leave the median over turns at the loop's true overhead
    assert steps.ratio() == pytest.approx(1.1)
    few = loop.InterleavedSteps(Reference(), block=3)
    with pytest.raises(RuntimeError, match="0 turns were timed"):
        few.ratio()


# measured once per commit: exact values, and the wall seconds the records were trained in
MEASURED_ONCE = {
    "convergence.TargetTracks.track_runs_that_missed",
    "convergence.TargetTracks.track_steps_to_target",
    "convergence.TargetTracks.track_wall_seconds_to_target",
    "convergence.TestTracks.track_test_error",
    "convergence.TestTracks.track_test_top5_error",
    "ode.OdeVersusGradientDescent.track_gd_steps",
    "ode.OdeVersusGradientDescent.track_ode_rhs_calls",
    "step_cost.HeldMemory.track_extra_memory_ratio",
    "step_cost.HeldMemoryCuda.track_extra_memory_ratio",
    # instruction counts: the load does not move them
    "step_cost.UpdateInstructions.track_update_instruction_ratio",
    "step_cost.TrainingStepInstructions.track_training_step_instruction_ratio",
    "jumps.JumpInstructions.track_jump_cost_in_instruction_steps",
    "ode.OdeInstructions.track_ode_instructions",
    "ode.OdeInstructions.track_gd_instructions",
    "ode.OdeInstructions.track_ode_over_gd_instructions",
    "throughput.TrainingThroughput.track_peak_memory",
}


def test_asv_measures_every_timing_in_rounds_and_every_exact_value_once():
    """What asv schedules from is the benchmark list its discovery writes (each benchmark's
    ``__dict__``): every timing carries ``rounds``, so it is measured in two processes,
    interleaved with the other commit's; a value measured once per commit is not repeated."""
    from asv_runner.discovery import disc_benchmarks

    suites = Path(__file__).resolve().parents[1] / "benchmarks"
    found = {b.name: b.__dict__.get("rounds", 1) for b in disc_benchmarks(str(suites))}
    assert set(found) >= MEASURED_ONCE and len(found) > len(MEASURED_ONCE) + 10
    wrong = {name: n for name, n in found.items()
             if n != (1 if name in MEASURED_ONCE else rounds.TIMING_ROUNDS)}
    assert not wrong
    assert rounds.honour_track_rounds()  # a second call changes nothing
    # what .ci/run's second round selects: asv matches a parameterised point as "name(...)"
    pattern = re.compile(rounds.timings_pattern(str(suites)))
    selected = {name for name in found if pattern.search(f"{name}('mlp', 'plp')")}
    assert selected == {name for name in found if name not in MEASURED_ONCE}



def test_cpu_timings_read_the_threads_cpu_clock_and_device_timings_the_wall_clock():
    import time

    assert sampling.clock_for() is time.thread_time
    assert sampling.clock_for("cpu") is time.thread_time
    assert sampling.clock_for("cuda") is time.perf_counter
    assert sampling.clock_for("cuda:1") is time.perf_counter


def test_the_packages_own_clock_reads_the_given_clock_only_inside_the_block():
    import time

    wall = time.perf_counter
    with sampling.package_clock_reads(lambda: 42.0):
        assert time.perf_counter() == 42.0
    assert time.perf_counter is wall
    with pytest.raises(ValueError), sampling.package_clock_reads(lambda: 0.0):
        raise ValueError("a failed measurement")
    assert time.perf_counter is wall


ROOT = Path(__file__).resolve().parents[1]


def _python(*lines: str, **environment: str) -> str:
    """What a fresh interpreter, with the suites importable, prints running ``lines``."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(environment)
    return subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True,
                          text=True, env=env, timeout=120, check=True).stdout.strip()


def test_blas_libraries_loaded_after_the_timing_setup_get_one_thread():
    """SciPy's OpenBLAS loads on first use of scipy.linalg, after the setup: it must come up
    with one thread (a second one spin-waits on a busy core). Without the setup it has one a
    core, which is what makes the test able to fail on a machine of several cores."""
    use_scipy = ("import numpy, scipy.linalg", "scipy.linalg.lu_factor(numpy.eye(4))",
                 "from threadpoolctl import threadpool_info",
                 "print(max(i['num_threads'] for i in threadpool_info()))")
    assert _python("from benchmarks.sampling import prepare_timing", "prepare_timing()",
                   *use_scipy) == "1"
    assert _python(*use_scipy) == str(min(os.cpu_count() or 1, 64))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_stay_in_the_heap_once_the_timing_setup_ran():
    """Calls that make and free eight 8 MiB temporaries (an update over a few large layers):
    once the heap has grown, ten further calls fault in under 5% of the pages of their
    temporaries (10 x 8 x 2,048 afresh; the heap may still grow by a block once)."""
    out = _python(
        "import resource, torch",
        "from benchmarks.sampling import retain_freed_memory",
        "kept = retain_freed_memory()",
        "faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt",
        "call = lambda: [torch.ones(2 ** 21) for _ in range(8)]",
        "call(); call()",
        "before = faults()",
        "for _ in range(10):",
        "    call()",
        "print(kept, faults() - before)")
    kept, faults = out.split()
    assert kept == "True"
    assert int(faults) < 10 * 8 * 2048 / 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("setup", [True, False])
def test_blocks_over_32_mib_stay_in_the_heap_too(setup):
    """A weight jump's block on ResNet18: a (2**18, 48) hidden layer of 48 MiB, made and freed
    in every call, which glibc maps on its own (and unmaps when freed) above 32 MiB whatever
    its mmap threshold. Ten calls after two: without the setup every call faults the block in
    afresh; with it most calls reuse the heap's pages (the heap's small allocations around the
    block may still make it grow by a block now and then: 0 to 4 growths seen)."""
    out = _python(
        "import resource, torch",
        "from benchmarks.sampling import retain_freed_memory",
        *(["retain_freed_memory()"] if setup else []),
        "faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt",
        "h, w1, b1 = torch.randn(2 ** 18, 4), torch.randn(4, 48), torch.randn(48)",
        "call = lambda: torch.addmm(b1, h, w1).relu_().sum()",
        "call(); call()",
        "before = faults()",
        "for _ in range(10):",
        "    call()",
        "print(faults() - before)")
    block_pages = 48 * 256
    if setup:
        assert int(out) < 10 * block_pages / 2
    else:
        assert int(out) >= 10 * block_pages * 0.9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_between_samples_the_free_pages_go_back_so_the_next_copy_lands_on_new_ones():
    out = _python(
        "import resource, torch",
        "from benchmarks.sampling import release_freed_memory, retain_freed_memory",
        "retain_freed_memory()",
        "faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt",
        "call = lambda: [torch.ones(2 ** 21) for _ in range(8)]",
        "call(); call()",
        "before = faults(); call(); kept = faults() - before",
        "released = release_freed_memory()",
        "before = faults(); call(); fresh = faults() - before",
        "print(released, kept, fresh)")
    released, kept, fresh = out.split()
    assert released == "True"
    # kept: at most a block of growth; released: every page of the call's temporaries afresh
    assert int(kept) <= 2048 + 16 and int(fresh) >= 8 * 2048 * 0.9


def test_each_sample_releases_the_free_pages_after_its_copy_is_dropped(monkeypatch):
    events = []
    monkeypatch.setattr(sampling, "release_freed_memory", lambda: events.append("release"))

    def fresh_pair():
        events.append("copy")
        return (lambda: None), (lambda: None)

    sampling.interleaved_ratios(fresh_pair, samples=3, calls=1)
    assert events == ["copy", "release"] * 3


def test_gradient_descents_seconds_to_a_threshold_are_its_steps_times_its_cost_per_step():
    """The descent stops at its last threshold (all reached) or runs the budget."""
    from types import SimpleNamespace as Row

    from benchmarks import ode

    rows = [Row(gd_steps=30), Row(gd_steps=400), Row(gd_steps=1000)]
    result = Row(rows=rows, gd_seconds_total=2.0, max_steps=5000)
    assert [ode._descent_seconds(result, r) for r in rows] == [
        pytest.approx(0.06), pytest.approx(0.8), pytest.approx(2.0)]
    missed = Row(rows=[Row(gd_steps=30), Row(gd_steps=None)], gd_seconds_total=2.0,
                 max_steps=5000)
    assert ode._descent_seconds(missed, missed.rows[0]) == pytest.approx(30 * 2.0 / 5000)
    assert ode._descent_seconds(missed, missed.rows[1]) is None


def test_a_jumps_groups_predict_every_weight_once_as_the_whole_jump_does(monkeypatch):
    """The jump cost times the jump in groups of whole chunks: together they are the jump."""
    import torch

    from benchmarks import costs, jumps

    found = costs.jump_wrapper

    def small_chunks(optimizer):
        wrapper = found(optimizer)
        wrapper.chunk_size = 1000
        return wrapper

    monkeypatch.setattr(costs, "jump_wrapper", small_chunks)
    bench = jumps.JumpCost()
    bench.setup("mlp", "introspection")
    groups = [group() for group in bench.fresh_blocks()]
    assert 1 < len(groups) <= costs.GROUPS and bench.groups == len(groups)
    assert torch.equal(torch.cat(groups), bench.fresh_jump()())


def test_sgds_step_is_the_unit_of_time_to_target_and_is_not_timed(monkeypatch):
    """SGD against the workload's SGD is 1 by definition; any other method is measured."""
    from benchmarks import convergence

    measured = []
    monkeypatch.setattr(convergence, "memo_per_run",
                        lambda key, measure: measured.append(key) or [1.25, 1.5])
    assert convergence.step_cost_in_sgd_steps("banknote-mlp", "sgd") == [1.0]
    assert measured == []
    assert convergence.step_cost_in_sgd_steps("banknote-mlp", "plp") == [1.25, 1.5]
    assert measured == ["step-cost-banknote-mlp-plp"]


def test_importing_the_suites_loads_what_a_benchmark_process_would_import_first():
    """asv's forkserver imports the suites once and forks a process per point: what torch
    and the harness import lazily (torch's first optimizer, the offline datasets' readers)
    must already be loaded then, and out of the collector's sight, or every point's process
    pays seconds importing it again and copying pages in its first full collection."""
    printed = _python(
        "import gc, sys",
        "import asv_runner.server",  # what asv's forkserver runs in
        "before = gc.get_freeze_count()",
        "import benchmarks.common as common",
        "print(all(m in sys.modules for m in common.LAZY_IMPORTS), gc.get_freeze_count() > before)",
        "import torch",
        "known = set(sys.modules)",
        "torch.optim.SGD([torch.zeros(1, requires_grad=True)])",
        "print(sorted(m for m in set(sys.modules) - known if m.startswith('torch._dynamo')))")
    assert printed.splitlines() == ["True True", "[]"]


def test_elsewhere_importing_the_suites_leaves_the_lazy_imports_to_first_use():
    """Anywhere but a forkserver (the instruction counts' children import the suites under
    Valgrind, where the imports cost minutes) nothing more is loaded and nothing frozen."""
    printed = _python(
        "import gc, sys",
        "import benchmarks.common as common",
        "print([m for m in common.LAZY_IMPORTS if m in sys.modules], gc.get_freeze_count())")
    assert printed == "[] 0"
