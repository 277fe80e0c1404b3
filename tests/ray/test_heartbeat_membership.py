"""The heartbeat and membership components on a real local Ray: phi per peer,
health queries, configuration, failure detection across a blocked link and
its effect on membership and quorum, the join protocol, gossip convergence."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ray

from cluster_actors.actors.membership import MembershipActor
from cluster_actors.cluster import Cluster
from cluster_actors.errors import ClusterError, ValidationFailed
from cluster_actors.runtime.naming import actor_name, namespace
from tests import waiting

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

HANG = 30.0  # seconds; only catches hangs, asserts nothing about speed
# a component still starting answers with an error: not yet
wait_until = functools.partial(waiting.wait_until, timeout=HANG, tolerate=(ClusterError,))
NODES = ["n1", "n2", "n3"]


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start(f"hbm-{uuid.uuid4().hex[:8]}", nodes=3,
                      options={"heartbeat_interval": 100, "acceptable_heartbeat_pause": 300})
    try:
        yield c
    finally:
        c.shutdown()


def wait_event(client: Any, since: int, predicate: Callable[[dict[str, Any]], bool],
               what: str) -> dict[str, Any]:
    """The first event after ``since`` matching ``predicate`` (long-poll)."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        for event in client.wait_events(since, 2.0):
            since = max(since, event["seq"])
            if predicate(event):
                return event
    raise AssertionError(f"timed out waiting for event {what}")


def last_seq(client: Any) -> int:
    events = client.events_since(0)
    return events[-1]["seq"] if events else 0


def all_healthy(cluster: Cluster) -> bool:
    for node in NODES:
        status = cluster.node(node).heartbeat.get_heartbeat_status()
        peers = status["peers"]
        others = [n for n in NODES if n != node]
        if any(peers.get(p, {}).get("band") != "healthy" or peers[p]["heartbeats"] < 5
               for p in others):
            return False
    return True


# ----------------------------------------------------------------- heartbeat


def test_every_peer_is_watched_and_healthy(cluster: Cluster) -> None:
    wait_until(lambda: all_healthy(cluster), "all peers healthy with 5+ heartbeats")
    status = cluster.node("n1").heartbeat.get_heartbeat_status()
    # k = 9 >= n - 1: every node sends to and watches every other node
    assert sorted(status["monitors"]) == ["n2", "n3"]
    assert sorted(status["watching"]) == ["n2", "n3"]
    for peer in ("n2", "n3"):
        info = status["peers"][peer]
        assert info["phi"] < status["threshold"] / 2
        assert 0.5 < info["score"] <= 1.0
        assert info["samples"] >= 2 and info["watched"]
        assert info["last_heartbeat_age"] is not None
        assert "load" in info["metadata"]
    assert status["heartbeat_interval"] == 100
    assert status["acceptable_heartbeat_pause"] == pytest.approx(300)


def test_node_health_for_known_and_unknown_nodes(cluster: Cluster) -> None:
    hb = cluster.node("n1").heartbeat
    wait_until(lambda: hb.get_node_health("n2")[1]["band"] == "healthy", "n2 healthy")
    score, info = hb.get_node_health("n2")
    assert 0.5 < score <= 1.0 and info["score"] == score
    assert hb.get_node_health("n1")[0] == 1.0
    with pytest.raises(ClusterError) as raised:
        hb.get_node_health("n42")
    assert raised.value.code == "not_found"


def test_configure_rejects_bad_values_and_changes_nothing(cluster: Cluster) -> None:
    hb = cluster.node("n2").heartbeat
    settings = {k: v for k, v in hb.get_heartbeat_status().items()
                if k in ("heartbeat_interval", "threshold", "acceptable_heartbeat_pause",
                         "min_std_deviation", "monitors_per_node")}
    for parameter, value in [("threshold", -1), ("threshold", 1000), ("interval", "fast"),
                             ("interval", 1), ("acceptable_pause", float("nan")),
                             ("monitors_per_node", 0), ("distribution", "cauchy"),
                             ("no_such_knob", 1)]:
        with pytest.raises(ValidationFailed):
            hb.configure(parameter, value)
    after = hb.get_heartbeat_status()
    assert {k: after[k] for k in settings} == settings
    # a valid change takes effect (same value as before: the cluster is unaffected)
    assert hb.configure("phi_threshold", settings["threshold"])["threshold"] == \
        settings["threshold"]


