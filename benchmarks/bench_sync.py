"""Data sync on real Ray actors: a 1 MB exchange between two nodes, and a Merkle
sync of 1,000,000 keys differing in 0.01 %.

    python benchmarks/bench_sync.py [--samples 10] [--merkle-keys 1000000] [--repeats 3]

1 MB sync, on a cluster's sync actors: node n1's CRDT store holds 1 MiB of
values (256 LWW registers of 4 KiB each, rewritten with new values at each
repetition); each sample is ``sync_node("n2", "full_sync")`` on n1, a full
anti-entropy exchange: n1 pushes its whole store, n2 merges it and answers
with its own whole store. Latency is the sync record's ``finished_at -
started_at`` (n1's wall clock, from the push to n2's answer merged), throughput
is the bytes n1 pushed (the record's ``bytes``) / that latency. After each
repetition n1's and n2's state hashes must be equal.

Merkle sync: the cluster's sync actor has no bulk load, and filling a store
with 10^6 keys by single writes takes far too long, so two plain Ray actors
(``MerkleReplica``) each hold a 10^6-key store (``strategies.sync_sim.
build_experiment_base``: mixed CRDT types) and run the ``merkle_tree``
strategy's own code between them. Each repetition writes 100 LWW registers
(0.01 %) on one side, then that side drives the exchange: it opens a round and
sends each batch of messages to the other actor by a Ray call, whose answer is
the reply batch, until no message is left. Bytes are the messages' encoded
sizes (pickled payload) both ways; time is the exchange's wall time inside the
driving actor. The two stores' state hashes must then be equal.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from typing import Any

import ray
from runtime import percentile

from cluster_actors.cluster import Cluster

VALUE_BYTES = 4096
KEYS_PER_MB = 256  # 256 x 4 KiB = 1 MiB of values
HANG_S = 60.0


# ------------------------------------------------------------------ 1 MB sync
def fill(cluster: Cluster, node: str, tag: str) -> None:
    """(Re)write 1 MiB of values into ``node``'s store."""
    store = cluster.data(node)
    rng = random.Random(tag)
    for i in range(KEYS_PER_MB):
        store.set(f"mb/{i:03d}", rng.randbytes(VALUE_BYTES // 2).hex())


def sync_samples(cluster: Cluster, source: str, target: str, samples: int
                 ) -> tuple[list[float], list[float], int]:
    """(latencies ms, throughputs MB/s, bytes pushed) of ``samples`` full syncs."""
    sync = cluster.node(source).sync
    latencies, rates, pushed = [], [], 0
    for _ in range(samples):
        sync_id = sync.sync_node(target, "full_sync")
        record = sync.call("wait_sync", sync_id, HANG_S, timeout=HANG_S + 5)
        if record["outcome"] != "completed":
            raise RuntimeError(f"sync {sync_id} ended {record['outcome']!r}")
        seconds = record["finished_at"] - record["started_at"]
        pushed = record["bytes"]
        latencies.append(seconds * 1000)
        rates.append(pushed / 1e6 / seconds)
    return latencies, rates, pushed


def measure_mb(samples: int = 10, repeats: int = 3, cluster: Cluster | None = None
               ) -> dict[str, Any]:
    """1 MB sync between the first two nodes; lists hold one entry per repetition.
    Uses ``cluster`` if given, else starts a 2-node cluster (periodic sync
    rounds every 60 s, so they do not run during the samples)."""
    own = cluster is None
    if cluster is None:
        cluster = Cluster.start(f"bench-sync-{uuid.uuid4().hex[:6]}", nodes=2,
                                options={"sync_interval": 60_000})
    source, target = cluster.node_ids[:2]
    result: dict[str, Any] = {"samples": samples, "bytes_pushed": 0, "mb_per_s": [],
                              "p50_ms": [], "p99_ms": [], "converged": []}
    try:
        for rep in range(repeats):
            fill(cluster, source, f"{uuid.uuid4().hex}-{rep}")
            latencies, rates, pushed = sync_samples(cluster, source, target, samples)
            result["bytes_pushed"] = pushed
            result["mb_per_s"].append(statistics.median(rates))
            result["p50_ms"].append(statistics.median(latencies))
            result["p99_ms"].append(percentile(latencies, 99))
            result["converged"].append(cluster.data(source).state_hash()
                                       == cluster.data(target).state_hash())
    finally:
        if own:
            cluster.shutdown()
    return result


# ------------------------------------------------------------- Merkle 10^6 keys
@ray.remote(num_cpus=0)
class MerkleReplica:
    """One replica's store of ``keys`` keys and a ``merkle_tree`` strategy."""

    def __init__(self, name: str, keys: int) -> None:
        import strategies
        from strategies.sync_sim import build_experiment_base

        self.name = name
        self.store = build_experiment_base(keys).copy(name)
        self.strategy = strategies.load("sync", "merkle_tree")
        self.rng = random.Random(name)

    def ready(self) -> int:
        return len(self.store)

    def diverge(self, count: int, seed: int) -> int:
        """Write ``count`` random LWW registers here; how many were written."""
        rng = random.Random(seed)
        keys = self.store.keys()
        registers = [k for k in keys if int(k.rsplit(":", 1)[1]) % 10 < 7]
        for key in rng.sample(registers, count):
            self.store.put_register(key, f"{self.name}-{seed}-{key}", time.time())
        return count

    def state_hash(self) -> str:
        return self.store.state_hash()

    def handle(self, messages: list[Any]) -> list[Any]:
        """The replies to a batch of messages from the peer."""
        return [reply for message in messages
                for reply in self.strategy.on_message(self.store, message, self.rng)]

    async def sync_with(self, peer: Any, peer_name: str) -> dict[str, Any]:
        """Run one exchange with ``peer`` until no message is left; its cost."""
        started = time.perf_counter()
        out = self.strategy.start_round(self.store, [peer_name], self.rng)
        sent = messages = calls = 0
        while out:
            sent += sum(m.size_bytes for m in out)
            messages += len(out)
            calls += 1
            replies = await peer.handle.remote(out)
            sent += sum(m.size_bytes for m in replies)
            messages += len(replies)
            out = self.handle(replies)
        return {"seconds": time.perf_counter() - started, "bytes": sent,
                "messages": messages, "round_trips": calls}


def measure_merkle(keys: int = 1_000_000, divergence: float = 0.0001, repeats: int = 3
                   ) -> dict[str, Any]:
    """Merkle sync of two ``keys``-key replicas differing in ``divergence`` of
    the keys; lists hold one entry per repetition."""
    started = time.perf_counter()
    a = MerkleReplica.remote("a", keys)
    b = MerkleReplica.remote("b", keys)
    ray.get([a.ready.remote(), b.ready.remote()], timeout=1800)
    build_s = time.perf_counter() - started
    differ = max(1, round(keys * divergence))
    result: dict[str, Any] = {"keys": keys, "differing": differ, "build_s": build_s,
                              "bytes": [], "ms": [], "messages": [], "round_trips": [],
                              "converged": []}
    try:
        for rep in range(repeats):
            ray.get(a.diverge.remote(differ, rep), timeout=HANG_S)
            cost = ray.get(a.sync_with.remote(b, "b"), timeout=HANG_S)
            result["bytes"].append(cost["bytes"])
            result["ms"].append(cost["seconds"] * 1000)
            result["messages"].append(cost["messages"])
            result["round_trips"].append(cost["round_trips"])
            hashes = ray.get([a.state_hash.remote(), b.state_hash.remote()], timeout=HANG_S)
            result["converged"].append(hashes[0] == hashes[1])
    finally:
        for actor in (a, b):
            ray.kill(actor)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--merkle-keys", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    result = {"mb": measure_mb(args.samples, args.repeats),
              "merkle": measure_merkle(args.merkle_keys, repeats=args.repeats)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
