"""A cluster's registry: a small named actor that records what a later
``Cluster.attach`` needs (node ids, options, placement, the root supervisor),
and the cluster's data-plane secret: made when ``Cluster.start`` creates the
registry, and fetched once by each process that hosts components."""

from __future__ import annotations

from typing import Any

import ray

from .dataplane import make_secret


@ray.remote(num_cpus=0)
class ClusterRegistry:
    def __init__(self, name: str, node_ids: list[str], options: dict[str, Any],
                 placement: dict[str, str | None], secret: bytes | None = None) -> None:
        self._info: dict[str, Any] = {"name": name, "node_ids": list(node_ids),
                                      "options": options, "placement": dict(placement)}
        self._root: Any = None
        self._secret = secret or make_secret()

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def dataplane_secret(self) -> bytes:
        """The key of the data plane's handshake (for the cluster's own processes)."""
        return self._secret

    def set_root(self, root: Any) -> None:
        self._root = root

    def root(self) -> Any:
        return self._root

    def add_node(self, node_id: str, ray_node_id: str | None = None) -> None:
        if node_id not in self._info["node_ids"]:
            self._info["node_ids"].append(node_id)
        self._info["placement"][node_id] = ray_node_id

    def remove_node(self, node_id: str) -> None:
        if node_id in self._info["node_ids"]:
            self._info["node_ids"].remove(node_id)
        self._info["placement"].pop(node_id, None)
