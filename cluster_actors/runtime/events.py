"""An event stream for actors: sequence-numbered events, long-poll waiters
(so a driver-side client can deliver events to local callbacks without a
polling loop), and actor-handle subscribers that get each event pushed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

logger = logging.getLogger(__name__)


class EventStream:
    """Bounded history of events ``{"seq", "time", "type", "source", **fields}``.

    Subscribers are Ray actor handles with a method named ``method`` (default
    ``on_event``) that receives each event, fire-and-forget; a subscriber
    whose actor died is dropped.
    """

    def __init__(self, source: str, capacity: int = 2_000) -> None:
        self.source = source
        self.events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.seq = 0
        self._changed = asyncio.Event()
        self._subscribers: dict[str, tuple[Any, str]] = {}

    def publish(self, type: str, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        event = {"seq": self.seq, "time": time.time(), "type": type, "source": self.source,
                 **fields}
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()
        for key, (handle, method) in list(self._subscribers.items()):
            try:
                getattr(handle, method).remote(event)
            except Exception:  # the subscriber is gone
                logger.debug("dropping subscriber %s", key)
                self._subscribers.pop(key, None)
        return event

    def since(self, seq: int = 0, types: list[str] | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > seq and (not types or e["type"] in types)]

    async def wait(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """Events after ``seq``; waits up to ``timeout`` seconds for one."""
        if self.seq <= seq:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                return []
        return self.since(seq)

    def subscribe(self, handle: Any, method: str = "on_event") -> str:
        key = handle._actor_id.hex() if hasattr(handle, "_actor_id") else str(id(handle))
        self._subscribers[key] = (handle, method)
        return key

    def unsubscribe(self, handle: Any) -> bool:
        key = handle._actor_id.hex() if hasattr(handle, "_actor_id") else str(id(handle))
        return self._subscribers.pop(key, None) is not None
