"""Configuration changes through consensus on real Ray actors: latency and rate.

    python benchmarks/bench_config.py [--nodes 3] [--changes 50] [--window 3] [--repeats 3]

Each change is ``coordinator.propose_config({"metadata": {"bench": i}})``: the
coordinator validates it against the replicated configuration, prepares the
record on the leader's config store and commits it as a Raft entry; the call
returns once the leader has applied it.

* Latency: ``--changes`` proposals, one at a time, on the leader's coordinator;
  each timed by the driver around the blocking call.
* Rate: every node's coordinator proposes in its own driver thread, back to
  back, for ``--window`` s (a coordinator handles one config change at a time,
  so this is one proposal in flight per node); changes committed / window.
  After the window, every node must report the last committed version.

``measure(...)`` returns per repetition: ``per_s``, ``p50_ms``, ``p99_ms``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from typing import Any

from runtime import percentile

from cluster_actors.cluster import Cluster

HANG_S = 30.0


def latency(cluster: Cluster, changes: int, tag: str) -> list[float]:
    """ms per change, proposed one at a time on the leader's coordinator."""
    coordinator = cluster.coordinator(cluster.wait_for_leader(timeout=HANG_S))
    samples = []
    for i in range(changes):
        started = time.perf_counter()
        coordinator.propose_config({"metadata": {"bench": f"{tag}-{i}"}})
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def rate(cluster: Cluster, window: float, tag: str) -> tuple[float, int]:
    """(changes committed per second, the highest version) with one proposer
    thread per node's coordinator for ``window`` s."""
    counts: dict[str, int] = {}
    versions: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def proposer(node: str) -> None:
        coordinator = cluster.coordinator(node)
        i = 0
        while not stop.is_set():
            try:
                versions.append(coordinator.propose_config(
                    {"metadata": {"bench": f"{tag}-{node}-{i}"}}))
                counts[node] = counts.get(node, 0) + 1
            except Exception as error:  # counted, reported; the others go on
                errors.append(error)
            i += 1

    threads = [threading.Thread(target=proposer, args=(n,), daemon=True)
               for n in cluster.node_ids]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(window)
    stop.set()
    for thread in threads:
        thread.join(timeout=HANG_S)
    elapsed = time.perf_counter() - started
    if errors and not versions:
        raise RuntimeError(f"no config change committed: {errors[0]!r}")
    return sum(counts.values()) / elapsed, max(versions)


def applied_everywhere(cluster: Cluster, version: int) -> bool:
    """Whether every node's coordinator reports config ``version`` or later
    (waits up to the hang bound)."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        if all(cluster.coordinator(n).get_config()["version"] >= version
               for n in cluster.node_ids):
            return True
        time.sleep(0.05)
    return False


def measure(nodes: int = 3, changes: int = 50, window: float = 3.0, repeats: int = 3,
            cluster: Cluster | None = None) -> dict[str, Any]:
    """Config change latency and rate, ``repeats`` times; lists hold one entry
    per repetition. Uses ``cluster`` if given, else starts its own."""
    own = cluster is None
    if cluster is None:
        cluster = Cluster.start(f"bench-cfg-{uuid.uuid4().hex[:6]}", nodes=nodes)
    run = uuid.uuid4().hex[:6]
    result: dict[str, Any] = {"nodes": len(cluster.node_ids), "changes": changes,
                              "window_s": window, "per_s": [], "p50_ms": [], "p99_ms": [],
                              "applied_everywhere": []}
    try:
        for rep in range(repeats):
            samples = latency(cluster, changes, f"{run}-{rep}")
            result["p50_ms"].append(statistics.median(samples))
            result["p99_ms"].append(percentile(samples, 99))
            per_s, version = rate(cluster, window, f"{run}-{rep}")
            result["per_s"].append(per_s)
            result["applied_everywhere"].append(applied_everywhere(cluster, version))
    finally:
        if own:
            cluster.shutdown()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.nodes, args.changes, args.window, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
