"""The Cluster API and the consensus component on a real local Ray."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from cluster_actors.cluster import Cluster
from cluster_actors.core.kv import Command
from cluster_actors.errors import (
    ClusterError,
    NotFound,
    NotLeader,
    UnknownStrategy,
    ValidationFailed,
)
from tests.ray import LIGHT
from tests.waiting import wait_until

HANG_GUARD = 60.0




@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start("itest", nodes=3)
    yield c
    c.shutdown()


def test_cluster_forms_and_every_node_agrees_on_the_leader(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(timeout=30)
    assert leader in cluster.node_ids
    status = wait_until(lambda: (s := cluster.status()) and all(
        n.leader == leader for n in s.nodes) and s)
    assert status.leader == leader
    assert [n.node_id for n in status.nodes] == ["n1", "n2", "n3"]
    assert all(n.voters == ["n1", "n2", "n3"] for n in status.nodes)
    assert sum(n.role == "leader" for n in status.nodes) == 1


def test_kv_operations_are_linearizable_writes_with_revisions(cluster: Cluster) -> None:
    kv = cluster.kv
    first = kv.put("alpha", 1)
    second = kv.put("alpha", 2)
    assert second.revision > first.revision
    record = kv.get_kv("alpha")
    assert record is not None and record.value == 2 and record.version == 2
    assert record.create_revision == first.revision
    assert kv.cas("alpha", 2, 3) is True
    assert kv.cas("alpha", 2, 4) is False
    assert kv.get("alpha") == 3
    assert kv.delete("alpha") is True
    assert kv.delete("alpha") is False
    assert kv.get("alpha", default="gone") == "gone"
    kv.put("beta", 1)
    kv.delete("beta")
    recreated = kv.put("beta", 2)
    assert kv.get_kv("beta").create_revision == recreated.revision > record.create_revision


def test_concurrent_commands_are_batched_and_all_applied(cluster: Cluster) -> None:
    futures = [cluster.kv.submit(("put", f"batch{i % 20}", i)) for i in range(2000)]
    results = [f.result(timeout=HANG_GUARD) for f in futures]
    assert all(r.ok for r in results)
    assert [r.revision for r in results] == sorted(r.revision for r in results)
    assert cluster.kv.get("batch19") == 1999
    leader = cluster.leader()
    stats = ray.get(cluster.session.handle(leader).status.remote())
    follower = next(n for n in cluster.node_ids if n != leader)
    calls = stats["transport"]["calls"]
    assert calls < 2000, f"{calls} Ray calls for 2000 commands: not batched"
    assert stats["progress"][follower]["match"] >= stats["commit"] - 1


def test_a_write_on_a_follower_raises_not_leader_naming_the_leader(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    follower = next(n for n in cluster.node_ids if n != leader)
    handle = cluster.session.handle(follower)
    with pytest.raises(NotLeader) as caught:
        try:
            ray.get(handle.submit.remote([Command("t", 1, ("put", "x", 1))]))
        except ray.exceptions.RayTaskError as error:
            raise error.as_instanceof_cause() from None
    assert caught.value.leader_id == leader
    assert leader in str(caught.value)


def test_items_is_one_linearizable_read_of_a_prefix_in_key_order(cluster: Cluster) -> None:
    for key in ("items/b", "items/a", "items/c", "itemsX"):
        cluster.kv.put(key, key.upper())
    records = cluster.kv.items("items/")
    assert [(r.key, r.value) for r in records] == [
        ("items/a", "ITEMS/A"), ("items/b", "ITEMS/B"), ("items/c", "ITEMS/C")]
    leader = cluster.wait_for_leader()
    follower = next(n for n in cluster.node_ids if n != leader)
    with pytest.raises(NotLeader):  # never answered by a node that may be deposed
        try:
            ray.get(cluster.session.handle(follower).read_prefix.remote("items/"))
        except ray.exceptions.RayTaskError as error:
            raise error.as_instanceof_cause() from None


def test_the_pushed_leader_follows_a_leader_kill_and_never_names_the_dead(
        cluster: Cluster) -> None:
    old = cluster.wait_for_leader()
    assert cluster.session.watch.wait_for_leader(HANG_GUARD) == old
    cluster.chaos.kill_leader()
    new = cluster.session.watch.wait_for_leader(HANG_GUARD, other_than=old)
    assert new is not None and new != old
    assert cluster.leader() == new
    assert wait_until(lambda: cluster.session.find_leader(timeout=1.0) == new)  # the nodes agree


def test_an_unknown_node_id_raises_not_found_naming_the_nodes(cluster: Cluster) -> None:
    for call in (cluster.node, cluster.coordinator, cluster.data, cluster.config):
        with pytest.raises(NotFound, match="n1, n2, n3") as raised:
            call("bogus")
        assert raised.value.code == "not_found"


def test_killing_the_leaders_consensus_elects_a_new_leader_and_keeps_acknowledged_writes(
        cluster: Cluster) -> None:
    acknowledged = {f"kill{i}": i for i in range(50)}
    for key, value in acknowledged.items():
        cluster.kv.put(key, value)
    old = cluster.wait_for_leader()
    old_term = cluster.status().term
    old_handle = cluster.session.handle(old)
    old_actor = old_handle._actor_id.hex()
    ray.kill(old_handle, no_restart=True)
    new = wait_until(lambda: (leader := cluster.session.find_leader(timeout=0)) not in (None, old)
                     and leader)
    assert cluster.status().term > old_term
    for key, value in acknowledged.items():
        assert cluster.kv.get(key) == value
    # the supervisor restarted the killed actor, which rejoined as a follower
    # with its log recovered from SQLite
    cluster.session.forget(old)

    def rejoined():  # type: ignore[no-untyped-def]
        status = cluster.status()
        node = next(n for n in status.nodes if n.node_id == old)
        return node.reachable and node.role == "follower" and node.leader == new and \
            node.applied >= status.nodes[0].commit - 5 and node
    node = wait_until(rejoined)
    assert cluster.session.handle(old)._actor_id.hex() != old_actor
    assert node.last_index >= 50
    events = cluster.supervisor(old).events_since()
    assert any(e["type"] == "child_restarted" and e["child_id"] == "consensus" for e in events)


def test_invalid_options_and_unknown_strategies_change_nothing(ray_local: None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        Cluster.start("bad1", nodes=3, options={"tick_ms": 0})
    assert caught.value.errors[0][0] == "tick_ms"
    with pytest.raises(ValidationFailed) as caught:
        Cluster.start("bad2", nodes=3, options={"no_such_option": 1})
    assert "valid options" in str(caught.value)
    with pytest.raises(UnknownStrategy) as unknown:
        Cluster.start("bad3", nodes=3, options={"sync_strategy": "telepathy"})
    assert "merkle_tree" in str(unknown.value)
    for name in ("bad1", "bad2", "bad3"):
        with pytest.raises(ValueError):
            ray.get_actor(f"{name}:root", namespace=f"cluster_actors.{name}")


def test_shutdown_leaves_no_actor_behind(ray_local: None) -> None:
    c = Cluster.start("shortlived", nodes=2)

    def named() -> list[str]:
        return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == "cluster_actors.shortlived"]

    assert {f"shortlived:{n}:{component}" for n in c.node_ids
            for component in ("consensus", "supervisor")} <= set(named())
    c.shutdown()
    assert named() == []  # no component, supervisor, registry or root is left


def test_a_node_that_catches_up_by_snapshot_hot_reloads_the_config_it_missed(
        ray_local: None) -> None:
    c = Cluster.start("snapcfg", nodes=3, options={"snapshot_every": 10, **LIGHT})
    try:
        leader = c.wait_for_leader(timeout=30)
        lagging = next(n for n in c.node_ids if n != leader)
        others = [n for n in c.node_ids if n != lagging]
        c.chaos.partition([others, [lagging]])
        wait_until(lambda: c.leader() in others)
        version = c.config(others[0]).set_config("heartbeat_interval", 600)
        for i in range(40):  # enough applied entries for the leader to compact its log
            c.kv.put(f"k{i}", i)
        c.chaos.heal()
        node = c.node(lagging)
        wait_until(lambda: node.consensus.get_status()["config_version"] == version)
        events = node.consensus.events_since(0)
        assert any(e["type"] == "snapshot_installed" for e in events)
        [announced] = [e for e in events if e["type"] == "config_changed"
                       and e.get("version") == version]
        assert announced["kind"] == "snapshot" and announced["changed_keys"] == [
            "heartbeat_interval"]
        wait_until(lambda: node.heartbeat.get_heartbeat_status()["heartbeat_interval"] == 600)
    finally:
        c.shutdown()


class PicklesOnce:
    """Passes the client's local pickle check, then cannot be serialized (as a
    value Ray cannot carry): the batch it travels in fails as a whole."""

    def __init__(self) -> None:
        self.pickled = 0

    def __reduce__(self) -> tuple[Any, ...]:
        self.pickled += 1
        if self.pickled > 1:
            raise TypeError("this value cannot be serialized twice")
        return (PicklesOnce, ())


def test_a_lambda_and_a_32_mib_value_fail_alone_while_three_other_threads_writes_succeed(
        cluster: Cluster) -> None:
    kv = cluster.kv
    written: dict[str, int] = {}
    failures: list[BaseException] = []

    def writer(thread: int) -> None:
        try:
            for i in range(40):
                kv.put(f"iso/{thread}/{i}", i)
                written[f"iso/{thread}/{i}"] = i
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    with pytest.raises(ValidationFailed, match="plain pickle"):
        kv.put("iso/lambda", lambda: 1)
    with pytest.raises(ValidationFailed, match="max_value_bytes"):
        kv.put("iso/big", b"x" * (32 << 20))
    burst = [kv.submit(("put", f"iso/burst{i}", i)) for i in range(20)]
    unsendable = kv.submit(("put", "iso/unsendable", PicklesOnce()))
    burst += [kv.submit(("put", f"iso/burst{i}", i)) for i in range(20, 40)]
    for thread in threads:
        thread.join(HANG_GUARD)
    assert not failures and len(written) == 120
    assert all(f.result(HANG_GUARD).ok for f in burst)
    error = unsendable.result(HANG_GUARD)
    assert isinstance(error, ClusterError) and "cannot be serialized" in str(error)
    keys = [*written, "iso/lambda", "iso/big", "iso/unsendable"]
    assert [kv_.value if kv_ else None for kv_ in kv.get_many(keys)] == [
        *written.values(), None, None, None]
    assert kv.session._sender is not None and kv.session._sender.is_alive()
    assert kv.session._outstanding == set()  # every seq resolved: the ack floor moved past them all
    # the leader refuses too, for a caller that uses the consensus actor directly
    handle = cluster.session.handle(cluster.wait_for_leader())
    lam, good = ray.get(handle.submit.remote([Command("raw", 1, ("put", "iso/raw", lambda: 1)),
                                              Command("raw", 2, ("put", "iso/raw", 2))]))
    assert isinstance(lam, ValidationFailed) and good.ok
    with pytest.raises(ValidationFailed):
        try:
            ray.get(handle.propose.remote(("put", None, 1)))
        except ray.exceptions.RayTaskError as error:
            raise error.as_instanceof_cause() from None


def test_a_lease_of_10_to_400_ms_is_refused_and_the_leader_keeps_ticking(
        cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    handle = cluster.session.handle(leader)
    [refused] = ray.get(handle.submit.remote([Command("raw-lease", 1,
                                                      ("lease_grant", None, 10**400))]))
    assert isinstance(refused, ValidationFailed) and "one day" in str(refused)
    assert isinstance(cluster.kv.submit(("lease_grant", None, 10**400)).result(HANG_GUARD),
                      ValidationFailed)
    # the leader's expiry clock still runs on its ticks: a short lease is revoked
    granted = cluster.kv.submit(("lease_grant", None, 300)).result(HANG_GUARD)
    assert granted.ok
    wait_until(lambda: cluster.session.call("lease_time_to_live", granted.lease_id,
                                               timeout=HANG_GUARD) is None)
    assert cluster.kv.put("after-the-refused-lease", 1).ok


def test_forged_peer_messages_are_dropped_counted_and_change_nothing(cluster: Cluster) -> None:
    """What a stray process could send a node's consensus actor: a batch from
    a non-member, a message claiming another sender, an acknowledgement of an
    index far beyond the leader's log, a configuration entry with junk data."""
    from cluster_actors.core.raft_types import Entry, EntryKind, Message, MessageType
    from cluster_actors.runtime.transport import _encode

    leader = cluster.wait_for_leader()
    follower = next(n for n in cluster.node_ids if n != leader)
    cluster.kv.put("forged/before", 1)
    lead, other = cluster.session.handle(leader), cluster.session.handle(follower)

    def status(handle: Any) -> dict[str, Any]:
        return ray.get(handle.status.remote(), timeout=HANG_GUARD)

    before_leader, before_follower = status(lead), status(other)
    term = before_follower["term"]
    forged = [
        # a non-member sends: dropped whole
        (other, "n9", [Message(MessageType.HEARTBEAT, "n9", follower, term + 50)]),
        # a member's batch carrying a message that claims another sender
        (other, leader, [Message(MessageType.HEARTBEAT, "n9", follower, term + 50)]),
        # an acknowledgement of an index far beyond the leader's log
        (lead, follower, [Message(MessageType.APPEND_RESP, follower, leader, term,
                                  index=10**9)]),
        # a configuration entry whose data is not a ConfChange
        (other, leader, [Message(MessageType.APPEND, leader, follower, term + 50,
                                 index=before_follower["last_index"], log_term=term,
                                 entries=(Entry(before_follower["last_index"] + 1,
                                                term + 50, EntryKind.CONFIG,
                                                {"voters": ["n9"]}),))]),
    ]
    for handle, src, batch in forged:
        ray.get(handle.receive.remote(cluster.name, src, _encode(batch)), timeout=HANG_GUARD)

    after_leader, after_follower = status(lead), status(other)
    assert after_follower["term"] == after_leader["term"] == term  # no forged term taken
    assert after_leader["commit"] <= after_leader["last_index"]
    assert after_leader["voters"] == after_follower["voters"] == before_leader["voters"]
    counted = {key: after_follower["transport"].get(key, 0)
               - before_follower["transport"].get(key, 0)
               for key in ("dropped_non_member", "dropped_spoofed", "dropped_malformed")}
    assert counted == {"dropped_non_member": 1, "dropped_spoofed": 1, "dropped_malformed": 1}
    assert after_leader["dropped_messages"] >= before_leader["dropped_messages"] + 1
    assert cluster.kv.put("forged/after", 2).ok and cluster.kv.get("forged/before") == 1


def test_a_raw_config_command_is_refused_and_the_configuration_stays(cluster: Cluster) -> None:
    """Configuration enters the log only through the validated config path:
    a ``("config", record)`` KV command (quorum 1, an uninstalled strategy)
    is refused, by the client and by the leader."""
    coordinator = cluster.coordinator(cluster.wait_for_leader())
    version = coordinator.get_config("version")
    record = {"version": version + 1, "config": {"quorum": 1, "sync_strategy": "no-such"}}
    refused = cluster.kv.submit(("config", record)).result(HANG_GUARD)
    assert isinstance(refused, ValidationFailed)
    handle = cluster.session.handle(cluster.wait_for_leader())
    [raw] = ray.get(handle.submit.remote([Command("raw-config", 1, ("config", record))]),
                    timeout=HANG_GUARD)
    assert isinstance(raw, ValidationFailed) and "not KV commands" in str(raw)
    assert coordinator.get_config("version") == version
    assert coordinator.get_config("quorum") != 1