def test_heartbeats_carry_the_senders_metadata(cluster: Cluster) -> None:
    labels = {"region": "eu-west", "load": 0.5}
    cluster.node("n3").heartbeat.send_heartbeat(labels)
    wait_until(lambda: cluster.node("n1").heartbeat.get_node_health("n3")[1]["metadata"]
               == labels, "n3's labels on n1")
    # a label named "load" wins over the measured load in every later heartbeat
    for _ in range(3):
        cluster.node("n3").heartbeat.send_heartbeat()
        assert cluster.node("n1").heartbeat.get_node_health("n3")[1]["metadata"] == labels
    # manual receive_heartbeat records a heartbeat with its metadata (n3's real
    # heartbeats, which replace it, carry the same labels by now)
    cluster.node("n1").heartbeat.receive_heartbeat("n3", {"region": "eu-west", "load": 0.5})
    _score, info = cluster.node("n1").heartbeat.get_node_health("n3")
    assert info["metadata"] == labels


# ---------------------------------------------------------------- membership


def test_members_and_quorum(cluster: Cluster) -> None:
    for node in NODES:
        ms = cluster.node(node).membership
        assert ms.get_members() == NODES
        assert ms.get_quorum() == (True, 2, 3)
        assert ms.get_quorum_size() == 2 and ms.has_quorum()
    info = cluster.node("n1").membership.get_member_info("n2")
    assert info["status"] == "up" and info["role"] == "voter"
    with pytest.raises(ClusterError) as raised:
        cluster.node("n1").membership.get_member_info("n42")
    assert raised.value.code == "not_found"


def views_converged(cluster: Cluster) -> dict[str, Any] | None:
    views = [cluster.node(node).membership.view() for node in NODES]
    return views[0] if all(v == views[0] for v in views) else None


def test_join_approve_reject_and_gossip_convergence(cluster: Cluster) -> None:
    n1, n2 = cluster.node("n1").membership, cluster.node("n2").membership
    n3 = cluster.node("n3").membership
    since = last_seq(n3)
    assert n1.request_join("n9", {"region": "ap"})["status"] == "pending"
    view = wait_until(lambda: views_converged(cluster), "n9's request on every view")
    assert view["members"]["n9"]["status"] == "joining"
    assert "n9" in n2.get_members()
    assert n2.get_quorum() == (True, 2, 3)  # a pending member does not vote
    n2.approve_join("n9")
    view = wait_until(lambda: (v := views_converged(cluster)) and
                      v["members"]["n9"]["status"] == "up" and v, "n9 up everywhere")
    assert view["members"]["n9"]["metadata"] == {"region": "ap"}
    assert n3.get_quorum_size() == 3  # four voters now
    wait_event(n3, since, lambda e: e["type"] == "member_joined" and e["node"] == "n9",
               "member_joined n9 on n3")
    # n9 never runs: take it out again before the partition test
    n3.update_member_status("n9", "removed", "test over")
    wait_until(lambda: all(cluster.node(n).membership.get_members() == NODES for n in NODES),
               "n9 removed everywhere")

    n2.request_join("n10")
    wait_until(lambda: "n10" in n1.get_members(), "n10's request gossiped to n1")
    info = n1.reject_join("n10", "not today")
    assert info["status"] == "removed" and info["reason"] == "rejected: not today"
    view = wait_until(lambda: views_converged(cluster), "views converge after the reject")
    assert view["members"]["n10"]["status"] == "removed"
    with pytest.raises(ValidationFailed):
        n2.approve_join("n10")  # a rejected join cannot be approved
    assert n1.get_quorum() == (True, 2, 3)


def test_a_new_node_joins_through_a_seed(cluster: Cluster) -> None:
    """A membership actor started with join=True asks n1 to let it in."""
    with pytest.raises(ValidationFailed):  # n2 is a member already
        cluster.node("n2").membership.join_cluster("n1")
    joiner = MembershipActor.options(
        name=actor_name(cluster.name, "n12", "membership"), namespace=namespace(cluster.name),
    ).remote(cluster.name, "n12", NODES, cluster.options.model_dump(), None, True)
    try:
        ray.get(joiner.activate.remote(), timeout=HANG)
        assert ray.get(joiner.get_members.remote()) == NODES  # founders, not itself
        assert ray.get(joiner.join_cluster.remote("n1", {"zone": "b"}), timeout=HANG) == \
            "pending"
        assert cluster.node("n1").membership.get_member_info("n12")["status"] == "joining"
        cluster.node("n3").membership.approve_join("n12")
        wait_until(lambda: ray.get(joiner.get_member_info.remote("n12"))["status"] == "up",
                   "the joiner learns by gossip that it is up")
        view = ray.get(joiner.view.remote())
        assert view["members"]["n12"]["metadata"] == {"zone": "b"}
        wait_until(lambda: views_converged(cluster) == ray.get(joiner.view.remote()),
                   "the joiner's view converges with the others")
        cluster.node("n1").membership.update_member_status("n12", "removed", "test over")
        wait_until(lambda: all(cluster.node(n).membership.get_members() == NODES
                               for n in NODES), "n12 removed everywhere")
    finally:
        ray.kill(joiner, no_restart=True)


