"""A deterministic whole-cluster simulator of pure Raft nodes.

One seed fixes everything: the network's fault mix (drop, duplication,
delay and so reordering), the schedule of partitions (every Jepsen shape),
crash-restarts that keep only persisted state, storage faults, membership
changes, and the clients' commands. Every step is one logical tick; every invariant of
:mod:`cluster_actors.testing.invariants` is checked at every step, and a
failing run raises with its seed, which replays it exactly.

A node carries out each ``Ready`` with :meth:`Ready.carry_out`, the same
code as the consensus actor (early messages, persist, late messages, apply),
so the order the simulator proves safe is the order the actor runs.
Storage faults (kind ``storage``) hit a node's Nth next persist:

* ``fail``: the persist raises (a full disk, an I/O error); nothing of the
  batch is written and the node fail-stops: it restarts at once from what
  its storage holds, as the actor's supervisor restarts it;
* ``torn``: the process dies while writing: the early messages are out, the
  batch was not yet synced and is lost, the node is down;
* ``after_persist``: the process dies after the persist, before the late
  messages are sent or anything is applied.

After the fault phase the run heals everything and checks liveness: a
leader is elected and every replica converges to the same applied state
within a bounded number of ticks.

Sweep from the command line::

    python -m cluster_actors.testing.sim --nodes 5 --seeds 100000 --steps 2000
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.kv import Command, KVResult, KVStateMachine
from ..core.partitions import PARTITION_SHAPES, partition_groups
from ..core.raft import RaftNode, RaftOptions
from ..core.raft_progress import joint_committed_index
from ..core.raft_types import (
    ConfChange,
    ConfChangeType,
    Entry,
    HardState,
    Message,
    Ready,
    Snapshot,
)
from .invariants import InvariantViolation, RaftInvariants
from .linearizability import UNKNOWN, Operation
from .sim_network import NetworkFaults, SimNetwork

FAULT_KINDS = ("partition", "crash", "network", "reconfigure", "storage")
STORAGE_FAULTS = ("fail", "torn", "after_persist")
BUGS = ("forget_vote", "commit_old_term", "send_before_persist", "ignore_persist_error")


class StorageFailed(Exception):
    """A simulated persist error (a full disk): nothing of the batch was written."""


class ProcessDied(Exception):
    """A simulated crash in the middle of carrying out a Ready."""


@dataclass(slots=True)
class Storage:
    """What survives a crash: hard state, snapshot and log entries."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot = field(default_factory=Snapshot)
    entries: list[Entry] = field(default_factory=list)

    def persist(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            self.snapshot = ready.snapshot
            self.entries = [e for e in self.entries if e.index > ready.snapshot.index]
            if ready.restore_snapshot:
                self.entries = []
        if ready.entries:
            first = ready.entries[0].index
            self.entries = [e for e in self.entries if e.index < first]
            self.entries.extend(ready.entries)
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state

    def term_at(self, index: int) -> int:
        if index == self.snapshot.index:
            return self.snapshot.term
        offset = index - self.snapshot.index - 1
        if 0 <= offset < len(self.entries):
            return self.entries[offset].term
        return 0


@dataclass
class SimConfig:
    """One run's parameters. ``faults`` picks the fault kinds mixed in."""

    nodes: int = 5
    steps: int = 1000
    seed: int = 0
    clients: int = 3
    keys: int = 3
    faults: tuple[str, ...] = FAULT_KINDS
    fault_rate: float = 0.02
    liveness_ticks: int = 400
    compact_every: int = 64
    options: RaftOptions = field(default_factory=lambda: RaftOptions(
        election_tick=10, heartbeat_tick=2))
    bug: str | None = None  #: deliberately broken variant, for testing the checks


@dataclass
class RunResult:
    seed: int
    steps: int
    committed: int
    leaders: int
    crashes: int
    partitions: int
    reconfigurations: int
    operations: list[Operation]
    messages: int
    ticks_to_recover: int
    violation: InvariantViolation | None = None
    fail_stops: int = 0  #: persists that failed, each followed by a restart from storage

    @property
    def ok(self) -> bool:
        return self.violation is None


class SimNode:
    """A Raft node, its durable storage and its state machine."""

    def __init__(self, node_id: str, voters: list[str], sim: Simulation) -> None:
        self.id = node_id
        self.sim = sim
        self.storage = Storage()
        self.alive = True
        #: an armed storage fault: (kind from STORAGE_FAULTS, persists until it hits)
        self.storage_fault: tuple[str, int] | None = None
        self.fail_stops = 0
        self.raft = self._with_bug(RaftNode.bootstrap(
            node_id, voters, options=sim.config.options, rng=random.Random(sim.rng.random())))
        self.sm = KVStateMachine()

    def _with_bug(self, raft: RaftNode) -> RaftNode:
        if self.sim.config.bug == "commit_old_term":
            raft._maybe_commit = _commit_old_terms.__get__(raft)  # type: ignore[method-assign]
        return raft

    def restart(self) -> None:
        storage = self.storage
        hard_state = storage.hard_state
        if self.sim.config.bug == "forget_vote":
            hard_state = HardState(hard_state.term, None, hard_state.commit)
        try:
            raft = RaftNode(self.id, hard_state=hard_state, snapshot=storage.snapshot,
                            entries=list(storage.entries), options=self.sim.config.options,
                            rng=random.Random(self.sim.rng.random()))
        except ValueError as error:  # the real storage refuses such a file: StorageCorrupted
            raise InvariantViolation(
                "Durable Log", f"node {self.id} cannot restart from its storage: {error}"
            ) from None
        self.raft = self._with_bug(raft)
        self.sm = KVStateMachine()
        self.sm.restore(storage.snapshot.data)
        self.sim.invariants.on_restart(self.id, storage.snapshot.index)
        self.alive = True

    def handle_ready(self) -> None:
        ready = self.raft.ready()
        if ready.is_empty():
            return
        sim = self.sim
        try:
            if sim.config.bug == "send_before_persist":
                _send_everything_first(ready, self._send, self._persist, self._apply)
            else:
                ready.carry_out(self._send, self._persist, self._apply)
        except StorageFailed:
            self.fail_stops += 1
            self.restart()  # fail-stop: the supervisor restarts it from its storage
            return
        except ProcessDied:
            self.alive = False
            sim.crashes += 1
            return
        if (self.raft.applied - self.raft.log.snapshot.index >= sim.config.compact_every
                and self.sm.applied_index == self.raft.applied):
            self.raft.compact(self.sm.snapshot())  # persisted with the next Ready

    def _send(self, messages: list[Message]) -> None:
        for message in messages:
            self.sim.network.send(message, self.sim.now)

    def _storage_fault_due(self) -> str | None:
        if self.storage_fault is None:
            return None
        kind, countdown = self.storage_fault
        if countdown > 1:
            self.storage_fault = (kind, countdown - 1)
            return None
        self.storage_fault = None
        return kind

    def _persist(self, ready: Ready) -> None:
        fault = self._storage_fault_due()
        if fault == "fail":
            if self.sim.config.bug == "ignore_persist_error":
                return  # the bug: log the error and carry on as if the batch were on disk
            raise StorageFailed(f"persist failed on {self.id}")
        if fault == "torn":
            raise ProcessDied(f"{self.id} died before its write was synced")
        if ready.entries:
            prev = ready.entries[0].index - 1
            prev_term = (self.raft.log.term(prev) if prev >= self.raft.log.snapshot.index
                         else None)
            if prev_term is None:
                prev_term = self.storage.term_at(prev)
            self.sim.invariants.on_persist(self.id, ready.entries, prev_term)
        self.storage.persist(ready)
        if fault == "after_persist":
            raise ProcessDied(f"{self.id} died after its persist")

    def _apply(self, ready: Ready) -> None:
        sim = self.sim
        if ready.snapshot is not None and ready.restore_snapshot:
            self.sm.restore(ready.snapshot.data)
            sim.invariants.on_snapshot_restore(self.id, ready.snapshot.index)
        for entry in ready.committed_entries:
            result, duplicate = self.sm.apply(entry)
            sim.invariants.on_apply(self.id, entry, duplicate)
            if isinstance(entry.data, Command):
                sim.deliver_result(self.id, entry, result)
        for read in ready.read_states:
            sim.deliver_read(self.id, read.context)


def _send_everything_first(ready: Ready, send: Callable[[list[Message]], None],
                           persist: Callable[[Ready], None],
                           apply: Callable[[Ready], None]) -> None:
    """A broken order (bug ``send_before_persist``): votes and acknowledgements
    leave before what they vouch for is on disk."""
    if ready.messages:
        send(ready.messages)
    if ready.must_persist():
        persist(ready)
    apply(ready)


@dataclass
class _Pending:
    op: tuple[Any, ...]
    seq: int
    call_time: int
    node: str | None = None
    sent_at: int = 0
    attempts: int = 0


class SimClient:
    """Issues one command at a time; retries a timed-out command with the same
    sequence number at another node (sessions make that safe)."""

    TIMEOUT = 30

    def __init__(self, client_id: str, sim: Simulation) -> None:
        self.id = client_id
        self.sim = sim
        self.seq = 0
        self.acked_below = 1
        self.pending: _Pending | None = None
        self.leader_hint: str | None = None

    def act(self) -> None:
        sim = self.sim
        if self.pending is None:
            if sim.clients_paused or sim.rng.random() < 0.5:
                return
            self.seq += 1
            self.pending = _Pending(sim.random_op(), self.seq, sim.now)
        pending = self.pending
        if pending.node is not None and sim.now - pending.sent_at < self.TIMEOUT:
            return
        target = self.leader_hint or sim.rng.choice(sim.node_ids)
        node = sim.nodes[target]
        pending.attempts += 1
        pending.sent_at = sim.now
        pending.node = None
        if not node.alive or not sim.network.connected(self.id, target):
            self.leader_hint = None
            return
        raft = node.raft
        if not raft.is_leader:
            self.leader_hint = raft.lead if raft.lead != target else None
            return
        try:
            if pending.op[0] == "get":
                raft.read_index((self.id, pending.seq))
            else:
                raft.propose(Command(self.id, pending.seq, pending.op, self.acked_below))
        except Exception:  # a transfer in progress: retry later
            return
        pending.node = target
        node.handle_ready()

    def on_result(self, node: str, seq: int, output: Any) -> bool:
        """Deliver a result; True if it acknowledged the pending operation."""
        pending = self.pending
        if pending is not None and pending.seq == seq and pending.node == node:
            self.leader_hint = node
            self._finish(output, returned=True)
            return True
        return False

    def _finish(self, output: Any, returned: bool) -> None:
        pending = self.pending
        assert pending is not None
        self.sim.history.append(Operation(
            self.id, pending.op, pending.call_time,
            self.sim.now if returned else None, output))
        if returned:
            self.acked_below = pending.seq + 1
        self.pending = None


class Simulation:
    """One seeded run of ``config.nodes`` Raft nodes."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.now = 0
        self.node_ids = [f"n{i + 1}" for i in range(config.nodes)]
        network_faults = (NetworkFaults.draw(self.rng) if "network" in config.faults
                          else NetworkFaults())
        self.network = SimNetwork(random.Random(self.rng.random()), network_faults)
        self.invariants = RaftInvariants()
        self.nodes = {nid: SimNode(nid, self.node_ids, self) for nid in self.node_ids}
        self.clients = [SimClient(f"c{i + 1}", self) for i in range(config.clients)]
        self.history: list[Operation] = []
        self.clients_paused = False
        self.crashes = self.partitions = self.reconfigurations = 0
        self.leaders_seen: set[tuple[int, str]] = set()
        self._value_counter = 0
        for node in self.nodes.values():
            node.handle_ready()

    # ------------------------------------------------------------------ clients
    def random_op(self) -> tuple[Any, ...]:
        key = f"k{self.rng.randrange(self.config.keys)}"
        self._value_counter += 1
        value = self._value_counter
        kind = self.rng.choice(("put", "put", "get", "get", "cas", "delete"))
        if kind == "put":
            return ("put", key, value)
        if kind == "cas":
            return ("cas", key, self.rng.randrange(max(1, value - 5), value + 1), value)
        return (kind, key)

    def deliver_result(self, node: str, entry: Entry, result: Any) -> None:
        command = entry.data
        for client in self.clients:
            if client.id == command.client_id and client.on_result(
                    node, command.seq, _output_of(command.op, result)):
                self.invariants.on_acknowledged(node, entry)

    def deliver_read(self, node: str, context: Any) -> None:
        client_id, seq = context
        for client in self.clients:
            if client.id == client_id and client.pending and client.pending.seq == seq:
                kv = self.nodes[node].sm.get(client.pending.op[1])
                client.on_result(node, seq, kv.value if kv else None)

    # -------------------------------------------------------------------- steps
    def live_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    def step(self) -> None:
        self.now += 1
        inbox: dict[str, list[Message]] = {}
        for message in self.network.due(self.now):
            inbox.setdefault(message.dst, []).append(message)
        order = list(self.node_ids)
        self.rng.shuffle(order)
        for nid in order:
            node = self.nodes[nid]
            if not node.alive:
                continue
            for message in inbox.get(nid, ()):
                node.raft.step(message)
            node.raft.tick()
            node.handle_ready()
            if node.alive and node.raft.is_leader:
                self.leaders_seen.add((node.raft.term, nid))
        for client in self.clients:
            client.act()
        self.invariants.observe(n.raft for n in self.live_nodes())

    def inject_fault(self) -> None:
        kinds = [k for k in self.config.faults if k != "network"]
        if not kinds or self.rng.random() >= self.config.fault_rate:
            return
        kind = self.rng.choice(kinds)
        if kind == "partition":
            if self.network.groups is not None and self.rng.random() < 0.5:
                self.network.heal()
                return
            shape = self.rng.choice(PARTITION_SHAPES)
            self.network.partition(partition_groups(shape, self.node_ids, self.rng,
                                                    self.current_leader()))
            self.partitions += 1
        elif kind == "crash":
            down = [n for n in self.nodes.values() if not n.alive]
            if down and self.rng.random() < 0.6:
                self.rng.choice(down).restart()
            elif len(down) < len(self.nodes):
                victim = self.rng.choice(self.live_nodes())
                victim.alive = False
                self.crashes += 1
                if self.rng.random() < 0.3:
                    victim.restart()  # a bounce: the process restarts at once
        elif kind == "reconfigure":
            self._reconfigure()
        elif kind == "storage":
            victim = self.rng.choice(self.live_nodes() or list(self.nodes.values()))
            victim.storage_fault = (self.rng.choice(STORAGE_FAULTS), self.rng.randint(1, 4))

    def _reconfigure(self) -> None:
        leader = self.current_leader()
        if leader is None:
            return
        raft = self.nodes[leader].raft
        voters, learners = raft.conf.voters, raft.conf.learners
        if learners and self.rng.random() < 0.7:
            change = ConfChange(((ConfChangeType.ADD_VOTER, self.rng.choice(sorted(learners))),))
        elif len(voters) > 3:
            victim = self.rng.choice(sorted(voters - {leader}))
            change = ConfChange(((ConfChangeType.ADD_LEARNER, victim),))
        else:
            return
        try:
            raft.propose_conf_change(change)
        except Exception:
            return
        self.reconfigurations += 1
        self.nodes[leader].handle_ready()

    def current_leader(self) -> str | None:
        best: tuple[int, str] | None = None
        for node in self.live_nodes():
            if node.raft.is_leader and (best is None or node.raft.term > best[0]):
                best = (node.raft.term, node.id)
        return best[1] if best else None

    def heal_all(self) -> None:
        self.network.heal()
        self.network.faults = NetworkFaults()
        for node in self.nodes.values():
            node.storage_fault = None
            if not node.alive:
                node.restart()

    def converged(self) -> bool:
        leader = self.current_leader()
        if leader is None:
            return False
        raft = self.nodes[leader].raft
        if raft.commit != raft.log.last_index:
            return False
        target = self.nodes[leader].sm.state_hash()
        return all(n.raft.applied == raft.commit and n.sm.state_hash() == target
                   and n.raft.lead == leader
                   for n in self.nodes.values() if n.id in raft.conf.members)

    # ---------------------------------------------------------------------- run
    def run(self) -> RunResult:
        violation: InvariantViolation | None = None
        recovered_after = -1
        try:
            for _ in range(self.config.steps):
                self.inject_fault()
                self.step()
            self.heal_all()
            self.clients_paused = True
            for tick in range(1, self.config.liveness_ticks + 1):
                self.step()
                if self.converged() and all(c.pending is None for c in self.clients):
                    recovered_after = tick
                    break
            if recovered_after < 0:
                raise InvariantViolation(
                    "Liveness", f"no leader with converged replicas within "
                    f"{self.config.liveness_ticks} ticks after healing")
        except InvariantViolation as error:
            violation = error
        for client in self.clients:
            if client.pending is not None:
                client._finish(UNKNOWN, returned=False)
        committed = max((n.raft.commit for n in self.nodes.values()), default=0)
        return RunResult(self.config.seed, self.now, committed, len(self.leaders_seen),
                         self.crashes, self.partitions, self.reconfigurations, self.history,
                         self.network.sent, recovered_after, violation,
                         sum(n.fail_stops for n in self.nodes.values()))


def _output_of(op: tuple[Any, ...], result: Any) -> Any:
    """The linearizability model's view of a command's result."""
    if not isinstance(result, KVResult):
        return UNKNOWN
    if op[0] in ("cas", "delete"):
        return result.ok
    if op[0] == "get":
        return result.value
    return None


def _commit_old_terms(self: RaftNode) -> bool:
    """A broken commit rule: counts replicas of old-term entries as committed
    (the bug Figure 8 of the Raft paper warns about)."""
    index = joint_committed_index(self.conf, {p: pr.match for p, pr in self.progress.items()})
    if index <= self.commit:
        return False
    self.commit = index
    self._append_pending = True
    return True


def run_seed(seed: int, **overrides: Any) -> RunResult:
    """Run one seed; ``overrides`` set :class:`SimConfig` fields."""
    return Simulation(SimConfig(seed=seed, **overrides)).run()


def sweep(seeds: Iterable[int], on_result: Callable[[RunResult], None] | None = None,
          **overrides: Any) -> list[RunResult]:
    """Run many seeds; returns the failing results."""
    failures = []
    for seed in seeds:
        result = run_seed(seed, **overrides)
        if on_result is not None:
            on_result(result)
        if not result.ok:
            failures.append(result)
    return failures


if __name__ == "__main__":
    import sys

    from cluster_actors.cli.sim import main

    sys.exit(main())
