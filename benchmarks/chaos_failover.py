"""Failover under repeated leader kills on a local Ray.

Kills the leader's consensus actor ``--kills`` times (default 25) in one
run on a ``--nodes`` cluster, waiting after each kill until every node is
back and the replicas agree. For each kill it measures, from the kill:

* ``time_to_leader``: a leader of a later term is reported;
* ``time_to_commit``: that leader committed past the last index committed
  before the kill (its first entry, the no-op of its term);
* ``time_to_first_write``: a client write issued right after the kill is
  acknowledged (the client finds the new leader itself).

    python benchmarks/chaos_failover.py --nodes 5 --kills 25 [--out results.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import ray

from cluster_actors.chaos import ChaosMonkey
from cluster_actors.chaos.checker import percentiles, wait_for_convergence
from cluster_actors.cluster import Cluster


def measure(nodes: int, kills: int, name: str) -> dict[str, list[float]]:
    cluster = Cluster.start(name, nodes=nodes, options={"supervisor_intensity": 1000},
                            fresh=True)
    times: dict[str, list[float]] = {"time_to_leader": [], "time_to_commit": [],
                                     "time_to_first_write": []}
    try:
        monkey = ChaosMonkey(cluster, seed=0)
        for round_ in range(kills):
            converged, _ = wait_for_convergence(monkey.probe, timeout=60.0)
            if not converged:
                raise SystemExit(f"the cluster did not settle before kill {round_ + 1}")
            cluster.kv.put("failover", round_)
            event = monkey.kill_leader()
            killed_at = time.monotonic()
            cluster.kv.put("failover", -round_, timeout=30.0)
            times["time_to_first_write"].append(time.monotonic() - killed_at)
            deadline = time.monotonic() + 30.0
            while "time_to_commit" not in event.details and time.monotonic() < deadline:
                time.sleep(0.01)
            for key in ("time_to_leader", "time_to_commit"):
                if key in event.details:
                    times[key].append(event.details[key])
            print(f"kill {round_ + 1:2d}: {event.details.get('old_leader')} -> "
                  f"{event.details.get('new_leader')}, leader "
                  f"{event.details.get('time_to_leader', float('nan')) * 1000:.0f} ms, commit "
                  f"{event.details.get('time_to_commit', float('nan')) * 1000:.0f} ms, "
                  f"client write {times['time_to_first_write'][-1] * 1000:.0f} ms", flush=True)
        monkey.close()
    finally:
        cluster.shutdown()
    return times


def table(times: dict[str, list[float]], nodes: int) -> str:
    lines = [f"Failover after leader kills, {nodes} nodes, local Ray on "
             f"{platform.machine()} ({platform.python_version()})", "",
             "| measure | kills | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for name, values in times.items():
        stats = percentiles(values)
        if stats["n"]:
            lines.append(f"| {name} | {stats['n']} | {stats['p50'] * 1000:.0f} | "
                         f"{stats['p99'] * 1000:.0f} | {stats['max'] * 1000:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--name", default="failover-bench")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        times = measure(args.nodes, args.kills, args.name)
    finally:
        ray.shutdown()
    text = table(times, args.nodes)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
