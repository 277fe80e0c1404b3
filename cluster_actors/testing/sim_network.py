"""The simulator's seeded network: drop, duplicate, delay (hence reorder) and
partition messages (along the groups of
:func:`cluster_actors.core.partitions.partition_groups`, every Jepsen shape)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class NetworkFaults:
    """Per-message fault rates; ``max_delay`` in ticks (0 delivers next tick)."""

    drop: float = 0.0
    duplicate: float = 0.0
    max_delay: int = 0

    @classmethod
    def draw(cls, rng: random.Random) -> NetworkFaults:
        """A fault mix per seed, TigerBeetle style: loss 0-20 %, duplication
        0-10 %, delay 0-4 ticks."""
        return cls(drop=rng.choice((0.0, 0.01, 0.05, 0.2)),
                   duplicate=rng.choice((0.0, 0.02, 0.1)),
                   max_delay=rng.choice((0, 1, 2, 4)))


@dataclass(order=True, slots=True)
class _InFlight:
    deliver_at: int
    seq: int
    message: Any = field(compare=False)


class SimNetwork:
    """Messages in flight, delivered in (time, send order) order."""

    def __init__(self, rng: random.Random, faults: NetworkFaults | None = None) -> None:
        self.rng = rng
        self.faults = faults or NetworkFaults()
        self.groups: list[set[str]] | None = None
        self._queue: list[_InFlight] = []
        self._seq = 0
        self.sent = self.dropped = self.duplicated = 0

    def connected(self, a: str, b: str) -> bool:
        if self.groups is None or a == b:
            return True
        return any(a in g and b in g for g in self.groups)

    def partition(self, groups: list[set[str]]) -> None:
        self.groups = groups

    def heal(self) -> None:
        self.groups = None

    def send(self, message: Any, now: int) -> None:
        self.sent += 1
        faults = self.faults
        if faults.drop and self.rng.random() < faults.drop:
            self.dropped += 1
            return
        copies = 1
        if faults.duplicate and self.rng.random() < faults.duplicate:
            copies, self.duplicated = 2, self.duplicated + 1
        for _ in range(copies):
            delay = self.rng.randint(0, faults.max_delay) if faults.max_delay else 0
            self._seq += 1
            heapq.heappush(self._queue, _InFlight(now + 1 + delay, self._seq, message))

    def due(self, now: int) -> list[Any]:
        """Messages to deliver at ``now`` whose endpoints are connected now
        (a partition cuts messages already in flight too)."""
        out = []
        queue = self._queue
        while queue and queue[0].deliver_at <= now:
            message = heapq.heappop(queue).message
            if self.connected(message.src, message.dst):
                out.append(message)
            else:
                self.dropped += 1
        return out

    def clear(self) -> None:
        self._queue.clear()
