"""A distributed FIFO queue on the linearizable KV (etcd's queue recipe,
Curator's DistributedQueue).

``put`` writes a new key ``queue/<name>/<unique id>``; its create revision,
which grows with every write the cluster commits, orders the queue. ``get``
reads the queue (a ReadIndex read on the leader) and claims the head with one
txn: delete the head only if it still exists with its create revision. The
txn's outcome decides who got the item, so under any number of consumers each
item is delivered once: a consumer whose txn fails knows the item was taken
and tries the next one of its read, which is then the head (nothing is ever
inserted ahead of a key). Commands carry the client's session, so a claim
retried across a leader change applies at most once.

What a get cannot promise: if a claim is not acknowledged within the kv
timeout (no quorum for that long), ``get`` raises CoordinationTimeout and the
item may or may not have been taken.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ..client.kv import KVClient
from ..core.kv import KeyValue
from ..errors import CoordinationTimeout
from .checks import check_name, check_timeout

if TYPE_CHECKING:
    from ..client.session import LeaderSession

QUEUE_PREFIX = "queue/"

#: how long an empty queue is polled between reads, at first and at most
POLL_MIN_S = 0.02
POLL_MAX_S = 0.25


class Empty(CoordinationTimeout):
    """``get`` found no item within its timeout."""

    code = "empty"


class Queue:
    """A named FIFO queue (``cluster.queue(name)``)::

        jobs = cluster.queue("jobs")
        jobs.put({"id": 1})
        item = jobs.get(timeout=5)    # each item to exactly one consumer

    ``get`` raises :class:`Empty` (a CoordinationTimeout) when no item came
    within ``timeout`` s; ``get_nowait`` is ``get(timeout=0)``.
    """

    def __init__(self, session: LeaderSession, name: str) -> None:
        self._kv = KVClient(session)
        self.name = check_name("name", name)
        self.prefix = f"{QUEUE_PREFIX}{name}/"

    def put(self, item: Any, timeout: float | None = None) -> int:
        """Append ``item``; returns its position (the key's create revision)."""
        key = f"{self.prefix}{uuid.uuid4().hex}"
        return self._kv.put(key, item, timeout).kv.create_revision

    def get(self, timeout: float | None = None) -> Any:
        """Take the head item, waiting up to ``timeout`` s for one (None: as
        long as it takes). Raises :class:`Empty` when none came in time."""
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_MIN_S
        while True:
            for kv in self._items():
                taken = self._claim(kv)
                if taken is not None:
                    return taken.value
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty(f"queue {self.name!r} had no item within {timeout} s; put one, "
                            f"or wait longer (timeout=None waits as long as it takes)")
            remaining = POLL_MAX_S if deadline is None else deadline - time.monotonic()
            time.sleep(max(0.0, min(pause, remaining)))
            pause = min(POLL_MAX_S, pause * 2)

    def get_nowait(self) -> Any:
        return self.get(timeout=0)

    def qsize(self) -> int:
        """How many items wait (linearizable)."""
        return len(self._items())

    def empty(self) -> bool:
        return not self._items()

    def peek(self) -> Any:
        """The head item without taking it; Empty if there is none."""
        items = self._items()
        if not items:
            raise Empty(f"queue {self.name!r} is empty")
        return items[0].value

    def _items(self) -> list[KeyValue]:
        return sorted(self._kv.items(self.prefix), key=lambda kv: kv.create_revision)

    def _claim(self, kv: KeyValue) -> KeyValue | None:
        """Delete ``kv`` if it is still there: the deleted record, or None."""
        result = self._kv.txn(((kv.key, "create_revision", kv.create_revision),),
                                     (("delete", kv.key),))
        return result.prev if result.ok else None

    def __len__(self) -> int:
        return self.qsize()

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"


__all__ = ["QUEUE_PREFIX", "Empty", "Queue"]
