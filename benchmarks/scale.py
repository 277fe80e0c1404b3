"""A 50-node cluster on this machine: forming, heartbeat monitoring, re-election, memory.

    python benchmarks/scale.py [--nodes 50] [--monitor-seconds 60] [--json out.json]

With ``placement="per_node"`` (one Ray actor per logical node instead of six)
and timings for a large cluster (a 50 ms Raft tick, 500 ms leader heartbeats,
elections after 3-6 s of silence, failure-detector heartbeats every 3 s
to k = 9 monitors):

1. form the cluster: time until every host answered (the supervisor starts
   them in order), until a leader is elected, and until every node follows it
   ("all members up");
2. keep the failure detectors running for ``--monitor-seconds`` and read phi
   per watched peer on every node at the end (max, and how many peers any
   node suspects);
3. kill the leader's host and time the re-election (a survivor's view);
4. report the resident memory of each node's process (RSS and USS, psutil).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil
import ray
from runtime import report

from cluster_actors import Cluster, ClusterOptions
from cluster_actors.runtime.hosting import actor_of, find_component

#: Timings for 50 nodes on 2 cores. A Ray call costs the receiving process
#: about 1 ms of CPU, so the calls a follower handles per second set its idle
#: CPU: Raft heartbeats and their acks (2 x 1000/raft_heartbeat_ms), and the
#: failure detector's (2 x k x 1000/heartbeat_interval). Every node's other
#: periodic work (coordinator health round, membership gossip, monitor
#: sample) runs once per heartbeat_interval and is local to its host.
LARGE = {"placement": "per_node", "tick_ms": 50, "raft_heartbeat_ms": 500,
         "election_timeout": 3000, "heartbeat_interval": 3000,
         "acceptable_heartbeat_pause": 10_000, "sync_interval": 30_000}
HANG_GUARD = 600.0


def _wait(condition: Any, timeout: float = HANG_GUARD, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"not reached within {timeout} s")


def _pid(cluster: Cluster, node: str) -> int:
    host = actor_of(find_component(cluster.name, node, "consensus"))
    return int(ray.get(host.__ray_call__.remote(lambda actor: os.getpid()), timeout=60))


def _memory(pids: list[int]) -> dict[str, float]:
    rss, uss = [], []
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        rss.append(info.rss / 2**20)
        uss.append(info.uss / 2**20)
    return {"rss_mb_median": statistics.median(rss), "rss_mb_max": max(rss),
            "uss_mb_median": statistics.median(uss), "uss_mb_total": sum(uss)}


def _phi(cluster: Cluster) -> dict[str, Any]:
    statuses = cluster._gather("heartbeat", "get_heartbeat_status", timeout=30.0)
    values = [float(info.get("phi") or 0.0) for status in statuses.values()
              for info in status["peers"].values() if info.get("watched")]
    suspected = sum(1 for status in statuses.values() for info in status["peers"].values()
                    if info.get("watched") and info.get("band") != "healthy")
    monitors = [len(status["monitors"]) for status in statuses.values()]
    return {"nodes_answering": len(statuses), "watched_pairs": len(values),
            "phi_max": max(values, default=0.0), "phi_median": statistics.median(values or [0]),
            "not_healthy_pairs": suspected, "monitors_per_node": statistics.median(monitors)}


def measure(nodes: int = 50, monitor_seconds: float = 60.0, log: Any = print,
            during: Callable[[Cluster], Any] | None = None) -> dict[str, Any]:
    """Run the sequence above on a fresh cluster; plain JSON-able figures.
    ``during(cluster)``, if given, runs after the monitoring window and before
    the leader is killed; its result is kept under ``during``."""
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    name = f"scale-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    cluster = Cluster.start(name, nodes=nodes, options=ClusterOptions(**LARGE), wait=False)
    result: dict[str, Any] = {"nodes": nodes, "options": LARGE,
                              "hosts_up_s": time.monotonic() - started}
    try:
        log(f"{nodes} hosts up after {result['hosts_up_s']:.1f} s")
        leader = cluster.wait_for_leader(timeout=HANG_GUARD)
        result["leader_s"] = time.monotonic() - started
        _wait(lambda: (s := cluster.status()) and all(n.leader == leader for n in s.nodes),
              interval=2.0)  # a status round asks every node: not too often
        result["all_up_s"] = time.monotonic() - started
        log(f"leader {leader}; every node follows it after {result['all_up_s']:.1f} s")
        pids = [_pid(cluster, n) for n in cluster.node_ids]
        time.sleep(monitor_seconds)
        result["monitoring"] = {"seconds": monitor_seconds, **_phi(cluster)}
        result["memory"] = _memory(pids)
        result["load_avg_1m"] = os.getloadavg()[0]
        log(f"after {monitor_seconds:g} s of heartbeats: {result['monitoring']}")
        if during is not None:
            result["during"] = during(cluster)
            leader = cluster.wait_for_leader(timeout=HANG_GUARD)
        killed_at = time.monotonic()
        cluster.chaos.kill(leader, component="consensus")  # the leader's host
        survivor = next(n for n in cluster.node_ids if n != leader)
        consensus = cluster.node(survivor).consensus
        new_leader = _wait(lambda: (lead := consensus.get_leader()) not in (None, leader)
                           and lead, interval=0.02)
        result["reelection_ms"] = (time.monotonic() - killed_at) * 1000
        result["new_leader"] = new_leader
        log(f"leader {leader} killed: {new_leader} leads after {result['reelection_ms']:.0f} ms")
    finally:
        stopping = time.monotonic()
        cluster.shutdown()
        result["shutdown_s"] = time.monotonic() - stopping
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--monitor-seconds", type=float, default=60.0)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    report(measure(args.nodes, args.monitor_seconds), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
