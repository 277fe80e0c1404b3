"""Run by ``test_follow_ray_nodes.py`` in its own process: a Ray cluster on this
machine (``ray.cluster_utils.Cluster``, its health checks tightened so that a
removed Ray node is declared dead within about two seconds), a 3-node
coordination cluster with ``follow_ray_nodes``, then a Ray node added (it
becomes a logical node that votes and serves reads) and removed again (its
logical node is removed after the grace, and the others keep serving). Prints
one JSON line."""

from __future__ import annotations

import json
from typing import Any

import ray
from ray.cluster_utils import Cluster as RayCluster

from cluster_actors import Cluster
from cluster_actors.client.session import registered_cluster
from tests.ray import HEALTH_CHECKS
from tests.waiting import HANG_GUARD, wait_until


def voters(cluster: Cluster) -> list[str]:
    status = ray.get(cluster.session.handle(cluster.wait_for_leader()).status.remote(),
                     timeout=HANG_GUARD)
    return sorted(status["voters"])


def main() -> None:
    ray_cluster = RayCluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "_system_config": HEALTH_CHECKS})
    ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)
    cluster = Cluster.start("follow", nodes=3, fresh=True, options={
        "follow_ray_nodes": True, "ray_node_grace_ms": 1000, "placement": "per_node"})
    result: dict[str, Any] = {"start": list(cluster.node_ids)}
    try:
        cluster.kv.put("before", 1)
        cluster.data("n1").set("crdt", "from n1")
        worker = ray_cluster.add_node(num_cpus=1)
        result["worker"] = worker.node_id
        [added] = wait_until(lambda: [n for n in cluster.node_ids if n.startswith("ray-")],
                             "the added Ray node's logical node", interval=0.1)
        result["added"] = added
        result["voters_after_add"] = wait_until(
            lambda: v if added in (v := voters(cluster)) else None, "the added node voting",
            interval=0.1)
        status = cluster.node(added).consensus.status()
        result["added_runs_on"] = status["ray_node_id"]
        # the new node serves reads: its replica of the CRDT store, its member list
        result["read_on_added"] = wait_until(lambda: cluster.data(added).get("crdt"),
                                            "a read on the added node", interval=0.1)
        result["members_on_added"] = sorted(cluster.coordinator(added).get_members())
        ray_cluster.remove_node(worker, allow_graceful=False)
        result["node_ids_after_removal"] = wait_until(
            lambda: list(cluster.node_ids) if added not in cluster.node_ids else None,
            "the removed node gone", interval=0.1)
        result["registry_after_removal"] = registered_cluster("follow")[0]
        result["voters_after_removal"] = voters(cluster)
        result["leader_after_removal"] = cluster.wait_for_leader(timeout=HANG_GUARD)
        result["write_after_removal"] = cluster.kv.put("after", 2).ok
        result["read_after_removal"] = [cluster.kv.get("before"), cluster.kv.get("after")]
    finally:
        cluster.shutdown()
        ray.shutdown()
        ray_cluster.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
