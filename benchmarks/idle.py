"""What an idle cluster costs: CPU and resident memory of all its processes.

    python benchmarks/idle.py [--nodes 3] [--window 10] [--settle 5]

Starts a cluster in each placement (``per_component``: one Ray actor per
component, ``per_node``: one per logical node), lets it settle, then sums the
CPU time (user + system, psutil) every actor process of the cluster used over
a window with no client traffic: ``cpu_pct`` is percent of one core. RSS is
the sum over those processes (shared pages counted in each).
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

import psutil
import ray
from runtime import report

from cluster_actors.cluster import Cluster
from cluster_actors.runtime.naming import (
    COMPONENTS,
    actor_name,
    host_name,
    namespace,
    registry_name,
    root_supervisor_name,
)


def cluster_pids(cluster: Cluster) -> list[int]:
    """The process ids of every actor of ``cluster`` (any placement)."""
    ns = namespace(cluster.name)
    names = [root_supervisor_name(cluster.name), registry_name(cluster.name)]
    for node in cluster.node_ids:
        names += [actor_name(cluster.name, node, c) for c in (*COMPONENTS, "supervisor")]
        names.append(host_name(cluster.name, node))
    pids = set()
    for name in names:
        try:
            actor = ray.get_actor(name, namespace=ns)
        except ValueError:
            continue
        pids.add(int(ray.get(actor.__ray_call__.remote(lambda _actor: os.getpid()),
                             timeout=60)))
    return sorted(pids)


def measure_placement(placement: str, nodes: int = 3, window: float = 10.0,
                      settle: float = 5.0) -> dict[str, Any]:
    """Idle CPU (% of a core) and RSS (MB) of a fresh ``nodes``-node cluster."""
    cluster = Cluster.start(f"idle-{uuid.uuid4().hex[:6]}", nodes=nodes, fresh=True,
                            options={"placement": placement})
    try:
        cluster.wait_for_leader()
        time.sleep(settle)
        processes = [psutil.Process(pid) for pid in cluster_pids(cluster)]
        before = [p.cpu_times() for p in processes]
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        after = [p.cpu_times() for p in processes]
        cpu = sum((a.user + a.system) - (b.user + b.system)
                  for a, b in zip(after, before, strict=True))
        rss = sum(p.memory_info().rss for p in processes) / 2**20
        return {"placement": placement, "nodes": nodes, "processes": len(processes),
                "cpu_pct": 100 * cpu / elapsed, "rss_mb": rss, "window_s": elapsed,
                "load_avg_1m": os.getloadavg()[0]}
    finally:
        cluster.shutdown()


def measure(nodes: int = 3, window: float = 10.0, settle: float = 5.0) -> list[dict[str, Any]]:
    """Both placements, ``per_component`` (the default) first."""
    return [measure_placement(p, nodes, window, settle) for p in ("per_component", "per_node")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    report({"idle": measure(args.nodes, args.window, args.settle)}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
