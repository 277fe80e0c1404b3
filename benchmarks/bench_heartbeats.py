"""Failure-detector heartbeats on real Ray actors: processed per second and delivery latency.

    python benchmarks/bench_heartbeats.py [--nodes 5] [--interval-ms 10] [--repeats 3]
                                          [--window 3] [--probes 40] [--placement per_component]

Every node's heartbeat actor is switched to a fixed ``--interval-ms`` period
(``configure("adaptive", False)`` and ``configure("heartbeat_interval", ...)``),
so each node sends one heartbeat per round to each of its monitors
(``min(monitors_per_node, N - 1)`` of them).

* Throughput: the sum over all nodes and peers of the ``heartbeats`` counters
  in ``get_heartbeat_status()``, read on every node at once before and after a
  ``--window`` s window, divided by the window. The offered load (monitors /
  interval, summed over nodes) and the messages per Ray call (transport
  ``sent / calls``) are reported next to it.
* Delivery latency, under that load: the probe node's own period is raised to
  2 s, then the driver sends ``--probes`` heartbeats from it with
  ``send_heartbeat({"probe": k, "probe_sent": t})`` and reads, on every monitor,
  the wall time the heartbeat carrying probe ``k`` was recorded
  (``peers[probe].last_heartbeat``). The figure is that time minus ``t``: it
  includes the driver's call to the sender, so it is an upper bound of the
  sender-to-receiver delivery. A probe during which the probe node also ran a
  periodic round (its ``rounds`` counter moved) is discarded, since that
  round's heartbeat carries the same metadata and overwrites the time.
  Where the heartbeat actor reports ``delivery_ms`` per peer (its recent
  receive time minus each heartbeat's ``sent_at``), those samples of the
  periodic heartbeats in the window are used instead, and no probe is sent.

``measure(...)`` returns per repetition: ``per_s``, ``offered_per_s``,
``messages_per_call``, ``latency_p50_ms``, ``latency_p99_ms``. The cluster's
own heartbeat settings are restored afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from typing import Any

import ray
from runtime import percentile
from scale import LARGE

from cluster_actors.cluster import Cluster

PROBE_PERIOD_MS = 2000  # the probe node's own period while probing: below the 3 s pause
PROBE_WAIT_S = 5.0  # hang guard per probe


def _status_all(clients: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``get_heartbeat_status()`` of every node, fetched in parallel."""
    refs = {node: client.handle.get_heartbeat_status.remote() for node, client in clients.items()}
    return dict(zip(refs, ray.get(list(refs.values()), timeout=60), strict=True))


def _configure_all(clients: dict[str, Any], parameter: str, value: Any) -> None:
    ray.get([c.handle.configure.remote(parameter, value) for c in clients.values()], timeout=60)


def _received_total(statuses: dict[str, dict[str, Any]]) -> int:
    return sum(int(info.get("heartbeats", 0)) for status in statuses.values()
               for info in status["peers"].values())


def _transport_total(statuses: dict[str, dict[str, Any]], key: str) -> int:
    return sum(int(status.get("transport", {}).get(key, 0)) for status in statuses.values())


def throughput(clients: dict[str, Any], interval_ms: float, window: float) -> dict[str, float]:
    """Heartbeats processed per second over ``window`` s (see the module doc)."""
    before = _status_all(clients)
    started = time.monotonic()
    time.sleep(window)
    after = _status_all(clients)
    elapsed = time.monotonic() - started
    calls = _transport_total(after, "calls") - _transport_total(before, "calls")
    sent = _transport_total(after, "sent") - _transport_total(before, "sent")
    offered = sum(len(status["monitors"]) for status in after.values()) * 1000 / interval_ms
    delivery = [ms for status in after.values() for info in status["peers"].values()
                for ms in info.get("delivery_ms") or ()]
    return {"per_s": (_received_total(after) - _received_total(before)) / elapsed,
            "offered_per_s": offered, "sent_per_s": sent / elapsed,
            "messages_per_call": sent / calls if calls else 0.0, "delivery_ms": delivery}


