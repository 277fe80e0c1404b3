"""An event stream for actors: sequence-numbered events, long-poll waiters
(so a driver-side client can deliver events to local callbacks without a
polling loop), and actor-handle subscribers that get each event pushed; and
the reader's side, :class:`EventCursor`, which follows one actor's events
across its restarts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
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


class EventCursor:
    """Where a reader stands in one actor's events, across the actor's restarts.

    ``since`` is the ``seq`` of the last event read (read on after it). A
    restarted actor is a new instance (a new actor id) that numbers its events
    from 1 again, so before each read call :meth:`follow` with the handle about
    to be asked: for a new instance it starts over at 0. ``instance`` is the
    actor id the position belongs to (None: none yet, the first handle followed
    is new).
    """

    def __init__(self, since: int = 0, instance: str | None = None) -> None:
        self.since = since
        self.instance = instance

    @staticmethod
    def instance_of(handle: Any) -> str:
        """The actor id of ``handle``: one per instance of an actor."""
        return str(handle._actor_id.hex())

    def follow(self, handle: Any) -> bool:
        """Read from ``handle`` from now on; True (and ``since`` back to 0) if it
        is another instance than the one read so far."""
        current = self.instance_of(handle)
        if current == self.instance:
            return False
        self.instance, self.since = current, 0
        return True

    def advance(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Move past ``events`` (read in order; none: stay)."""
        if events:
            self.since = events[-1]["seq"]


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
