"""``plp-bench claims``: each paper's headline claim re-measured on paired seeds through the
normal sweep, with the paper's number, ours with its 95% interval, and a verdict
(:mod:`plp_bench.claims.registry`, :mod:`plp_bench.claims.measurement`, :mod:`plp_bench.claims.verdicts`)."""

from __future__ import annotations

import argparse
import time

from ..core.config import MAX_SEEDS, MAX_STEPS
from .common import RAY_FLAGS, Streams, add_ray_flags

DEFAULT_MAX_SEEDS = 20


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("claims", help="the papers' headline claims re-measured, each "
                            "with a verdict from paired seeds")
    parser.add_argument("--size", choices=["ci", "full"], default="ci",
                        help="ci (default: the CPU-affordable subset, about 12 minutes on 2 "
                        "cores) or full (the papers' budgets; CIFAR needs --device cuda)")
    parser.add_argument("--claim", action="append", metavar="NAME",
                        help="a claim to measure (repeatable); default: every claim")
    parser.add_argument("--max-seeds", type=int, default=DEFAULT_MAX_SEEDS, metavar="N",
                        help="pairs of seeds at most before an undecided claim is reported "
                        f"'not confirmed', 3 to {MAX_SEEDS} (default {DEFAULT_MAX_SEEDS})")
    parser.add_argument("--step-cap", type=int, metavar="N",
                        help=f"cut every run to at most N steps, 1 to {MAX_STEPS} (a quick look; "
                        "rows are marked 'capped')")
    parser.add_argument("--registry", metavar="FILE",
                        help="a claims YAML file (default: the shipped registry)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="where the run records and claims.json go (default results; "
                        "records already there are reused)")
    parser.add_argument("--data-dir", metavar="DIR", help="data root (default "
                        "$PLP_BENCH_DATA, else ~/.cache/plp-bench)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    parser.add_argument("--details", action="store_true",
                        help="also print each claim's protocol and the assumptions made where "
                        "its paper is silent")
    add_ray_flags(parser)
    parser.set_defaults(handle=handle)


def _chosen(claims: list, names: list[str] | None) -> list:
    from ..core.config import ConfigError, closest

    if not names:
        return claims
    known = [c.name for c in claims]
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown claim {name!r}{closest(name, known)}",
                              path=("--claim",))
    return [c for c in claims if c.name in names]


def handle(args: argparse.Namespace, streams: Streams) -> int:
    from pathlib import Path

    import torch

    from ..claims.registry import load_claims, plan_claim
    from ..claims.report import CLAIMS_FILE, counts, crossover_lines, to_json, verdict_table
    from ..claims.verdicts import MIN_PAIRS
    from ..core.config import ConfigError, parse
    from ..core.execution_settings import ExecutionSettings
    from ..core.record import write_json_atomic
    from ..core.tables import to_rich
    from ..runs.device import check_settings_on_device
    from ..sweeps.config_file import RunConfig, ray_settings
    from ..sweeps.grid import SequentialExecutor

    if args.max_seeds < MIN_PAIRS:
        raise ConfigError(f"{args.max_seeds} is below the minimum {MIN_PAIRS} (a verdict needs "
                          f"{MIN_PAIRS} pairs of seeds)", path=("--max-seeds",))
    if args.max_seeds > MAX_SEEDS:
        raise ConfigError(f"{args.max_seeds} is above the maximum {MAX_SEEDS}",
                          path=("--max-seeds",))
    if args.step_cap is not None and args.step_cap < 1:
        raise ConfigError(f"{args.step_cap} is below the minimum 1", path=("--step-cap",))
    if args.step_cap is not None and args.step_cap > MAX_STEPS:
        raise ConfigError(f"{args.step_cap} is above the maximum {MAX_STEPS}",
                          path=("--step-cap",))
    claims = _chosen(load_claims(args.registry), args.claim)
    config = parse(RunConfig, {"device": args.device, "results": args.results, **{
        key: getattr(args, key) for key in RAY_FLAGS if getattr(args, key) is not None}})
    ray = ray_settings(config, None)
    if ray is None:
        executor = SequentialExecutor()
    else:
        from ..sweeps.ray import RayExecutor

        executor = RayExecutor(ray)
    device = executor.device_for_runs(config.device)
    check_settings_on_device(ExecutionSettings(), torch.device(device))
    planned = [p for claim in claims for p in plan_claim(
        claim, args.size, device=device, data_root=args.data_dir, step_cap=args.step_cap)]
    if ray is not None:
        executor.start(device)
        streams.err.print(executor.describe(), highlight=False, markup=False)
    try:
        started = time.perf_counter()
        measured = _measure(planned, args, executor, device, streams)
        if measured is None:
            return 143 if getattr(args, "_terminated", False) else 130
    finally:
        if ray is not None:
            executor.close()
    report = to_json(measured, claims, size=args.size, max_seeds=args.max_seeds,
                     step_cap=args.step_cap, seconds=time.perf_counter() - started)
    write_json_atomic(Path(args.results) / CLAIMS_FILE, report)
    if args.json:
        write_json_atomic(Path(args.json), report)
    out = streams.out
    out.print(to_rich(verdict_table(report)))
    for line in crossover_lines(report):
        out.print(line, highlight=False, markup=False)
    if args.details:
        for claim in report["claims"]:
            out.print(f"\n{claim['name']}: {claim['claim']} ({claim['paper']})\n  protocol: "
                      f"{claim['settings']}", highlight=False, markup=False)
            for check in claim["checks"]:
                out.print(f"  check: {check}", highlight=False, markup=False)
            for assumption in claim["assumptions"]:
                out.print(f"  assumed: {assumption}", highlight=False, markup=False)
    tally = ", ".join(f"{n} {verdict}" for verdict, n in counts(report).items())
    out.print(f"{tally}. {measured.trained} runs trained, {measured.reused} read from "
              f"{args.results}; {report['seconds']:.0f} s. The HTML page: plp-bench report "
              f"{args.results} --html", highlight=False, markup=False)
    return 1 if any(o.error for o in measured.outcomes) else 0


def _measure(planned, args, executor, device: str, streams: Streams):
    """The measurement rounds with their progress bars; ``None`` after Ctrl-C or SIGTERM (every
    finished record is kept, and the same command resumes)."""
    from rich.markup import escape

    from ..claims.measurement import measure
    from ..sweeps.progress import RichSweepProgress
    from .run import sigterm_interrupts

    with RichSweepProgress(streams.err) as observer, sigterm_interrupts() as stopped:
        observer.label = f"claims ({args.size})"

        def on_round(outcomes) -> None:
            open_ = sum(o.open for o in outcomes)
            observer.label = f"claims ({args.size}): {open_} undecided"

        try:
            return measure(planned, max_seeds=args.max_seeds, device=device,
                           results=args.results, data_root=args.data_dir, executor=executor,
                           observer=observer, on_round=on_round)
        except KeyboardInterrupt:
            observer.bars.stop()
            args._terminated = bool(stopped)
            streams.err.print(f"[yellow]{'terminated' if stopped else 'interrupted'}[/]: every "
                              f"finished run is saved under {escape(args.results)}; run the "
                              "same command again to resume.", highlight=False)
            return None
