"""A partition strategy shipped by a separate package: Akka's down-all.

Installed with its own entry point (see pyproject.toml), it is found by name:
``strategies.load("partition", "down_all")``.
"""

from __future__ import annotations

from typing import ClassVar

from strategies.base import PartitionStrategy, PartitionView, Side, SideAction

__all__ = ["DownAll"]


class DownAll(PartitionStrategy):
    """Down every side of a stable partition (Akka's down-all); all rejoin after the heal."""

    name: ClassVar[str] = "down_all"

    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        return ({side: SideAction.DOWN for side in view.sides},
                f"down_all: {len(view.sides)} sides, every one downs until the partition heals")
