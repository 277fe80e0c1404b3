"""Partition shapes: which nodes can still talk to each other under each of
Jepsen's network partitions. Pure (the random choices come from the ``rng``
passed in); the chaos monkey cuts real transports along these groups and the
simulator its simulated network."""

from __future__ import annotations

import random
from collections.abc import Sequence

PARTITION_SHAPES = ("one", "majority_minority", "majorities_ring", "bridge", "isolate_leader")


def partition_groups(shape: str, nodes: Sequence[str], rng: random.Random,
                     leader: str | None = None) -> list[set[str]]:
    """Groups of nodes that can talk among themselves for a partition shape.

    A node may be in several groups (``bridge``, ``majorities_ring``); two
    nodes can talk when some group holds both.
    """
    ids = list(nodes)
    rng.shuffle(ids)
    n = len(ids)
    if shape == "one":
        return [{ids[0]}, set(ids[1:])]
    if shape == "isolate_leader":
        lone = leader if leader in ids else ids[0]
        return [{lone}, set(ids) - {lone}]
    if shape == "majority_minority":
        cut = n // 2
        return [set(ids[:cut]), set(ids[cut:])]
    if shape == "bridge":
        half = n // 2
        return [set(ids[:half + 1]), set(ids[half:])]
    if shape == "majorities_ring":
        reach = n // 2 // 2 if n >= 5 else 1
        groups = []
        for i in range(n):
            groups.append({ids[(i + d) % n] for d in range(-reach, reach + 1)})
        return groups
    raise ValueError(f"unknown partition shape {shape!r}; one of {', '.join(PARTITION_SHAPES)}")