# ------------------------------------------------ failure detection + quorum


def test_blocked_node_fails_then_recovers(cluster: Cluster) -> None:
    wait_until(lambda: all_healthy(cluster), "all peers healthy")
    n1_hb, n1_ms = cluster.node("n1").heartbeat, cluster.node("n1").membership
    n3_ms = cluster.node("n3").membership
    hb_since, ms_since, n3_since = last_seq(n1_hb), last_seq(n1_ms), last_seq(n3_ms)
    cluster.node("n3").heartbeat.set_faults(blocked=["n1", "n2"])
    cluster.node("n1").heartbeat.set_faults(blocked=["n3"])
    cluster.node("n2").heartbeat.set_faults(blocked=["n3"])
    try:
        failed = wait_event(n1_hb, hb_since, lambda e: e["type"] == "peer_failed"
                            and e["peer"] == "n3", "peer_failed n3 on n1")
        assert failed["phi"] >= n1_hb.get_heartbeat_status()["threshold"]
        wait_event(n1_ms, ms_since, lambda e: e["type"] == "member_unreachable"
                   and e["node"] == "n3", "member_unreachable n3 on n1")
        info = n1_ms.get_member_info("n3")
        assert info["unreachable"] and "n1" in info["unreachable_by"]
        assert n1_ms.get_quorum() == (True, 2, 2)  # the majority side keeps quorum
        wait_until(lambda: n3_ms.get_quorum() == (False, 2, 1), "n3 sees itself alone")
        wait_event(n3_ms, n3_since, lambda e: e["type"] == "quorum_lost", "quorum_lost on n3")
        assert n1_hb.get_node_health("n3")[1]["band"] == "failed"
        assert n1_hb.force_check()["n3"] == "failed"
    finally:
        for node in NODES:
            cluster.node(node).heartbeat.set_faults(blocked=[])
    wait_event(n1_hb, hb_since, lambda e: e["type"] == "peer_recovered" and e["peer"] == "n3",
               "peer_recovered n3 on n1")
    wait_until(lambda: not n1_ms.get_member_info("n3")["unreachable"], "n3 reachable on n1")
    wait_until(lambda: n3_ms.get_quorum() == (True, 2, 3), "n3 regains quorum")
    wait_event(n3_ms, n3_since, lambda e: e["type"] == "quorum_regained",
               "quorum_regained on n3")
    assert n1_ms.get_quorum() == (True, 2, 3)


# ------------------------------------------------------------------- restarts


def test_restarted_components_rebuild_from_their_peers(cluster: Cluster) -> None:
    n1 = cluster.node("n1").membership
    n1.request_join("n11")
    n1.reject_join("n11", "tombstone for the restart test")
    wait_until(lambda: views_converged(cluster), "the tombstone on every view")
    node = cluster.node("n2")
    old = {component: getattr(node, component).handle._actor_id
           for component in ("membership", "heartbeat")}
    for component in old:
        ray.kill(getattr(node, component).handle, no_restart=True)
    # the supervisor restarts both under the same names
    wait_until(lambda: all(getattr(cluster.node("n2"), c).handle._actor_id != old[c]
                           for c in old), "new actors under the old names")
    # the fresh view (founders only) learns the tombstone by gossip
    view = wait_until(lambda: views_converged(cluster), "views converge after the restart")
    assert view["members"]["n11"]["status"] == "removed"
    node = cluster.node("n2")
    wait_until(lambda: all_healthy(cluster), "the new heartbeat actor watches and is watched")
    status = node.heartbeat.get_heartbeat_status()
    assert sorted(status["watching"]) == ["n1", "n3"]
    assert node.membership.get_quorum() == (True, 2, 3)
