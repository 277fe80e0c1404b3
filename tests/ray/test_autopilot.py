"""Autopilot on a real cluster: ``ClusterOptions(voters=3)`` on 5 nodes keeps
three voters and two learners (each answering the monitors), and replaces a voter whose node died with a
caught-up learner, after which writes still commit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from cluster_actors import Cluster
from cluster_actors.errors import NotFound
from tests.ray import LIGHT
from tests.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start("autopilot", nodes=5,
                      options={**LIGHT, "voters": 3, "voter_grace_ms": 1000,
                               "heartbeat_interval": 200})
    yield c
    c.shutdown()


def configuration(cluster: Cluster) -> tuple[list[str], list[str]]:
    status = ray.get(cluster.session.handle(cluster.wait_for_leader()).status.remote())
    return status["voters"], status["learners"]


def three_and_two(cluster: Cluster) -> tuple[list[str], list[str]]:
    """Wait for three voters and two learners; return them."""
    def probe() -> tuple[list[str], list[str]] | None:
        voters, learners = configuration(cluster)
        return (voters, learners) if len(voters) == 3 and len(learners) == 2 else None

    return wait_until(probe)


def test_five_nodes_keep_three_voters_and_two_learners(cluster: Cluster) -> None:
    voters, learners = three_and_two(cluster)
    assert sorted(voters + learners) == cluster.node_ids
    assert cluster.kv.put("k", 1).ok
    # a learner is a node like any other to the monitors: its metrics answer
    # through a voter's monitor (NotFound only until its monitor's first observation)
    monitor = cluster.node(voters[0]).monitor
    monitor.force_check()  # an observation now: this monitor knows the configuration
    assert monitor.get_node_metrics(voters[0])["observation"]["members"] == 3
    metrics = wait_until(lambda: monitor.get_node_metrics(learners[0]),
                         "a learner's metrics through a voter's monitor", tolerate=(NotFound,))
    assert metrics["observation"]["node_id"] == learners[0]


def test_a_dead_voter_is_replaced_by_a_learner_and_writes_still_commit(
        cluster: Cluster) -> None:
    voters, learners = three_and_two(cluster)
    leader = cluster.wait_for_leader()
    victim = next(v for v in voters if v != leader)
    ray.get(cluster._root().terminate_child.remote(victim))  # its node is gone

    def replaced() -> tuple[list[str], list[str]] | None:
        now = configuration(cluster)
        return now if victim in now[1] and len(now[0]) == 3 else None

    new_voters, _ = wait_until(replaced)
    promoted = set(new_voters) - set(voters)
    assert len(promoted) == 1 and promoted <= set(learners)
    assert victim not in new_voters
    # a majority of the three voters is alive: writes commit
    assert cluster.kv.put("after-replacement", 2).ok
    assert cluster.kv.get("after-replacement") == 2
