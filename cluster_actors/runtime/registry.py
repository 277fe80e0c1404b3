"""A cluster's registry: a small named actor that records what a later
``Cluster.attach`` needs (node ids, options, placement, the root supervisor),
what the consensus actors need to start (the cluster id handed out for
this start, whether it is fresh), and the cluster's data-plane secret: made
when ``Cluster.start`` creates the registry, and fetched once by each process
that hosts components."""

from __future__ import annotations

from typing import Any

import ray

from .dataplane import make_secret


@ray.remote(num_cpus=0)
class ClusterRegistry:
    def __init__(self, name: str, node_ids: list[str], options: dict[str, Any],
                 placement: dict[str, str | None], cluster_id: str | None = None,
                 fresh: bool = False, secret: bytes | None = None) -> None:
        # cluster_id: the incarnation a brand-new cluster is founded with (a node
        # resuming its own state keeps the id on its disk); fresh: the start
        # wiped the data (a node holding another incarnation then refuses)
        self._info: dict[str, Any] = {"name": name, "node_ids": list(node_ids),
                                      "options": options, "placement": dict(placement),
                                      "cluster_id": cluster_id, "fresh": fresh}
        self._root: Any = None
        self._secret = secret or make_secret()
        self._founders: set[str] = set()

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def start_info(self, node_id: str) -> dict[str, Any]:
        """What a starting consensus actor needs: the cluster id handed out,
        ``fresh``, and ``founder`` (``node_id`` has not founded it yet)."""
        return {"cluster_id": self._info["cluster_id"], "fresh": self._info["fresh"],
                "founder": node_id not in self._founders}

    def claim_founding(self, node_id: str) -> bool:
        """Record that ``node_id`` founds the cluster; False if it already did
        (a node that lost its files after founding must rejoin)."""
        if node_id in self._founders:
            return False
        self._founders.add(node_id)
        return True

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
