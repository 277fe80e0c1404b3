"""An event stream for actors: sequence-numbered events, long-poll waiters
(so a driver-side client can deliver events to local callbacks without a
polling loop), and actor-handle subscribers that get each event pushed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Collection
from typing import Any

from ..errors import ValidationFailed

logger = logging.getLogger(__name__)


def subscriber_key(handle: Any) -> str:
    """The key of a subscriber actor handle; a clear error for anything else
    (a local function pickled into the actor could never be called back)."""
    actor_id = getattr(handle, "_actor_id", None)
    if actor_id is None:
        raise ValidationFailed([("subscriber", f"got {type(handle).__name__}: pass a Ray actor "
                                 "handle, or subscribe a local callable through the client "
                                 "(cluster.node(id).<component>.subscribe(callback))")])
    return str(actor_id.hex())


class EventStream:
    """Bounded history of events ``{"seq", "time", "type", "source", **fields}``.

    Subscribers are Ray actor handles with a method named ``method`` (default
    ``on_event``) that receives each event (of the given ``types``, or all),
    fire-and-forget; a subscriber whose actor died is dropped.
    """

    def __init__(self, source: str, capacity: int = 2_000) -> None:
        self.source = source
        self.events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.seq = 0
        self._changed = asyncio.Event()
        self._subscribers: dict[str, tuple[Any, str, frozenset[str]]] = {}

    def publish(self, type: str, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        event = {"seq": self.seq, "time": time.time(), "type": type, "source": self.source,
                 **fields}
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()
        for key, (handle, method, types) in list(self._subscribers.items()):
            if types and type not in types:
                continue
            try:
                getattr(handle, method).remote(event)
            except Exception:  # the subscriber is gone
                logger.debug("dropping subscriber %s", key)
                self._subscribers.pop(key, None)
        return event

    def since(self, seq: int = 0, types: list[str] | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > seq and (not types or e["type"] in types)]

    async def wait(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """Events after ``seq``; waits up to ``timeout`` seconds for one. A ``seq``
        beyond the newest event was taken from an earlier run of this stream (its
        actor restarted): it reads from the start of this run."""
        if seq > self.seq:
            seq = 0
        if self.seq <= seq:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                return []
        return self.since(seq)

    def subscribe(self, handle: Any, method: str = "on_event",
                  types: Collection[str] | None = None) -> str:
        """Push events (of ``types``, default all) to ``handle.<method>(event)``;
        raises ValidationFailed unless ``handle`` is a Ray actor handle."""
        key = subscriber_key(handle)
        wanted = [types] if isinstance(types, str) else types or ()
        self._subscribers[key] = (handle, method, frozenset(wanted))
        return key

    def unsubscribe(self, handle: Any) -> bool:
        return self._subscribers.pop(subscriber_key(handle), None) is not None
