"""Raft under random schedules: Hypothesis drives 3- and 5-node clusters of
pure RaftNodes through ticks, deliveries, losses, duplicates, reordering,
partitions, crash-restarts from persisted storage, proposals (and retries),
reads, compactions, reconfigurations, leadership transfers and pauses (a
node that neither ticks nor receives for a while, like a stalled process).

Every node's Ready is carried out as SimNode.handle_ready does and fed to
:class:`RaftInvariants`; storage must mirror the node after each Ready and
hold whatever a message vouches for before it is sent; after every rule the per-step invariants are checked,
plus: at most one leader per term, terms never go back (even across
restarts), and a ReadIndex read never returns an index below a commit that
was known anywhere when the read was requested. When a schedule ends the
network heals, every node comes back, and the cluster must converge.
"""

from __future__ import annotations

import contextlib
import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cluster_actors.core.kv import Command, KVStateMachine
from cluster_actors.core.raft import ProposalDropped, RaftNode, RaftOptions
from cluster_actors.core.raft_types import ConfChange, ConfChangeType, Message
from cluster_actors.testing.invariants import RaftInvariants
from cluster_actors.testing.sim import Storage
from tests.unit.test_raft import check_drained_and_durable

OPTIONS = RaftOptions(election_tick=4, heartbeat_tick=1)
NODE = st.integers(min_value=0, max_value=4)  #: a node, as an index modulo the cluster size
PICK = st.integers(min_value=0, max_value=1 << 16)
THEN = st.integers(0, 3)


