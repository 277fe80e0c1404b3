"""The heartbeat, membership and sync components drop (and count) what a peer
should not have sent: a batch from a node that is not a member, a message
naming another sender than its batch, a malformed message. Nothing dropped
changes state or raises into the sender's call. The consensus side of the
same checks is in ``test_peer_messages.py``."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.actors.heartbeat import HeartbeatActor
from cluster_actors.actors.membership import MembershipActor
from cluster_actors.actors.sync import SyncActor
from cluster_actors.core.membership import MembershipView
from cluster_actors.core.peer_checks import (
    gossip_problem,
    gossip_sender_allowed,
    heartbeat_problem,
    message_src,
    metadata_problem,
    sync_envelope_problem,
)
from cluster_actors.errors import ValidationFailed
from strategies.sync_base import SyncMessage
from tests.unit.shells import CLUSTER, shell


def _beat(src: str = "n2", **fields: Any) -> dict[str, Any]:
    return {"type": "heartbeat", "src": src, "seq": 1, "sent_at": 1.0, "interval": 1.0,
            "metadata": {"load": 0.1, "region": "eu"}, **fields}


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


# ======================================================================= core
def test_a_well_formed_heartbeat_passes_and_the_sender_is_its_src() -> None:
    assert heartbeat_problem(_beat()) is None
    assert message_src(_beat("n3")) == "n3"
    assert message_src(SyncMessage.make("n2", "n1", "k", {})) == "n2"
    assert message_src(42) is None


@pytest.mark.parametrize("message", [
    None, [], {"type": "view"}, _beat(src=None), _beat(src=""), _beat(src="x" * 1000),
    _beat(seq=True), _beat(seq=-1), _beat(seq=2**64), _beat(seq="1"),
    _beat(sent_at=math.nan), _beat(sent_at=math.inf), _beat(interval="1"),
    _beat(metadata=None), _beat(metadata={1: "x"}), _beat(metadata={"s": {1, 2}}),
    _beat(metadata={"f": math.nan}), _beat(metadata={"big": "x" * 100_000}),
])
def test_a_malformed_heartbeat_is_refused_with_a_reason(message: Any) -> None:
    assert isinstance(heartbeat_problem(message), str)


def test_heartbeat_metadata_is_bounded_json() -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"d": deep}
    assert metadata_problem({"region": "eu", "zones": ["a", "b"], "weight": 2}) is None
    assert "deep" in (metadata_problem({"deep": deep}) or "")


@pytest.mark.parametrize("message", [
    None, {"type": "view", "view": {}, "digest": "d"},  # no src
    {"type": "view", "src": "n2", "view": [], "digest": "d"},
    {"type": "view", "src": "n2", "view": {}, "digest": 5},
])
def test_a_malformed_gossip_message_is_refused(message: Any) -> None:
    assert isinstance(gossip_problem(message), str)


def test_only_a_joining_up_leaving_or_exiting_member_may_gossip() -> None:
    view = MembershipView.founded("n1", ["n1", "n2", "n3"])
    view.request_join("n4")
    assert gossip_sender_allowed(view, "n2") and gossip_sender_allowed(view, "n4")
    assert not gossip_sender_allowed(view, "n9")  # never heard of
    view.update_member_status("n3", "removed", "gone")
    assert not gossip_sender_allowed(view, "n3")


def test_a_sync_message_for_another_node_or_without_a_kind_is_refused() -> None:
    assert sync_envelope_problem("n1", "ae_push", "n1") is None
    assert "addressed" in (sync_envelope_problem("n2", "ae_push", "n1") or "")
    assert "kind" in (sync_envelope_problem("n1", "", "n1") or "")
    assert "kind" in (sync_envelope_problem("n1", 7, "n1") or "")


# ================================================================== heartbeat
def test_a_heartbeat_batch_from_a_non_member_is_dropped_and_counted() -> None:
    async def test() -> None:
        async with shell(HeartbeatActor) as actor:
            await actor.receive(CLUSTER, "n9", [_beat("n9")])
            assert "n9" not in actor.registry.peers()
            assert actor.transport.stats["dropped_non_member"] == 1
            status = await actor.get_heartbeat_status()
            assert status["transport"]["dropped_non_member"] == 1
            await actor.receive(CLUSTER, "n2", [_beat("n2")])  # a member's is recorded
            assert "n2" in actor.registry.peers()
    run(test)


def test_a_heartbeat_naming_another_sender_than_its_batch_is_dropped() -> None:
    async def test() -> None:
        async with shell(HeartbeatActor) as actor:
            await actor.receive(CLUSTER, "n2", [_beat("n3")])
            assert actor.registry.peers() == []
            assert actor.transport.stats["dropped_spoofed"] == 1
    run(test)


def test_a_malformed_heartbeat_is_dropped_without_recording_anything() -> None:
    async def test() -> None:
        async with shell(HeartbeatActor) as actor:
            await actor.receive(CLUSTER, "n2", [_beat(sent_at=math.inf),
                                                _beat(metadata={"x": {1}})])
            assert actor.registry.peers() == [] and actor.peer_metadata == {}
            assert actor.transport.stats["dropped_malformed"] == 2
    run(test)


def test_heartbeats_a_node_sends_pass_its_peers_checks() -> None:
    async def test() -> None:
        async with shell(HeartbeatActor, node_labels={"n1": {"region": "eu"}}) as sender:
            sent: list[Any] = []
            sender.transport.send_to = lambda _peers, batch: sent.extend(batch)
            await sender.send_heartbeat({"zone": "b"})
        async with shell(HeartbeatActor, node="n2") as receiver:
            await receiver.receive(CLUSTER, "n1", sent)
            assert receiver.peer_metadata["n1"]["region"] == "eu"
            assert receiver.peer_metadata["n1"]["zone"] == "b"
    run(test)


@pytest.mark.parametrize("metadata", [{"x": {1}}, {"f": math.nan}, {1: 2}, "labels"])
def test_metadata_a_peer_would_drop_is_refused_at_the_sender(metadata: Any) -> None:
    async def test() -> None:
        async with shell(HeartbeatActor) as actor:
            before = dict(actor.own_metadata)
            for call in (actor.send_heartbeat, actor.set_metadata):
                with pytest.raises(ValidationFailed, match="metadata"):
                    await call(metadata)
            assert actor.own_metadata == before
    run(test)


# ================================================================= membership
def _gossip(view: MembershipView, src: str) -> dict[str, Any]:
    return {"type": "view", "src": src, "digest": view.digest(), "view": view.to_dict()}


def test_gossip_from_a_node_the_view_does_not_list_is_dropped_and_counted() -> None:
    async def test() -> None:
        async with shell(MembershipActor) as actor:
            before = actor.membership.digest()
            stranger = MembershipView.founded("n9", ["n1", "n2", "n3", "n9"])
            await actor.receive(CLUSTER, "n9", [_gossip(stranger, "n9")])
            assert actor.membership.digest() == before
            assert actor.membership.get_member_info("n9") is None
            assert (await actor.gossip_stats())["transport"]["dropped_non_member"] == 1
    run(test)


def test_gossip_naming_another_sender_is_dropped_and_a_members_is_merged() -> None:
    async def test() -> None:
        async with shell(MembershipActor) as actor:
            before = actor.membership.digest()
            other = MembershipView.founded("n2", ["n1", "n2", "n3"])
            other.request_join("n4")
            await actor.receive(CLUSTER, "n2", [_gossip(other, "n3")])
            assert actor.membership.digest() == before
            assert actor.transport.stats["dropped_spoofed"] == 1
            await actor.receive(CLUSTER, "n2", [_gossip(other, "n2")])
            assert actor.membership.get_member_info("n4") is not None
    run(test)


def test_gossip_from_a_removed_member_is_dropped() -> None:
    async def test() -> None:
        async with shell(MembershipActor) as actor:
            await actor.update_member_status("n3", "removed", "gone")
            before = actor.membership.digest()
            old = MembershipView.founded("n3", ["n1", "n2", "n3"])
            old.request_join("n7")
            await actor.receive(CLUSTER, "n3", [_gossip(old, "n3")])
            assert actor.membership.digest() == before
            assert actor.transport.stats["dropped_non_member"] == 1
    run(test)


# ======================================================================= sync
def _push(src: str, dst: str = "n1") -> SyncMessage:
    entries = {"intruder": json.dumps([[{"x": 1}, {"type": "gcounter", "counts": {"x": 9}}]]
                                      ).encode()}
    return SyncMessage.make(src, dst, "ae_push", {"entries": entries})


def test_a_sync_batch_from_a_node_outside_the_configuration_is_dropped(tmp_path: Any) -> None:
    async def test() -> None:
        async with shell(SyncActor, data_dir=str(tmp_path)) as actor:
            before = actor.store.state_hash()
            await actor.receive(CLUSTER, "n9", [_push("n9")])
            assert actor.store.state_hash() == before and "intruder" not in actor.store
            status = await actor.get_sync_status()
            assert status["transport"]["dropped_non_member"] == 1
            await actor.receive(CLUSTER, "n2", [_push("n3")])  # spoofed
            assert actor.transport.stats["dropped_spoofed"] == 1
            assert actor.store.state_hash() == before
            await actor.receive(CLUSTER, "n2", [_push("n2")])  # a member's is merged
            assert "intruder" in actor.store
    run(test)


# ================================================================ any input
_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=10)
_sender = st.sampled_from(["n2", "n9", "", None, 5])
_message_fields = st.fixed_dictionaries({"type": st.sampled_from(["heartbeat", "view", 1]),
                                         "src": _sender}, optional={
    "seq": _junk, "sent_at": _junk, "metadata": _junk, "view": _junk, "digest": _junk})


@settings(max_examples=60)
@given(cluster=st.sampled_from([CLUSTER, "other", None]), src=_sender,
       messages=st.lists(_message_fields | _junk, max_size=3) | _junk)
def test_no_peer_batch_raises_into_the_sender_or_changes_a_view(
        cluster: Any, src: Any, messages: Any) -> None:
    async def test() -> None:
        async with shell(HeartbeatActor) as heartbeat, shell(MembershipActor) as membership:
            digest = membership.membership.digest()
            await heartbeat.receive(cluster, src, messages)
            await membership.receive(cluster, src, messages)
            assert membership.membership.digest() == digest
            assert set(heartbeat.registry.peers()) <= {"n2"}
    run(test)


def test_gossip_a_member_sends_passes_its_peers_checks() -> None:
    async def test() -> None:
        async with shell(MembershipActor, node="n2") as sender:
            await sender.request_join("n4")
            message = sender._message()
        async with shell(MembershipActor) as receiver:
            await receiver.receive(CLUSTER, "n2", [message])
            assert receiver.membership.get_member_info("n4") is not None
            assert receiver.merged == 1
    run(test)
