"""A chaos run from start to verdict, as a function and as a command.

:func:`run_chaos` drives one run on a running cluster: clients do register
operations through ``cluster.kv`` while a :class:`~.chaos.ChaosMonkey`
executes its seeded schedule and a sampler records every node's Raft
status; then everything is healed, the replicas converge, every key is read
once more, and :func:`~.checker.judge` checks the promises. The command::

    cluster-actors chaos --nodes 5 --duration 60 --faults kill,partition,pause --seed 7
    python -m cluster_actors.cli.chaos --nodes 5 --duration 600 --seed 7 --report run.json

starts a fresh cluster on a local Ray (or a multi-node Ray cluster on this
machine with ``--ray-nodes``), shows a progress bar, prints the summary (ops
by outcome, faults injected, failover times, checks, violations with the
seed, the fault timeline and the failing window) and exits 0 if no promise
was broken, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..chaos.checker import ChaosReport, judge, wait_for_convergence
from ..chaos.monkey import ChaosMonkey, expand_faults
from ..chaos.workload import RegisterWorkload, SetWorkload, StatusSampler
from ..errors import ClusterError


def run_chaos(cluster: Any, *, duration: float = 60.0, seed: int = 0,
              faults: Sequence[str] = ("kill", "partition", "pause"), interval: float = 5.0,
              clients: int = 8, keys: int = 8, op_timeout: float = 3.0,
              key_lifetime: float = 10.0, set_clients: int = 2, ray_cluster: Any = None,
              kv: Any = None,
              on_progress: Callable[[dict[str, Any]], None] | None = None,
              converge_timeout: float = 60.0, check_timeout: float = 120.0) -> ChaosReport:
    """One chaos run on ``cluster`` (see the module doc); returns its report.

    ``kv`` defaults to ``cluster.kv``. ``set_clients`` clients add to a
    set in the CRDT store meanwhile (when the nodes run a sync component;
    0: none). ``on_progress`` receives, about four times a second,
    ``{"phase", "elapsed", "duration", "ops", "faults", "last_fault"}``.
    """
    faults = list(faults)
    expand_faults(faults)
    monkey = ChaosMonkey(cluster, seed=seed, faults=faults, interval=interval,
                         ray_cluster=ray_cluster)
    workload = RegisterWorkload(kv if kv is not None else cluster.kv, clients=clients,
                                keys=keys, op_timeout=op_timeout, key_lifetime=key_lifetime,
                                seed=seed, clock=monkey.now)
    sampler = StatusSampler(cluster, clock=monkey.now)
    report = ChaosReport(seed, len(cluster.node_ids), duration, faults, interval)
    sets = None
    if set_clients and all(monkey.probe.actor(n, "sync") for n in cluster.node_ids):
        sets = SetWorkload(cluster, clients=set_clients, op_timeout=op_timeout, seed=seed,
                           clock=monkey.now)
    elif set_clients:
        report.notes.append("no CRDT set workload: the nodes run no sync component")

    def progress(phase: str) -> None:
        if on_progress is not None:
            on_progress({"phase": phase, "elapsed": monkey.now(), "duration": duration,
                         "ops": workload.history.by_outcome(), "faults": len(monkey.timeline),
                         "last_fault": str(monkey.timeline[-1]) if monkey.timeline else ""})

    try:
        sampler.start()
        workload.start()
        if sets is not None:
            sets.start()
        monkey.run(duration)
        while not monkey.wait(0.25):
            progress("faults")
        progress("draining")
    finally:
        workload.stop()
        if sets is not None:
            sets.stop()
        monkey.close()
    progress("converging")
    healed = time.monotonic()
    nodes = [n for n in cluster.node_ids if n not in monkey.removed]
    converged, _ = wait_for_convergence(monkey.probe, nodes, converge_timeout)
    if converged:
        report.converged_after = time.monotonic() - healed
    progress("final reads")
    workload.final_reads()
    final_sets = sets.final_reads(nodes) if sets is not None else None
    sampler.stop()
    progress("checking")
    judge(monkey.probe, workload.history.ops, monkey.timeline, sampler.samples, report,
          nodes=nodes, converged=converged, check_timeout=check_timeout,
          set_ops=sets.history.ops if sets is not None else (), final_sets=final_sets)
    report.notes += [f"fault not injected: {error}" for error in monkey.errors]
    if monkey.removed:
        report.notes.append(f"removed for good with their Ray node: "
                            f"{', '.join(sorted(monkey.removed))}")
    return report


# ------------------------------------------------------------------ command
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cluster-actors chaos",
        description="A seeded chaos run on a fresh local cluster: clients do read/write/cas "
                    "through the linearizable store while faults are injected; the history "
                    "and the replicas are checked after heal.")
    parser.add_argument("--nodes", type=int, default=5, help="logical nodes (default 5)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults")
    parser.add_argument("--faults", default="kill,partition,pause",
                        help="comma-separated fault families or actions: kill, partition, "
                             "pause, network, crash, remove_node, or single actions such as "
                             "kill_leader, isolate_leader, majority_minority")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--keys", type=int, default=8, help="registers at a time")
    parser.add_argument("--set-clients", type=int, default=2,
                        help="clients adding to a set in the CRDT store (0: none)")
    parser.add_argument("--key-lifetime", type=float, default=10.0,
                        help="seconds before the registers are replaced by fresh ones")
    parser.add_argument("--op-timeout", type=float, default=3.0,
                        help="seconds before an operation is recorded as indeterminate")
    parser.add_argument("--name", default=None, help="cluster name (default chaos-<seed>)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a ClusterOptions field (JSON value), e.g. snapshot_every=500")
    parser.add_argument("--ray-nodes", type=int, default=0,
                        help="run on a multi-node Ray cluster of this many nodes on this "
                             "machine (ray.cluster_utils), logical nodes spread over them")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
    parser.add_argument("--report", default=None, help="write the report as JSON here")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"supervisor_intensity": 1000}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--option takes KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def run_chaos_command(args: argparse.Namespace) -> int:
    """Start Ray and a cluster, run, print the summary; 0 if no violation."""
    import ray
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..cluster import Cluster

    console = Console()
    faults = [f for f in args.faults.split(",") if f.strip()]
    expand_faults(faults)
    ray_cluster = None
    ray_nodes = None
    if args.ray_nodes:
        from ray.cluster_utils import Cluster as RayCluster

        ray_cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(args.ray_nodes - 1):
            ray_cluster.add_node(num_cpus=1)
        ray_cluster.wait_for_nodes()
        ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)
        head = ray_cluster.head_node.node_id
        workers = [n.node_id for n in ray_cluster.list_all_nodes() if n.node_id != head]
        ray_nodes = [head, *workers]
    elif not ray.is_initialized():
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    name = args.name or f"chaos-{args.seed}"
    with console.status(f"starting {args.nodes} nodes"):
        # fresh: the checks judge this run's history alone, never a previous run's data
        cluster = Cluster.start(name, nodes=args.nodes, options=_options(args.option),
                                ray_nodes=ray_nodes, fresh=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=console, disable=not args.progress, transient=True) as bar:
            task = bar.add_task("chaos", total=args.duration)

            def on_progress(info: dict[str, Any]) -> None:
                ops = info["ops"]
                bar.update(task, completed=min(info["elapsed"], args.duration),
                           description=f"{info['phase']}: ops ok {ops['ok']} info "
                                       f"{ops['info']}, faults {info['faults']}")

            report = run_chaos(cluster, duration=args.duration, seed=args.seed, faults=faults,
                               interval=args.interval, clients=args.clients, keys=args.keys,
                               op_timeout=args.op_timeout, key_lifetime=args.key_lifetime,
                               set_clients=args.set_clients,
                               ray_cluster=ray_cluster, on_progress=on_progress)
    finally:
        cluster.shutdown()
        if ray_cluster is not None:
            ray.shutdown()
            ray_cluster.shutdown()
    console.print(report.summary(), markup=False, highlight=False)
    if args.report:
        with open(args.report, "w") as out:
            json.dump(report.to_dict(), out, indent=1, default=repr)
        console.print(f"report written to {args.report}")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 if the run broke no promise, 1 if it did, 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        return run_chaos_command(args)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
