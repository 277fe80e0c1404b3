"""The seed's approval path on a real cluster: proposals replicated through
Raft, approved by a quorum of voters voting on their own nodes, surviving a
coordinator restart; and joins that wait for the voters (``join_approval``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from ray.exceptions import RayActorError

from cluster_actors import Cluster
from cluster_actors.client.coordinator import Coordinator
from cluster_actors.errors import ClusterError, NotFound, ValidationFailed
from cluster_actors.runtime.hosting import actor_of
from tests.ray import LIGHT
from tests.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start("approvals", nodes=3,
                      options={**LIGHT, "heartbeat_interval": 200, "join_approval": True})
    yield c
    c.shutdown()


def coordinator(cluster: Cluster, node: str) -> Coordinator:
    return Coordinator(cluster.name, node)


def states(cluster: Cluster) -> set[str]:
    return {coordinator(cluster, n).lifecycle_state() for n in cluster.node_ids}


def test_a_quorum_of_voters_on_different_nodes_approves_and_the_change_applies(
        cluster: Cluster) -> None:
    wait_until(lambda: states(cluster) == {"stable"})
    n1, n2 = coordinator(cluster, "n1"), coordinator(cluster, "n2")
    start = n1.get_config()["version"]
    pending = n1.propose_config({"metadata.approved_by": "quorum"}, require_approval=True)
    # replicated: every node sees it, and every node's lifecycle votes
    wait_until(lambda: all([p["id"] for p in coordinator(cluster, n).pending_proposals()]
                           == [pending] for n in cluster.node_ids))
    wait_until(lambda: states(cluster) == {"voting"})
    assert n1.approve_config(pending) is None  # one of the two approvals needed
    assert n1.get_config()["version"] == start
    assert n2.approve_config(pending) == start + 1
    for node in cluster.node_ids:
        wait_until(lambda n=node: coordinator(cluster, n).get_config()["metadata"]
                   .get("approved_by") == "quorum")
    wait_until(lambda: states(cluster) == {"stable"})
    decided = n1.get_proposal(pending)
    assert (decided["status"], decided["approvals"]) == ("approved", ["n1", "n2"])


def test_a_pending_proposal_survives_a_restart_of_the_proposers_coordinator(
        cluster: Cluster) -> None:
    wait_until(lambda: states(cluster) == {"stable"})
    n1 = coordinator(cluster, "n1")
    start = n1.get_config()["version"]
    pending = n1.propose_config({"metadata.survived": True}, require_approval=True)
    n1.approve_config(pending)
    old = actor_of(n1.handle)  # the coordinator's actor, or with per_node its node's host
    ray.kill(old, no_restart=True)

    def restarted() -> list[dict[str, Any]] | None:
        try:
            fresh = coordinator(cluster, "n1")
            return fresh.pending_proposals() if actor_of(fresh.handle)._actor_id != old._actor_id \
                else None
        except (ClusterError, RayActorError):
            return None

    [proposal] = wait_until(restarted)
    assert (proposal["id"], proposal["approvals"]) == (pending, ["n1"])
    wait_until(lambda: coordinator(cluster, "n1").lifecycle_state() == "voting")
    assert coordinator(cluster, "n3").approve_config(pending) == start + 1
    wait_until(lambda: coordinator(cluster, "n1").get_config()["metadata"].get("survived"))
    wait_until(lambda: states(cluster) == {"stable"})


def test_a_rejected_or_short_tally_never_applies(cluster: Cluster) -> None:
    wait_until(lambda: states(cluster) == {"stable"})
    n1, n2, n3 = (coordinator(cluster, n) for n in ("n1", "n2", "n3"))
    start = n1.get_config()["version"]
    short = n1.propose_config({"metadata.short": True}, require_approval=True)
    assert n1.approve_config(short) is None
    assert n1.approve_config(short) is None  # a voter counts once
    assert [p["approvals"] for p in n2.pending_proposals()] == [["n1"]]
    assert n2.approve_config(short, False) is None
    assert n3.approve_config(short, False) is None  # two of three against: rejected
    with pytest.raises(NotFound):
        n1.approve_config(short)
    assert n1.get_proposal(short)["status"] == "rejected"
    wait_until(lambda: states(cluster) == {"stable"})
    for node in cluster.node_ids:
        assert coordinator(cluster, node).get_config()["version"] == start
        with pytest.raises(NotFound):
            coordinator(cluster, node).get_config("metadata.short")


def _add_in_background(cluster: Cluster, node: str) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def add() -> None:
        try:
            outcome.append(cluster.add_node(node, timeout=60))
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=add, daemon=True)
    thread.start()
    return thread, outcome


def _pending_join(cluster: Cluster, node: str) -> bool:
    return any(p["kind"] == "join" and p["subject"] == node
               for p in coordinator(cluster, "n1").pending_proposals())


def test_a_join_waits_for_the_voters_and_a_rejected_one_adds_nothing(cluster: Cluster) -> None:
    thread, outcome = _add_in_background(cluster, "n4")
    wait_until(lambda: _pending_join(cluster, "n4"))
    assert "n4" not in cluster.node_ids
    coordinator(cluster, "n1").approve_join("n4")
    assert not outcome  # one approval of the two needed
    coordinator(cluster, "n2").approve_join("n4")
    thread.join(90)
    assert outcome == ["n4"]
    assert "n4" in coordinator(cluster, "n1").get_members()

    thread, outcome = _add_in_background(cluster, "n5")
    wait_until(lambda: _pending_join(cluster, "n5"))
    for node in ("n1", "n2"):  # 2 of the 4 voters against: 3 approvals are out of reach
        coordinator(cluster, node).reject_join("n5", "not today")
    thread.join(90)
    assert len(outcome) == 1 and isinstance(outcome[0], ValidationFailed)
    assert "n5" not in cluster.node_ids
    assert "n5" not in coordinator(cluster, "n1").get_members()
