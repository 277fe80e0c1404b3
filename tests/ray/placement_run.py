"""Run by ``test_placement.py`` in its own process: a 3-node Ray cluster on
this machine (``ray.cluster_utils.Cluster``) and, for each ``--placement``
in turn, a 3-node coordination cluster pinned one logical node per Ray node,
a check of where every actor runs, then the removal of the Ray node under the
leader (a new Ray node replaces it before the next placement). Prints one JSON
line: the result of each placement by name."""

from __future__ import annotations

import argparse
import json
import time

import ray
from ray.cluster_utils import Cluster as RayCluster

from cluster_actors import Cluster, ClusterOptions
from cluster_actors.runtime.hosting import actor_of, find_component
from cluster_actors.runtime.naming import COMPONENTS, node_supervisor_name

HANG_GUARD = 120.0


def ray_node_of(handle: object) -> str:
    return ray.get(actor_of(handle).__ray_call__.remote(
        lambda actor: ray.get_runtime_context().get_node_id()), timeout=30)


def trial(ray_cluster: RayCluster, placement: str, name: str) -> dict[str, object]:
    """One coordination cluster pinned one logical node per Ray node of
    ``ray_cluster`` (its head and two workers), then the removal of a worker."""
    head = ray_cluster.head_node.node_id
    workers = [n for n in ray_cluster.list_all_nodes() if n.node_id != head]
    ray_nodes = [head, *(w.node_id for w in workers)]
    cluster = Cluster.start(name, nodes=3, ray_nodes=ray_nodes,
                            options=ClusterOptions(placement=placement), fresh=True)
    result: dict[str, object] = {"ray_nodes": ray_nodes}
    try:
        where: dict[str, dict[str, str]] = {}
        for node_id in cluster.node_ids:
            where[node_id] = {c: ray_node_of(find_component(cluster.name, node_id, c))
                              for c in COMPONENTS}
            if placement == "per_component":
                supervisor = ray.get_actor(node_supervisor_name(cluster.name, node_id),
                                           namespace=cluster.namespace)
                where[node_id]["supervisor"] = ray_node_of(supervisor)
        result["where"] = where
        acked = {f"k{i}": i for i in range(20)}
        for key, value in acked.items():
            cluster.kv.put(key, value)
        # remove a worker Ray node: the leader's if the leader is not on the head
        leader = cluster.wait_for_leader(timeout=HANG_GUARD)
        victim = leader if leader != "n1" else "n2"
        victim_ray_node = ray_nodes[cluster.node_ids.index(victim)]
        ray_cluster.remove_node(next(w for w in workers if w.node_id == victim_ray_node),
                                allow_graceful=False)
        removed_at = time.monotonic()
        survivors = [n for n in cluster.node_ids if n != victim]
        deadline = time.monotonic() + HANG_GUARD
        new_leader = None
        while time.monotonic() < deadline:
            new_leader = cluster.leader()
            if new_leader in survivors:
                break
            time.sleep(0.05)
        cluster.kv.put("after", "removal")
        result.update(victim=victim, old_leader=leader, new_leader=new_leader,
                      reelected_s=round(time.monotonic() - removed_at, 3),
                      read_back={k: cluster.kv.get(k) for k in acked} == acked,
                      after=cluster.kv.get("after"))
    finally:
        cluster.shutdown()
        result["left_behind"] = [a["name"] for a in ray.util.list_named_actors(True)
                                 if a["namespace"] == cluster.namespace]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--placement", nargs="+", default=["per_component"])
    args = parser.parse_args()
    ray_cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)
    results = {}
    try:
        for index, placement in enumerate(args.placement):
            # back to a head and two workers (the previous trial removed one);
            # add_node returns once the node is alive
            while len(ray_cluster.list_all_nodes()) < 3:
                ray_cluster.add_node(num_cpus=1)
            results[placement] = trial(ray_cluster, placement, f"placed{index + 1}")
    finally:
        ray.shutdown()
        ray_cluster.shutdown()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
