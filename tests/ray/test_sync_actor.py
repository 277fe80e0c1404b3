"""The sync component and the per-node CRDT store on a real local Ray: convergence
of writes made on different nodes, LWW registers, partitions, run-time strategy
switches (per node and through the replicated config), explicit syncs, conflict
resolution of MV-register siblings, Merkle proofs, malformed peer messages, and a
restarted replica rebuilding from its peers."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from cluster_actors.client.data import DataStore
from cluster_actors.cluster import Cluster
from cluster_actors.errors import (
    ClusterError,
    NotFound,
    SyncFailed,
    UnknownStrategy,
    ValidationFailed,
)
from strategies.sync_base import SyncMessage
from tests import waiting

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

HANG = 30.0  # seconds; only catches hangs, asserts nothing about speed
# a component restarting answers with an error: not yet
wait_until = functools.partial(waiting.wait_until, timeout=HANG,
                               tolerate=(ClusterError, ray.exceptions.RayActorError))
NODES = ["n1", "n2", "n3"]


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start(f"sync-{uuid.uuid4().hex[:8]}", nodes=3, options={"sync_interval": 100})
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def data(cluster: Cluster) -> dict[str, DataStore]:
    stores = {n: DataStore(cluster.name, n) for n in NODES}
    wait_until(lambda: all(s.state_hash() for s in stores.values()), "sync actors up")
    return stores


def converged(data: dict[str, DataStore], nodes: list[str] = NODES) -> bool:
    return len({data[n].state_hash() for n in nodes}) == 1


def sync(cluster: Cluster, node: str) -> Any:
    return cluster.node(node).sync


def block(cluster: Cluster, groups: list[list[str]]) -> None:
    """Cut the sync links between ``groups`` (both directions)."""
    for group in groups:
        others = [n for n in NODES if n not in group]
        for node in group:
            sync(cluster, node).set_faults(blocked=others)


def heal(cluster: Cluster) -> None:
    for node in NODES:
        sync(cluster, node).set_faults()


def set_all(cluster: Cluster, name: str) -> None:
    for node in NODES:
        sync(cluster, node).set_strategy(name)


def test_writes_on_every_node_converge_with_the_right_values(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    for i, node in enumerate(NODES, start=1):
        assert data[node].increment("hits", i) >= i
        data[node].add("tags", node)
    data["n2"].decrement("hits", 1)
    data["n1"].put_field("profile", "name", "ada")
    wait_until(lambda: converged(data), "convergence")
    for node in NODES:
        assert data[node].get("hits") == 1 + 2 + 3 - 1
        assert data[node].get("tags") == frozenset(NODES)
        assert data[node].get("profile") == {"name": "ada"}
        assert data[node].get("missing", "dflt") == "dflt"
    assert data["n3"].items()["hits"] == 5
    status = data["n1"].status()
    stats = status["stats"]["anti_entropy"]
    assert stats["messages"] > 0 and stats["bytes_sent"] > 0 and stats["rounds"] > 0
    assert status["sync_bytes_total"] >= stats["bytes_sent"]
    vectors = [data[n].vector_clock() for n in NODES]
    assert vectors[0] == vectors[1] == vectors[2] and sum(vectors[0].values()) >= 7
    assert sync(cluster, "n1").merge_vector_clocks({"a": 1, "b": 3}, {"a": 2}) == {"a": 2, "b": 3}


def test_a_write_of_the_wrong_type_is_rejected_and_changes_nothing(
        data: dict[str, DataStore]) -> None:
    data["n1"].increment("typed", 5)
    before = data["n1"].state_hash()
    with pytest.raises(ValidationFailed, match="PNCounter"):
        data["n1"].add("typed", "x")
    with pytest.raises(ValidationFailed, match="counter_add"):
        data["n1"].update(("explode", "typed"))
    with pytest.raises(ValidationFailed):
        data["n1"].delete("typed")  # counters only grow
    assert data["n1"].state_hash() == before and data["n1"].get("typed") == 5


def test_concurrent_lww_writes_converge_to_one_value(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    handles = [sync(cluster, n).handle for n in NODES]
    ray.get([h.data_update.remote(("register_set", "reg", f"from-{n}"))
             for h, n in zip(handles, NODES, strict=True)], timeout=HANG)
    wait_until(lambda: converged(data), "register convergence")
    values = {data[n].get("reg") for n in NODES}
    assert len(values) == 1 and values <= {"from-n1", "from-n2", "from-n3"}
    # a write made after seeing the others wins everywhere, whatever the clocks say
    data["n3"].set("reg", "final")
    wait_until(lambda: converged(data), "second register convergence")
    assert [data[n].get("reg") for n in NODES] == ["final"] * 3


def test_a_partition_delays_convergence_and_healing_converges(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    block(cluster, [["n1", "n2"], ["n3"]])
    try:
        data["n3"].increment("split", 100)
        data["n1"].increment("split", 1)
        wait_until(lambda: data["n2"].get("split") == 1 and converged(data, ["n1", "n2"]),
                   "the majority side to converge")
        assert data["n1"].get("split") == 1 and data["n3"].get("split") == 100
        with pytest.raises(SyncFailed, match="reachable"):
            sync(cluster, "n3").trigger_sync("full_sync")
    finally:
        heal(cluster)
    wait_until(lambda: converged(data), "convergence after the heal")
    assert [data[n].get("split") for n in NODES] == [101] * 3


def test_set_strategy_switches_and_an_unknown_name_changes_nothing(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    n1 = sync(cluster, "n1")
    try:
        described = n1.set_strategy("merkle_tree")
        assert described["name"] == "merkle_tree"
        with pytest.raises(UnknownStrategy, match="anti_entropy"):
            n1.set_strategy("no_such_strategy")
        with pytest.raises(ValidationFailed, match="fanout"):
            n1.set_strategy("merkle_tree", fanout=0)
        status = n1.get_sync_status()
        assert status["strategy"]["name"] == "merkle_tree"
        assert status["strategy"]["options"] == {"fanout": 1}
        assert status["strategy_source"] == "set_strategy"
        # mixed strategies still converge: each side answers the other's protocol
        sync(cluster, "n3").set_strategy("gossip")
        data["n1"].add("mixed", "a")
        data["n2"].add("mixed", "b")
        data["n3"].add("mixed", "c")
        wait_until(lambda: converged(data), "convergence with mixed strategies")
        assert data["n2"].get("mixed") == frozenset("abc")
        stats = wait_until(lambda: (s := n1.get_sync_status()["stats"]).get("merkle_tree")
                           and s["merkle_tree"]["by_kind"].get("mt_level") and s,
                           "merkle rounds on n1")
        assert stats["merkle_tree"]["bytes_sent"] > 0
        # n1 answered its peers' protocols with the strategies that speak them
        kinds = ("ae_push", "gossip_push", "mt_level")
        wait_until(lambda: all(n1.get_sync_status()["received"].get(k) for k in kinds),
                   "every protocol in use handled on n1")
    finally:
        set_all(cluster, "anti_entropy")


def test_trigger_sync_returns_an_id_that_status_reports(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    n1 = sync(cluster, "n1")
    sync_id = n1.trigger_sync("full_sync")
    assert isinstance(sync_id, str) and sync_id
    record = n1.wait_sync(sync_id, HANG)
    assert record["outcome"] == "completed" and record["peers"] == ["n2", "n3"]
    assert record["messages"] == 2 and record["awaiting"] == []
    rounds = {r["id"]: r for r in n1.get_sync_status()["rounds"]}
    assert rounds[sync_id]["outcome"] == "completed" and rounds[sync_id]["type"] == "full_sync"
    incremental = n1.trigger_sync("incremental")
    assert incremental != sync_id and rounds.keys() <= {
        r["id"] for r in n1.get_sync_status()["rounds"]}
    assert n1.wait_sync(incremental, HANG)["outcome"] in ("sent", "idle")
    with pytest.raises(ValidationFailed, match="full_sync, incremental"):
        n1.trigger_sync("bogus")
    with pytest.raises(NotFound, match="unknown peer"):
        n1.sync_node("n9")
    assert n1.wait_sync(n1.sync_node("n2", "full_sync"), HANG)["peers"] == ["n2"]
    assert data["n2"].sync_now()["outcome"] == "completed"
    # a peer that never answers: the sync fails with the seed's sync_failed
    sync(cluster, "n3").set_faults(blocked=["n1"])
    try:
        with pytest.raises(SyncFailed) as failed:
            data["n1"].sync_now(timeout=0.5)
        assert failed.value.code == "sync_failed" and failed.value.record["awaiting"] == ["n3"]
        assert "n3" in str(failed.value)
    finally:
        sync(cluster, "n3").set_faults()


def test_resolve_conflict_collapses_mv_siblings_on_every_node(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    set_all(cluster, "vector_clock")
    try:
        data["n1"].set_value("mv", "base")
        wait_until(lambda: all(data[n].get("mv") == ("base",) for n in NODES), "base value")
        block(cluster, [["n1"], ["n2", "n3"]])
        try:
            data["n1"].set_value("mv", "left")
            data["n2"].set_value("mv", "right")
            wait_until(lambda: data["n3"].get("mv") == ("right",), "the n2 side")
        finally:
            heal(cluster)
        wait_until(lambda: converged(data), "siblings everywhere")
        for node in NODES:
            assert data[node].conflicts() == ["mv"]
            assert data[node].get("mv") == ("left", "right")
        entry = data["n3"].entry("mv")
        assert entry["conflict"] and len(entry["versions"]) == 2
        assert "mv" in data["n2"].status()["pending_conflicts"]
        with pytest.raises(ValidationFailed, match="resolution"):
            data["n1"].resolve_conflict("mv", "coin_flip")
        with pytest.raises(ClusterError) as missing:
            data["n1"].resolve_conflict("no-such-key", "merge")
        assert missing.value.code == "not_found"
        assert data["n1"].conflicts() == ["mv"]
        assert data["n2"].resolve_conflict("mv", "value", "agreed") is True
        wait_until(lambda: converged(data) and not data["n1"].conflicts(), "resolution")
        for node in NODES:
            assert data[node].conflicts() == [] and data[node].get("mv") == ("agreed",)
    finally:
        set_all(cluster, "anti_entropy")


def test_merkle_trees_and_proofs(cluster: Cluster, data: dict[str, DataStore]) -> None:
    n1 = sync(cluster, "n1")
    tree = n1.create_merkle_tree({"a": 1, "b": 2, "c": 3})
    assert tree["keys"] == 3 and len(tree["root"]) == 32
    proof = n1.merkle_proof("a", {"a": 1, "b": 2, "c": 3})
    assert proof["root"] == tree["root"]
    assert n1.verify_merkle_proof(("a", 1), tree["root"], proof["proof"]) is True
    assert n1.verify_merkle_proof(("a", 2), tree["root"], proof["proof"]) is False
    other = n1.create_merkle_tree({"a": 1, "b": 2, "c": 4})["root"]
    assert n1.verify_merkle_proof(("a", 1), other, proof["proof"]) is False
    assert n1.verify_merkle_proof(("a", 1), tree["root"], {"junk": True}) is False
    # the store's own tree: its root is the state hash
    stored = n1.merkle_proof("hits")
    assert stored["root"] == data["n1"].state_hash()
    assert n1.verify_merkle_proof(stored["leaf"], stored["root"], stored["proof"]) is True


def test_malformed_messages_are_dropped_counted_and_change_nothing(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    wait_until(lambda: converged(data), "a quiet store")
    n1 = sync(cluster, "n1")
    before_hash, before = data["n1"].state_hash(), n1.transport_stats()
    good_entries = {"intruder": b'[[{"x":1},{"type":"gcounter","counts":{"x":9}}]]'}
    batch = [
        "not a message",
        SyncMessage.make("n3", "n1", "ae_push", {"entries": good_entries}),   # forged sender
        SyncMessage.make("n2", "n3", "ae_push", {"entries": good_entries}),   # not for n1
        SyncMessage.make("n2", "n1", "ae_push", {"entries": {"k": b"{not json"}}),
        SyncMessage.make("n2", "n1", "ae_push", {"entries": "not a mapping"}),
        SyncMessage.make("n2", "n1", "no_such_kind", {}),
    ]
    ray.get(n1.handle.receive.remote(cluster.name, "n2", batch), timeout=HANG)
    ray.get(n1.handle.receive.remote("another-cluster", "n2", batch[1:2]), timeout=HANG)
    after = n1.transport_stats()
    assert after.get("dropped_malformed", 0) - before.get("dropped_malformed", 0) == \
        len(batch) - 1
    assert after.get("dropped_spoofed", 0) - before.get("dropped_spoofed", 0) == 1
    assert after.get("dropped_foreign", 0) == before.get("dropped_foreign", 0) + 1
    assert data["n1"].state_hash() == before_hash and data["n1"].get("intruder") is None
    assert n1.get_sync_status()["rejected"] >= 3


def test_a_config_change_switches_every_node(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    leader = cluster.wait_for_leader(timeout=HANG)
    consensus = cluster.session.handle(leader)
    record = ray.get(consensus.config_store.remote(), timeout=HANG).prepare(
        {"sync_strategy": "last_write_wins"})
    # a raw config command bypasses validation and approval: refused, nothing proposed
    with pytest.raises(ValidationFailed, match="not KV commands"):
        try:
            ray.get(consensus.propose.remote(("config", record.model_dump())), timeout=HANG)
        except ray.exceptions.RayTaskError as error:
            raise error.cause from None
    assert ray.get(consensus.config_store.remote(), timeout=HANG).version == record.version - 1
    version = cluster.config(leader).set_config("sync_strategy", "last_write_wins")
    assert version == record.version
    statuses = wait_until(lambda: (s := [sync(cluster, n).get_sync_status() for n in NODES])
                          and all(x["strategy"]["name"] == "last_write_wins" for x in s) and s,
                          "every node on last_write_wins")
    for status in statuses:
        assert status["strategy_source"] == "config"
        assert status["config_version"] == record.version
    data["n2"].increment("after-config", 3)
    wait_until(lambda: converged(data), "convergence under last_write_wins")
    assert data["n1"].get("after-config") == 3


def test_a_restarted_replica_gets_a_new_identity_and_rebuilds_from_peers(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    wait_until(lambda: converged(data), "a converged cluster")
    n3 = sync(cluster, "n3")
    old = n3.get_sync_status()["replica_id"]
    ray.kill(n3.handle, no_restart=True)
    with contextlib.suppress(Exception):
        n3._handle = None
    new = wait_until(lambda: (rid := DataStore(cluster.name, "n3").status()["replica_id"]) != old
                     and rid, "the restarted sync actor")
    assert new.startswith("n3@") and new != old
    fresh = DataStore(cluster.name, "n3")
    wait_until(lambda: converged({**data, "n3": fresh}), "the restarted replica to catch up")
    assert fresh.get("hits") == 5 and fresh.get("tags") == frozenset(NODES)
    # the configured strategy survives the restart
    assert fresh.status()["strategy"]["name"] == "last_write_wins"


def test_an_acknowledged_write_survives_its_sync_actor_dying_before_any_peer_has_it(
        cluster: Cluster, data: dict[str, DataStore]) -> None:
    block(cluster, [["n1", "n2"], ["n3"]])
    try:
        assert data["n3"].increment("durable", 42) == 42
        n3 = sync(cluster, "n3")
        old = n3.get_sync_status()["replica_id"]
        ray.kill(n3.handle, no_restart=True)
        fresh = DataStore(cluster.name, "n3")
        status = wait_until(lambda: (s := fresh.status())["replica_id"] != old and s,
                            "the restarted sync actor")
        # reloaded from the node's replica database, not from a peer: n1 and n2 never had it
        assert fresh.get("durable") == 42 and status["durable"]["recovered_keys"] > 0
        assert data["n1"].get("durable") is None and data["n2"].get("durable") is None
    finally:
        for node in ("n1", "n2"):
            sync(cluster, node).set_faults()
    wait_until(lambda: converged({**data, "n3": DataStore(cluster.name, "n3")}),
               "convergence after the restart")
    assert [data[n].get("durable") for n in ("n1", "n2")] == [42, 42]
