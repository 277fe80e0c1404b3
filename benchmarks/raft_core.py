"""Figures of the pure Raft core, without Ray and without the invariant checks.

    .venv/bin/python benchmarks/raft_core.py [--seeds 1000]

* entries committed per second by the core alone, 3 and 5 nodes, with
  batches of 500 commands per proposal (messages delivered in memory);
* ticks from a leader crash to a new leader, p50/p99 over ``--seeds`` seeds
  of the simulator (election timeout 10-19 ticks, no fault other than the crash).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import deque

from cluster_actors.core.kv import Command, KVStateMachine
from cluster_actors.core.raft import RaftNode, RaftOptions
from cluster_actors.testing.sim import SimConfig, Simulation


def committed_per_second(nodes: int, commands: int = 200_000, batch: int = 500) -> float:
    ids = [f"n{i}" for i in range(1, nodes + 1)]
    options = RaftOptions(max_entries_per_message=batch)
    rafts = {nid: RaftNode.bootstrap(nid, ids, options=options, rng=random.Random(i))
             for i, nid in enumerate(ids)}
    machines = {nid: KVStateMachine() for nid in ids}
    queue: deque = deque()

    def pump() -> None:
        for nid, raft in rafts.items():
            ready = raft.ready()
            queue.extend(ready.messages)
            for entry in ready.committed_entries:
                machines[nid].apply(entry)
        while queue:
            message = queue.popleft()
            rafts[message.dst].step(message)
            ready = rafts[message.dst].ready()
            queue.extend(ready.messages)
            for entry in ready.committed_entries:
                machines[message.dst].apply(entry)

    leader = rafts["n1"]
    leader.force_election()
    pump()
    assert leader.is_leader
    payload = [Command("bench", seq, ("put", f"k{seq % 100}", seq)) for seq in range(commands)]
    started = time.perf_counter()
    for start in range(0, commands, batch):
        leader.propose_batch(payload[start:start + batch])
        pump()
    for raft in rafts.values():  # let followers learn the final commit index
        raft.tick()
    pump()
    elapsed = time.perf_counter() - started
    assert leader.commit == leader.log.last_index
    return commands / elapsed


def ticks_to_new_leader(seeds: int) -> list[int]:
    ticks = []
    for seed in range(seeds):
        sim = Simulation(SimConfig(seed=seed, nodes=5, faults=(), clients=0))
        while sim.current_leader() is None:
            sim.step()
        for _ in range(20):
            sim.step()
        old = sim.current_leader()
        sim.nodes[old].alive = False
        count = 0
        while sim.current_leader() in (None, old):
            sim.step()
            count += 1
        ticks.append(count)
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    args = parser.parse_args()
    for nodes in (3, 5):
        rates = [committed_per_second(nodes) for _ in range(3)]
        print(f"{nodes} nodes: {statistics.median(rates):,.0f} entries committed/s by the "
              f"core (median of 3, min {min(rates):,.0f}, max {max(rates):,.0f})")
    ticks = sorted(ticks_to_new_leader(args.seeds))
    print(f"leader crash to new leader over {len(ticks)} seeds: p50 {statistics.median(ticks)} "
          f"ticks, p99 {ticks[int(0.99 * (len(ticks) - 1))]} ticks, max {ticks[-1]} "
          f"(election timeout 10-19 ticks)")


if __name__ == "__main__":
    main()
