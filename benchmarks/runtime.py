"""Figures of the Ray runtime, measured in one run on this machine.

    .venv/bin/python benchmarks/runtime.py [--nodes 3] [--kills 20] [--writes 20000]

* leader kill (``ray.kill`` of the leader's consensus actor) to a new leader,
  from the new leader's own ``leader_changed`` event, and to the first write
  acknowledged after the kill (a client keeps writing throughout);
* supervisor restart of the killed actor (the supervisor's ``restart_ms``);
* kv commit latency with one client waiting for each write;
* kv throughput with pipelined, batched writes.

Writes ``benchmarks/results/runtime.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import ray

from cluster_actors.cluster import Cluster
from cluster_actors.core.stats import percentile

RESULTS = Path(__file__).resolve().parent / "results"


def report(result: dict[str, Any], json_path: str | None) -> None:
    """Print ``result`` as JSON, and write it to ``json_path`` too when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        Path(json_path).write_text(text + "\n")


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p99": percentile(values, 99),
            "min": min(values), "max": max(values), "n": len(values)}


def commit_latency(cluster: Cluster, count: int) -> dict[str, float]:
    for i in range(50):
        cluster.kv.put("warmup", i)
    samples = []
    for i in range(count):
        started = time.perf_counter()
        cluster.kv.put(f"latency{i % 16}", i)
        samples.append((time.perf_counter() - started) * 1000)
    return summary(samples)


def throughput(cluster: Cluster, writes: int, repeats: int = 3) -> dict[str, float]:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        futures = [cluster.kv.submit(("put", f"load{i % 1000}", i)) for i in range(writes)]
        for future in futures:
            future.result(timeout=120)
        rates.append(writes / (time.perf_counter() - started))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def _followed_by_all(cluster: Cluster, leader: str) -> bool:
    statuses = cluster._statuses(timeout=0.5)
    return all(s is not None and s["leader"] == leader for s in statuses.values())


def idle_leader_kills(cluster: Cluster, kills: int, settle_s: float = 0.5) -> dict[str, Any]:
    """Leader kills with no client traffic, seen as a user sees them: from
    ``ray.kill`` of the leader's consensus actor to ``cluster.leader()`` (the
    pushed leadership, polled every 0.5 ms) naming another node. Before each
    kill every node follows the leader (the killed one restarted and caught
    up) and the cluster idles ``settle_s``, so the followers hold a live lease."""
    samples = []
    for _ in range(kills):
        deadline = time.monotonic() + 60
        old = cluster.wait_for_leader()
        while not _followed_by_all(cluster, old):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the nodes do not all follow {old} within 60 s")
            time.sleep(0.02)
            old = cluster.wait_for_leader()
        time.sleep(settle_s)
        handle = cluster.session.handle(old)
        cluster.session.forget(old)
        killed_at = time.monotonic()
        ray.kill(handle, no_restart=True)
        while cluster.leader() in (None, old):
            if time.monotonic() - killed_at > 60:
                raise TimeoutError(f"no leader other than {old} within 60 s of its kill")
            time.sleep(0.0005)
        samples.append((time.monotonic() - killed_at) * 1000)
    return summary(samples)


def leader_kills(cluster: Cluster, kills: int) -> dict[str, Any]:
    acknowledged: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                cluster.kv.put("failover", i, timeout=5)
                acknowledged.append(time.time())
            except Exception:
                pass
            i += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    to_leader, to_commit, restarts = [], [], []
    try:
        for _ in range(kills):
            old = cluster.wait_for_leader()
            old_term = ray.get(cluster.session.handle(old).status.remote())["term"]
            handle = cluster.session.handle(old)
            cluster.session.forget(old)
            killed_at = time.time()
            ray.kill(handle, no_restart=True)
            new = None
            while new in (None, old):
                new = cluster.session.find_leader(timeout=0.2)
            events = ray.get(cluster.session.handle(new).events_since.remote())
            elected = [e["time"] for e in events if e["type"] == "leader_changed"
                       and e["role"] == "leader" and e["term"] > old_term]
            to_leader.append((min(elected) - killed_at) * 1000)
            deadline = time.time() + 30
            while time.time() < deadline and not any(t > killed_at for t in acknowledged[-50:]):
                time.sleep(0.001)
            to_commit.append((min(t for t in acknowledged if t > killed_at) - killed_at) * 1000)
            # wait until the killed node is back as a follower before the next kill
            while True:
                status = cluster._statuses(timeout=0.5).get(old)
                if status and status["role"] == "follower" and status["leader"] == new:
                    break
                time.sleep(0.01)
            events = cluster.supervisor(old).events_since()
            restarted = [e for e in events if e["type"] == "child_restarted"]
            if restarted:
                restarts.append(restarted[-1]["restart_ms"])
    finally:
        stop.set()
        thread.join(timeout=10)
    return {"to_new_leader_ms": summary(to_leader), "to_first_commit_ms": summary(to_commit),
            "supervisor_restart_ms": summary(restarts) if restarts else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args(argv)
    cluster = Cluster.start("bench", nodes=args.nodes, options={"fsync": not args.no_fsync},
                            fresh=True)
    try:
        results = {
            "nodes": args.nodes, "fsync": not args.no_fsync,
            "commit_latency_ms": commit_latency(cluster, args.latency_samples),
            "throughput_cmds_per_s": throughput(cluster, args.writes),
            "failover": leader_kills(cluster, args.kills),
        }
    finally:
        cluster.shutdown()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "runtime.json").write_text(json.dumps(results, indent=2))
    lat, thr, fail = (results["commit_latency_ms"], results["throughput_cmds_per_s"],
                      results["failover"])
    lines = [f"# Runtime figures ({args.nodes} nodes, fsync={not args.no_fsync})", "",
             "| figure | p50 | p99 | min | max |", "| --- | --- | --- | --- | --- |",
             f"| kv commit latency, one client (ms) | {lat['p50']:.2f} | {lat['p99']:.2f} | "
             f"{lat['min']:.2f} | {lat['max']:.2f} |"]
    for key, label in (("to_new_leader_ms", "leader kill to new leader (ms)"),
                       ("to_first_commit_ms", "leader kill to first commit (ms)"),
                       ("supervisor_restart_ms", "supervisor restart of the killed actor (ms)")):
        if fail.get(key):
            f = fail[key]
            lines.append(f"| {label}, {f['n']} kills | {f['p50']:.1f} | {f['p99']:.1f} | "
                         f"{f['min']:.1f} | {f['max']:.1f} |")
    lines += ["", f"kv throughput, pipelined batches: median {thr['median']:,.0f} commands/s "
                  f"(min {thr['min']:,.0f}, max {thr['max']:,.0f}) over 3 runs of "
                  f"{args.writes:,} writes", ""]
    (RESULTS / "runtime.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main()
