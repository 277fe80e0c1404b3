"""Fail-stop on storage errors, without Ray: the order a Ready is carried out
in (what may leave before the persist), the consensus shell stopping on a
failed persist, background loops that crash their actor, and a crashed
supervised actor's end."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from cluster_actors.actors.consensus import ConsensusCore
from cluster_actors.core.cluster_state import ClusterStateMachine
from cluster_actors.core.kv import Command
from cluster_actors.core.raft import RaftNode, RaftOptions
from cluster_actors.core.raft_types import Entry, EntryKind, HardState, Message, MessageType, Ready
from cluster_actors.errors import NotLeader
from cluster_actors.runtime.failstop import run_forever
from cluster_actors.runtime.storage import StorageError
from cluster_actors.runtime.supervisor import ChildCrashed, SupervisedActor
from cluster_actors.testing.sim import Storage

OPTIONS = RaftOptions(election_tick=10, heartbeat_tick=2)


def _drain(node: RaftNode, storage: Storage) -> list[Message]:
    """Carry out every pending Ready of ``node`` (persist in memory); its messages."""
    sent: list[Message] = []
    while not (ready := node.ready()).is_empty():
        ready.carry_out(sent.extend, storage.persist, lambda r: None)
    return sent


def _pump(nodes: dict[str, RaftNode], storages: dict[str, Storage]) -> None:
    for _ in range(20):
        messages = [m for i in nodes for m in _drain(nodes[i], storages[i])]
        if not messages:
            return
        for message in messages:
            nodes[message.dst].step(message)


def _single_voter_leader() -> tuple[dict[str, RaftNode], dict[str, Storage]]:
    """``n1``, the only voter, leading the learner ``n2`` (caught up)."""
    nodes = {i: RaftNode.bootstrap(i, ["n1"], learners=["n2"], options=OPTIONS,
                                   rng=random.Random(1)) for i in ("n1", "n2")}
    storages = {i: Storage() for i in nodes}
    nodes["n1"].force_election()
    _pump(nodes, storages)
    assert nodes["n1"].is_leader and nodes["n2"].lead == "n1"
    return nodes, storages


def _three_voter_leader() -> tuple[dict[str, RaftNode], dict[str, Storage]]:
    ids = ["n1", "n2", "n3"]
    nodes = {i: RaftNode.bootstrap(i, ids, options=OPTIONS, rng=random.Random(i)) for i in ids}
    storages = {i: Storage() for i in ids}
    nodes["n1"].force_election()
    _pump(nodes, storages)
    assert nodes["n1"].is_leader
    return nodes, storages


def test_a_ready_that_changes_the_term_sends_nothing_before_its_persist() -> None:
    node = _single_voter_leader()[0]["n1"]
    node.force_election()  # a new term: the leader campaigns again and wins at once
    ready = node.ready()
    assert ready.new_term_or_vote and ready.messages
    early, late = ready.split_messages()
    assert early == [] and late == ready.messages


def test_a_candidate_asks_for_votes_before_its_persist_and_a_voter_answers_after_its_own() -> None:
    nodes, _storages = _three_voter_leader()
    candidate = nodes["n2"]
    candidate.force_election()
    ready = candidate.ready()
    assert ready.new_term_or_vote and ready.hard_state.vote == "n2"
    early, late = ready.split_messages()
    # the requests vouch for nothing: they leave while the candidate writes
    assert {m.type for m in early} == {MessageType.VOTE} and late == []
    assert {m.dst for m in early} == {"n1", "n3"}
    voter = nodes["n3"]
    voter.step(next(m for m in early if m.dst == "n3"))
    answer = voter.ready()
    assert answer.new_term_or_vote and answer.hard_state.vote == "n2"
    early, late = answer.split_messages()
    # the answer vouches for a vote that must be on disk first
    assert early == [] and [m.type for m in late] == [MessageType.VOTE_RESP]


def test_a_single_voter_sends_no_commit_of_entries_it_has_not_persisted() -> None:
    node = _single_voter_leader()[0]["n1"]
    node.propose(Command("c", 1, ("put", "k", 1)))
    ready = node.ready()
    assert ready.hard_state is not None and ready.hard_state.commit >= ready.entries[0].index
    assert any(m.type is MessageType.APPEND for m in ready.messages)
    early, _late = ready.split_messages()
    assert early == [], "a learner must not learn a commit the leader may still lose"


def test_in_the_steady_state_appends_still_leave_before_the_persist() -> None:
    nodes, _storages = _three_voter_leader()
    leader = nodes["n1"]
    leader.propose(Command("c", 1, ("put", "k", 1)))
    ready = leader.ready()
    assert not ready.new_term_or_vote and ready.entries
    early, late = ready.split_messages()
    assert early and all(m.type is MessageType.APPEND for m in early) and late == []


def test_carry_out_stops_at_a_failing_persist() -> None:
    entry = Entry(2, 1, EntryKind.NORMAL, Command("c", 1, ("put", "k", 1)))
    ready = Ready(hard_state=HardState(1, "n1", 1), entries=[entry],
                  messages=[Message(MessageType.APPEND, "n1", "n2", term=1, index=1,
                                    log_term=1, entries=(entry,), commit=1),
                            Message(MessageType.VOTE_RESP, "n1", "n3", term=1)],
                  committed_entries=[Entry(1, 1, EntryKind.NOOP)])
    done: list[Any] = []

    def fail(_ready: Ready) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        ready.carry_out(done.extend, fail, lambda r: done.append("apply"))
    assert [m.type for m in done] == [MessageType.APPEND], \
        "only the early append leaves; nothing after a failed persist is sent or applied"


class _FullDisk:
    def __init__(self) -> None:
        self.calls = 0

    def persist(self, ready: Ready) -> None:
        self.calls += 1
        raise StorageError("persisting failed, nothing of this Ready was written: "
                           "database or disk is full")

    def close(self) -> None:
        pass


class _Transport:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.closed = False

    def send(self, messages: list[Message]) -> None:
        assert not self.closed, "a stopped node sends nothing"
        self.sent.extend(messages)

    def close(self) -> None:
        self.closed = True


def test_a_failed_persist_stops_the_consensus_node_before_it_acknowledges() -> None:
    async def scenario() -> None:
        core = ConsensusCore("c", "n1", ["n1"], {})
        nodes, storages = _single_voter_leader()
        core.raft, storage = nodes["n1"], storages["n1"]
        core.sm = ClusterStateMachine(None)
        core.sm.restore(storage.snapshot.data)
        for entry in storage.entries:
            core.sm.apply(entry)
        core.storage = _FullDisk()  # type: ignore[assignment]
        core.transport = _Transport()  # type: ignore[assignment]
        crashes: list[tuple[str, BaseException]] = []
        core.on_fatal = lambda reason, error: crashes.append((reason, error))
        applied = core.sm.applied_index
        result = asyncio.ensure_future(core.submit([Command("c", 1, ("put", "k", 1))]))
        await asyncio.sleep(0)  # the submit proposes and schedules the Ready
        await asyncio.sleep(0)  # the Ready runs: its persist fails
        assert core.storage.calls == 1
        assert core.failed is not None and len(crashes) == 1
        assert isinstance(crashes[0][1], StorageError)
        assert core.transport.sent == [] and core.transport.closed
        assert core.sm.applied_index == applied and core.sm.get("k") is None
        with pytest.raises(NotLeader):
            await result  # the client is told to go elsewhere, never "done"
        with pytest.raises(NotLeader, match="stopped on a fatal error"):
            core.require_started()
        core._process()  # a stopped node carries out nothing more
        assert core.storage.calls == 1

    asyncio.run(scenario())


def test_a_background_loop_that_raises_crashes_its_actor_and_a_cancelled_one_does_not() -> None:
    async def scenario() -> list[tuple[str, BaseException]]:
        crashes: list[tuple[str, BaseException]] = []

        async def broken() -> None:
            await asyncio.sleep(0)
            raise RuntimeError("tick failed")

        task = run_forever(broken(), lambda r, e: crashes.append((r, e)), "the tick loop")
        quiet = run_forever(asyncio.sleep(10), lambda r, e: crashes.append((r, e)), "a timer")
        await asyncio.sleep(0.01)
        quiet.cancel()
        await asyncio.sleep(0.01)
        assert task.done()
        return crashes

    crashes = asyncio.run(scenario())
    assert len(crashes) == 1
    assert "the tick loop failed" in crashes[0][0] and isinstance(crashes[0][1], RuntimeError)


class _Hosted(SupervisedActor):
    def __init__(self) -> None:
        self._supervised_host = object()  # in a NodeHost: no Ray call on exit
        self.halted = 0
        self.stopped = 0

    def on_crash(self) -> None:
        self.halted += 1

    async def on_stop(self) -> None:
        self.stopped += 1


def test_a_crashed_actor_reports_an_abnormal_exit_once_and_never_stops_gracefully() -> None:
    async def scenario() -> _Hosted:
        actor = _Hosted()
        actor.crash("persist failed", OSError(28, "No space left on device"))
        actor.crash("again")
        with pytest.raises(ChildCrashed, match="persist failed"):
            await actor.until_stopped()
        await actor.graceful_stop()
        return actor

    actor = asyncio.run(scenario())
    assert actor.halted == 1 and actor.stopped == 0


def test_run_forever_keeps_no_handler_from_raising_into_the_loop() -> None:
    async def scenario() -> None:
        def handler(reason: str, error: BaseException) -> Any:
            raise ValueError("handler broke")

        async def broken() -> None:
            raise RuntimeError("x")

        run_forever(broken(), handler, "a loop")
        await asyncio.sleep(0.01)

    asyncio.run(scenario())


class _Component(SupervisedActor):
    def __init__(self, *args: Any) -> None:
        self.stopped = 0

    async def on_stop(self) -> None:
        self.stopped += 1


def test_a_crashed_component_crashes_its_node_host_after_stopping_the_others() -> None:
    from types import SimpleNamespace

    from cluster_actors.runtime.hosting import NodeHost

    def actor_class(cls: type) -> Any:
        return SimpleNamespace(__ray_metadata__=SimpleNamespace(modified_class=cls))

    async def scenario() -> Any:
        host_class = NodeHost.__ray_metadata__.modified_class
        host = host_class("c", "n1", [("consensus", actor_class(_Component)),
                                      ("sync", actor_class(_Component))], ())
        host._supervised_host = object()  # no Ray process to end in this test
        await host.on_activate()
        host.components["consensus"].crash("persist failed: disk full")
        with pytest.raises(ChildCrashed, match="consensus of node n1 crashed"):
            await asyncio.wait_for(host.until_stopped(), 5.0)
        return host

    host = asyncio.run(scenario())
    assert host.components["sync"].stopped == 1, "the sibling closes its files first"
    assert host.components["consensus"].stopped == 0, "a crashed component is not stopped"
