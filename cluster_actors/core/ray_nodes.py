"""Following the Ray cluster's nodes (``ClusterOptions(follow_ray_nodes=True)``).

:class:`RayNodeFollower` is told, each poll, which Ray nodes are alive and
answers which to add as logical nodes and which logical nodes to remove:

=========================================================  =====================
observation                                                decision
=========================================================  =====================
an alive Ray node that was not there at the start and      add it (logical id
has no logical node yet                                    :func:`node_id_for`)
a followed Ray node gone for ``grace`` seconds             remove its node
a followed Ray node back within the grace                  keep it
a Ray node present at the start                            left alone (the
                                                           cluster's own nodes)
=========================================================  =====================

The caller reports what it carried out (:meth:`~RayNodeFollower.added`,
:meth:`~RayNodeFollower.removed`); what failed is decided again next poll.
Pure: the clock comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

#: Characters of the Ray node id kept in the logical node id.
ID_CHARS = 12


def node_id_for(ray_node_id: str) -> str:
    """The logical node id a followed Ray node gets."""
    return f"ray-{ray_node_id[:ID_CHARS]}"


@dataclass
class RayNodeFollower:
    """See the module doc. ``baseline``: the Ray nodes alive at the start."""

    grace: float
    baseline: frozenset[str] = frozenset()
    followed: dict[str, str] = field(default_factory=dict)  # ray node id -> logical id
    missing_since: dict[str, float] = field(default_factory=dict)

    def step(self, alive: Iterable[str], now: float) -> tuple[list[str], list[str]]:
        """``(ray node ids to add, logical node ids to remove)`` now."""
        up = set(alive)
        for ray_node in list(self.missing_since):
            if ray_node in up:
                del self.missing_since[ray_node]
        for ray_node in self.followed:
            if ray_node not in up:
                self.missing_since.setdefault(ray_node, now)
        to_add = sorted(up - self.baseline - set(self.followed))
        to_remove = sorted(self.followed[r] for r, since in self.missing_since.items()
                           if r in self.followed and now - since >= self.grace)
        return to_add, to_remove

    def added(self, ray_node_id: str, node_id: str) -> None:
        """Ray node ``ray_node_id`` now runs logical node ``node_id``."""
        self.followed[ray_node_id] = node_id

    def removed(self, node_id: str) -> None:
        """Logical node ``node_id`` was removed: its Ray node is no longer followed."""
        for ray_node, logical in list(self.followed.items()):
            if logical == node_id:
                del self.followed[ray_node]
                self.missing_since.pop(ray_node, None)
