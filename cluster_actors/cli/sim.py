"""Command line for long simulator sweeps, with a progress bar and a summary::

    python -m cluster_actors.testing.sim --nodes 5 --seeds 100000 --steps 2000

Seeds run in parallel worker processes (``--jobs``); every failing seed is
printed with the command that replays it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from ..testing.sim import BUGS, FAULT_KINDS, run_seed


@dataclass(slots=True)
class SeedSummary:
    seed: int
    ok: bool
    violation: str
    committed: int
    leaders: int
    crashes: int
    partitions: int
    reconfigurations: int
    operations: int
    messages: int
    recover_ticks: int


def _run(args: tuple[int, int, int, tuple[str, ...], str | None]) -> SeedSummary:
    seed, nodes, steps, faults, bug = args
    result = run_seed(seed, nodes=nodes, steps=steps, faults=faults, bug=bug)
    return SeedSummary(seed, result.ok, str(result.violation or ""), result.committed,
                       result.leaders, result.crashes, result.partitions,
                       result.reconfigurations, len(result.operations), result.messages,
                       result.ticks_to_recover)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cluster_actors.testing.sim",
        description="Run seeded whole-cluster Raft simulations with faults and check every "
                    "safety invariant at every step, then liveness after healing.")
    parser.add_argument("--nodes", type=int, default=5, help="nodes per cluster (default 5)")
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds (default 1000)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--steps", type=int, default=1000, help="ticks of faults per seed")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS),
                        help=f"comma-separated fault kinds from {', '.join(FAULT_KINDS)}")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all cores)")
    parser.add_argument("--bug", default=None, choices=BUGS,
                        help="run a deliberately broken variant (the checks must catch it)")
    args = parser.parse_args(argv)
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = sorted(set(faults) - set(FAULT_KINDS))
    if unknown:
        parser.error(f"unknown fault kinds {unknown}; choose from {', '.join(FAULT_KINDS)}")
    if args.nodes < 1 or args.seeds < 1 or args.steps < 1:
        parser.error("--nodes, --seeds and --steps must be positive")
    args.faults = faults
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    work = [(seed, args.nodes, args.steps, args.faults, args.bug)
            for seed in range(args.first_seed, args.first_seed + args.seeds)]
    results: list[SeedSummary] = []
    started = time.perf_counter()
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("simulating", total=len(work))
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for summary in pool.map(_run, work, chunksize=8):
                results.append(summary)
                progress.advance(task)
                if not summary.ok:
                    progress.console.print(f"[red]seed {summary.seed}: {summary.violation}")
    elapsed = time.perf_counter() - started
    failures = [r for r in results if not r.ok]
    recover = sorted(r.recover_ticks for r in results if r.ok)
    table = Table(title=f"{len(results)} seeds x {args.steps} steps, {args.nodes} nodes, "
                        f"faults: {','.join(args.faults)}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("violations", str(len(failures)))
    table.add_row("wall time", f"{elapsed:.1f} s")
    table.add_row("steps per second", f"{len(results) * args.steps / elapsed:,.0f}")
    table.add_row("entries committed (sum)", f"{sum(r.committed for r in results):,}")
    table.add_row("client operations (sum)", f"{sum(r.operations for r in results):,}")
    table.add_row("distinct leaders (sum)", f"{sum(r.leaders for r in results):,}")
    table.add_row("crashes / partitions / reconfigurations",
                  f"{sum(r.crashes for r in results):,} / {sum(r.partitions for r in results):,}"
                  f" / {sum(r.reconfigurations for r in results):,}")
    table.add_row("messages sent (sum)", f"{sum(r.messages for r in results):,}")
    if recover:
        table.add_row("ticks to converge after heal, p50 / p99 / max",
                      f"{statistics.median(recover):.0f} / "
                      f"{recover[int(0.99 * (len(recover) - 1))]} / {recover[-1]}")
    Console().print(table)
    for failure in failures[:20]:
        print(f"FAILED seed {failure.seed}: {failure.violation}\n  replay: python -m "
              f"cluster_actors.testing.sim --nodes {args.nodes} --steps {args.steps} "
              f"--faults {','.join(args.faults)} --first-seed {failure.seed} --seeds 1"
              + (f" --bug {args.bug}" if args.bug else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
