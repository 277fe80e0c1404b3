"""The shell of ``ClusterOptions(follow_ray_nodes=True)``: a daemon thread of the
process that started the cluster polls Ray's node table and carries out
:class:`~cluster_actors.core.ray_nodes.RayNodeFollower`'s decisions with the
cluster's own ``add_node`` (pinned to the new Ray node) and ``remove_node``.

It runs where ``Cluster.start`` ran (a driver, or ``cluster-actors up``'s
process) and stops with :meth:`close` (``Cluster.shutdown`` calls it). A
failed add or remove is logged and decided again at the next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import ray

from ..core.ray_nodes import RayNodeFollower, node_id_for

logger = logging.getLogger(__name__)

#: Seconds between polls of Ray's node table.
POLL_SECONDS = 0.5


class Growable(Protocol):
    """What the follower needs of a cluster."""

    node_ids: list[str]

    def add_node(self, node_id: str, *, ray_node_id: str | None = None,
                 timeout: float = 60.0) -> str: ...

    def remove_node(self, node_id: str, timeout: float = 60.0) -> None: ...


def alive_ray_nodes() -> list[str]:
    """Ids of the Ray nodes alive now."""
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]


class RayNodeWatcher:
    """Polls Ray's nodes every :data:`POLL_SECONDS` and follows them (module doc)."""

    def __init__(self, cluster: Growable, grace_s: float) -> None:
        self.cluster = cluster
        self.follower = RayNodeFollower(grace_s, frozenset(alive_ray_nodes()))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ray-node-follower",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.poll()
            except Exception:
                logger.exception("following the Ray nodes failed; trying again")

    def poll(self) -> None:
        """One round: add new Ray nodes, remove the ones gone past the grace."""
        to_add, to_remove = self.follower.step(alive_ray_nodes(), time.monotonic())
        for ray_node in to_add:
            if self._stop.is_set():
                return
            node_id = node_id_for(ray_node)
            if node_id not in self.cluster.node_ids:
                self.cluster.add_node(node_id, ray_node_id=ray_node)
            self.follower.added(ray_node, node_id)
            logger.info("Ray node %s joined: added node %s", ray_node, node_id)
        for node_id in to_remove:
            if self._stop.is_set():
                return
            if node_id in self.cluster.node_ids:
                self.cluster.remove_node(node_id)
            self.follower.removed(node_id)
            logger.info("the Ray node of %s is gone: removed it", node_id)

    def close(self, timeout: float = 90.0) -> None:
        """Stop following (waits for a change in progress to finish)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
