"""Takeover time of an election after its leader is killed.

Usage: python benchmarks/election_takeover.py [--kills 20] [--contenders 3] [--ttl 1.0]
                                              [--address ADDR] [--out FILE]

Contenders are Ray actors built on ``LeaderActor``; when one is elected it
takes the wall time and writes it, guarded by its fencing token, to the
cluster's kv. Each round kills the leader's actor (``ray.kill``, taking the
wall time just before), waits until the kv shows a newer token, and counts
takeover = elected time - kill time; then a fresh contender replaces the dead
one. A lease is only revoked when its TTL runs out on the cluster leader's
clock, so takeover lies between about 2/3 of the TTL (the last keepalive was
just before the kill) and the TTL, plus the time to notice, commit the
revoke and wake the next candidate. For comparison it also measures takeover
after a voluntary ``resign`` (no TTL to wait for). Prints p50, p99 and max
in ms and writes a Markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import ray

from cluster_actors.cluster import Cluster
from cluster_actors.core.stats import percentile
from cluster_actors.recipes.election import Leadership
from cluster_actors.recipes.leader_actor import LeaderActor

ELECTION = "bench"
ELECTED_KEY = "bench/elected"
HANG_S = 60.0


@ray.remote(num_cpus=0, max_concurrency=4)
class Contender(LeaderActor):
    def __init__(self, cluster_name: str, name: str, ttl: float) -> None:
        super().__init__(cluster_name, ELECTION, candidate_id=name, ttl=ttl)

    def on_elected(self, leadership: Leadership) -> None:
        at = time.time()
        leadership.guarded_put(ELECTED_KEY, {"name": self.candidate_id,
                                             "token": leadership.token, "at": at})

    def resign_now(self) -> float:
        at = time.time()
        self.resign()
        return at

    def ready(self) -> bool:
        return True


def _wait_newer(cluster: Cluster, token: int) -> dict[str, Any]:
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        elected = cluster.kv.get(ELECTED_KEY)
        if elected is not None and elected["token"] > token:
            return elected
        time.sleep(0.005)
    raise TimeoutError("no new leader within the hang bound")


def run(kills: int, contenders: int, ttl: float, address: str | None) -> dict[str, Any]:
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    cluster = Cluster.start(f"takeover-{uuid.uuid4().hex[:6]}", nodes=3)
    pool: dict[str, Any] = {}
    serial = iter(range(1, 10_000))

    def spawn() -> None:
        name = f"c{next(serial)}"
        pool[name] = Contender.remote(cluster.name, name, ttl)

    try:
        for _ in range(contenders):
            spawn()
        ray.get([actor.ready.remote() for actor in pool.values()])
        current = _wait_newer(cluster, 0)
        results: dict[str, list[float]] = {"kill": [], "resign": []}
        for round_ in range(2 * kills):
            mode = "kill" if round_ % 2 == 0 else "resign"
            victim = pool[current["name"]]
            if mode == "kill":
                started = time.time()
                ray.kill(victim, no_restart=True)
            else:
                started = ray.get(victim.resign_now.remote())
            new = _wait_newer(cluster, current["token"])
            results[mode].append(new["at"] - started)
            if mode == "kill":
                del pool[current["name"]]
                spawn()
            current = new
            print(f"{mode:6s} {round_ // 2 + 1:3d}: {results[mode][-1] * 1000:7.1f} ms "
                  f"({current['name']} token {current['token']})", file=sys.stderr)
    finally:
        cluster.shutdown()
    return {mode: {"n": len(samples), "p50_ms": percentile(samples, 50) * 1000,
                   "p99_ms": percentile(samples, 99) * 1000, "max_ms": max(samples) * 1000,
                   "mean_ms": statistics.mean(samples) * 1000}
            for mode, samples in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--contenders", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=1.0, help="lease TTL in seconds")
    parser.add_argument("--address", default=None, help="Ray address (default: local)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "election_takeover.md"))
    args = parser.parse_args()
    stats = run(args.kills, args.contenders, args.ttl, args.address)
    command = (f"python benchmarks/election_takeover.py --kills {args.kills} "
               f"--contenders {args.contenders} --ttl {args.ttl}")
    lines = [f"# Election takeover ({os.cpu_count()} cores, lease TTL {args.ttl} s)", "",
             f"`{command}`", "",
             "| after | n | p50 ms | p99 ms | max ms | mean ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for mode, row in stats.items():
        lines.append(f"| leader {mode} | {row['n']} | {row['p50_ms']:.0f} | "
                     f"{row['p99_ms']:.0f} | {row['max_ms']:.0f} | {row['mean_ms']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
