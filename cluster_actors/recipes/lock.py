"""A distributed mutex with a fencing token, on the cluster's leases.

The same mechanism as :mod:`cluster_actors.recipes.election` under ``lock/<name>/``:
each contender attaches a key to its lease, the key with the lowest create
revision holds the lock, and that revision is the fencing token. The lock is
released by its holder, or by the cluster when the holder's lease expires
(death, pause, partition).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING, Any

from ..core.kv import KVResult, shown
from ..errors import ClusterError, CoordinationTimeout, ValidationFailed
from .election import Hold, LeaderInfo, _Queue
from .lease import check_ttl

if TYPE_CHECKING:
    from ..client.session import LeaderSession

LOCK_PREFIX = "lock/"


class Lock:
    """A distributed mutex with a fencing token (``cluster.lock(name)``).

    ``with cluster.lock("jobs", ttl=2.0) as lock: lock.guarded_put(...)``.
    Released by ``release()``, on leaving the ``with``, or by the cluster when
    the holder's lease expires (death, pause, partition); ``lost`` tells the
    holder. Not reentrant; one handle is one contender.
    """

    def __init__(self, session: LeaderSession, name: str, ttl: float = 2.0,
                 holder_id: str | None = None, timeout: float | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationFailed([("name", f"a lock name is a non-empty string, got "
                                             f"{shown(name)}")])
        check_ttl(session, ttl)  # ValidationFailed now rather than at acquire
        self.session = session
        self.name = name
        self.ttl = ttl
        self.holder_id = holder_id or f"lock-holder-{uuid.uuid4().hex[:8]}"
        self.timeout = timeout  #: for ``with`` (None: wait as long as it takes)
        self._queue = _Queue(session, f"{LOCK_PREFIX}{name}/")
        self.hold: Hold | None = None

    def acquire(self, blocking: bool = True, timeout: float | None = None,
                cancel: threading.Event | None = None) -> bool:
        """Take the lock; False if not taken within ``timeout`` s (or at once
        when not ``blocking``)."""
        if self.hold is not None and not self.hold.lost.is_set():
            raise ClusterError(f"lock {self.name!r} is already held by this handle "
                               f"(it is not reentrant)")
        try:
            lease, key, token = self._queue.enter_and_wait(
                self.holder_id, None, self.ttl, timeout if blocking else 0.0, cancel)
        except CoordinationTimeout:
            return False
        self.hold = Hold(self.session, key, token, lease)
        return True

    def release(self) -> bool:
        """Release the lock (revoke the lease). True if confirmed now."""
        hold, self.hold = self.hold, None
        if hold is None:
            raise ClusterError(f"lock {self.name!r} is not held by this handle")
        return hold.lease.revoke()

    def locked(self) -> bool:
        """True while this handle surely holds the lock."""
        return self.hold is not None and self.hold.is_held()

    def holder(self) -> LeaderInfo | None:
        """Who holds the lock now (linearizable read), or None."""
        return self._queue.head()

    @property
    def token(self) -> int | None:
        """The fencing token of the current hold, or None."""
        return self.hold.token if self.hold is not None else None

    @property
    def lost(self) -> threading.Event:
        return self._require_hold().lost

    def guarded_put(self, key: str, value: Any, timeout: float | None = None) -> KVResult:
        return self._require_hold().guarded_put(key, value, timeout)

    def fenced_put(self, resource: str, key: str, value: Any,
                   timeout: float | None = None) -> KVResult:
        return self._require_hold().fenced_put(resource, key, value, timeout)

    def _require_hold(self) -> Hold:
        if self.hold is None:
            raise ClusterError(f"lock {self.name!r} is not held by this handle")
        return self.hold

    def __enter__(self) -> Lock:
        if not self.acquire(timeout=self.timeout):
            raise CoordinationTimeout(f"lock {self.name!r} not acquired within "
                                      f"{self.timeout} s")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.hold is not None:
            self.release()

    async def __aenter__(self) -> Lock:
        cancel = threading.Event()
        try:
            acquired = await asyncio.to_thread(self.acquire, True, self.timeout, cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise
        if not acquired:
            raise CoordinationTimeout(f"lock {self.name!r} not acquired within "
                                      f"{self.timeout} s")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.hold is not None:
            await asyncio.to_thread(self.release)

    def __repr__(self) -> str:
        state = f"held, token {self.token}" if self.locked() else "not held"
        return f"<Lock {self.name!r} {state}>"


__all__ = ["LOCK_PREFIX", "Lock"]
