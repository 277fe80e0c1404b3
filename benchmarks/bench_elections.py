"""Raft elections on real Ray actors: forced elections, leadership transfers, leader kills.

    python benchmarks/bench_elections.py [--nodes 3] [--rounds 20] [--kills 5] [--repeats 3]

* Forced election: the driver calls ``force_election()`` on a follower's
  consensus actor (campaign at a new term, bypassing pre-vote and leases).
* Leadership transfer: the driver calls ``transfer_leadership(target)`` on the
  leader (TimeoutNow once the target is caught up).

Per round, latency = the new leader's own ``leader_changed`` event time
(role leader, a higher term) minus the driver's wall time just before the
call, so it includes the driver's call to the actor. The rounds run back to
back: the driver long-polls the target's events and starts the next round
(on the next follower in turn) as soon as the winner's event arrives; the
rate is rounds / wall time of the whole sequence.

Failover (leader kill to a new leader and to the first acknowledged write) is
``runtime.leader_kills`` (``ray.kill`` of the leader's consensus actor while
a client keeps writing; the supervisor restarts it between kills); without
client traffic, to ``cluster.leader()`` naming the new leader, it is
``runtime.idle_leader_kills`` (``idle_failover``).

``measure(...)`` returns per repetition, for ``forced`` and ``transfer``:
``per_s``, ``p50_ms``, ``p99_ms``; and for ``failover``: ``new_leader_p50_ms``,
``new_leader_p99_ms``, ``first_commit_p50_ms``, ``first_commit_p99_ms``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from typing import Any

from runtime import idle_leader_kills, leader_kills, percentile

from cluster_actors.cluster import Cluster

HANG_S = 30.0


def _last_seq(cluster: Cluster, node: str) -> int:
    events = cluster.node(node).consensus.events_since()
    return events[-1]["seq"] if events else 0


def _won(events: list[dict[str, Any]], old_term: int) -> dict[str, Any] | None:
    """The first event in ``events`` of its node becoming leader above ``old_term``."""
    for event in events:
        if (event["type"] == "leader_changed" and event.get("role") == "leader"
                and event["term"] > old_term):
            return event
    return None


def one_round(cluster: Cluster, mode: str, leader: str, term: int, target: str
              ) -> tuple[float, str, int]:
    """One forced election of ``target`` or transfer from ``leader`` to it;
    (latency ms, new leader, its term). The winner is whichever node leads at
    a term above ``term``: usually the target, which the driver long-polls;
    if another node won, it is found by polling every node."""
    consensus = cluster.node(target).consensus
    since = _last_seq(cluster, target)
    started = time.time()
    if mode == "forced":
        consensus.force_election()
    else:
        cluster.node(leader).consensus.transfer_leadership(target)
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        events = consensus.wait_events(since, 0.5)
        if events:
            since = events[-1]["seq"]
            won = _won(events, term)
            if won is not None:
                return (won["time"] - started) * 1000, target, won["term"]
            continue
        winner = cluster.session.find_leader(timeout=0.2)  # another node may have won
        if winner not in (None, target):
            won = _won(cluster.node(winner).consensus.events_since(), term)
            if won is not None:
                return (won["time"] - started) * 1000, winner, won["term"]
    raise TimeoutError(f"no new leader within {HANG_S} s after a {mode} election")


def elections(cluster: Cluster, mode: str, rounds: int) -> dict[str, float]:
    """``rounds`` back-to-back rounds of ``mode``, each targeting the next
    follower in turn as soon as the previous winner is known: rate and
    latency percentiles."""
    leader = cluster.wait_for_leader(timeout=HANG_S)
    term = cluster.node(leader).consensus.get_current_term()
    latencies = []
    started = time.perf_counter()
    for i in range(rounds):
        followers = [n for n in cluster.node_ids if n != leader]
        latency, leader, term = one_round(cluster, mode, leader, term,
                                          followers[i % len(followers)])
        latencies.append(latency)
    elapsed = time.perf_counter() - started
    return {"per_s": rounds / elapsed, "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 99), "max_ms": max(latencies), "n": rounds}


def failover(cluster: Cluster, kills: int) -> dict[str, float]:
    """Leader kills (``runtime.leader_kills``), as p50/p99 per figure."""
    result = leader_kills(cluster, kills)
    out = {}
    for key, name in (("to_new_leader_ms", "new_leader"), ("to_first_commit_ms", "first_commit"),
                      ("supervisor_restart_ms", "supervisor_restart")):
        if result.get(key):
            out[f"{name}_p50_ms"] = result[key]["p50"]
            out[f"{name}_p99_ms"] = result[key]["p99"]
    return out


def idle_failover(cluster: Cluster, kills: int) -> dict[str, float]:
    """Leader kills with no client traffic, to ``cluster.leader()`` naming the
    new leader (``runtime.idle_leader_kills``), as p50/p99."""
    result = idle_leader_kills(cluster, kills)
    return {"leader_p50_ms": result["p50"], "leader_p99_ms": result["p99"]}


def measure(nodes: int = 3, rounds: int = 20, kills: int = 5, repeats: int = 3,
            cluster: Cluster | None = None, include_failover: bool = True) -> dict[str, Any]:
    """Forced elections, transfers and (optionally) leader kills, ``repeats``
    times each; lists hold one entry per repetition. Uses ``cluster`` if given."""
    own = cluster is None
    if cluster is None:
        cluster = Cluster.start(f"bench-el-{uuid.uuid4().hex[:6]}", nodes=nodes)
    result: dict[str, Any] = {"nodes": len(cluster.node_ids), "rounds": rounds, "kills": kills,
                              "forced": [], "transfer": [], "failover": []}
    try:
        for _ in range(repeats):
            result["forced"].append(elections(cluster, "forced", rounds))
            result["transfer"].append(elections(cluster, "transfer", rounds))
        if include_failover:
            for _ in range(repeats):
                result["failover"].append(failover(cluster, kills))
    finally:
        if own:
            cluster.shutdown()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-failover", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.nodes, args.rounds, args.kills, args.repeats,
                     include_failover=not args.no_failover)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
