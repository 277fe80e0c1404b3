"""Scenario tests of the pure Raft core, driven by a small in-test cluster.

Every node's Ready is carried out in the documented order (persist into a
:class:`~cluster_actors.testing.sim.Storage`, then send, then restore/apply
into a :class:`KVStateMachine`), and every step is checked by the safety
invariants of :class:`RaftInvariants`, so each scenario also asserts Election
Safety, Log Matching, Leader Completeness and State Machine Safety.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from cluster_actors.core.kv import Command, KVStateMachine
from cluster_actors.core.raft import ProposalDropped, RaftNode, RaftOptions
from cluster_actors.core.raft_progress import joint_committed_index
from cluster_actors.core.raft_types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
)
from cluster_actors.errors import ClusterError, NotLeader
from cluster_actors.testing.invariants import RaftInvariants
from cluster_actors.testing.sim import Storage

MT = MessageType
E = 10  # the default election_tick

#: a hook that sees every message about to be delivered and returns the
#: message to deliver (possibly changed) or None to lose it
Filter = Callable[[Message], "Message | None"]


class Net:
    """A cluster of RaftNodes with a FIFO network that can be cut and filtered."""

    def __init__(self, ids: Iterable[str], *, options: RaftOptions | None = None,
                 seed: int = 0) -> None:
        ids = list(ids)
        self.options = options or RaftOptions()
        self.rng = random.Random(seed)
        self.nodes: dict[str, RaftNode] = {}
        self.storage: dict[str, Storage] = {}
        self.sms: dict[str, KVStateMachine] = {}
        self.reads: dict[str, list[ReadState]] = {}
        self.restores: dict[str, int] = {}
        self.confs: dict[str, list[ConfState]] = {}
        self.queue: deque[Message] = deque()
        self.sent: list[Message] = []
        self.blocked: set[tuple[str, str]] = set()
        self.down: set[str] = set()
        self.filter: Filter | None = None
        self.invariants = RaftInvariants()
        self.patch: Callable[[RaftNode], None] | None = None
        for nid in ids:
            self._install(nid, RaftNode.bootstrap(nid, ids, options=self.options,
                                                  rng=random.Random(self.rng.random())))

    # ------------------------------------------------------------- nodes
    def _install(self, nid: str, raft: RaftNode) -> None:
        self.nodes[nid] = raft
        self.storage[nid] = Storage()
        self.sms[nid] = KVStateMachine()
        self.reads.setdefault(nid, [])
        self.restores.setdefault(nid, 0)
        self.confs.setdefault(nid, [])
        self.process(nid)

    def add_node(self, nid: str) -> RaftNode:
        """A brand-new node with empty storage that is about to join."""
        self._install(nid, RaftNode(nid, options=self.options,
                                    rng=random.Random(self.rng.random())))
        return self.nodes[nid]

    def crash(self, nid: str) -> None:
        self.down.add(nid)

    def restart(self, nid: str) -> RaftNode:
        st = self.storage[nid]
        raft = RaftNode(nid, hard_state=st.hard_state, snapshot=st.snapshot,
                        entries=list(st.entries), options=self.options,
                        rng=random.Random(self.rng.random()))
        if self.patch is not None:
            self.patch(raft)
        self.nodes[nid] = raft
        self.sms[nid] = KVStateMachine()
        self.sms[nid].restore(st.snapshot.data)
        self.invariants.on_restart(nid, st.snapshot.index)
        self.down.discard(nid)
        self.process(nid)
        return raft

    def live(self) -> list[RaftNode]:
        return [r for nid, r in self.nodes.items() if nid not in self.down]

    # ------------------------------------------------------------ driving
    def process(self, nid: str) -> Ready:
        """Carry out one Ready exactly as SimNode.handle_ready does."""
        raft, storage, sm = self.nodes[nid], self.storage[nid], self.sms[nid]
        ready = raft.ready()
        if ready.entries:
            prev = ready.entries[0].index - 1
            prev_term = raft.log.term(prev) if prev >= raft.log.snapshot.index else None
            if prev_term is None:
                prev_term = storage.term_at(prev)
            self.invariants.on_persist(nid, ready.entries, prev_term)
        storage.persist(ready)
        check_drained_and_durable(raft, storage, ready)
        self.queue.extend(ready.messages)
        self.sent.extend(ready.messages)
        if ready.snapshot is not None and ready.restore_snapshot:
            sm.restore(ready.snapshot.data)
            self.restores[nid] += 1
            self.invariants.on_snapshot_restore(nid, ready.snapshot.index)
        for entry in ready.committed_entries:
            _result, duplicate = sm.apply(entry)
            self.invariants.on_apply(nid, entry, duplicate)
        self.reads[nid].extend(ready.read_states)
        if not self.confs[nid] or self.confs[nid][-1] != raft.conf:
            self.confs[nid].append(raft.conf)
        self.invariants.observe(self.live())
        return ready

    def deliverable(self, msg: Message) -> Message | None:
        if (msg.dst not in self.nodes or msg.dst in self.down or msg.src in self.down
                or (msg.src, msg.dst) in self.blocked):
            return None
        return self.filter(msg) if self.filter is not None else msg

    def deliver_all(self, limit: int = 20_000) -> int:
        """Deliver until the network is quiet; returns the messages delivered."""
        delivered = 0
        while self.queue:
            msg = self.deliverable(self.queue.popleft())
            if msg is None:
                continue
            self.nodes[msg.dst].step(msg)
            self.process(msg.dst)
            delivered += 1
            assert delivered < limit, "the network never went quiet"
        return delivered

    def tick(self, *ids: str) -> None:
        for nid in ids or list(self.nodes):
            if nid not in self.down:
                self.nodes[nid].tick()
                self.process(nid)

    def run(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.tick()
            self.deliver_all()

    def force_leader(self, nid: str) -> RaftNode:
        raft = self.nodes[nid]
        raft.force_election()
        self.process(nid)
        self.deliver_all()
        assert raft.is_leader
        self.run(1)
        return raft

    def leader(self) -> str | None:
        best: RaftNode | None = None
        for raft in self.live():
            if raft.is_leader and (best is None or raft.term > best.term):
                best = raft
        return best.id if best else None

    def run_until(self, done: Callable[[], bool], max_ticks: int = 300) -> int:
        for tick in range(1, max_ticks + 1):
            self.run(1)
            if done():
                return tick
        raise AssertionError(f"condition not reached within {max_ticks} ticks")

    def propose(self, nid: str, *commands: Command) -> list[int]:
        indexes = self.nodes[nid].propose_batch(list(commands))
        self.process(nid)
        return indexes

    # ------------------------------------------------------------ network
    def cut(self, a: str, b: str) -> None:
        self.blocked |= {(a, b), (b, a)}

    def isolate(self, nid: str) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut(nid, other)

    def heal(self) -> None:
        self.blocked.clear()

    def sent_of(self, kind: MessageType, src: str | None = None) -> list[Message]:
        return [m for m in self.sent if m.type is kind and (src is None or m.src == src)]


def check_drained_and_durable(raft: RaftNode, storage: Storage, ready: Ready) -> None:
    """After a Ready is persisted, storage mirrors the node exactly, and every
    message that vouches for durable state finds it in storage."""
    log = raft.log
    assert storage.hard_state == HardState(raft.term, raft.vote, raft.commit)
    assert storage.snapshot == log.snapshot
    assert storage.entries == log.entries_from(log.first_index)
    stored_last = storage.snapshot.index + len(storage.entries)
    for msg in ready.messages:
        if msg.type is MT.VOTE_RESP and not msg.reject:
            assert (storage.hard_state.term, storage.hard_state.vote) == (msg.term, msg.dst)
        if msg.type is MT.APPEND_RESP and not msg.reject:
            assert stored_last >= msg.index, (msg, stored_last)


def put(key: str, value: Any, client: str = "c", seq: int | None = None) -> Command:
    put.counter += 1  # type: ignore[attr-defined]
    return Command(client, put.counter if seq is None else seq,  # type: ignore[attr-defined]
                   ("put", key, value))


put.counter = 0  # type: ignore[attr-defined]


def value(net: Net, nid: str, key: str) -> Any:
    kv = net.sms[nid].get(key)
    return kv.value if kv else None


def three(options: RaftOptions | None = None) -> Net:
    return Net(["n1", "n2", "n3"], options=options)


def conf_change(kind: ConfChangeType, node: str) -> ConfChange:
    return ConfChange(((kind, node),))


# ======================================================================= basics
def test_single_node_elects_itself_after_the_election_timeout_and_commits_at_once() -> None:
    net = Net(["n1"])
    raft = net.nodes["n1"]
    bootstrap = net.storage["n1"].entries[0]  # the initial configuration is entry 1
    assert (bootstrap.index, bootstrap.kind) == (1, EntryKind.CONFIG)
    assert raft.conf.voters == {"n1"}
    for _ in range(E - 1):
        net.tick()
        assert raft.role is Role.FOLLOWER  # never before the election timeout
    ticks = E - 1
    while not raft.is_leader:
        net.tick()
        ticks += 1
        assert ticks < 2 * E
    assert raft.term == 1 and raft.lead == "n1"
    assert raft.commit == raft.log.last_index == 2  # its no-op, committed alone
    assert net.storage["n1"].hard_state == HardState(1, "n1", 2)
    [index] = net.propose("n1", put("k", "v"))
    assert raft.commit == raft.applied == index == 3
    assert value(net, "n1", "k") == "v"


@pytest.mark.parametrize("kwargs", [
    {"election_tick": 1, "heartbeat_tick": 1},
    {"election_tick": 3, "heartbeat_tick": 5},
    {"election_tick": 10, "heartbeat_tick": 0},
    {"max_entries_per_message": 0},
    {"max_inflight": 0},
])
def test_raft_options_reject_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RaftOptions(**kwargs)


def test_three_nodes_elect_one_leader_that_replicates_to_all() -> None:
    net = three()
    net.run_until(lambda: net.leader() is not None)
    net.run(2)
    leader = net.leader()
    assert leader is not None
    term = net.nodes[leader].term
    assert [r.id for r in net.live() if r.is_leader] == [leader]
    assert all(r.term == term and r.lead == leader for r in net.live())
    net.propose(leader, *(put(f"k{i}", i) for i in range(5)))
    net.deliver_all()
    net.run(1)
    last = net.nodes[leader].log.last_index
    for nid, raft in net.nodes.items():
        assert raft.commit == raft.applied == raft.log.last_index == last, nid
        assert net.sms[nid].state_hash() == net.sms[leader].state_hash()
        assert value(net, nid, "k4") == 4


def test_proposing_to_a_follower_raises_not_leader_naming_the_leader() -> None:
    net = three()
    with pytest.raises(NotLeader) as before:
        net.nodes["n2"].propose(put("k", 1))
    assert before.value.leader_id is None and before.value.code == "not_leader"
    net.force_leader("n3")
    for follower in ("n1", "n2"):
        raft = net.nodes[follower]
        calls: list[Callable[[], Any]] = [
            lambda r=raft: r.propose(put("k", 1)),
            lambda r=raft: r.propose_batch([put("k", 1)]),
            lambda r=raft: r.read_index("ctx"),
            lambda r=raft: r.transfer_leadership("n1"),
            lambda r=raft: r.step_down(),
            lambda r=raft: r.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n1")),
        ]
        for call in calls:
            with pytest.raises(NotLeader) as info:
                call()
            assert info.value.leader_id == net.leader() == "n3"
            assert info.value.node_id == follower
    assert net.nodes["n1"].log.last_index == net.nodes["n3"].log.last_index


# ============================================================ commit by quorum
def test_leader_cut_off_from_both_followers_cannot_commit() -> None:
    net = three()
    leader = net.force_leader("n1")
    before = leader.commit
    net.isolate("n1")
    [index] = net.propose("n1", put("lost", 1))
    for _ in range(E - 1):  # short of the CheckQuorum step-down
        net.run(1)
        assert leader.is_leader and leader.commit == before < index
    assert value(net, "n1", "lost") is None
    # the majority elects a leader of its own and commits there
    net.run_until(lambda: net.leader() in ("n2", "n3"))
    other = net.leader()
    assert other is not None
    [won] = net.propose(other, put("won", 2))
    net.deliver_all()
    assert net.nodes[other].commit >= won
    net.heal()
    net.run_until(lambda: net.nodes["n1"].applied == net.nodes[other].commit)
    assert value(net, "n1", "won") == 2 and value(net, "n1", "lost") is None
    assert all(value(net, nid, "lost") is None for nid in net.nodes)


def test_leader_with_one_of_two_followers_commits() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.isolate("n3")
    [index] = net.propose("n1", put("k", 1))
    net.deliver_all()
    assert leader.commit == index
    net.run(1)  # followers learn the commit index with the next append or heartbeat
    assert value(net, "n2", "k") == 1 and value(net, "n3", "k") is None


def _withhold(index: int, src: str, net: Net) -> Filter:
    """Lose every append from ``src`` that would give its receiver entry ``index``.

    An append whose previous entry the receiver lacks is rejected whatever it
    carries, so it is delivered without entries (the answer is the same); one
    that would be accepted is lost.
    """
    def withhold(msg: Message) -> Message | None:
        if msg.type is not MT.APPEND or msg.src != src or not any(
                e.index >= index for e in msg.entries):
            return msg
        if net.nodes[msg.dst].log.matches(msg.index, msg.log_term):
            return None
        return dataclasses.replace(msg, entries=())
    return withhold


def _campaign_until_leader(net: Net, nid: str, tries: int = 3) -> RaftNode:
    raft = net.nodes[nid]
    for _ in range(tries):
        raft.force_election()
        net.process(nid)
        net.deliver_all()
        if raft.is_leader:
            return raft
    raise AssertionError(f"{nid} did not win an election in {tries} tries")


def test_commit_waits_for_an_entry_of_the_leaders_own_term() -> None:
    net = three(RaftOptions(max_entries_per_message=1))
    net.force_leader("n1")
    net.blocked |= {("n1", "n3"), ("n2", "n1")}
    [old] = net.propose("n1", put("x", 1))  # term 1, reaches n2 only
    net.deliver_all()
    assert net.nodes["n2"].log.last_index == old and net.nodes["n1"].commit < old
    net.crash("n1")
    net.heal()
    net.filter = _withhold(old + 1, "n2", net)  # n2's no-op never arrives anywhere
    n2 = net.force_leader("n2")
    assert n2.term == 2 and n2.log.term(old) == 1 and n2.log.term(old + 1) == 2
    net.run(3)
    # the old-term entry is stored by a majority (n2, n3) ...
    assert n2.progress["n3"].match == old and net.nodes["n3"].log.term(old) == 1
    # ... but only an entry of the current term may be counted
    assert n2.commit < old and all(value(net, n, "x") is None for n in ("n2", "n3"))
    net.filter = None
    net.run(2)
    assert n2.commit == n2.log.last_index == old + 1
    assert value(net, "n2", "x") == value(net, "n3", "x") == 1


def _commit_counting_old_terms(self: RaftNode) -> bool:
    """The commit rule Figure 8 of the Raft paper warns against."""
    match = {peer: pr.match for peer, pr in self.progress.items()}
    index = joint_committed_index(self.conf, match)
    if index <= self.commit:
        return False
    self.commit = index
    self._append_pending = True
    return True


def _figure_8(broken: bool) -> Net:
    """Raft paper, Figure 8, with n1..n5 for S1..S5 (terms shifted by one)."""
    net = Net([f"n{i}" for i in range(1, 6)], options=RaftOptions(max_entries_per_message=1))
    net.force_leader("n1")
    # (a) n1 (term 1) replicates entry 3 to n2 only (entry 1 is the bootstrap configuration)
    net.blocked |= {("n1", "n3"), ("n1", "n4"), ("n1", "n5"), ("n2", "n1")}
    [two] = net.propose("n1", put("a", "from term 1"))
    net.deliver_all()
    assert two == 3 and net.nodes["n2"].log.term(3) == 1
    # (b) n1 crashes; n5 wins term 2 with n3, n4 and writes entry 3 locally only
    net.crash("n1")
    net.heal()
    net.filter = lambda m: None if m.src == "n5" and m.type in (MT.APPEND, MT.HEARTBEAT) else m
    n5 = net.nodes["n5"]
    n5.force_election()
    net.process("n5")
    net.deliver_all()
    assert n5.is_leader and n5.term == 2 and n5.log.term(3) == 2
    # (c) n5 crashes; n1 restarts and wins term 3; entry 3 of term 1 reaches n3 and
    # n4 (a majority holds it) while n1's own no-op at 4 reaches nobody
    net.crash("n5")
    if broken:
        net.patch = lambda raft: setattr(raft, "_maybe_commit",
                                         _commit_counting_old_terms.__get__(raft))
    net.restart("n1")
    net.patch = None
    net.filter = _withhold(4, "n1", net)
    n1 = _campaign_until_leader(net, "n1")
    assert n1.term == 3
    assert all(net.nodes[n].log.term(3) == 1 for n in ("n1", "n2", "n3", "n4"))
    # (d) n1 crashes; n5 wins term 4 with n2, n3, n4 and overwrites entry 3
    net.crash("n1")
    net.filter = None
    net.restart("n5")
    n5 = _campaign_until_leader(net, "n5")
    net.run(2)
    assert n5.is_leader and n5.term == 4
    return net


def test_figure_8_an_old_term_entry_on_a_majority_is_not_committed() -> None:
    net = _figure_8(broken=False)
    for nid in ("n2", "n3", "n4", "n5"):
        raft = net.nodes[nid]
        assert raft.log.term(3) == 2 and raft.commit == raft.log.last_index == 4
        assert value(net, nid, "a") is None


def test_figure_8_scenario_detects_the_broken_commit_rule() -> None:
    """The scenario above is sharp: counting old-term replicas loses a commit."""
    with pytest.raises(AssertionError):
        _figure_8(broken=True)


def test_replaying_every_message_late_and_reordered_changes_nothing() -> None:
    net = three()
    net.force_leader("n1")
    for i in range(3):
        net.propose("n1", put(f"k{i}", i))
        net.run(1)
    net.isolate("n3")
    net.propose("n1", put("k", "while n3 was away"))
    net.run(2)
    net.heal()
    net.run(2)
    before = {nid: (r.term, r.commit, r.log.last_index, net.sms[nid].state_hash())
              for nid, r in net.nodes.items()}
    history = list(net.sent)
    for order in (reversed(history), random.Random(7).sample(history, len(history))):
        net.queue.extend(order)
        net.deliver_all()
        after = {nid: (r.term, r.commit, r.log.last_index, net.sms[nid].state_hash())
                 for nid, r in net.nodes.items()}
        assert after == before
    assert net.leader() == "n1"


# ==================================================================== batching
def test_propose_batch_travels_in_few_large_appends() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.run(1)
    sent_before = len(net.sent)
    first, *_rest = indexes = net.propose("n1", *(put(f"k{i % 7}", i) for i in range(1000)))
    assert indexes == list(range(first, first + 1000))
    appends = [m for m in net.sent[sent_before:] if m.type is MT.APPEND]
    assert sorted(m.dst for m in appends) == ["n2", "n3"]
    assert all(len(m.entries) == 1000 for m in appends)
    net.deliver_all()
    all_appends = [m for m in net.sent[sent_before:] if m.type is MT.APPEND]
    # one large append each, then at most one empty append carrying the commit
    assert len(all_appends) <= 4
    assert sum(len(m.entries) for m in all_appends) == 2000  # nothing sent twice
    net.run(1)
    assert leader.commit == indexes[-1]
    assert all(r.applied == indexes[-1] for r in net.live())


def test_batches_are_split_at_max_entries_per_message() -> None:
    net = three(RaftOptions(max_entries_per_message=100))
    net.force_leader("n1")
    net.run(1)
    sent_before = len(net.sent)
    net.propose("n1", *(put("k", i) for i in range(1000)))
    appends = [m for m in net.sent[sent_before:] if m.type is MT.APPEND]
    assert len(appends) == 20 and {len(m.entries) for m in appends} == {100}
    for dst in ("n2", "n3"):  # pipelined: consecutive, gap-free windows
        starts = [m.entries[0].index for m in appends if m.dst == dst]
        assert starts == list(range(starts[0], starts[0] + 1000, 100))
    net.deliver_all()
    net.run(1)
    assert all(value(net, n, "k") == 999 for n in net.nodes)


# ===================================================================== PreVote
def test_prevote_rejoining_follower_does_not_bump_the_term() -> None:
    net = three(RaftOptions(pre_vote=True, check_quorum=True))
    leader = net.force_leader("n1")
    term = leader.term
    net.isolate("n3")
    for _ in range(5 * E):
        net.run(1)
        assert net.nodes["n3"].term == term
    assert net.sent_of(MT.PRE_VOTE, "n3") and not net.sent_of(MT.VOTE, "n3")
    net.heal()
    net.run(3 * E)
    assert leader.is_leader and {r.term for r in net.live()} == {term}
    assert net.nodes["n3"].lead == "n1"


def test_a_granted_pre_vote_does_not_renew_the_old_leaders_lease() -> None:
    """Seed 119 of the long sweep: followers that granted a pre-vote reset their
    timer but kept their leader, so the lease was renewed and the real vote that
    followed was ignored, round after round (no leader after healing)."""
    follower = RaftNode.bootstrap("n2", ["n1", "n2", "n3"], options=RaftOptions(),
                                  rng=random.Random(1))
    follower.step(Message(MT.HEARTBEAT, "n3", "n2", 1))
    follower.ready()
    assert follower.lead == "n3"
    follower.election_elapsed = E  # nothing heard from n3 for a whole timeout
    last = follower.log.last_index, follower.log.last_term
    follower.step(Message(MT.PRE_VOTE, "n1", "n2", 2, index=last[0], log_term=last[1]))
    follower.step(Message(MT.VOTE, "n1", "n2", 2, index=last[0], log_term=last[1]))
    replies = [(m.type, m.reject) for m in follower.ready().messages]
    assert replies == [(MT.PRE_VOTE_RESP, False), (MT.VOTE_RESP, False)]
    assert follower.vote == "n1" and follower.term == 2


def test_without_prevote_rejoining_follower_disrupts_the_term() -> None:
    net = three(RaftOptions(pre_vote=False, check_quorum=False))
    term = net.force_leader("n1").term
    net.isolate("n3")
    net.run(5 * E)
    assert net.nodes["n3"].term > term + 2  # it kept campaigning alone
    assert net.nodes["n1"].term == term
    net.heal()
    net.run(3 * E)
    assert min(r.term for r in net.live()) > term + 2
    assert net.leader() is not None


# ================================================================= CheckQuorum
def test_isolated_leader_steps_down_within_two_election_timeouts() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.isolate("n1")
    ticks = 0
    while leader.is_leader:
        net.run(1)
        ticks += 1
        assert ticks <= 2 * E, "an isolated leader kept leading"
    assert leader.role is Role.FOLLOWER and leader.lead is None
    with pytest.raises(NotLeader):
        leader.propose(put("k", 1))


def test_connected_leader_keeps_leading() -> None:
    net = three()
    leader = net.force_leader("n1")
    term = leader.term
    net.run(10 * E)
    assert leader.is_leader and all(r.term == term for r in net.live())


# ======================================================== leadership transfer
def test_transfer_leadership_hands_over_without_waiting_for_a_timeout() -> None:
    net = three()
    leader = net.force_leader("n1")
    term = leader.term
    leader.transfer_leadership("n3")
    with pytest.raises(ProposalDropped):
        leader.propose(put("k", 1))
    with pytest.raises(ProposalDropped):
        leader.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n2"))
    net.process("n1")
    delivered = net.deliver_all()  # no tick at all
    assert delivered <= 12
    target = net.nodes["n3"]
    assert target.is_leader and target.term == term + 1
    assert not leader.is_leader and leader.lead == "n3"
    net.propose("n3", put("k", 1))
    net.deliver_all()
    net.run(1)
    assert value(net, "n1", "k") == 1


def test_transfer_to_a_lagging_voter_catches_it_up_first() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.isolate("n3")
    net.propose("n1", *(put(f"k{i}", i) for i in range(5)))
    net.run(2)
    assert net.nodes["n3"].log.last_index < leader.log.last_index
    net.heal()
    leader.transfer_leadership("n3")
    net.process("n1")
    net.deliver_all()
    net.deliver_all()
    target = net.nodes["n3"]
    assert target.is_leader and target.term == leader.term
    net.run(1)
    assert value(net, "n3", "k4") == 4


def test_transfer_targets_are_validated() -> None:
    net = three()
    leader = net.force_leader("n1")
    with pytest.raises(ValueError, match="not a voter"):
        leader.transfer_leadership("n9")
    leader.transfer_leadership("n1")  # to itself: nothing to do
    assert leader.lead_transferee is None
    net.propose("n1", put("k", 1))  # and proposals still flow


def test_a_transfer_to_a_dead_voter_is_abandoned_after_an_election_timeout() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.crash("n3")
    leader.transfer_leadership("n3")
    net.process("n1")
    with pytest.raises(ProposalDropped):
        leader.propose(put("k", 1))
    net.run(E)
    assert leader.is_leader and leader.lead_transferee is None
    net.propose("n1", put("k", 1))
    net.deliver_all()
    net.run(1)
    assert value(net, "n2", "k") == 1


def test_step_down_hands_over_to_the_most_caught_up_voter() -> None:
    for lagging, expected in (("n3", "n2"), ("n2", "n3")):
        net = three()
        leader = net.force_leader("n1")
        net.isolate(lagging)
        net.propose("n1", put("k", 1))
        net.run(1)
        assert leader.step_down() == expected
        net.process("n1")
        net.deliver_all()
        assert net.nodes[expected].is_leader and not leader.is_leader


def test_step_down_of_a_lone_voter_makes_it_a_follower() -> None:
    net = Net(["n1"])
    net.run_until(lambda: net.nodes["n1"].is_leader)
    assert net.nodes["n1"].step_down() is None
    assert net.nodes["n1"].role is Role.FOLLOWER


def test_force_election_makes_a_follower_leader_at_a_higher_term() -> None:
    net = three()
    term = net.force_leader("n1").term
    n2 = net.nodes["n2"]
    n2.force_election()  # bypasses the followers' leader lease
    net.process("n2")
    net.deliver_all()
    assert n2.is_leader and n2.term == term + 1
    assert not net.nodes["n1"].is_leader


def test_force_election_on_a_learner_is_refused() -> None:
    learner = RaftNode.bootstrap("n4", ["n1", "n2", "n3"], learners=["n4"])
    with pytest.raises(ClusterError):
        learner.force_election()
    assert learner.term == 0 and learner.ready().messages == []


def test_votes_count_once_per_voter_and_never_from_learners() -> None:
    raft = RaftNode.bootstrap("n1", ["n1", "n2", "n3", "n4", "n5"], learners=["n6"],
                              options=RaftOptions(pre_vote=False))
    raft.force_election()
    requests = raft.ready().messages
    assert sorted(m.dst for m in requests) == ["n2", "n3", "n4", "n5"]  # not the learner
    term = raft.term
    for src in ("n2", "n2", "n6", "n7", "n6"):  # a duplicate, a learner, a stranger
        raft.step(Message(MT.VOTE_RESP, src, "n1", term))
    assert raft.role is Role.CANDIDATE
    raft.step(Message(MT.VOTE_RESP, "n3", "n1", term))
    assert raft.is_leader


def test_a_rejected_vote_cannot_be_turned_into_a_grant_by_a_duplicate() -> None:
    raft = RaftNode.bootstrap("n1", ["n1", "n2", "n3"], options=RaftOptions(pre_vote=False))
    raft.force_election()
    term = raft.term
    raft.step(Message(MT.VOTE_RESP, "n2", "n1", term, reject=True))
    raft.step(Message(MT.VOTE_RESP, "n2", "n1", term))
    assert raft.role is Role.CANDIDATE
    raft.step(Message(MT.VOTE_RESP, "n3", "n1", term, reject=True))
    assert raft.role is Role.FOLLOWER and raft.term == term  # lost, no new term


# ========================================================== report_peer_dead
def test_report_peer_dead_of_the_leader_campaigns_within_a_quarter_of_the_timeout() -> None:
    election_tick = 20
    net = three(RaftOptions(election_tick=election_tick))
    net.force_leader("n1")
    net.run(2)
    net.crash("n1")
    start = len(net.sent)
    for nid in ("n2", "n3"):
        net.nodes[nid].report_peer_dead("n1")
        assert net.nodes[nid].lead is None
    ticks = 0
    while not any(m.type in (MT.PRE_VOTE, MT.VOTE) for m in net.sent[start:]):
        net.run(1)
        ticks += 1
        assert ticks <= election_tick // 4 + 1
    net.run_until(lambda: net.leader() in ("n2", "n3"), max_ticks=3 * election_tick)


def test_failover_after_report_peer_dead_is_fast_for_most_seeds() -> None:
    election_tick = 10
    slow = []
    for seed in range(10):
        net = Net(["n1", "n2", "n3"], options=RaftOptions(election_tick=election_tick),
                  seed=seed)
        net.force_leader("n1")
        net.run(2)
        net.crash("n1")
        for nid in ("n2", "n3"):
            net.nodes[nid].report_peer_dead("n1")
        ticks = net.run_until(lambda net=net: net.leader() is not None, max_ticks=100)
        if ticks > election_tick // 4 + 3:
            slow.append((seed, ticks))
    assert not slow, f"seeds whose failover took a whole election timeout: {slow}"


def test_without_report_followers_wait_a_whole_election_timeout() -> None:
    election_tick = 20
    net = three(RaftOptions(election_tick=election_tick))
    net.force_leader("n1")
    net.run(2)
    net.crash("n1")
    start = len(net.sent)
    net.run(election_tick - 1)
    assert not any(m.type in (MT.PRE_VOTE, MT.VOTE) for m in net.sent[start:])
    assert net.leader() is None


def test_report_peer_dead_of_a_follower_is_ignored_by_the_leader() -> None:
    net = three()
    leader = net.force_leader("n1")
    leader.report_peer_dead("n2")
    assert leader.is_leader and leader.lead == "n1"


# ================================================================= membership
def _cluster_with_compacted_leader() -> tuple[Net, RaftNode]:
    net = three()
    leader = net.force_leader("n1")
    net.propose("n1", put("before", 1))
    net.deliver_all()
    net.run(1)
    leader.compact(net.sms["n1"].snapshot())
    net.process("n1")
    return net, leader


def test_learner_receives_the_log_and_does_not_count_for_quorum() -> None:
    net, leader = _cluster_with_compacted_leader()
    learner = net.add_node("n4")
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n4"))
    net.process("n1")
    net.run(3)
    assert leader.conf.learners == {"n4"} and leader.conf.voters == {"n1", "n2", "n3"}
    assert learner.conf == leader.conf and not learner.promotable
    assert value(net, "n4", "before") == 1
    # a learner never campaigns
    net.isolate("n4")
    net.run(3 * E)
    assert not net.sent_of(MT.PRE_VOTE, "n4") and learner.term == leader.term
    net.heal()
    # leader + learner are no quorum
    net.cut("n1", "n2")
    net.cut("n1", "n3")
    [index] = net.propose("n1", put("k", 1))
    net.deliver_all()
    assert learner.log.last_index == index and leader.commit < index
    net.heal()
    net.run(2)
    assert leader.commit >= index and value(net, "n4", "k") == 1


def test_learner_is_promoted_through_a_joint_configuration() -> None:
    net, leader = _cluster_with_compacted_leader()
    net.add_node("n4")
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n4"))
    net.process("n1")
    net.run(3)
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_VOTER, "n4"))
    with pytest.raises(ProposalDropped):  # one change at a time
        leader.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n2"))
    net.process("n1")
    net.deliver_all()
    assert leader.conf.joint
    assert leader.conf.voters == {"n1", "n2", "n3", "n4"}
    assert leader.conf.voters_outgoing == {"n1", "n2", "n3"} and not leader.conf.learners
    with pytest.raises(ProposalDropped):  # still joint
        leader.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n2"))
    net.run(3)  # the leader leaves the joint configuration by itself
    final = ConfState(voters=frozenset({"n1", "n2", "n3", "n4"}))
    for nid, raft in net.nodes.items():
        assert raft.conf == final, nid
        assert any(c.joint for c in net.confs[nid]), nid  # passed through joint
    assert net.nodes["n4"].promotable
    # 3 of 4 is now the quorum: the leader with one follower cannot commit
    net.isolate("n3")
    net.isolate("n4")
    [index] = net.propose("n1", put("k", 1))
    net.deliver_all()
    assert leader.commit < index
    net.heal()
    net.run(2)
    assert all(value(net, nid, "k") == 1 for nid in net.nodes)


def test_removed_voter_leaves_the_quorum_and_the_replication() -> None:
    net = three()
    leader = net.force_leader("n1")
    leader.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n3"))
    net.process("n1")
    net.run(4)
    assert leader.conf == ConfState(voters=frozenset({"n1", "n2"}))
    assert net.nodes["n2"].conf == leader.conf and "n3" not in leader.progress
    start = len(net.sent)
    net.propose("n1", put("k", 1))
    net.run(2)
    assert not [m for m in net.sent[start:] if m.dst == "n3"]
    assert value(net, "n2", "k") == 1 and value(net, "n3", "k") is None
    net.cut("n1", "n2")  # 2 of 2 needed now
    [index] = net.propose("n1", put("k", 2))
    net.deliver_all()
    assert leader.commit < index


def test_a_removed_voter_does_not_disrupt_the_cluster() -> None:
    net = three()
    leader = net.force_leader("n1")
    term = leader.term
    leader.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n3"))
    net.process("n1")
    net.run(4)
    assert leader.conf.voters == {"n1", "n2"} and not leader.conf.joint
    net.run(6 * E)  # n3 hears nothing any more and may keep campaigning
    assert leader.is_leader and leader.term == net.nodes["n2"].term == term


def test_removing_the_leader_hands_over_after_the_joint_phase() -> None:
    net = three()
    leader = net.force_leader("n1")
    leader.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n1"))
    net.process("n1")
    net.deliver_all()
    assert leader.is_leader and leader.conf.joint  # still leads the joint phase
    net.run_until(lambda: net.leader() in ("n2", "n3"))
    assert not leader.is_leader and not leader.promotable
    new = net.leader()
    assert new is not None
    net.propose(new, put("k", 1))
    net.run(2)
    assert value(net, "n2", "k") == value(net, "n3", "k") == 1


@pytest.mark.parametrize("change", [
    ConfChange(),  # reserved for leaving a joint configuration
    ConfChange(((ConfChangeType.REMOVE, "n1"), (ConfChangeType.REMOVE, "n2"),
                (ConfChangeType.REMOVE, "n3"))),
    ConfChange((("add_voter", "n4"),)),  # type: ignore[arg-type]
    ConfChange(((ConfChangeType.ADD_VOTER, ""),)),
])
def test_invalid_conf_changes_are_refused_and_change_nothing(change: ConfChange) -> None:
    net = three()
    leader = net.force_leader("n1")
    last = leader.log.last_index
    with pytest.raises(ValueError):
        leader.propose_conf_change(change)
    assert leader.log.last_index == last and leader.pending_conf_index <= leader.applied
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n4"))  # still free


def test_node_with_a_committed_unapplied_conf_change_does_not_campaign() -> None:
    net = three()
    net.force_leader("n1")
    net.nodes["n1"].propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n4"))
    net.process("n1")
    net.run(2)
    st = net.storage["n2"]
    assert any(e.kind is EntryKind.CONFIG for e in st.entries)
    # n2 restarts: its commit covers the CONFIG entry, nothing is applied yet
    raft = RaftNode("n2", hard_state=st.hard_state, snapshot=st.snapshot,
                    entries=list(st.entries), options=net.options)
    assert raft.commit > raft.applied
    for _ in range(3 * E):
        raft.tick()
    ready = raft.ready()
    assert raft.role is Role.FOLLOWER and raft.term == st.hard_state.term
    assert not [m for m in ready.messages if m.type in (MT.PRE_VOTE, MT.VOTE)]
    assert raft.conf.learners == {"n4"}  # applied with that Ready
    for _ in range(3 * E):  # once applied, it campaigns as usual
        raft.tick()
    assert [m for m in raft.ready().messages if m.type is MT.PRE_VOTE]


def test_a_fresh_learner_learns_the_configuration_from_the_log() -> None:
    net = three()
    leader = net.force_leader("n1")
    learner = net.add_node("n4")
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n4"))
    net.process("n1")
    net.run(3)
    assert "n4" in leader.progress and learner.log.last_index == leader.log.last_index
    assert learner.conf == leader.conf


def test_a_promoted_fresh_node_never_leads_alone() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.add_node("n4")
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n4"))
    net.process("n1")
    net.run(3)
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_VOTER, "n4"))
    net.process("n1")
    net.run(3)
    assert leader.conf.voters == {"n1", "n2", "n3", "n4"} and not leader.conf.joint
    net.isolate("n4")
    for _ in range(4 * E):
        net.tick("n4")
    assert not net.nodes["n4"].is_leader


def test_a_single_voter_sends_new_entries_to_its_learner_at_once() -> None:
    net = Net(["n1"])
    net.run_until(lambda: net.nodes["n1"].is_leader)
    leader = net.nodes["n1"]
    leader.compact(net.sms["n1"].snapshot())
    net.process("n1")
    net.add_node("n2")
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n2"))
    net.process("n1")
    net.run(3)
    assert net.nodes["n2"].log.last_index == leader.log.last_index
    start = len(net.sent)
    [index] = net.propose("n1", put("k", 1))
    assert [m.dst for m in net.sent[start:] if m.type is MT.APPEND
            and any(e.index == index for e in m.entries)] == ["n2"]


# ================================================================== snapshots
def test_compact_drops_entries_up_to_the_applied_index() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.propose("n1", *(put(f"k{i}", i) for i in range(10)))
    net.deliver_all()
    applied = leader.applied
    assert applied == leader.log.last_index == 12  # bootstrap entry, no-op, 10 puts
    snapshot = leader.compact(net.sms["n1"].snapshot())
    assert (snapshot.index, snapshot.term, snapshot.conf) == (applied, leader.term, leader.conf)
    assert leader.log.first_index == applied + 1 and leader.log.term(applied) == leader.term
    assert leader.log.term(applied - 1) is None
    with pytest.raises(ValueError, match="compacted"):
        leader.log.entries_from(1)
    ready = net.process("n1")
    assert ready.snapshot == snapshot and not ready.restore_snapshot
    assert net.storage["n1"].snapshot == snapshot and net.storage["n1"].entries == []
    [index] = net.propose("n1", put("after", 1))
    assert [e.index for e in net.storage["n1"].entries] == [index]


def _lagging_n3_and_compacted_leader() -> tuple[Net, RaftNode]:
    net = three()
    leader = net.force_leader("n1")
    net.isolate("n3")
    net.propose("n1", *(put(f"k{i}", i) for i in range(20)))
    net.run(1)
    leader.compact(net.sms["n1"].snapshot())
    net.process("n1")
    assert leader.log.snapshot.index > net.nodes["n3"].log.last_index
    return net, leader


def test_lagging_follower_catches_up_from_a_snapshot() -> None:
    net, leader = _lagging_n3_and_compacted_leader()
    snapshot_index = leader.log.snapshot.index
    net.propose("n1", put("after", "compaction"))
    net.deliver_all()
    net.heal()
    net.run(3)
    snaps = net.sent_of(MT.SNAPSHOT, "n1")
    assert [m.dst for m in snaps] == ["n3"] and snaps[0].snapshot is not None
    assert snaps[0].snapshot.index == snapshot_index
    n3 = net.nodes["n3"]
    assert net.restores["n3"] == 1 and n3.log.snapshot.index == snapshot_index
    assert n3.applied == leader.commit == leader.log.last_index
    assert net.sms["n3"].state_hash() == net.sms["n1"].state_hash()
    assert value(net, "n3", "after") == "compaction" and value(net, "n3", "k19") == 19
    assert net.storage["n3"].snapshot.index == snapshot_index


def test_a_lost_snapshot_is_sent_again() -> None:
    net, leader = _lagging_n3_and_compacted_leader()
    net.heal()
    lost: list[Message] = []

    def lose_first_snapshot(msg: Message) -> Message | None:
        if msg.type is MT.SNAPSHOT and not lost:
            lost.append(msg)
            return None
        return msg

    net.filter = lose_first_snapshot
    net.run_until(lambda: net.nodes["n3"].applied == leader.commit, max_ticks=30)
    assert lost and len(net.sent_of(MT.SNAPSHOT, "n1")) >= 2
    assert net.sms["n3"].state_hash() == net.sms["n1"].state_hash()


def test_restart_after_compaction_rebuilds_the_state_machine() -> None:
    net, _leader = _lagging_n3_and_compacted_leader()
    net.heal()
    net.run(3)
    net.propose("n1", put("tail", 1))
    net.run(1)
    for nid in ("n1", "n3"):
        raft = net.nodes[nid]
        term, vote, last = raft.term, raft.vote, raft.log.last_index
        net.crash(nid)
        restarted = net.restart(nid)
        assert (restarted.term, restarted.vote, restarted.log.last_index) == (term, vote, last)
        assert restarted.log.snapshot.index > 0
    net.run_until(lambda: net.leader() is not None)
    net.run(2)
    hashes = {net.sms[nid].state_hash() for nid in net.nodes}
    assert len(hashes) == 1 and value(net, "n3", "tail") == 1


# ================================================================== ReadIndex
def _settled_leader(options: RaftOptions | None = None) -> tuple[Net, RaftNode]:
    net = three(options)
    leader = net.force_leader("n1")
    net.propose("n1", put("x", 1))
    net.run(2)
    return net, leader


def test_read_index_needs_a_heartbeat_quorum() -> None:
    net, leader = _settled_leader()
    commit = leader.commit
    leader.read_index("r1")
    ready = net.process("n1")
    assert ready.read_states == [] and net.reads["n1"] == []
    assert sorted(m.dst for m in ready.messages if m.type is MT.HEARTBEAT) == ["n2", "n3"]
    net.isolate("n1")
    net.deliver_all()
    assert net.reads["n1"] == []  # nobody answered
    leader.read_index("r2")
    net.process("n1")
    net.heal()
    net.isolate("n3")
    net.deliver_all()  # n2's answer makes a quorum with the leader
    # (a later round also confirms the earlier request)
    assert net.reads["n1"] == [ReadState("r1", commit), ReadState("r2", commit)]


def test_read_index_waits_until_the_leader_commits_in_its_term() -> None:
    net, _old = _settled_leader()
    net.filter = lambda m: None if m.src == "n2" and m.type is MT.APPEND else m
    n2 = net.nodes["n2"]
    n2.force_election()
    net.process("n2")
    net.deliver_all()
    assert n2.is_leader and n2.log.term(n2.commit) != n2.term
    n2.read_index("early")
    net.run(E // 2)  # heartbeats flow, but the no-op cannot commit
    assert net.reads["n2"] == [] and n2.is_leader
    net.filter = None
    net.run(2)
    assert n2.log.term(n2.commit) == n2.term
    [state] = net.reads["n2"]
    assert state.context == "early" and state.index >= n2.log.last_index - 0
    assert n2.log.term(state.index) == n2.term


def test_reads_in_one_tick_share_one_heartbeat_round() -> None:
    net, leader = _settled_leader()
    for ctx in ("a", "b", "c"):
        leader.read_index(ctx)
    ready = net.process("n1")
    beats = [m for m in ready.messages if m.type is MT.HEARTBEAT]
    assert len(beats) == 2 and len({m.context for m in beats}) == 1
    net.deliver_all()
    assert [r.context for r in net.reads["n1"]] == ["a", "b", "c"]
    # the next request opens a new round
    leader.read_index("d")
    beats2 = [m for m in net.process("n1").messages if m.type is MT.HEARTBEAT]
    assert len(beats2) == 2 and beats2[0].context > beats[0].context
    net.deliver_all()
    assert [r.context for r in net.reads["n1"]][-1] == "d"


def test_a_partitioned_stale_leader_never_serves_a_read() -> None:
    net, old = _settled_leader()
    net.isolate("n1")
    new = net.force_leader("n2")
    net.propose("n2", put("x", 2))
    net.run(1)
    assert new.commit > old.commit
    old.read_index("stale")
    net.process("n1")
    for _ in range(3 * E):
        net.run(1)
    assert net.reads["n1"] == [] and not old.is_leader


def test_single_node_read_is_served_at_once() -> None:
    net = Net(["n1"])
    net.run_until(lambda: net.nodes["n1"].is_leader)
    net.nodes["n1"].read_index("solo")
    assert net.process("n1").read_states == [ReadState("solo", net.nodes["n1"].commit)]


def test_a_read_is_not_confirmed_by_heartbeats_answered_before_it() -> None:
    net, old = _settled_leader()
    old.tick()  # a heartbeat round; the answers are delayed in the network
    net.process("n1")
    delayed: list[Message] = []
    net.filter = lambda m: (delayed.append(m), None)[1] if m.type is MT.HEARTBEAT_RESP else m
    net.deliver_all()
    net.filter = None
    assert {m.src for m in delayed} == {"n2", "n3"}
    net.isolate("n1")
    new = net.force_leader("n2")
    net.propose("n2", put("x", 2))
    net.run(1)
    assert value(net, "n2", "x") == 2 and new.commit > old.commit
    old.tick()  # a heartbeat is due, then a read arrives before the Ready
    old.read_index("stale")
    net.process("n1")
    for msg in delayed:  # the old answers finally arrive
        old.step(msg)
        net.process("n1")
    assert net.reads["n1"] == [], f"stale read served at index {net.reads['n1']}"


# ==================================================================== restart
def test_restart_keeps_term_vote_log_and_commit() -> None:
    net, _leader = _settled_leader()
    n2 = net.nodes["n2"]
    before = (n2.term, n2.vote, n2.commit, [n2.log.entry(i) for i in
                                            range(1, n2.log.last_index + 1)])
    hash_before = net.sms["n2"].state_hash()
    net.crash("n2")
    n2 = net.restart("n2")
    after = (n2.term, n2.vote, n2.commit, [n2.log.entry(i) for i in
                                           range(1, n2.log.last_index + 1)])
    assert after == before and n2.role is Role.FOLLOWER
    assert net.sms["n2"].state_hash() == hash_before  # replayed with the first Ready


def test_restarted_node_does_not_vote_twice_in_a_term() -> None:
    net = three()
    net.blocked |= {("n2", "n1"), ("n3", "n2")}  # n2's request reaches n3 only; no answer
    n2 = net.nodes["n2"]
    n2.force_election()
    net.process("n2")
    net.deliver_all()
    assert net.nodes["n3"].vote == "n2" and net.nodes["n3"].term == 1
    net.crash("n3")
    n3 = net.restart("n3")
    assert (n3.term, n3.vote) == (1, "n2")
    net.heal()
    net.crash("n2")
    n1 = net.nodes["n1"]
    n1.force_election()  # also term 1
    assert n1.term == 1
    start = len(net.sent)
    net.process("n1")
    net.deliver_all()
    answers = [m for m in net.sent[start:] if m.type is MT.VOTE_RESP and m.src == "n3"]
    assert answers and all(m.reject for m in answers)
    assert not n1.is_leader and n3.vote == "n2"


def test_restart_rejects_a_commit_beyond_the_log() -> None:
    with pytest.raises(ValueError, match="beyond"):
        RaftNode("n1", hard_state=HardState(1, None, 5), entries=[Entry(1, 1)])


# ========================================================== malformed input
def test_a_message_for_another_node_is_dropped_and_counted() -> None:
    net, _leader = _settled_leader()
    n2 = net.nodes["n2"]
    state = (n2.term, n2.vote, n2.lead, n2.log.last_index, n2.commit)
    for kind in (MT.APPEND, MT.VOTE, MT.HEARTBEAT, MT.TIMEOUT_NOW):
        n2.step(Message(kind, "n1", "n9", n2.term + 5, index=99, log_term=99,
                        entries=(Entry(99, 99),), commit=99, force=True))
    assert n2.dropped_messages == 4
    assert (n2.term, n2.vote, n2.lead, n2.log.last_index, n2.commit) == state
    assert n2.ready().messages == []


def test_messages_of_a_stale_term_change_nothing_and_are_answered() -> None:
    net, _leader = _settled_leader()
    n2 = net.nodes["n2"]
    last, term = n2.log.last_index, n2.term
    n2.step(Message(MT.APPEND, "n3", "n2", term - 1, index=last, log_term=term,
                    entries=(Entry(last + 1, term - 1),), commit=last + 1))
    assert n2.log.last_index == last and n2.term == term and n2.lead == "n1"
    [answer] = n2.ready().messages
    assert answer.type is MT.APPEND_RESP and answer.dst == "n3" and answer.term == term


def test_an_append_with_inconsistent_entry_indexes_changes_no_log() -> None:
    raft = RaftNode("f", hard_state=HardState(1, None, 1),
                    entries=[Entry(1, 1), Entry(2, 1), Entry(3, 1)])
    bad = Message(MT.APPEND, "l", "f", 2, index=1, log_term=1, entries=(Entry(5, 2),),
                  commit=1)
    with contextlib.suppress(Exception):  # a clear error is acceptable, a changed log is not
        raft.step(bad)
    assert raft.log.last_index == 3


# ------------------------------------------------ identity: who may vote, rejoining
def _vote_request(kind: MessageType, dst: str, term: int = 5) -> Message:
    return Message(kind, "n2", dst, term, index=10, log_term=4)


@pytest.mark.parametrize("kind", [MT.VOTE, MT.PRE_VOTE])
def test_a_node_with_empty_storage_grants_no_vote_in_a_term_it_may_have_voted_in(
        kind: MessageType) -> None:
    # a voter whose files were wiped restarts with term 0, no vote, no configuration:
    # granting would let it vote twice in a term (two leaders); it must refuse
    wiped = RaftNode("n3")
    wiped.step(_vote_request(kind, "n3"))
    [answer] = wiped.ready().messages
    assert answer.reject and wiped.vote is None
    founder = RaftNode.bootstrap("n3", ["n1", "n2", "n3"])  # the same request, a voter
    founder.step(_vote_request(kind, "n3"))
    [granted] = [m for m in founder.ready().messages if m.dst == "n2"]
    assert not granted.reject


@pytest.mark.parametrize("kind", [MT.VOTE, MT.PRE_VOTE])
def test_a_learner_answers_a_vote_request_but_its_vote_is_never_counted(
        kind: MessageType) -> None:
    # asked, a learner votes (it may have been promoted by entries it lacks), and
    # remembers the vote like a voter; a candidate that knows it is a learner
    # never asks it and ignores its answer
    learner = RaftNode.bootstrap("n4", ["n1", "n2", "n3"], learners=["n4"])
    learner.step(_vote_request(kind, "n4"))
    [answer] = [m for m in learner.ready().messages if m.dst == "n2"]
    assert not answer.reject
    assert learner.vote == ("n2" if kind is MT.VOTE else None)
    learner.step(Message(MT.VOTE, "n3", "n4", 5, index=10, log_term=4))
    [second] = [m for m in learner.ready().messages if m.dst == "n3"]
    assert second.reject == (kind is MT.VOTE)  # one vote per term
    net = Net(["n1", "n2", "n3"])
    net.nodes["n1"].conf = ConfState(voters=frozenset({"n1", "n2", "n3"}),
                                     learners=frozenset({"n4"}))
    net.isolate("n2")
    net.isolate("n3")
    net.nodes["n1"].force_election()
    net.process("n1")
    assert {m.dst for m in net.sent_of(MT.VOTE, "n1")} == {"n2", "n3"}
    net.nodes["n1"].step(Message(MT.VOTE_RESP, "n4", "n1", net.nodes["n1"].term))
    assert not net.nodes["n1"].is_leader and net.nodes["n1"].votes == {"n1": True}


def test_a_promoted_learner_that_missed_its_promotion_votes_so_the_cluster_elects_again(
        ) -> None:
    # the promotion commits on the old voters alone, without the learner; the
    # leader then dies: the survivors with the new log need the stale learner's
    # vote (3 of 4), and it must give it, or no leader is ever elected
    net = three()
    leader = net.force_leader("n1")
    net.add_node("n4")
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n4"))
    net.process("n1")
    net.run(3)
    learner = net.nodes["n4"]
    assert learner.conf.learners == {"n4"}
    net.isolate("n4")
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_VOTER, "n4"))
    net.process("n1")
    net.run(4)  # joint, then left by itself: {n1, n2, n3, n4}, committed without n4
    promoted = ConfState(voters=frozenset({"n1", "n2", "n3", "n4"}))
    assert net.nodes["n2"].conf == net.nodes["n3"].conf == promoted
    assert learner.conf.learners == {"n4"} and not learner.promotable
    net.crash("n1")
    net.heal()
    net.run_until(lambda: net.leader() in ("n2", "n3"))
    new = net.leader()
    assert new is not None
    [index] = net.propose(new, put("after", 1))
    net.run(3)
    assert learner.conf == promoted and learner.promotable
    assert net.nodes[new].commit >= index and value(net, "n4", "after") == 1


def test_a_voter_is_demoted_to_learner_and_promoted_back_through_joint_configurations() -> None:
    net = three()
    leader = net.force_leader("n1")
    net.propose("n1", put("k", 1))
    net.run(2)
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n3"))
    net.process("n1")
    net.deliver_all()
    # joint: the old voters {n1, n2, n3} and the new {n1, n2} must both agree
    assert leader.conf.joint and leader.conf.voters_outgoing == {"n1", "n2", "n3"}
    assert leader.conf.voters == {"n1", "n2"} and leader.conf.learners == {"n3"}
    net.run(3)  # the leader leaves the joint configuration by itself
    demoted = ConfState(voters=frozenset({"n1", "n2"}), learners=frozenset({"n3"}))
    assert all(raft.conf == demoted for raft in net.nodes.values())
    assert not net.nodes["n3"].promotable
    net.cut("n1", "n2")  # n1 + the learner n3 are no quorum of {n1, n2}
    [index] = net.propose("n1", put("k", 2, seq=2))
    net.deliver_all()
    assert leader.commit < index and net.nodes["n3"].log.last_index >= index
    net.heal()
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_VOTER, "n3"))
    net.process("n1")
    net.run(4)
    final = ConfState(voters=frozenset({"n1", "n2", "n3"}))
    assert all(raft.conf == final for raft in net.nodes.values())
    assert all(any(c.joint for c in net.confs[nid]) for nid in net.nodes)
    assert value(net, "n3", "k") == 2


def test_a_wiped_voter_is_removed_then_re_added_as_learner_then_promoted_with_all_data(
        ) -> None:
    net = three()
    leader = net.force_leader("n1")
    net.propose("n1", *(put(f"k{i}", i, seq=i + 1) for i in range(5)))
    net.run(2)
    term = leader.term
    net.crash("n3")  # n3 stops; its files are lost
    leader.propose_conf_change(conf_change(ConfChangeType.REMOVE, "n3"))
    net.process("n1")
    net.run(3)
    assert leader.conf == ConfState(voters=frozenset({"n1", "n2"}))
    assert "n3" not in leader.progress  # its old match index is forgotten
    net.invariants.on_wipe("n3")
    net.down.discard("n3")
    wiped = net.add_node("n3")  # empty storage, no configuration: it never votes
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_LEARNER, "n3"))
    net.process("n1")
    net.run(3)
    assert wiped.conf.learners == {"n3"} and not wiped.promotable
    assert [value(net, "n3", f"k{i}") for i in range(5)] == list(range(5))
    leader.propose_conf_change(conf_change(ConfChangeType.ADD_VOTER, "n3"))
    net.process("n1")
    net.run(4)
    final = ConfState(voters=frozenset({"n1", "n2", "n3"}))
    assert all(raft.conf == final for raft in net.nodes.values())
    assert wiped.promotable and leader.is_leader and leader.term == term
    # a voter again: the cluster survives losing the old leader, with n3's vote
    net.crash("n1")
    net.run_until(lambda: net.leader() in ("n2", "n3"))
    new = net.leader()
    assert new is not None
    net.propose(new, put("after", 1, seq=99))
    net.run(2)
    assert value(net, "n3", "after") == 1 and value(net, "n2", "k4") == 4


def test_a_wiped_voter_cannot_help_elect_a_second_leader_in_its_old_term() -> None:
    net = three()
    leader = net.force_leader("n1")  # n2 and n3 voted for n1 in this term
    term = leader.term
    net.invariants.on_wipe("n3")
    net.add_node("n3")  # n3 loses its files, and with them its vote
    net.isolate("n1")
    candidate = net.nodes["n2"]
    # n2 asks for votes in the very term n1 won (as a delayed request would)
    candidate.role, candidate.vote, candidate.lead = Role.CANDIDATE, "n2", None
    candidate.votes = {"n2": True}
    net.queue.append(Message(MT.VOTE, "n2", "n3", term, index=candidate.log.last_index,
                             log_term=candidate.log.last_term))
    net.deliver_all()
    assert not candidate.is_leader and net.nodes["n3"].vote is None
