"""The data plane wired into the transports on a real local Ray: Raft
messages and heartbeats travel as frames on streams, Ray calls are the
fallback, the handshake refuses a process without the cluster's secret, and
the chaos fault filter holds on the stream path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from cluster_actors.cluster import Cluster
from cluster_actors.core.kv import Command
from cluster_actors.runtime.dataplane import DataPlane, make_secret
from cluster_actors.runtime.hosting import find_component
from tests.waiting import wait_until

NAME = "dpray"


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start(NAME, nodes=3)
    yield c
    c.shutdown()


def _consensus_stats(cluster: Cluster, node: str) -> dict[str, int]:
    return ray.get(cluster.session.handle(node).status.remote())["transport"]


def _frames_flow(cluster: Cluster, leader: str) -> dict[str, int]:
    """The leader's stats once its Raft traffic goes as frames."""
    before = _consensus_stats(cluster, leader).get("frames", 0)
    return wait_until(lambda: (cluster.kv.put("probe", 1) and
                               (s := _consensus_stats(cluster, leader)).get("frames", 0)
                               > before + 2 and s))


def test_raft_and_heartbeat_messages_travel_as_frames_once_the_links_are_up(
        cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(timeout=30)
    _frames_flow(cluster, leader)  # warm-up: addresses resolved, links up
    before = _consensus_stats(cluster, leader)
    for i in range(100):
        cluster.kv.put(f"k{i}", i)
    after = _consensus_stats(cluster, leader)
    frames = after["frames"] - before["frames"]
    calls = after.get("calls", 0) - before.get("calls", 0)
    assert frames >= 100, f"only {frames} frames for 100 commits"
    assert calls <= frames // 10, f"{calls} Ray calls against {frames} frames after warm-up"
    follower = next(n for n in cluster.node_ids if n != leader)
    assert _consensus_stats(cluster, follower).get("frames_in", 0) > 0
    heartbeat = find_component(NAME, leader, "heartbeat")
    wait_until(lambda: ray.get(heartbeat.transport_stats.remote()).get("frames", 0) > 0)


def test_a_link_broken_mid_stream_falls_back_to_ray_calls_and_recovers(
        cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(timeout=30)
    handle = cluster.session.handle(leader)
    _frames_flow(cluster, leader)
    before = _consensus_stats(cluster, leader)
    plane_before = ray.get(handle.dataplane_stats.remote(NAME))
    assert ray.get(handle.dataplane_break_links.remote(NAME)) >= 1
    for i in range(50):
        assert cluster.kv.put(f"after-break{i}", i).revision > 0
    after = _consensus_stats(cluster, leader)
    plane_after = ray.get(handle.dataplane_stats.remote(NAME))
    assert plane_after["links_down"] > plane_before.get("links_down", 0)
    assert after.get("calls", 0) > before.get("calls", 0), "no Ray call while the link was down"
    assert after["link_down"] > before.get("link_down", 0)
    resumed = _frames_flow(cluster, leader)
    assert resumed["frames"] > after["frames"]
    assert ray.get(handle.dataplane_stats.remote(NAME))["links_up"] > plane_before["links_up"]


def test_a_process_without_the_secret_is_refused_and_counted(cluster: Cluster) -> None:
    node = cluster.node_ids[0]
    handle = cluster.session.handle(node)
    endpoint = ray.get(handle.dataplane_address.remote(NAME))
    assert endpoint is not None and endpoint.node == node
    refused_before = ray.get(handle.dataplane_stats.remote(NAME)).get("refused_bad_hmac", 0)

    async def intrude() -> bool:
        plane = DataPlane(NAME, "intruder", "intruder-actor", make_secret(),
                          tcp_host=None, unix=False)
        await plane.start()
        plane.set_address("consensus", node, endpoint)
        try:
            return await plane.connect("consensus", node)
        finally:
            plane.close()

    assert asyncio.run(intrude()) is False
    wait_until(lambda: ray.get(handle.dataplane_stats.remote(NAME)).get(
        "refused_bad_hmac", 0) > refused_before)


def _submit(handle: Any, key: str, timeout: float) -> Any:
    command = Command("dpray-test", abs(hash(key)) % 10**9, ("put", key, 1))
    return ray.get(handle.submit.remote([command], timeout), timeout=timeout + 30)


def test_a_partition_made_by_the_chaos_filter_holds_on_the_stream_path(
        cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(timeout=30)
    _frames_flow(cluster, leader)
    others = [n for n in cluster.node_ids if n != leader]
    cluster.chaos.partition([[leader], others])
    try:
        new_leader = wait_until(lambda: (lead := cluster.leader()) in others and lead)
        assert cluster.kv.put("majority-side", 1).revision > 0
        with pytest.raises(Exception):  # noqa: B017 - NotLeader or a timeout: not committed
            _submit(cluster.session.handle(leader), "minority-side", timeout=1.0)
        stats = _consensus_stats(cluster, new_leader)
        assert stats.get("frames", 0) > 0
    finally:
        cluster.chaos.heal_partition()
    cluster.wait_for_leader(timeout=30)
    assert cluster.kv.get("minority-side", default=None) is None
    assert cluster.kv.put("healed", 1).revision > 0
