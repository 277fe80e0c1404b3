"""Runtime membership as an operator meets it: ``cluster.add_node`` and
``cluster.remove_node`` on a running cluster, with the data kept and the
quorum following the voters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from cluster_actors import Cluster
from cluster_actors.errors import NotFound, ValidationFailed
from tests.ray import LIGHT
from tests.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start("grow", nodes=3, options=LIGHT)
    yield c
    c.shutdown()


def voters_and_learners(cluster: Cluster) -> tuple[list[str], list[str]]:
    status = ray.get(cluster.session.handle(cluster.wait_for_leader()).status.remote())
    return status["voters"], status["learners"]


def test_an_added_node_catches_up_votes_and_survives_a_leader_kill(cluster: Cluster) -> None:
    for i in range(20):
        cluster.kv.put(f"before/{i}", i)
    assert cluster.add_node("n4") == "n4"
    assert cluster.node_ids == ["n1", "n2", "n3", "n4"]
    assert voters_and_learners(cluster) == (["n1", "n2", "n3", "n4"], [])
    assert Cluster.attach("grow").node_ids == cluster.node_ids
    assert sorted(cluster.coordinator("n1").get_members()) == cluster.node_ids
    # the new node holds the data it was not there for
    wait_until(lambda: ray.get(cluster.session.handle("n4").status.remote())["applied"]
               >= ray.get(cluster.session.handle("n1").status.remote())["commit"])
    items = ray.get(cluster.session.handle("n4").kv_items.remote("before/"))
    assert sorted(r.value for r in items) == list(range(20))
    old = cluster.wait_for_leader()
    cluster.chaos.kill_leader()
    wait_until(lambda: (leader := cluster.leader()) not in (None, old) and leader)
    assert [cluster.kv.get(f"before/{i}") for i in range(20)] == list(range(20))
    cluster.kv.put("after", 1)


def test_adding_a_taken_or_bad_id_changes_nothing(cluster: Cluster) -> None:
    before = list(cluster.node_ids)
    with pytest.raises(ValidationFailed):
        cluster.add_node("n1")
    with pytest.raises(ValidationFailed):
        cluster.add_node("bad/id")
    assert cluster.node_ids == before


def test_a_dead_node_is_removed_and_the_rest_keep_serving(cluster: Cluster) -> None:
    victim = next(n for n in reversed(cluster.node_ids) if n != cluster.wait_for_leader())
    root = cluster._root()
    ray.get(root.terminate_child.remote(victim))  # the node is down for good
    cluster.remove_node(victim)
    assert victim not in cluster.node_ids
    voters, _ = voters_and_learners(cluster)
    assert victim not in voters and sorted(voters) == sorted(cluster.node_ids)
    assert Cluster.attach("grow").node_ids == cluster.node_ids  # the registry followed
    for node in cluster.node_ids:  # and every coordinator's member list
        wait_until(lambda n=node: sorted(cluster.coordinator(n).get_members())
                   == sorted(cluster.node_ids))
    assert cluster.kv.put("after-removal", 2).ok
    assert cluster.kv.get("after-removal") == 2
    with pytest.raises(NotFound):
        cluster.remove_node(victim)


def test_removing_the_leader_hands_leadership_over_and_keeps_serving(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    cluster.kv.put("before-leader-removal", 3)
    cluster.remove_node(leader)
    assert leader not in cluster.node_ids
    new = cluster.wait_for_leader()
    assert new != leader
    voters, _ = voters_and_learners(cluster)
    assert leader not in voters and sorted(voters) == sorted(cluster.node_ids)
    assert cluster.kv.get("before-leader-removal") == 3
