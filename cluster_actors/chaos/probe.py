"""ClusterProbe: part of the package :mod:`cluster_actors.chaos`."""

from __future__ import annotations

import time
from typing import Any

import ray

from ..runtime.hosting import find_component
from ..runtime.naming import COMPONENTS, node_supervisor_name


def _get_before(ref: Any, deadline: float) -> Any:
    """``ray.get(ref)``, waiting until ``deadline`` (``time.monotonic()``) at most.

    On a timeout the late reply is still consumed, so a paused actor that fails
    later is not reported by Ray as an unhandled error; the timeout is raised."""
    try:
        return ray.get(ref, timeout=max(0.01, deadline - time.monotonic()))
    except ray.exceptions.GetTimeoutError:
        ref.future()
        raise


class ClusterProbe:
    """Finds a cluster's actors by name and reads their status; every call
    is bounded in time and tolerates dead or paused actors."""

    def __init__(self, cluster: Any) -> None:
        self.name: str = cluster.name
        self.namespace: str = cluster.namespace
        self.node_ids: list[str] = list(cluster.node_ids)

    def actor(self, node_id: str, component: str) -> Any | None:
        try:
            if component == "supervisor":
                return ray.get_actor(node_supervisor_name(self.name, node_id),
                                     namespace=self.namespace)
            return find_component(self.name, node_id, component)
        except ValueError:
            return None

    def components(self, node_id: str) -> dict[str, Any]:
        """The component actors of ``node_id`` running now, by component."""
        found = {c: self.actor(node_id, c) for c in COMPONENTS}
        return {c: h for c, h in found.items() if h is not None}

    def statuses(self, timeout: float = 1.0) -> dict[str, dict[str, Any] | None]:
        """Each node's consensus ``status()``, None where it did not answer."""
        refs = {}
        for node_id in self.node_ids:
            handle = self.actor(node_id, "consensus")
            refs[node_id] = handle.status.remote() if handle is not None else None
        out: dict[str, dict[str, Any] | None] = {}
        deadline = time.monotonic() + timeout
        for node_id, ref in refs.items():
            try:
                out[node_id] = None if ref is None else _get_before(ref, deadline)
            except Exception:
                out[node_id] = None
        return out

    @staticmethod
    def leader_of(statuses: dict[str, dict[str, Any] | None]) -> tuple[str | None, int]:
        """(leader in the highest term any node leads, that term)."""
        leaders = [(s["term"], n) for n, s in statuses.items() if s and s["role"] == "leader"]
        return (max(leaders)[1], max(leaders)[0]) if leaders else (None, 0)


__all__ = ["ClusterProbe"]
