"""The coordinator and monitor components on a real 3-node cluster: the seed's
Coordinator API through the typed client, config replication and validation,
the lifecycle driven by what happens (an election after the leader's consensus
actor is killed, a restarted coordinator, activities), the monitor's health,
history and alerts, and its Prometheus endpoint scraped over HTTP."""

from __future__ import annotations

import importlib.util
import itertools
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families
from ray.exceptions import RayActorError

from cluster_actors.client.coordinator import ClusterStatusModel, Coordinator, Quorum
from cluster_actors.cluster import Cluster
from cluster_actors.errors import ClusterError, NotFound, UnknownStrategy, ValidationFailed
from cluster_actors.runtime.naming import actor_name, namespace, registry_name
from tests.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

HANG = 30.0  # seconds; only catches hangs, asserts nothing about speed


@ray.remote(num_cpus=0)
class Recorder:
    """Collects pushed events and alerts."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def on_event(self, event: dict[str, Any]) -> None:
        self.items.append(event)

    def on_alert(self, alert: dict[str, Any]) -> None:
        self.items.append(alert)

    def get(self) -> list[dict[str, Any]]:
        return list(self.items)


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    started = Cluster.start(f"coordmon-{uuid.uuid4().hex[:8]}", nodes=3,
                            options={"heartbeat_interval": 200, "prometheus_port": 0})
    yield started
    started.shutdown()


@pytest.fixture(scope="module")
def coords(cluster: Cluster) -> dict[str, Coordinator]:
    return {n: Coordinator(cluster.name, n) for n in cluster.node_ids}


def all_stable(coords: dict[str, Coordinator]) -> dict[str, Coordinator]:
    """Wait until every coordinator is in ``stable`` and they agree on a leader."""

    def probe() -> bool:
        states = {c.lifecycle_state() for c in coords.values()}
        leaders = {c.get_leader() for c in coords.values()}
        return states == {"stable"} and len(leaders) == 1 and None not in leaders

    wait_until(probe, "every coordinator stable with one leader")
    return coords


def a_follower(cluster: Cluster, coords: dict[str, Coordinator]) -> Coordinator:
    leader = cluster.wait_for_leader()
    return next(c for n, c in coords.items() if n != leader)


def versions(coords: dict[str, Coordinator]) -> dict[str, int]:
    return {n: c.get_config()["version"] for n, c in coords.items()}


# --------------------------------------------------------------- leadership


def test_leader_members_and_quorum_agree_on_every_node(cluster: Cluster,
                                                       coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    leader = cluster.wait_for_leader()
    assert {c.get_leader() for c in coords.values()} == {leader}
    for coord in coords.values():
        assert coord.get_members() == ["n1", "n2", "n3"]
        quorum = coord.get_quorum()
        assert isinstance(quorum, Quorum) and quorum == (True, 2, 3)
        has_quorum, size, current = quorum
        assert (has_quorum, size, current) == (True, 2, 3)


def test_cluster_status_is_typed_and_stable(cluster: Cluster,
                                            coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    leader = cluster.wait_for_leader()
    for node, coord in coords.items():
        state, status = coord.get_cluster_status()
        # optional components (membership, heartbeat, sync) do not make a node degraded:
        # stable means a leader, quorum, and every voter's consensus answering
        assert state == "stable" and isinstance(status, ClusterStatusModel)
        assert status.node_id == node and status.state == "stable"
        assert status.leader == leader and status.role == ("leader" if node == leader
                                                           else "follower")
        assert status.quorum == Quorum(True, 2, 3) and status.unreachable == []
        assert status.components["consensus"] and status.components["monitor"]


def test_member_info_join_and_unknown_member(coords: dict[str, Coordinator],
                                             cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    info = coords["n1"].get_member_info(leader)
    assert info["role"] == "voter" and info["is_leader"] and info["reachable"]
    with pytest.raises(ClusterError) as missing:
        coords["n1"].get_member_info("n9")
    assert missing.value.code == "not_found"
    # a member joining again changes nothing
    assert coords["n2"].join_cluster(["n1"])["joined"] is False
    assert coords["n2"].get_members() == ["n1", "n2", "n3"]


def test_become_leader_moves_leadership_and_lifecycle_follows(
        cluster: Cluster, coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    follower = a_follower(cluster, coords)
    before = {n: c.lifecycle_history()[-1].sequence for n, c in coords.items()}
    follower.become_leader()
    assert follower.get_leader() == follower.node_id
    all_stable(coords)
    assert {c.get_leader() for c in coords.values()} == {follower.node_id}
    for node, coord in coords.items():  # every node saw the election happen
        after = [t for t in coord.lifecycle_history() if t.sequence > before[node]]
        assert "electing" in [t.target for t in after], (node, after)


# ------------------------------------------------------------------ monitor


def test_monitor_health_history_and_node_metrics(cluster: Cluster,
                                                 coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    leader = cluster.wait_for_leader()
    term = cluster.status().term
    monitor = cluster.node("n2").monitor
    health, details = monitor.force_check()  # an observation gathered now, not one ago
    assert health == "healthy" and details["reasons"] == []
    assert details["leader"] == leader and details["term"] == term
    assert details["lifecycle_state"] == "stable" and details["has_quorum"] is True
    points = monitor.get_history("term", 5)
    assert 1 <= len(points) <= 5 and points[-1][1] == term
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(points))
    metrics = monitor.get_node_metrics("n2")
    assert metrics["observation"]["leader"] == leader and metrics["health"] == "healthy"
    # a peer's metrics come from the peer's own monitor
    def n3_metrics() -> dict[str, Any] | None:
        try:
            return monitor.get_node_metrics("n3")
        except NotFound:  # n3's monitor has not made its first observation yet
            return None

    peer = wait_until(n3_metrics, "n3's metrics through n2")
    assert peer["observation"]["node_id"] == "n3" and peer["health"] == "healthy"
    with pytest.raises(ClusterError) as unknown:
        monitor.get_node_metrics("nx")
    assert unknown.value.code == "not_found"
    overview = monitor.get_cluster_overview()
    assert overview["nodes"] == ["n1", "n2", "n3"] and overview["leader"] == leader
    assert overview["unreachable"] == []
    monitor.record_metric("queue_depth", 7, {"queue": "a"})
    assert [v for _, v in monitor.get_history("queue_depth")] == [7.0]
    assert coords["n2"].health_check()[0] == "healthy"


def test_prometheus_endpoint_serves_each_node(cluster: Cluster) -> None:
    term = cluster.status().term
    for node in cluster.node_ids:
        monitor = cluster.node(node).monitor
        host, port = monitor.metrics_address()
        assert host == "127.0.0.1" and port > 0
        monitor.force_check()  # the gauges hold an observation gathered now

        def scrape(host: str = host, port: int = port) -> dict[str, Any]:
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
            return {f.name: f for f in text_string_to_metric_families(text)}

        def has_node_samples(node: str = node) -> dict[str, Any] | None:
            families = scrape()
            for wanted in ("cluster_actors_has_leader", "cluster_actors_term"):
                family = families.get(wanted)
                if family is None or not any(s.labels.get("node") == node
                                             for s in family.samples):
                    return None
            return families

        families = wait_until(has_node_samples, f"{node}'s metrics")
        [has_leader] = families["cluster_actors_has_leader"].samples
        assert has_leader.labels == {"cluster": cluster.name, "node": node}
        assert has_leader.value == 1.0
        [term_sample] = families["cluster_actors_term"].samples
        assert term_sample.value == term


def test_alerts_reach_subscribers(cluster: Cluster) -> None:
    monitor = cluster.node("n3").monitor
    recorder = Recorder.remote()
    monitor.subscribe_alerts(recorder)
    local: list[dict[str, Any]] = []

    def on_alert(alert: dict[str, Any]) -> None:  # a local callable, fed by a thread
        local.append(alert)

    subscription = monitor.subscribe_alerts(on_alert)
    assert subscription is not None and subscription.active
    monitor.record_event("config_rollback", {"version": 1})
    alerts = wait_until(lambda: [a for a in ray.get(recorder.get.remote())
                               if a.get("rule") == "config_rollback"], "the alert")
    assert alerts[0]["kind"] == "fired" and alerts[0]["node"] == "n3"
    [seen] = wait_until(lambda: list(local), "the alert at the local callable")
    assert (seen["type"], seen["rule"], seen["kind"]) == ("alert_fired", "config_rollback",
                                                          "fired")
    assert [a["rule"] for a in monitor.active_alerts()] == ["config_rollback"]
    assert monitor.unsubscribe_alerts(recorder) is True
    assert monitor.unsubscribe_alerts(on_alert) is True and not subscription.active
    assert monitor.unsubscribe_alerts(on_alert) is False


# ------------------------------------------------------------ configuration


def test_propose_config_replicates_from_a_follower_and_notifies(
        cluster: Cluster, coords: dict[str, Coordinator]) -> None:
    follower = a_follower(cluster, coords)
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    def collect(event: dict[str, Any]) -> None:
        with lock:
            received.append(event)

    subscription = coords["n1"].subscribe_events(collect)
    assert subscription is not None
    try:
        before = versions(coords)
        assert len(set(before.values())) == 1
        version = follower.propose_config({"heartbeat_interval": 150})
        assert version == before["n1"] + 1
        wait_until(lambda: all(c.get_config()["version"] == version
                             and c.get_config()["heartbeat_interval"] == 150
                             for c in coords.values()), "the new version on every node")

        def changed() -> list[dict[str, Any]]:
            with lock:
                return [e for e in received if e["type"] == "config_changed"
                        and e["version"] == version]

        [event] = wait_until(changed, "config_changed at the subscriber")
        assert event["changed_keys"] == ["heartbeat_interval"] and event["kind"] == "set"
    finally:
        subscription.cancel()
    assert not subscription.active
    assert follower.get_metrics()["config_forwarded"] >= 1


def test_invalid_proposals_change_nothing_anywhere(coords: dict[str, Coordinator]) -> None:
    before = {n: c.get_config() for n, c in coords.items()}
    with pytest.raises(ValidationFailed) as quorum:
        coords["n2"].propose_config({"members": ["n1", "n2", "n3"], "quorum": 5})
    assert [path for path, _ in quorum.value.errors] == ["quorum"]
    with pytest.raises(ValidationFailed) as strategy:
        coords["n3"].propose_config({"sync_strategy": "telepathy"})
    assert [path for path, _ in strategy.value.errors] == ["sync_strategy"]
    assert "anti_entropy" in strategy.value.errors[0][1]  # the message lists what exists
    with pytest.raises(ValidationFailed) as unknown:
        coords["n1"].propose_config({"heartbeat_intervall": 100})
    assert unknown.value.errors[0][0] == "heartbeat_intervall"
    assert {n: c.get_config() for n, c in coords.items()} == before
    # a valid change afterwards takes the very next version: nothing was proposed before it
    version = coords["n1"].propose_config({"metadata.checked": True})
    assert version == before["n1"]["version"] + 1
    wait_until(lambda: set(versions(coords).values()) == {version}, "the barrier version")
    for config in (c.get_config() for c in coords.values()):
        assert config["quorum"] == before["n1"]["quorum"]
        assert config["sync_strategy"] == before["n1"]["sync_strategy"]


def test_rollback_restores_an_old_version_everywhere(coords: dict[str, Coordinator]) -> None:
    coord = coords["n3"]
    old = coord.get_config()
    changed = coord.propose_config({"election_timeout": 2000})
    restored = coord.rollback_config(old["version"])
    assert restored == changed + 1
    wait_until(lambda: set(versions(coords).values()) == {restored}, "the rollback everywhere")
    for c in coords.values():
        config = c.get_config()
        assert config["election_timeout"] == old["election_timeout"]
        assert {k: v for k, v in config.items() if k != "version"} == \
            {k: v for k, v in old.items() if k != "version"}
    assert coord.get_config_history()[-1]["kind"] == "rollback"
    with pytest.raises(ClusterError) as missing:
        coord.rollback_config(10_000)
    assert missing.value.code == "not_found"


def test_approval_puts_the_node_in_voting_until_decided(coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    coord = coords["n1"]
    start = coord.get_config()["version"]
    pending = coord.propose_config({"metadata.owner": "ops"}, require_approval=True)
    assert pending == start + 1
    assert coord.lifecycle_state() == "voting"
    assert coord.get_config()["version"] == start  # nothing committed yet
    assert coord.approve_config(pending, True) is None  # 1 of the 2 approvals needed
    assert coords["n2"].approve_config(pending, True) == start + 1
    wait_until(lambda: coord.get_config()["metadata"].get("owner") == "ops",
             "the approved change applied on this node")
    wait_until(lambda: coord.lifecycle_state() == "stable", "n1 back to stable")
    rejected = coord.propose_config({"metadata.owner": "nobody"}, require_approval=True)
    assert coord.lifecycle_state() == "voting"
    assert coord.approve_config(rejected, False) is None
    assert coords["n3"].approve_config(rejected, False) is None  # approval out of reach
    wait_until(lambda: coord.lifecycle_state() == "stable", "n1 back to stable")
    assert coord.get_config()["metadata"]["owner"] == "ops"
    assert coord.get_config()["version"] == start + 1
    steps = [(t.source, t.event, t.target) for t in coord.lifecycle_history(4)]
    assert steps == [("stable", "config_proposed", "voting"),
                     ("voting", "config_decided", "stable")] * 2
    with pytest.raises(ClusterError) as unknown:
        coord.approve_config(12345, True)
    assert unknown.value.code == "not_found"


def test_the_seeds_configuration_api_on_every_node(cluster: Cluster,
                                                  coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    node = cluster.node("n2")
    assert isinstance(node.coordinator, Coordinator)  # typed, as cluster.coordinator(n)
    config = node.config
    first = config.get_history()[0]
    assert (first["version"], first["kind"]) == (1, "initial")
    # version 1 holds the values the cluster runs with, not the model's defaults
    assert first["config"]["heartbeat_interval"] == cluster.options.heartbeat_interval == 200
    assert first["config"]["election_timeout"] == cluster.options.election_timeout
    assert config.get_config("quorum") == config.get_config()["quorum"]
    with pytest.raises(NotFound) as missing:
        config.get_config("no_such_key")
    assert missing.value.code == "not_found" and "no_such_key" in str(missing.value)
    assert any("member count" in w for w in config.validate_config({"quorum": 3}))
    with pytest.raises(ValidationFailed):
        config.validate_config({"quorum": 9})
    with pytest.raises(ValidationFailed, match="floor of 120 ms"):  # 3 x raft_heartbeat_ms
        config.validate_config({"election_timeout": 50})
    with pytest.raises(ValidationFailed, match="unknown option"):
        config.set_config("metadata.team", "infra", {"urgent": True})
    before = config.get_version()
    changes: list[dict[str, Any]] = []

    def on_change(event: dict[str, Any]) -> None:
        changes.append(event)

    subscription = config.subscribe_changes(on_change)
    assert subscription is not None
    version = config.set_config("metadata.team", "infra")
    assert version == before + 1
    [event] = wait_until(lambda: [e for e in changes if e["version"] == version], "the change")
    assert event["type"] == "config_changed" and event["changed_keys"] == ["metadata"]
    assert config.get_config("metadata.team") == "infra" and config.get_version() == version
    restored = config.rollback(before)
    wait_until(lambda: all(c.get_config()["version"] == restored for c in coords.values()),
             "the rollback everywhere")
    with pytest.raises(NotFound):
        config.get_config("metadata.team")
    assert {e["type"] for e in changes} == {"config_changed"}
    assert config.unsubscribe_changes(on_change) is True and not subscription.active


def test_timing_changes_hot_reload_on_every_node_and_survive_a_restart(
        cluster: Cluster, coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    config = cluster.config("n1")
    original = config.get_config()

    def everywhere(component: str, key: str, value: int) -> bool:
        calls = {"heartbeat": "get_heartbeat_status", "consensus": "status"}
        return all(getattr(getattr(cluster.node(n), component), calls[component])()[key] == value
                   for n in cluster.node_ids)

    try:
        config.set_config("heartbeat_interval", 300)
        config.set_config("election_timeout", 400)
        wait_until(lambda: everywhere("heartbeat", "heartbeat_interval", 300),
                 "every failure detector on the new period")
        wait_until(lambda: everywhere("consensus", "election_timeout_ms", 400),
                 "every Raft node on the new election timeout")
        # a restarted heartbeat actor starts from the options' period and is brought back
        heartbeat = cluster.node("n3").heartbeat
        old = heartbeat.handle._actor_id
        ray.kill(heartbeat.handle, no_restart=True)

        def restarted_on_the_configs_period() -> bool:
            try:
                fresh = cluster.node("n3").heartbeat
                return (fresh.handle._actor_id != old
                        and fresh.get_heartbeat_status()["heartbeat_interval"] == 300)
            except (ClusterError, RayActorError):  # still restarting
                return False

        wait_until(restarted_on_the_configs_period,
                 "the restarted heartbeat actor on the config's period")
        # a static quorum is what the coordinators (and membership) report from now on
        config.set_config("quorum", 3)
        wait_until(lambda: all(c.get_quorum() == (True, 3, 3) for c in coords.values()),
                 "every node reporting quorum 3 of 3")
        assert cluster.node("n2").membership.get_quorum_size() == 3
    finally:
        config.set_config("heartbeat_interval", original["heartbeat_interval"])
        config.set_config("election_timeout", original["election_timeout"])
        config.set_config("quorum", original["quorum"])
    wait_until(lambda: all(c.get_quorum() == (True, 2, 3) for c in coords.values()),
             "the majority quorum back")
    wait_until(lambda: everywhere("consensus", "election_timeout_ms",
                                original["election_timeout"]), "the original timeout back")


def test_component_clients_subscribe_callables_and_refuse_other_subscribers(
        cluster: Cluster, coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    node = cluster.node("n1")
    got: list[dict[str, Any]] = []

    def collect(event: dict[str, Any]) -> None:
        got.append(event)

    subscription = node.consensus.subscribe(collect, types=["config_changed"])
    assert subscription is not None
    version = node.config.set_config("metadata.subscribed", True)
    wait_until(lambda: [e for e in got if e.get("version") == version], "the consensus event")
    assert {e["type"] for e in got} == {"config_changed"}
    assert node.consensus.unsubscribe(collect) is True and not subscription.active
    with pytest.raises(TypeError, match="callable or a Ray actor handle"):
        node.membership.subscribe(42)
    # a function shipped to the actor itself could never be called back: refused
    with pytest.raises(ValidationFailed, match="actor handle"):
        node.heartbeat.call("subscribe", collect)
    with pytest.raises(ValidationFailed, match="actor handle"):
        node.monitor.call("subscribe_alerts", collect)
    # an actor handle gets the events of the given types pushed, and only those
    recorder = Recorder.remote()
    node.consensus.subscribe(recorder, types=["config_changed"])
    pushed = node.config.set_config("metadata.pushed", True)
    wait_until(lambda: [e for e in ray.get(recorder.get.remote()) if e.get("version") == pushed],
             "the pushed event")
    assert {e["type"] for e in ray.get(recorder.get.remote())} == {"config_changed"}
    assert node.consensus.unsubscribe(recorder) is True


def test_a_consensus_vote_decides_a_pending_proposal(coords: dict[str, Coordinator],
                                                     cluster: Cluster) -> None:
    all_stable(coords)
    coord = coords["n2"]
    start = coord.get_config()["version"]
    pending = coord.propose_config({"metadata.voted": True}, require_approval=True)
    assert coord.lifecycle_state() == "voting"
    with pytest.raises(ValidationFailed):  # a vote is cast on the voter's own node
        cluster.node("n2").consensus.vote(pending, True, "n3")
    assert cluster.node("n2").consensus.vote(pending, True, "n2") is None
    assert cluster.node("n3").consensus.vote(pending, True, "n3") == start + 1
    wait_until(lambda: coord.lifecycle_state() == "stable", "n2 back to stable")
    wait_until(lambda: coord.get_config()["metadata"].get("voted") is True, "the voted change")
    with pytest.raises(NotFound):
        cluster.node("n2").consensus.vote(pending, True, "n2")


def test_an_impossible_quorum_is_refused_before_any_actor_starts() -> None:
    name = f"badquorum-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValidationFailed) as error:
        Cluster.start(name, nodes=3, options={"quorum": 5})
    assert [path for path, _ in error.value.errors] == ["quorum"]
    with pytest.raises(ValueError):
        ray.get_actor(registry_name(name), namespace=namespace(name))


# --------------------------------------------------------------- activities


def test_snapshot_upgrade_split_and_partition_states(coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    coord = coords["n2"]
    recorder = Recorder.remote()
    assert coord.subscribe_events(recorder) is None
    assert coord.snapshot() >= 1
    assert [(t.source, t.target) for t in coord.lifecycle_history(2)] == [
        ("stable", "snapshotting"), ("snapshotting", "stable")]
    assert coord.start_upgrade("2.0") == "upgrading"
    assert coord.finish_upgrade() == "stable"
    with pytest.raises(ValidationFailed):
        coord.split([["n1", "n2", "n3"]])
    record = coord.split([["n1"], ["n2", "n3"]])
    assert record["part"] == ["n2", "n3"]
    assert [t.target for t in coord.lifecycle_history(2)] == ["splitting", "stable"]
    coord.report_partition(["n3"], "switch down")
    assert coord.lifecycle_state() == "partitioning"
    assert coord.get_partition_info()["reported"]["nodes"] == ["n3"]
    with pytest.raises(UnknownStrategy):
        coord.heal_partition("telepathy")
    assert coord.lifecycle_state() == "partitioning"
    coord.heal_partition("auto_merge")
    wait_until(lambda: coord.lifecycle_state() == "stable", "the healed node back to stable")
    assert [t.target for t in coord.lifecycle_history(4)] == [
        "partitioning", "merging", "resyncing", "stable"]
    pushed = wait_until(lambda: [e["to"] for e in ray.get(recorder.get.remote())
                               if e["type"] == "state_changed"][-1:] == ["stable"]
                      and ray.get(recorder.get.remote()), "pushed state changes")
    assert "snapshotting" in [e.get("to") for e in pushed]
    assert coord.unsubscribe_events(recorder) is True


def test_sync_calls_need_the_sync_component(coords: dict[str, Coordinator]) -> None:
    if importlib.util.find_spec("cluster_actors.actors.sync") is not None:
        assert coords["n1"].sync_status() is not None
        return
    with pytest.raises(ClusterError, match="sync component is not running"):
        coords["n1"].trigger_sync("full_sync")


# ----------------------------------------------------------------- failures


def test_killing_the_leaders_consensus_drives_electing_and_back(
        cluster: Cluster, coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    leader = cluster.wait_for_leader()
    before = {n: c.lifecycle_history()[-1].sequence for n, c in coords.items()}
    ray.kill(ray.get_actor(actor_name(cluster.name, leader, "consensus"),
                           namespace=namespace(cluster.name)), no_restart=True)

    def since_kill(node: str) -> list[str]:
        return [t.target for t in coords[node].lifecycle_history()
                if t.sequence > before[node]]

    for node in cluster.node_ids:
        wanted = "recovery" if node == leader else "electing"
        wait_until(lambda node=node, wanted=wanted: wanted in since_kill(node)
                 and coords[node].lifecycle_state() == "stable",
                 f"{node} through {wanted} and back to stable")
        assert since_kill(node)[-1] == "stable"
    all_stable(coords)
    assert coords[leader].get_quorum() == (True, 2, 3)


def test_a_restarted_coordinator_goes_through_recovery(
        cluster: Cluster, coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    old = ray.get_actor(actor_name(cluster.name, "n3", "coordinator"),
                        namespace=namespace(cluster.name))
    ray.kill(old, no_restart=True)

    def restarted() -> list[str] | None:
        try:
            history = coords["n3"].lifecycle_history()
        except (ClusterError, RayActorError):
            return None
        targets = [t.target for t in history]
        return targets if targets[:1] == ["recovery"] and targets[-1] == "stable" else None

    targets = wait_until(restarted, "the new coordinator recovered")
    assert targets == ["recovery", "resyncing", "stable"]
    assert coords["n3"].handle._actor_id != old._actor_id


def test_a_restarted_coordinator_runs_the_configured_strategy_not_the_options(
        cluster: Cluster, coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    assert cluster.options.failover_strategy == "automatic"
    coords["n1"].propose_config({"failover_strategy": "load_aware"})
    try:
        wait_until(lambda: all(c.get_failover_info()["strategy"] == "load_aware"
                             for c in coords.values()), "every node on load_aware")
        old = coords["n2"].handle
        ray.kill(old, no_restart=True)

        def restarted_strategy() -> str | None:
            try:
                strategy = coords["n2"].get_failover_info()["strategy"]
            except (ClusterError, RayActorError):
                return None
            return strategy if coords["n2"].handle._actor_id != old._actor_id else None

        wait_until(lambda: restarted_strategy() == "load_aware",
                 "the restarted coordinator on the config's strategy")
    finally:
        coords["n1"].propose_config({"failover_strategy": "automatic"})
    all_stable(coords)


def test_leaving_removes_the_node_from_the_voters(cluster: Cluster,
                                                  coords: dict[str, Coordinator]) -> None:
    all_stable(coords)
    coords["n3"].leave_cluster("decommissioned")
    assert [(t.event, t.target) for t in coords["n3"].lifecycle_history(2)] == [
        ("leave_requested", "draining"), ("drain_complete", "shutdown")]
    for node in ("n1", "n2"):
        wait_until(lambda node=node: coords[node].get_members() == ["n1", "n2"],
                 f"{node} without n3")
        state, status = coords[node].get_cluster_status()
        assert state == "stable" and status.voters == ["n1", "n2"]
        assert status.unreachable == []
    with pytest.raises(ClusterError):  # shutdown is terminal
        coords["n3"].snapshot()