class RaftCluster(RuleBasedStateMachine):
    ids: tuple[str, ...] = ("n1", "n2", "n3")

    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(0)
        self.checker = RaftInvariants()
        self.storage: dict[str, Storage] = {}
        self.sms: dict[str, KVStateMachine] = {}
        self.nodes: dict[str, RaftNode] = {}
        self.alive: set[str] = set(self.ids)
        self.in_flight: list[Message] = []
        self.group: frozenset[str] | None = None  # one side of a partition
        self.leader_of_term: dict[int, str] = {}
        self.max_term: dict[str, int] = {}
        self.read_floor: dict[int, int] = {}
        self.next_read = 0
        self.next_seq = 0
        self.last_command: Command | None = None
        for nid in self.ids:
            self.storage[nid] = Storage()
            self.sms[nid] = KVStateMachine()
            self.nodes[nid] = RaftNode.bootstrap(nid, self.ids, options=OPTIONS,
                                                 rng=random.Random(self.rng.random()))
            self.handle_ready(nid)

    # ------------------------------------------------------------ plumbing
    def handle_ready(self, nid: str) -> None:
        """Persist, send, restore, apply: exactly as SimNode.handle_ready."""
        raft, storage, sm = self.nodes[nid], self.storage[nid], self.sms[nid]
        ready = raft.ready()
        if ready.is_empty():
            return
        if ready.entries:
            prev = ready.entries[0].index - 1
            prev_term = raft.log.term(prev) if prev >= raft.log.snapshot.index else None
            if prev_term is None:
                prev_term = storage.term_at(prev)
            self.checker.on_persist(nid, ready.entries, prev_term)
        storage.persist(ready)
        check_drained_and_durable(raft, storage, ready)
        self.in_flight.extend(ready.messages)
        if ready.snapshot is not None and ready.restore_snapshot:
            sm.restore(ready.snapshot.data)
            self.checker.on_snapshot_restore(nid, ready.snapshot.index)
        for entry in ready.committed_entries:
            _result, duplicate = sm.apply(entry)
            self.checker.on_apply(nid, entry, duplicate)
        for read in ready.read_states:
            floor = self.read_floor.pop(read.context)
            assert read.index >= floor, (
                f"{nid} served read {read.context} at index {read.index}, but index "
                f"{floor} was committed before the read was requested")

    def connected(self, a: str, b: str) -> bool:
        return self.group is None or ((a in self.group) == (b in self.group))

    def leader(self) -> str | None:
        best: RaftNode | None = None
        for nid in self.alive:
            raft = self.nodes[nid]
            if raft.is_leader and (best is None or raft.term > best.term):
                best = raft
        return best.id if best else None

    def deliver(self, msg: Message) -> None:
        if msg.dst in self.alive and self.connected(msg.src, msg.dst):
            self.nodes[msg.dst].step(msg)
            self.handle_ready(msg.dst)

    def node(self, index: int) -> str:
        return self.ids[index % len(self.ids)]

    def some_leader(self, stale: bool) -> str | None:
        """The newest live leader, or with ``stale`` the oldest one (deposed,
        but not aware of it yet) when there are several."""
        leaders = sorted((self.nodes[n].term, n) for n in self.alive if self.nodes[n].is_leader)
        if not leaders:
            return None
        return leaders[0][1] if stale else leaders[-1][1]

    def rounds(self, times: int, paused: frozenset[str] = frozenset()) -> None:
        for _ in range(times):
            self.round(paused)

    def round(self, paused: frozenset[str] = frozenset()) -> None:
        """Every live node ticks once, then everything in flight is delivered;
        ``paused`` nodes (a long GC pause, a stopped VM) neither tick nor
        receive, and their messages wait in flight."""
        for nid in sorted(self.alive - paused):
            self.nodes[nid].tick()
            self.handle_ready(nid)
        batch, self.in_flight = self.in_flight, []
        for msg in batch:
            if msg.dst in paused:
                self.in_flight.append(msg)
            else:
                self.deliver(msg)

    def restart(self, nid: str) -> None:
        if nid in self.alive:
            return
        stored = self.storage[nid]
        self.nodes[nid] = RaftNode(nid, hard_state=stored.hard_state, snapshot=stored.snapshot,
                                   entries=list(stored.entries), options=OPTIONS,
                                   rng=random.Random(self.rng.random()))
        self.sms[nid] = KVStateMachine()
        self.sms[nid].restore(stored.snapshot.data)
        self.checker.on_restart(nid, stored.snapshot.index)
        self.alive.add(nid)
        self.handle_ready(nid)

    # --------------------------------------------------------------- rules
    # Most rules end with ``then`` rounds of time passing, so that no subset of
    # rules (Hypothesis disables some per run) starves the cluster of progress.
    @initialize(warmup=st.integers(0, 30))
    def warm_up(self, warmup: int) -> None:
        """Most schedules start from an elected leader; some from scratch."""
        self.rounds(warmup)

    @rule(times=st.integers(1, 12), pause=st.none() | NODE)
    def run_rounds(self, times: int, pause: int | None) -> None:
        """Time passes; perhaps with one node paused."""
        self.rounds(times, frozenset() if pause is None else frozenset({self.node(pause)}))

    @rule(times=st.integers(6, 14))
    def pause_leader(self, times: int) -> None:
        """The leader stalls long enough for the others to elect a successor
        (it wakes up believing it still leads)."""
        leader = self.leader()
        self.rounds(times, frozenset({leader} if leader else ()))

    @rule(node=NODE, times=st.integers(1, 8), then=THEN)
    def tick(self, node: int, times: int, then: int) -> None:
        nid = self.node(node)
        if nid in self.alive:
            for _ in range(times):
                self.nodes[nid].tick()
                self.handle_ready(nid)
        self.rounds(then)

    @precondition(lambda self: self.in_flight)
    @rule(pick=PICK)
    def deliver_one(self, pick: int) -> None:
        """Deliver any message in flight first: reordering."""
        self.deliver(self.in_flight.pop(pick % len(self.in_flight)))

    @precondition(lambda self: self.in_flight)
    @rule(pick=PICK, copy=st.booleans())
    def lose_or_duplicate(self, pick: int, copy: bool) -> None:
        index = pick % len(self.in_flight)
        if copy:
            self.in_flight.append(self.in_flight[index])
        else:
            self.in_flight.pop(index)

    @rule(side=st.none() | st.sets(NODE, min_size=1, max_size=2), then=THEN)
    def partition_or_heal(self, side: set[int] | None, then: int) -> None:
        self.group = frozenset(self.node(i) for i in side) if side else None
        self.rounds(then)

    @rule(node=NODE, then=THEN)
    def crash_or_restart(self, node: int, then: int) -> None:
        nid = self.node(node)
        if nid in self.alive:
            self.alive.discard(nid)
        else:
            self.restart(nid)
        self.rounds(then)

    @rule(values=st.lists(st.integers(0, 9), min_size=1, max_size=4), retry=st.booleans(),
          stale=st.booleans(), then=THEN)
    def propose(self, values: list[int], retry: bool, stale: bool, then: int) -> None:
        """Propose commands to a leader; a retry re-sends the last command."""
        leader = self.some_leader(stale)
        if leader is not None:
            commands = []
            if retry and self.last_command is not None:
                commands.append(self.last_command)
            for value in values:
                self.next_seq += 1
                commands.append(Command("client", self.next_seq,
                                        ("put", "ab"[value % 2], value),
                                        ack_below=max(0, self.next_seq - 3)))
            try:
                self.nodes[leader].propose_batch(commands)
                self.last_command = commands[-1]
            except ProposalDropped:
                pass
            self.handle_ready(leader)
        self.rounds(then)

    @rule(stale=st.booleans(), then=THEN)
    def read(self, stale: bool, then: int) -> None:
        leader = self.some_leader(stale)
        if leader is not None:
            self.next_read += 1
            self.read_floor[self.next_read] = max(
                self.checker.max_committed, *(self.nodes[n].commit for n in self.ids))
            self.nodes[leader].read_index(self.next_read)
            self.handle_ready(leader)
        self.rounds(then)

    @rule(node=NODE, then=THEN)
    def compact(self, node: int, then: int) -> None:
        nid = self.node(node)
        raft = self.nodes[nid]
        if (nid in self.alive and raft.applied > raft.log.snapshot.index
                and self.sms[nid].applied_index == raft.applied):
            raft.compact(self.sms[nid].snapshot())
            self.handle_ready(nid)
        self.rounds(then)

    @rule(node=NODE, then=THEN)
    def reconfigure(self, node: int, then: int) -> None:
        """Demote a follower to learner while all vote; promote learners back."""
        nid = self.node(node)
        leader = self.leader()
        if leader is not None and nid != leader:
            raft = self.nodes[leader]
            change = None
            if nid in raft.conf.learners:
                change = ConfChange(((ConfChangeType.ADD_VOTER, nid),))
            elif len(raft.conf.voters) == len(self.ids) and not raft.conf.joint:
                change = ConfChange(((ConfChangeType.ADD_LEARNER, nid),))
            if change is not None:
                with contextlib.suppress(ProposalDropped):
                    raft.propose_conf_change(change)
                self.handle_ready(leader)
        self.rounds(then)

    @rule(node=NODE, then=THEN)
    def transfer(self, node: int, then: int) -> None:
        nid = self.node(node)
        leader = self.leader()
        if leader is not None and nid in self.nodes[leader].conf.voters:
            self.nodes[leader].transfer_leadership(nid)
            self.handle_ready(leader)
        self.rounds(then)

    # ----------------------------------------------------------- invariants
    @invariant()
    def safety(self) -> None:
        live = [self.nodes[n] for n in sorted(self.alive)]
        self.checker.observe(live)
        for raft in live:
            assert raft.term >= self.max_term.get(raft.id, 0), f"{raft.id} term went back"
            self.max_term[raft.id] = raft.term
            if raft.is_leader:
                holder = self.leader_of_term.setdefault(raft.term, raft.id)
                assert holder == raft.id, f"{holder} and {raft.id} both lead term {raft.term}"
            assert raft.applied <= raft.commit <= raft.log.last_index

    def teardown(self) -> None:
        """Heal, bring everyone back, and require convergence (liveness)."""
        self.group = None
        for nid in self.ids:
            self.restart(nid)
        for _ in range(200):
            self.round()
            self.safety()
            if self.converged():
                return
        raise AssertionError("no leader with converged replicas within 200 rounds: "
                             + repr({n: self.nodes[n].status() for n in self.ids}))

    def converged(self) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        raft = self.nodes[leader]
        if raft.commit != raft.log.last_index:
            return False
        target = self.sms[leader].state_hash()
        return all(self.nodes[n].applied == raft.commit and self.sms[n].state_hash() == target
                   for n in self.ids)


class FiveNodeRaftCluster(RaftCluster):
    ids = ("n1", "n2", "n3", "n4", "n5")


RaftCluster.TestCase.settings = settings(max_examples=200, stateful_step_count=60,
                                         deadline=None)
FiveNodeRaftCluster.TestCase.settings = settings(max_examples=200, stateful_step_count=60,
                                                 deadline=None)
TestRaftCluster = RaftCluster.TestCase
TestFiveNodeRaftCluster = FiveNodeRaftCluster.TestCase
