"""Failover with no client traffic, on a real local Ray: Ray's death watch,
not the election timeout, starts the survivors' campaign, and the driver's
``cluster.leader()`` names the new leader from the pushed leadership.

The election timeout is set far above what a failover takes, so a failover
that waited for it (a survivor that believes the dead leader's lease, a split
vote) cannot pass; the bound asserts that, not a speed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import ray

from cluster_actors.cluster import Cluster
from tests.waiting import HANG_GUARD, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

ELECTION_TIMEOUT_MS = 6000  #: randomized up to twice this
#: seconds: half the shortest election timeout, and several times what a
#: failover took on a loaded 2-core machine (under 1 s)
WITHOUT_TIMEOUT = ELECTION_TIMEOUT_MS / 2000


@pytest.fixture
def slow_timeout_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster.start(
        f"failover-{uuid.uuid4().hex[:6]}", nodes=3, fresh=True,
        options={"election_timeout": ELECTION_TIMEOUT_MS, "fsync": False,
                 "data_dir": str(tmp_path_factory.mktemp("failover"))})
    try:
        yield cluster
    finally:
        cluster.shutdown()


def _followed_by_all(cluster: Cluster, leader: str) -> bool:
    statuses = cluster._statuses(timeout=1.0)
    return all(s is not None and s["leader"] == leader for s in statuses.values())


def test_a_killed_leader_is_replaced_before_any_election_timeout_and_named_by_leader(
        slow_timeout_cluster: Cluster) -> None:
    cluster = slow_timeout_cluster
    for _ in range(2):  # the second kill is of a leader elected by a failover
        old = cluster.session.watch.wait_for_leader(HANG_GUARD)
        assert old is not None
        # every follower has heard from the leader: its lease would refuse votes
        wait_until(lambda old=old: _followed_by_all(cluster, old))
        handle = cluster.session.handle(old)
        cluster.session.forget(old)
        ray.kill(handle, no_restart=True)
        new = cluster.session.watch.wait_for_leader(WITHOUT_TIMEOUT, other_than=old)
        assert new is not None, (f"no new leader within {WITHOUT_TIMEOUT} s of killing {old}: "
                                 f"the survivors waited for their election timeout")
        assert cluster.leader() == new
        # the supervisor restarted the killed actor; it follows the new leader
        wait_until(lambda new=new: _followed_by_all(cluster, new))
