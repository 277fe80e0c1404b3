"""`cluster-actors up` resumes a cluster's data by default; `--fresh` wipes it."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import ray

from cluster_actors.cli.app import _up, build_parser
from cluster_actors.cluster import Cluster, ClusterStatus


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
