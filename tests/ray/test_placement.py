"""Placement: actors pinned to their Ray node on a multi-node Ray cluster
started on this machine, surviving the removal of a Ray node; and the
``per_node`` placement (one actor per logical node) on the local Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from cluster_actors import Cluster, ClusterOptions
from cluster_actors.runtime.hosting import HostedComponent, actor_of, find_component
from cluster_actors.runtime.naming import COMPONENTS
from tests.waiting import wait_until

SCRIPT = Path(__file__).with_name("placement_run.py")
ROOT = SCRIPT.parents[2]


PLACEMENTS = ["per_component", "per_node"]


@pytest.fixture(scope="module")
def placed() -> dict[str, dict]:
    """Both placements' results, from one run of the script (one multi-node Ray)."""
    run = subprocess.run([sys.executable, str(SCRIPT), "--placement", *PLACEMENTS],
                         capture_output=True, text=True, timeout=900, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_each_logical_node_runs_on_its_ray_node_and_a_ray_node_removal_is_survived(
        placed: dict[str, dict], placement: str) -> None:
    result = placed[placement]
    ray_nodes = result["ray_nodes"]
    assert len(set(ray_nodes)) == 3
    for index, node_id in enumerate(["n1", "n2", "n3"]):
        assert set(result["where"][node_id].values()) == {ray_nodes[index]}, node_id
        assert set(result["where"][node_id]) >= set(COMPONENTS)
    assert result["new_leader"] in {"n1", "n2", "n3"} - {result["victim"]}
    assert result["read_back"] is True and result["after"] == "removal"
    assert result["left_behind"] == []


@pytest.fixture(scope="module")
def per_node(ray_local: None) -> Iterator[Cluster]:
    cluster = Cluster.start("pernode", nodes=3, options=ClusterOptions(placement="per_node"))
    yield cluster
    cluster.shutdown()


def named_actors(cluster: Cluster) -> list[str]:
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == cluster.namespace)


def test_per_node_runs_one_actor_per_logical_node(per_node: Cluster) -> None:
    assert named_actors(per_node) == ["pernode:n1:host", "pernode:n2:host", "pernode:n3:host",
                                      "pernode:registry", "pernode:root"]
    handles = {c: find_component("pernode", "n2", c) for c in COMPONENTS}
    assert all(isinstance(h, HostedComponent) for h in handles.values())
    assert len({actor_of(h)._actor_id for h in handles.values()}) == 1
    leader = per_node.wait_for_leader(timeout=60)
    status = wait_until(lambda: (s := per_node.status()) and all(
        n.leader == leader and n.health is not None for n in s.nodes) and s)
    assert sum(n.role == "leader" for n in status.nodes) == 1
    assert per_node.coordinator("n3").get_members() == ["n1", "n2", "n3"]
    per_node.kv.put("hosted", 1)
    assert per_node.kv.get("hosted") == 1
    per_node.data("n1").set("crdt", "x")  # CRDT sync between hosts
    wait_until(lambda: per_node.data("n3").get("crdt") == "x")


def test_killing_a_host_restarts_the_whole_node_with_its_log(per_node: Cluster) -> None:
    acked = {f"before{i}": i for i in range(30)}
    for key, value in acked.items():
        per_node.kv.put(key, value)
    leader = per_node.wait_for_leader(timeout=60)
    old = actor_of(find_component("pernode", leader, "consensus"))
    commit_before = per_node.node(leader).consensus.get_status()["commit"]
    per_node.chaos.kill(leader, component="consensus")  # the host: the whole node
    new_leader = wait_until(lambda: (lead := per_node.leader()) not in (None, leader) and lead)
    assert new_leader != leader

    def restarted() -> bool:
        try:
            handle = find_component("pernode", leader, "consensus")
        except ValueError:
            return False
        return actor_of(handle)._actor_id != old._actor_id

    wait_until(restarted)
    # it rejoins as a follower of the current leader with its log (a follower
    # briefly knows no leader after a term change: wait for it to hear one)
    status = wait_until(lambda: (s := per_node.node(leader).consensus.get_status())
                        and s["commit"] >= commit_before and s["leader"] is not None
                        and s["leader"] == per_node.leader() and s)
    assert status["role"] == "follower" and status["leader"] != leader
    assert {k: per_node.kv.get(k) for k in acked} == acked
