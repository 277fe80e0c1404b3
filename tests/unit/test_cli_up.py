"""`cluster-actors up` resumes a cluster's data by default; `--fresh` wipes it."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import ray

from cluster_actors.cli.app import _up, build_parser
from cluster_actors.cluster import Cluster, ClusterStatus
from cluster_actors.errors import ClusterError


def test_cluster_start_resumes_by_default_and_wipes_only_when_asked() -> None:
    assert inspect.signature(Cluster.start).parameters["fresh"].default is False


@pytest.mark.parametrize(("extra", "fresh"), [([], False), (["--fresh"], True)])
def test_up_passes_fresh_only_when_given(monkeypatch: pytest.MonkeyPatch, extra: list[str],
                                         fresh: bool) -> None:
    seen: dict[str, Any] = {}

    class Started:
        def status(self) -> ClusterStatus:
            return ClusterStatus(name="c", leader=None, term=0, nodes=[])

    def start(name: str, **kwargs: Any) -> Started:
        seen.update(kwargs, name=name)
        return Started()

    monkeypatch.setattr(Cluster, "start", staticmethod(start))
    monkeypatch.setattr("cluster_actors.cli.app._connect", lambda address: None)
    monkeypatch.setattr(ray, "nodes", lambda: [{"NodeID": "r1", "Alive": True}])
    args = build_parser().parse_args(["up", "--name", "c", "--nodes", "3", *extra])
    assert args.run is _up
    assert _up(args) == 0
    assert seen["fresh"] is fresh and seen["name"] == "c"


@pytest.mark.parametrize("follow", [False, True])
def test_up_follows_ray_nodes_only_when_asked_and_until_the_cluster_is_down(
        monkeypatch: pytest.MonkeyPatch, follow: bool) -> None:
    seen: dict[str, Any] = {}
    checks: list[str] = []

    class Started:
        def status(self) -> ClusterStatus:
            return ClusterStatus(name="c", leader=None, term=0, nodes=[])

    def start(name: str, **kwargs: Any) -> Started:
        seen.update(kwargs)
        return Started()

    def registered(name: str) -> None:
        checks.append(name)
        if len(checks) == 3:  # `cluster-actors down` ran meanwhile
            raise ClusterError(f"no cluster named {name!r}")

    monkeypatch.setattr(Cluster, "start", staticmethod(start))
    monkeypatch.setattr("cluster_actors.cli.app._connect", lambda address: None)
    monkeypatch.setattr("cluster_actors.cli.app.FOLLOW_CHECK_SECONDS", 0.0)
    monkeypatch.setattr("cluster_actors.client.session.registered_cluster", registered)
    monkeypatch.setattr(ray, "nodes", lambda: [{"NodeID": "r1", "Alive": True}])
    args = build_parser().parse_args(
        ["up", "--name", "c", *(["--follow-ray-nodes"] if follow else [])])
    assert _up(args) == 0
    assert seen["options"].get("follow_ray_nodes", False) is follow
    assert checks == (["c"] * 3 if follow else [])  # it stayed up until the cluster was gone
