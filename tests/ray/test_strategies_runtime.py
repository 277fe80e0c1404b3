"""The strategies carried out by a running cluster: the failover strategy's
ranking and election bias, operator-driven and hand-off transfers, a switch
of strategy through the config log, the partition strategy's decision on
the CRDT store and the lifecycle, and a third-party strategy installed as
its own package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster_actors import Cluster, ClusterOptions
from cluster_actors.errors import NoQuorum
from tests.ray import LIGHT
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = {"n1": 1.0, "n2": 1.0, "n3": 5.0}


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    options = ClusterOptions(failover_strategy="weighted",
                             failover_options={"weights": WEIGHTS},
                             partition_options={"stable_after": 0.3},
                             heartbeat_interval=250, **LIGHT)
    c = Cluster.start("strategic", nodes=3, options=options)
    yield c
    c.shutdown()


def failover_info(cluster: Cluster, node: str) -> dict:
    return cluster.coordinator(node).call("get_failover_info")


def test_weighted_ranks_the_heaviest_node_first_and_biases_its_election_timeout(
        cluster: Cluster) -> None:
    infos = {n: wait_until(lambda n=n: (i := failover_info(cluster, n))["ranking"] and i)
             for n in cluster.node_ids}
    assert all(info["ranking"][0] == "n3" for info in infos.values())
    assert infos["n3"]["election_bias"] == pytest.approx(0.5)
    assert infos["n1"]["election_bias"] == infos["n2"]["election_bias"] == 1.0
    assert all(info["strategy"] == "weighted" for info in infos.values())


def test_a_strategy_switch_is_a_config_entry_and_manual_moves_only_on_request(
        cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(timeout=60)
    cluster.coordinator(leader).propose_config({"failover_strategy": "manual"})
    # every node switches, and manual biases nobody (n3 loses its 0.5)
    wait_until(lambda: all((i := failover_info(cluster, n))["strategy"] == "manual"
                           and i["election_bias"] == 1.0 for n in cluster.node_ids))
    target = next(n for n in cluster.node_ids if n != leader)
    follower = next(n for n in cluster.node_ids if n not in (leader, target))
    # asked on a follower: forwarded to the leader, which hands over
    assert cluster.coordinator(follower).call("request_leadership", target) == "requested"
    wait_until(lambda: cluster.leader() == target)
    log = failover_info(cluster, leader)["log"]
    assert any(e["kind"] == "transfer" and e["target"] == target for e in log)
    cluster.coordinator(target).propose_config({"failover_strategy": "weighted"})
    wait_until(lambda: all(failover_info(cluster, n)["strategy"] == "weighted"
                           for n in cluster.node_ids))


def test_majority_side_downs_the_minority_store_and_the_heal_resumes_it(
        cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(timeout=60)
    minority = leader
    majority = [n for n in cluster.node_ids if n != minority]
    cluster.data(majority[0]).set("before", 1)
    cluster.chaos.partition([[minority], majority])
    try:
        wait_until(lambda: cluster.coordinator(minority).call(
            "get_partition_info")["data_mode"] == "down")
        with pytest.raises(NoQuorum, match="down"):
            cluster.data(minority).set("cut", 1)
        with pytest.raises(NoQuorum):
            cluster.data(minority).get("before")
        # a restarted sync actor starts serving; the coordinator downs it again
        cluster.chaos.kill(minority, component="sync")
        wait_until(lambda: _refuses_writes(cluster, minority))
        info = cluster.coordinator(minority).call("get_partition_info")
        assert info["action"] == "down" and info["reported"]["nodes"] == majority
        for node in majority:  # the majority keeps serving
            assert cluster.coordinator(node).call("get_partition_info")["data_mode"] == "serve"
        cluster.data(majority[1]).set("during", 2)
    finally:
        cluster.chaos.heal()
    wait_until(lambda: cluster.coordinator(minority).call(
        "get_partition_info")["data_mode"] == "serve")
    cluster.data(minority).set("after", 3)
    wait_until(lambda: cluster.data(minority).get("during") == 2)
    history = cluster.coordinator(minority).call("get_partition_info")["history"]
    assert [h["kind"] for h in history][-2:] == ["reported", "healed"]


def _refuses_writes(cluster: Cluster, node: str) -> bool:
    try:
        cluster.data(node).set("probe", 1)
    except NoQuorum:
        return True
    except Exception:  # the sync actor is still restarting
        return False
    return False


def test_a_leaving_leader_hands_off_to_the_strategys_top_candidate(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(timeout=60)
    if leader == "n3":  # make a lighter node lead first
        cluster.coordinator("n3").call("request_leadership", "n1")
        wait_until(lambda: cluster.leader() == "n1")
        leader = "n1"
    before = failover_info(cluster, leader)
    cluster.coordinator(leader).call("leave_cluster", "test", timeout=60.0)
    successor = wait_until(lambda: cluster.leader() not in (None, leader) and cluster.leader())
    assert successor == "n3", (before, failover_info(cluster, leader))


PLUGIN_SCRIPT = """
import json, os, sys, time, ray
from cluster_actors import Cluster, ClusterOptions
# a driver of its own on the test session's Ray; the actors' processes (this
# job's workers) find the plug-in as the driver does
ray.init(address=sys.argv[1], log_to_driver=False,
         runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
options = ClusterOptions(partition_strategy="down_all", partition_options={"stable_after": 0.3},
                         heartbeat_interval=250, placement="per_node")
cluster = Cluster.start("plugged", nodes=3, options=options)
try:
    # partition once every node has heard every other: before that a member
    # never heard from counts as starting, and only after a grace as cut off
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(
            cluster.coordinator(n).call("get_partition_info")["unreachable"]
            for n in cluster.node_ids):
        time.sleep(0.1)
    cluster.chaos.partition([["n1"], ["n2", "n3"]])
    modes, deadline = {}, time.monotonic() + 120
    while time.monotonic() < deadline:
        modes = {n: cluster.coordinator(n).call("get_partition_info")["data_mode"]
                 for n in cluster.node_ids}
        if set(modes.values()) == {"down"}:
            break
        time.sleep(0.1)
    strategy = cluster.coordinator("n2").call("get_partition_info")["strategy"]
    cluster.chaos.heal()
finally:
    cluster.shutdown()
print("RESULT", json.dumps({"modes": modes, "strategy": strategy}))
"""


def test_a_third_party_strategy_from_its_own_package_runs_a_cluster(
        thirdparty_site: Path, ray_address: str) -> None:
    run = subprocess.run([sys.executable, "-c", PLUGIN_SCRIPT, ray_address],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ,
                              "PYTHONPATH": f"{thirdparty_site}{os.pathsep}{ROOT}"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # Ray's own warnings may be printed to stdout too, even after the result
    [line] = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["strategy"] == "down_all"
    # down_all downs every side, the majority too (majority_side would keep n2, n3)
    assert result["modes"] == {"n1": "down", "n2": "down", "n3": "down"}
