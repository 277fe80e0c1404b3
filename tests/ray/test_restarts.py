"""Restarts as an operator meets them: stop a cluster, start it again.

One three-node cluster writes 50 keys and is shut down (module fixture);
each test then restarts a copy of its files, so the tests are independent:

* the same ``Cluster.start`` call again finds every acknowledged key;
* with the files of a majority removed, no read answers a wrong value: the
  one node with data cannot be elected (the wiped nodes never vote) and
  every read fails with a ClusterError;
* with one node's files removed, that node rejoins as a learner through the
  leader, is promoted to voter, holds every key, and no term has two leaders.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from cluster_actors.cluster import Cluster
from cluster_actors.errors import ClusterError
from cluster_actors.runtime.hosting import find_component
from tests.ray import LIGHT
from tests.waiting import wait_until

pytestmark = pytest.mark.ray

NAME = "restarts"
KEYS = {f"key{i}": i * 7 for i in range(50)}


@pytest.fixture(scope="module")
def written(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files of a stopped three-node cluster that acknowledged KEYS."""
    data = tmp_path_factory.mktemp("restarts-base")
    cluster = Cluster.start(NAME, nodes=3, options={"data_dir": str(data), "fsync": False, **LIGHT},
                            fresh=True)
    try:
        for key, value in KEYS.items():
            cluster.kv.put(key, value)
    finally:
        cluster.shutdown()
    return data


@pytest.fixture
def data_dir(written: Path, tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(written / NAME, tmp_path / NAME)
    yield tmp_path


def _wipe(data_dir: Path, *nodes: str) -> None:
    for node in nodes:
        files = list((data_dir / NAME).glob(f"{node}.*"))
        assert files, f"no files of {node}"
        for path in files:
            path.unlink()


def _events(cluster: Cluster, node: str) -> list[dict[str, Any]]:
    return ray.get(find_component(cluster.name, node, "consensus").events_since.remote(0),
                   timeout=10)


def _leaders_per_term(cluster: Cluster) -> dict[int, set[str]]:
    leaders: dict[int, set[str]] = {}
    for node in cluster.node_ids:
        for event in _events(cluster, node):
            if event["type"] == "leader_changed" and event.get("role") == "leader":
                leaders.setdefault(event["term"], set()).add(node)
    return leaders


def test_starting_the_same_cluster_again_keeps_every_acknowledged_key(data_dir: Path) -> None:
    cluster = Cluster.start(NAME, nodes=3, options={"data_dir": str(data_dir),
                                                    "fsync": False, **LIGHT})
    try:
        assert {key: cluster.kv.get(key) for key in KEYS} == KEYS
        for node in cluster.node_ids:
            status = ray.get(find_component(NAME, node, "consensus").status.remote(),
                             timeout=10)
            assert status["bootstrap"] == "resume" and status["rejoin"] is None, node
    finally:
        cluster.shutdown()


def test_a_wiped_majority_never_answers_a_wrong_value(data_dir: Path) -> None:
    _wipe(data_dir, "n1", "n2")
    cluster = Cluster.start(NAME, nodes=3, options={"data_dir": str(data_dir),
                                                    "fsync": False, **LIGHT}, wait=False)
    try:
        def states() -> dict[str, Any]:
            return {n: find_component(NAME, n, "consensus") for n in cluster.node_ids}

        # n1 and n2 found n3's state: they wait to rejoin, never founding voters
        wait_until(lambda: all(
            (ray.get(h.status.remote(), timeout=10).get("rejoin") or {}).get("state")
            == "pending" for n, h in states().items() if n != "n3"))
        with pytest.raises(ClusterError):
            cluster.kv.get_many(["key0", "key49"], timeout=2.0)
        with pytest.raises(ClusterError, match="lost its storage"):
            cluster.wait_for_leader(timeout=1.0)  # says why, and what to do
        statuses = [ray.get(h.status.remote(), timeout=10) for h in states().values()]
        assert not any(s["role"] == "leader" for s in statuses)
        assert all(s["term"] == 0 and s["voters"] == [] for s in statuses[:2])
    finally:
        cluster.shutdown()


def test_a_node_whose_files_were_removed_rejoins_as_learner_then_voter_with_all_data(
        data_dir: Path) -> None:
    _wipe(data_dir, "n3")
    cluster = Cluster.start(NAME, nodes=3, options={"data_dir": str(data_dir),
                                                    "fsync": False, **LIGHT})
    try:
        n3 = find_component(NAME, "n3", "consensus")

        def rejoined() -> dict[str, Any] | None:
            status = ray.get(n3.status.remote(), timeout=10)
            done = (status.get("rejoin") or {}).get("state") == "done"
            return status if done and "n3" in status["voters"] else None

        status = wait_until(rejoined)
        assert status["bootstrap"] == "rejoin" and status["learners"] == []
        steps = [e["type"] for e in _events(cluster, "n3")
                 if e["type"] in ("rejoin_removed", "rejoin_learner", "rejoined")]
        assert steps == ["rejoin_removed", "rejoin_learner", "rejoined"]
        items = {kv.key: kv.value for kv in ray.get(n3.kv_items.remote(""), timeout=10)}
        assert {key: items.get(key) for key in KEYS} == KEYS
        assert cluster.kv.get("key49") == KEYS["key49"]
        leaders = _leaders_per_term(cluster)
        assert leaders and all(len(nodes) == 1 for nodes in leaders.values()), leaders
    finally:
        cluster.shutdown()