def probe_latencies(clients: dict[str, Any], probe_node: str, probes: int) -> list[float]:
    """Delivery latencies in ms of ``probes`` heartbeats from ``probe_node``
    to each of its monitors (see the module doc)."""
    source = clients[probe_node]
    samples: list[float] = []
    run = uuid.uuid4().hex[:8]
    for k in range(probes):
        probe_id = f"{run}-{k}"
        rounds_before = source.get_heartbeat_status()["rounds"]
        sent_at = time.time()
        monitors = source.send_heartbeat({"probe": probe_id, "probe_sent": sent_at})
        seen: dict[str, float] = {}
        deadline = time.monotonic() + PROBE_WAIT_S
        while len(seen) < len(monitors) and time.monotonic() < deadline:
            waiting = [m for m in monitors if m not in seen]
            statuses = _status_all({m: clients[m] for m in waiting})
            for monitor, status in statuses.items():
                info = status["peers"].get(probe_node) or {}
                if info.get("metadata", {}).get("probe") == probe_id and info.get(
                        "last_heartbeat"):
                    seen[monitor] = (info["last_heartbeat"] - sent_at) * 1000
        if source.get_heartbeat_status()["rounds"] == rounds_before:
            samples.extend(seen.values())
    return samples


def measure(nodes: int = 5, interval_ms: float = 10, repeats: int = 3, window: float = 3.0,
            probes: int = 40, placement: str = "per_component",
            cluster: Cluster | None = None) -> dict[str, Any]:
    """Heartbeat throughput and latency at ``nodes`` nodes; one entry per
    repetition in each list. Uses ``cluster`` if given (its size wins), else
    starts and stops its own."""
    own = cluster is None
    if cluster is None:
        # one actor per node runs with the large-cluster timings (see scale.py): the
        # default 10 ms tick and 200 ms elections do not elect 20 nodes on 2 cores
        options = dict(LARGE) if placement == "per_node" else {"placement": placement}
        cluster = Cluster.start(f"bench-hb-{uuid.uuid4().hex[:6]}", nodes=nodes,
                                options=options)
    clients = {node: cluster.node(node).heartbeat for node in cluster.node_ids}
    probe_node = cluster.node_ids[0]
    result: dict[str, Any] = {
        "nodes": len(cluster.node_ids), "interval_ms": interval_ms,
        "placement": cluster.options.placement, "window_s": window, "probes": probes,
        "per_s": [], "offered_per_s": [], "messages_per_call": [],
        "latency_p50_ms": [], "latency_p99_ms": [], "latency_samples": []}
    try:
        _configure_all(clients, "adaptive", False)
        _configure_all(clients, "heartbeat_interval", interval_ms)
        time.sleep(1.0)  # every node has entered its new period
        for _ in range(repeats):
            rate = throughput(clients, interval_ms, window)
            for key in ("per_s", "offered_per_s", "messages_per_call"):
                result[key].append(rate[key])
            samples = rate["delivery_ms"]
            result["latency_source"] = "delivery_ms" if samples else "probes"
            if not samples:
                clients[probe_node].configure("heartbeat_interval", PROBE_PERIOD_MS)
                try:
                    samples = probe_latencies(clients, probe_node, probes)
                finally:
                    clients[probe_node].configure("heartbeat_interval", interval_ms)
            if samples:
                result["latency_p50_ms"].append(statistics.median(samples))
                result["latency_p99_ms"].append(percentile(samples, 99))
            result["latency_samples"].append(len(samples))
    finally:
        if own:
            cluster.shutdown()
        else:
            _configure_all(clients, "heartbeat_interval", cluster.options.heartbeat_interval)
            _configure_all(clients, "adaptive", True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--interval-ms", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--placement", default="per_component",
                        choices=("per_component", "per_node"))
    args = parser.parse_args(argv)
    result = measure(args.nodes, args.interval_ms, args.repeats, args.window, args.probes,
                     args.placement)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
