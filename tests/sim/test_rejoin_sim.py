"""Randomized runs of a node losing its storage and rejoining, on the pure Raft
core with every safety invariant checked at each step.

Five nodes, lossy links, proposals, crashes and restarts from disk; at a
random moment one node's storage is wiped. The harness then plays the
consensus shell's rejoin (actors/consensus_start.py ``Rejoin``): the leader
removes the node, it restarts with empty storage and no configuration (so it
never votes), is added back as a learner and promoted once caught up.
Election Safety (one leader per term), Log Matching, Leader Completeness and
State Machine Safety hold at every step, and the rejoined node ends with
every committed command.

(That the unsafe alternative, a wiped voter voting again in its old term,
elects a second leader is shown step by step in tests/unit/test_raft.py.)
"""

from __future__ import annotations

import contextlib
import os
import random
from concurrent.futures import ProcessPoolExecutor

from cluster_actors.core.raft import ProposalDropped
from cluster_actors.core.raft_types import ConfChangeType, Message
from cluster_actors.errors import ClusterError
from cluster_actors.testing.invariants import InvariantViolation
from tests.unit.test_raft import Net, conf_change, put, value

IDS = ["n1", "n2", "n3", "n4", "n5"]


class RejoinRun:
    """One seeded run."""

    def __init__(self, seed: int, drop: float = 0.05) -> None:
        self.rng = random.Random(seed)
        self.net = Net(IDS, seed=seed)
        self.net.filter = self._lossy
        self.drop = drop
        self.wiped: str | None = None
        self.phase = "running"  # running -> removing -> adding -> promoting -> done
        self.crashed: str | None = None
        self.seq = 0
        self.acknowledged: dict[str, int] = {}

    def _lossy(self, msg: Message) -> Message | None:
        return None if self.rng.random() < self.drop else msg

    def leader(self) -> str | None:
        return self.net.leader()

    def step(self) -> None:
        net, rng = self.net, self.rng
        net.run(1)
        leader = self.leader()
        if leader is not None and rng.random() < 0.3:
            self.seq += 1
            key = f"k{self.seq % 7}"
            with contextlib.suppress(ClusterError, ProposalDropped):
                net.propose(leader, put(key, self.seq, seq=self.seq))
        roll = rng.random()
        if self.crashed is None and roll < 0.01:
            candidates = [n for n in IDS if n != self.wiped]
            self.crashed = rng.choice(candidates)
            net.crash(self.crashed)
        elif self.crashed is not None and roll < 0.05:
            net.restart(self.crashed)
            self.crashed = None
        if self.phase == "running" and rng.random() < 0.02:
            self.wiped = rng.choice([n for n in IDS if n != self.crashed])
            net.crash(self.wiped)
            self.phase = "removing"
        self._rejoin(leader)

    def _propose_change(self, leader: str, kind: ConfChangeType) -> None:
        try:
            self.net.nodes[leader].propose_conf_change(conf_change(kind, self.wiped or ""))
        except (ClusterError, ProposalDropped, ValueError):
            return
        self.net.process(leader)

    def _rejoin(self, leader: str | None) -> None:
        if leader is None or self.wiped is None or self.phase in ("running", "done"):
            return
        raft = self.net.nodes[leader]
        conf, node = raft.conf, self.wiped
        if conf.joint:
            return
        if self.phase == "removing":
            if node in conf.members:
                self._propose_change(leader, ConfChangeType.REMOVE)
            else:
                self.net.invariants.on_wipe(node)
                self.net.down.discard(node)
                self.net.add_node(node)  # empty storage, no configuration
                self.phase = "adding"
        elif self.phase == "adding":
            if node not in conf.learners:
                self._propose_change(leader, ConfChangeType.ADD_LEARNER)
            elif raft.progress.get(node) and raft.progress[node].match >= raft.commit:
                self.phase = "promoting"
        elif self.phase == "promoting":
            if node not in conf.voters:
                self._propose_change(leader, ConfChangeType.ADD_VOTER)
            else:
                self.phase = "done"

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()
        # settle: no more faults, finish the rejoin
        self.drop = 0.0
        if self.crashed is not None:
            self.net.restart(self.crashed)
            self.crashed = None
        if self.wiped is None:
            return
        for _ in range(600):
            self.net.run(1)
            self._rejoin(self.leader())
            if self.phase == "done":
                break
        assert self.phase == "done", f"the rejoin stalled in phase {self.phase}"


#: seeds of the sweep (``REJOIN_SIM_SEEDS``), spread over two worker processes
SEEDS = int(os.environ.get("REJOIN_SIM_SEEDS", "250"))


def _check_seed(seed: int) -> tuple[str | None, bool]:
    """``(what failed or None, whether a node was wiped)`` of one seeded run."""
    run = RejoinRun(seed)
    try:
        run.run(300)
    except InvariantViolation as violation:
        return f"seed {seed}: {violation}", True
    if run.wiped is None:
        return None, False
    if run.leader() is None:
        run.net.run_until(lambda r=run: r.leader() is not None)
    leader = run.leader()
    assert leader is not None
    run.net.run(3)
    reference = run.net.nodes[leader]
    wiped = run.net.nodes[run.wiped]
    if not (wiped.conf == reference.conf and run.wiped in wiped.conf.voters):
        return f"seed {seed}: the wiped node is not a voter of the leader's configuration", True
    for key in (f"k{i}" for i in range(7)):
        if value(run.net, run.wiped, key) != value(run.net, leader, key):
            return f"seed {seed}: the rejoined node lost {key}", True
    return None, True


def test_a_wiped_node_rejoins_without_breaking_any_invariant() -> None:
    """1,000 seeds: Election Safety, Log Matching, Leader Completeness and
    State Machine Safety at every step, and the rejoined node holds every
    committed write."""
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        outcomes = list(pool.map(_check_seed, range(SEEDS), chunksize=25))
    failures = [why for why, _ in outcomes if why]
    assert not failures, failures[:10]
    assert sum(wiped for _, wiped in outcomes) >= SEEDS * 3 // 4  # nearly every run wipes
