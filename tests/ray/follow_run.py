"""Run by ``test_follow_ray_nodes.py`` in its own process: a Ray cluster on this
machine (``ray.cluster_utils.Cluster``), a 3-node coordination cluster with
``follow_ray_nodes``, then a Ray node added (it becomes a logical node that
votes) and removed again (its logical node is removed after the grace). Prints
one JSON line."""

from __future__ import annotations

import json
import time
from typing import Any

import ray
from ray.cluster_utils import Cluster as RayCluster

from cluster_actors import Cluster

HANG_GUARD = 120.0


def wait(probe: Any) -> Any:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def voters(cluster: Cluster) -> list[str]:
    status = ray.get(cluster._consensus_handle(cluster.wait_for_leader()).status.remote())
    return list(status["voters"])


def main() -> None:
    ray_cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)
    cluster = Cluster.start("follow", nodes=3, fresh=True,
                            options={"follow_ray_nodes": True, "ray_node_grace_ms": 1000})
    result: dict[str, Any] = {"start": list(cluster.node_ids)}
    try:
        cluster.kv.put("before", 1)
        worker = ray_cluster.add_node(num_cpus=1)
        ray_cluster.wait_for_nodes()
        added = wait(lambda: [n for n in cluster.node_ids if n.startswith("ray-")])
        result["added"] = added
        result["worker"] = worker.node_id
        result["voters_after_add"] = wait(
            lambda: (lambda v: v if set(added) <= set(v) else None)(voters(cluster)))
        result["read_on_added"] = cluster.kv.get("before")
        ray_cluster.remove_node(worker, allow_graceful=False)
        result["node_ids_after_removal"] = wait(
            lambda: list(cluster.node_ids) if not set(added) & set(cluster.node_ids) else None)
        result["voters_after_removal"] = voters(cluster)
        result["write_after_removal"] = cluster.kv.put("after", 2).ok
    finally:
        cluster.shutdown()
        ray.shutdown()
        ray_cluster.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
