"""A full disk under the leader, as a user meets it: the consensus actor whose
persist fails stops (fail-stop), its supervisor restarts it from its disk,
and every write the client saw acknowledged is still there."""

from __future__ import annotations

import pytest
import ray

from cluster_actors.cluster import Cluster
from cluster_actors.errors import ClusterError
from cluster_actors.options import ClusterOptions
from cluster_actors.runtime.hosting import actor_of
from cluster_actors.testing.faulty import FULL_DISK, component_overrides
from tests.waiting import wait_until

pytestmark = pytest.mark.ray

HANG_GUARD = 60.0


@pytest.mark.parametrize("placement", ["per_component", "per_node"])
def test_a_full_disk_restarts_the_consensus_actor_and_loses_no_acknowledged_write(
        ray_local: None, placement: str) -> None:
    with component_overrides(consensus=FULL_DISK, only=("consensus",)):
        cluster = Cluster.start(f"fulldisk-{placement}", nodes=3,
                                options=ClusterOptions(placement=placement))
    hosted = placement == "per_node"  # the node's host is the child that restarts
    try:
        leader = cluster.wait_for_leader()
        kv = cluster.kv
        acknowledged: dict[str, int] = {}
        for i in range(10):
            kv.put(f"k{i}", i)
            acknowledged[f"k{i}"] = i
        supervisor = cluster.supervisor(None if hosted else leader)
        child = leader if hosted else "consensus"
        since = max((e["seq"] for e in supervisor.call("events_since")), default=0)
        crashed = cluster.session.handle(leader)
        ray.get(crashed.fail_persists.remote(after=1), timeout=HANG_GUARD)

        for i in range(10, 30):  # the first of these hits the full disk on the leader
            kv.put(f"k{i}", i)
            acknowledged[f"k{i}"] = i

        exited = supervisor.call("wait_event", "child_exited", child, since, HANG_GUARD,
                                 timeout=HANG_GUARD + 5)
        assert exited["reason"] == "crashed", exited
        restarted = supervisor.call("wait_event", "child_restarted", child, since,
                                    HANG_GUARD, timeout=HANG_GUARD + 5)
        assert restarted["actor_id"] != actor_of(crashed)._actor_id.hex()

        assert {key: kv.get(key) for key in acknowledged} == acknowledged
        cluster.session.forget(leader)
        node = cluster.node(leader).consensus

        def restarted_node_holds_every_write() -> bool:
            try:
                items = {kv_.key: kv_.value for kv_ in node.call("kv_items", "k")}
            except ClusterError:  # still starting
                return False
            return all(items.get(k) == v for k, v in acknowledged.items())

        wait_until(restarted_node_holds_every_write)
        assert node.call("status")["stats"].get("fail_stops", 0) == 0, \
            "the restarted actor is a new one, started from its disk"
    finally:
        cluster.shutdown()
