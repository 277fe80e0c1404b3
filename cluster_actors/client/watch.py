"""A watch on the key-value store, as etcd users know it: an iterator of
:class:`WatchEvent` for the keys in a range (a prefix, by default), in
revision order, each change once.

The watch long-polls the leader's history (``watch_events``) for the changes
after the last revision it delivered; when the leader changes it asks the new
one from that same revision, so a failover neither loses nor repeats an
event. ``start_revision`` resumes from a revision still in the history; one
already compacted raises :class:`~cluster_actors.errors.Compacted`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.kv import KeyValue
from ..errors import CoordinationTimeout, NoQuorum, ValidationFailed


class LeaderCaller(Protocol):
    """What a watch needs of its session: a call on the current leader,
    redirected and retried through leader changes."""

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any: ...

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: ``type`` is ``"put"`` or ``"delete"``; ``value`` is the new
    value (None for a delete); ``kv``/``prev_kv`` the key's records after and
    before it (etcd's prev_kv)."""

    type: str
    key: str
    value: Any
    revision: int
    kv: KeyValue | None = None
    prev_kv: KeyValue | None = None


class Watch:
    """An iterator of :class:`WatchEvent` (made by :meth:`KVClient.watch`).

    The range is ``[start, end)`` as in :meth:`KVClient.range`. Without a
    ``start_revision`` the watch starts at the revision current when it was
    made (a linearizable read), so every later change is delivered.
    ``revision`` is the revision of the last event delivered (or the one the
    watch started after): ``start_revision=watch.revision + 1`` resumes it.
    :meth:`close` (or leaving the ``with`` block) ends the iteration, within
    ``poll_timeout`` seconds for an iteration blocked in another thread.
    """

    def __init__(self, session: LeaderCaller, start: str, end: str | None,
                 start_revision: int | None = None, poll_timeout: float = 1.0) -> None:
        if start_revision is not None and (isinstance(start_revision, bool) or not isinstance(
                start_revision, int) or start_revision < 1):
            raise ValidationFailed([("start_revision", f"must be None or an integer >= 1, "
                                     f"got {start_revision!r}")])
        self._session = session
        self.start, self.end = start, end
        self.poll_timeout = poll_timeout
        self._buffer: collections.deque[WatchEvent] = collections.deque()
        self._closed = threading.Event()
        self._after = self._poll(None if start_revision is None else start_revision - 1, 0.0)
        self.revision = self._after

    def _poll(self, after: int | None, wait: float | None = None) -> int:
        """One long poll (up to ``wait`` s, default ``poll_timeout``): buffer
        the changes after ``after``; returns the revision to continue after.
        Retries through failovers."""
        wait = self.poll_timeout if wait is None else wait
        while True:
            try:
                answer = self._session.call(
                    "watch_events", self.start, self.end, after, wait, timeout=wait + 10.0)
                break
            except (NoQuorum, CoordinationTimeout) as error:  # no leader yet: keep trying
                if self._closed.is_set():
                    return after or 0
                logger.debug("watch on %r: %s", self.start, error)
                time.sleep(0.05)
        for change in answer["changes"]:
            self._buffer.append(WatchEvent(change.type, change.key, change.value,
                                           change.revision, change.kv, change.prev))
        return int(answer["revision"])

    def get(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, or None if none came within ``timeout`` seconds
        (None: wait until one comes) or the watch is closed. Raises
        ``Compacted`` if the changes to deliver next were compacted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            if self._buffer:
                event = self._buffer.popleft()
                self.revision = event.revision
                return event
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._after = max(self._after, self._poll(self._after))
        return None

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchEvent:
        event = self.get()
        if event is None:
            raise StopIteration
        return event

    def close(self) -> None:
        """End the watch: iteration stops (events not yet taken are dropped)."""
        self._closed.set()
        self._buffer.clear()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"at revision {self.revision}"
        return f"<Watch {self.start!r}..{self.end!r} {state}>"


__all__ = ["Watch", "WatchEvent"]
