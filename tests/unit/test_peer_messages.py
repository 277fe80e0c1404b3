"""Forged and malformed peer messages are dropped and counted, never applied:
a batch from a non-member, a message whose ``src`` is not its batch's
sender, acknowledgements of indices outside the leader's log, a CONFIG entry
with junk data, a malformed snapshot, and a raw ``("config", ...)`` command."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.actors.consensus import ConsensusCore
from cluster_actors.core.cluster_state import ClusterStateMachine, refuse_config_commands
from cluster_actors.core.kv import Command
from cluster_actors.core.raft import RaftNode
from cluster_actors.core.raft_types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    Message,
    MessageType,
    Snapshot,
    validate_message,
)
from cluster_actors.errors import ClusterError, ValidationFailed
from cluster_actors.runtime.transport import Transport, _encode

MT = MessageType


def _heartbeat(src: str = "n1", dst: str = "n2", term: int = 1) -> Message:
    return Message(MT.HEARTBEAT, src, dst, term)


def _members(*nodes: str) -> Any:
    return lambda src: src in nodes


# ================================================================ transport
def test_a_batch_from_a_node_that_is_not_a_member_is_dropped_whole_and_counted() -> None:
    transport = Transport("c", "n2", "consensus", peers=[])
    batch = _encode([_heartbeat("n9")])
    accepted = transport.accept("c", "n9", batch, validate_message,
                                is_member=_members("n1", "n2", "n3"))
    assert accepted == []
    assert transport.stats["dropped_non_member"] == 1
    # a member's batch passes the same check
    assert transport.accept("c", "n1", _encode([_heartbeat()]), validate_message,
                            is_member=_members("n1", "n2", "n3")) == [_heartbeat()]


def test_an_empty_hello_from_a_non_member_is_dropped_without_counting() -> None:
    transport = Transport("c", "n2", "consensus", peers=[])
    assert transport.accept("c", "n9", _encode([]), validate_message,
                            is_member=_members("n1")) == []
    assert transport.stats["dropped_non_member"] == 0


def test_a_message_whose_src_differs_from_its_batch_is_dropped_alone() -> None:
    transport = Transport("c", "n2", "consensus", peers=[])
    honest, spoofed = _heartbeat("n1"), _heartbeat("n3")
    accepted = transport.accept("c", "n1", _encode([spoofed, honest]), validate_message,
                                src_of=lambda m: m.src)
    assert accepted == [honest]
    assert transport.stats["dropped_spoofed"] == 1


def test_a_batch_for_another_cluster_is_dropped_and_counted() -> None:
    transport = Transport("c", "n2", "consensus", peers=[])
    assert transport.accept("other", "n1", _encode([_heartbeat()]), validate_message) == []
    assert transport.stats["dropped_foreign"] == 1


# ========================================================== validate_message
def _append(*entries: Entry, term: int = 2) -> Message:
    return Message(MT.APPEND, "n1", "n2", term, index=0, log_term=0, entries=entries)


@pytest.mark.parametrize("data", [None, "junk", {"changes": []}, ConfChange(("x",)),
                                  ConfChange((("add_voter", "n4"),)),
                                  ConfChange(((ConfChangeType.ADD_VOTER, ""),)),
                                  ConfChange(((ConfChangeType.ADD_VOTER, 4),))])
def test_a_config_entry_with_junk_data_is_rejected_by_validation(data: Any) -> None:
    message = _append(Entry(1, 1, EntryKind.CONFIG, data))
    assert "config" in (validate_message(message) or "") or \
        "configuration change" in (validate_message(message) or "")


def test_a_well_formed_config_entry_and_the_leave_joint_entry_pass_validation() -> None:
    change = ConfChange(((ConfChangeType.ADD_LEARNER, "n4"),))
    assert validate_message(_append(Entry(1, 1, EntryKind.CONFIG, change),
                                    Entry(2, 1, EntryKind.CONFIG, ConfChange()))) is None


@pytest.mark.parametrize("field,bad", [("index", "1"), ("term", None), ("index", 2**63),
                                       ("index", True), ("term", -1)])
def test_an_entry_with_non_integer_or_huge_index_or_term_is_rejected(field: str,
                                                                     bad: Any) -> None:
    entry = dataclasses.replace(Entry(1, 1), **{field: bad})
    assert validate_message(_append(entry)) is not None


@pytest.mark.parametrize("number", ["commit", "index", "term", "context"])
def test_a_number_beyond_the_storable_range_is_rejected(number: str) -> None:
    message = dataclasses.replace(_heartbeat(), **{number: 10**30})
    assert "2**63" in (validate_message(message) or "")


_CONF = ConfState(frozenset({"n1", "n2", "n3"}))


@pytest.mark.parametrize("snapshot", [
    None, "junk", Snapshot(index=0, term=1, conf=_CONF), Snapshot(index=5, term=9, conf=_CONF),
    Snapshot(index="5", term=1, conf=_CONF), Snapshot(index=5, term=1, conf=None),
    Snapshot(index=5, term=1, conf=ConfState()),
    Snapshot(index=5, term=1, conf=ConfState(voters={"n1"})),  # a set, not a frozenset
    Snapshot(index=5, term=1, conf=ConfState(frozenset({1, 2}))),
])
def test_a_malformed_snapshot_message_is_rejected_by_validation(snapshot: Any) -> None:
    message = Message(MT.SNAPSHOT, "n1", "n2", 2, snapshot=snapshot)
    assert validate_message(message) is not None


def test_a_well_formed_snapshot_message_passes_validation() -> None:
    message = Message(MT.SNAPSHOT, "n1", "n2", 2, snapshot=Snapshot(5, 2, _CONF, b"state"))
    assert validate_message(message) is None


@pytest.mark.parametrize("blob", ["text", b"not a pickle", 12,
                                  __import__("pickle").dumps(("a", "b"))])
def test_the_state_machine_names_a_snapshot_it_could_not_restore(blob: Any) -> None:
    sm = ClusterStateMachine()
    assert sm.snapshot_problem(blob) is not None


def test_the_state_machine_accepts_its_own_snapshot_and_none() -> None:
    sm = ClusterStateMachine()
    assert sm.snapshot_problem(sm.snapshot()) is None and sm.snapshot_problem(None) is None


# ======================================================== the Raft core's acks
def _leader_of_three() -> tuple[RaftNode, list[RaftNode]]:
    nodes = [RaftNode.bootstrap(n, ["n1", "n2", "n3"], rng=random.Random(i))
             for i, n in enumerate(["n1", "n2", "n3"])]
    by_id = {n.id: n for n in nodes}
    leader = by_id["n1"]
    leader.force_election()
    for _ in range(20):  # deliver until quiet
        moved = False
        for node in nodes:
            for msg in node.ready().messages:
                by_id[msg.dst].step(msg)
                moved = True
        if not moved:
            break
    assert leader.is_leader
    return leader, [by_id["n2"], by_id["n3"]]


def test_an_append_ack_beyond_the_leaders_log_does_not_advance_its_commit() -> None:
    leader, _followers = _leader_of_three()
    leader.propose(Command("c", 1, ("put", "k", 1)))
    leader.ready()  # the append is sent to nobody: no follower holds the entry
    commit, dropped = leader.commit, leader.dropped_messages
    for follower in ("n2", "n3"):
        leader.step(Message(MT.APPEND_RESP, follower, "n1", leader.term, index=10**9))
    assert leader.commit == commit < leader.log.last_index
    assert leader.dropped_messages == dropped + 2
    assert leader.progress["n2"].match <= leader.log.last_index


def test_a_rejection_probing_beyond_the_leaders_log_is_dropped() -> None:
    leader, _followers = _leader_of_three()
    before = (leader.progress["n2"].match, leader.progress["n2"].next)
    leader.step(Message(MT.APPEND_RESP, "n2", "n1", leader.term, index=10**9, reject=True,
                        reject_hint=10**9))
    assert (leader.progress["n2"].match, leader.progress["n2"].next) == before
    assert leader.dropped_messages == 1


def test_a_heartbeat_ack_for_a_read_never_requested_is_dropped() -> None:
    leader, _followers = _leader_of_three()
    leader.read_index("ctx")
    leader.ready()
    leader.step(Message(MT.HEARTBEAT_RESP, "n2", "n1", leader.term, context=10**9))
    assert leader.ready().read_states == []  # the forged ack confirmed nothing
    assert leader.dropped_messages == 1


def test_an_ack_within_the_log_still_commits() -> None:
    leader, _followers = _leader_of_three()
    index = leader.propose(Command("c", 1, ("put", "k", 1)))
    leader.ready()
    leader.step(Message(MT.APPEND_RESP, "n2", "n1", leader.term, index=index))
    assert leader.commit == index and leader.dropped_messages == 0


# ===================================================== the consensus shell
def _core() -> ConsensusCore:
    core = ConsensusCore("c", "n2", ["n1", "n2", "n3"], {})
    core.raft = RaftNode.bootstrap("n2", ["n1", "n2", "n3"])
    core.raft.ready()
    core.sm = ClusterStateMachine()
    core.transport = Transport("c", "n2", "consensus", peers=[])
    core._schedule_process = lambda: None  # type: ignore[method-assign]
    return core


def test_the_consensus_shell_drops_a_non_member_batch_and_a_spoofed_src() -> None:
    core = _core()
    core.receive("c", "n9", _encode([Message(MT.HEARTBEAT, "n9", "n2", 7)]))
    core.receive("c", "n1", _encode([Message(MT.HEARTBEAT, "n3", "n2", 7)]))
    assert core.raft.term == 0 and core.raft.lead is None  # neither was stepped
    assert core.transport.stats["dropped_non_member"] == 1
    assert core.transport.stats["dropped_spoofed"] == 1
    core.receive("c", "n1", _encode([Message(MT.HEARTBEAT, "n1", "n2", 7)]))
    assert core.raft.term == 7 and core.raft.lead == "n1"


def test_a_node_being_added_by_a_config_entry_in_the_log_counts_as_a_member() -> None:
    core = _core()
    assert not core._is_member("n4")
    change = ConfChange(((ConfChangeType.ADD_LEARNER, "n4"),))
    core.raft.step(Message(MT.APPEND, "n1", "n2", 1, index=1, log_term=1,
                           entries=(Entry(2, 1, EntryKind.CONFIG, change),)))
    assert core._is_member("n4")


def test_the_consensus_shell_drops_a_snapshot_whose_data_would_not_restore() -> None:
    core = _core()
    junk = Message(MT.SNAPSHOT, "n1", "n2", 3, snapshot=Snapshot(9, 3, _CONF, b"junk"))
    core.receive("c", "n1", _encode([junk]))
    assert core.transport.stats["dropped_malformed"] == 1
    assert core.raft.log.snapshot.index == 0


def test_the_consensus_shell_drops_and_counts_an_append_with_a_junk_config_entry() -> None:
    core = _core()
    junk = Message(MT.APPEND, "n1", "n2", 1, index=1, log_term=1,
                   entries=(Entry(2, 1, EntryKind.CONFIG, {"changes": [("add_voter", "n9")]}),))
    core.receive("c", "n1", _encode([junk]))
    assert core.transport.stats["dropped_malformed"] == 1
    assert core.raft.log.last_index == 1 and core.raft.term == 0  # nothing stepped
    assert sorted(core.raft.conf.voters) == ["n1", "n2", "n3"]


def test_a_raw_config_command_from_a_client_is_refused_before_anything_is_proposed() -> None:
    core = _core()
    record = {"version": 2, "config": {"quorum": 1}}
    # refused alone, like any invalid command: its error is its result
    [refused] = asyncio.run(core.submit([Command("c", 2, ("config", record))]))
    assert isinstance(refused, ValidationFailed)
    assert "configuration changes are not KV commands" in str(refused)
    assert core.raft.log.last_index == 1  # the bootstrap entry only
    with pytest.raises(ClusterError) as raised:
        refuse_config_commands([Command("c", 1, ("config", record))])
    assert raised.value.code == "validation_failed"
    refuse_config_commands([Command("c", 1, ("put", "config", 1))])  # a key named config


def test_a_joining_node_that_knows_no_configuration_yet_listens_to_its_cluster() -> None:
    core = ConsensusCore("c", "n4", [], {}, join=True)
    core.raft = RaftNode("n4")
    core.sm = ClusterStateMachine()
    core.transport = Transport("c", "n4", "consensus", peers=[])
    core._schedule_process = lambda: None  # type: ignore[method-assign]
    core.receive("c", "n7", _encode([Message(MT.HEARTBEAT, "n7", "n4", 3)]))
    assert core.raft.lead == "n7"  # the leader adding it, whoever that is
    core.raft.conf = _CONF  # once it knows its configuration, strangers are dropped
    core.receive("c", "n9", _encode([Message(MT.HEARTBEAT, "n9", "n4", 4)]))
    assert core.raft.term == 3 and core.transport.stats["dropped_non_member"] == 1


# ============================================================ fuzz: no crash
_ids = st.sampled_from(["n1", "n2", "n3", "n9"])
_small = st.integers(min_value=0, max_value=12)
_junk = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just(ConfChange()),
                  st.builds(ConfChange, st.tuples(st.tuples(
                      st.sampled_from(list(ConfChangeType)), _ids))),
                  st.builds(Command, st.just("c"), _small, st.just(("put", "k", 1))))
_entries = st.lists(st.tuples(st.sampled_from(list(EntryKind)), _junk, _small), max_size=4)
_snapshots = st.one_of(st.none(), st.builds(
    Snapshot, _small, _small,
    st.sampled_from([_CONF, ConfState(), ConfState(frozenset({"n1"}))]), st.none()))


@st.composite
def _messages(draw: Any) -> Message:
    kind = draw(st.sampled_from(list(MessageType)))
    term, index = draw(_small), draw(_small)
    entries = tuple(Entry(index + 1 + i, t, k, d)
                    for i, (k, d, t) in enumerate(draw(_entries)))
    return Message(kind, draw(_ids), draw(st.sampled_from(["n1", "n2"])), term,
                   index=index, log_term=draw(_small), entries=entries,
                   commit=draw(st.one_of(_small, st.just(10**9))), reject=draw(st.booleans()),
                   reject_hint=draw(_small), context=draw(st.one_of(_small, st.just(10**9))),
                   snapshot=draw(_snapshots))


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(_messages(), max_size=8))
def test_whatever_passes_validation_never_crashes_the_raft_core(batch: list[Message]) -> None:
    leader, followers = _leader_of_three()
    for message in batch:
        if validate_message(message) is not None:
            continue
        for node in (leader, *followers):
            if message.dst == node.id:
                node.step(message)
                node.ready()
    for node in (leader, *followers):
        assert node.commit <= node.log.last_index


def test_a_node_the_registry_lists_is_heard_though_no_configuration_here_names_it() -> None:
    # n4 was added and elected while n2 was cut off: n2's log never named it
    core = _core()
    core.receive("c", "n4", _encode([Message(MT.HEARTBEAT, "n4", "n2", 7)]))
    assert core.raft.term == 0 and core.transport.stats["dropped_non_member"] == 1
    core.registered = frozenset({"n1", "n2", "n3", "n4"})
    core.receive("c", "n4", _encode([Message(MT.HEARTBEAT, "n4", "n2", 7)]))
    assert core.raft.term == 7 and core.raft.lead == "n4"
    core.receive("c", "n9", _encode([Message(MT.HEARTBEAT, "n9", "n2", 8)]))
    assert core.raft.term == 7 and core.transport.stats["dropped_non_member"] == 2


def test_a_stranger_prompts_at_most_one_registry_lookup_per_interval() -> None:
    import asyncio

    from cluster_actors.actors import consensus_core as consensus

    asked: list[str] = []

    async def fake_registered_nodes(cluster: str) -> frozenset[str]:
        asked.append(cluster)
        return frozenset({"n1", "n2", "n3", "n4"})

    async def scenario() -> None:
        core = _core()
        original = consensus.registered_nodes
        consensus.registered_nodes = fake_registered_nodes  # type: ignore[assignment]
        try:
            for _ in range(5):
                assert not core._is_member("n4")
            await asyncio.sleep(0)  # the lookup runs
            assert asked == ["c"] and core._is_member("n4")
            assert not core._is_member("n9")  # still a stranger; no second lookup yet
            await asyncio.sleep(0)
            assert asked == ["c"]
        finally:
            consensus.registered_nodes = original  # type: ignore[assignment]

    asyncio.run(scenario())
