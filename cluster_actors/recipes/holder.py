"""One contender on a :class:`~.line.LeaseLine` that holds while a rule is
true: the base of the lock (rule: first in line), the read and write locks
and the semaphore.

A holder has a fencing token (its key's create revision) and the guarded and
fenced writes of :class:`~cluster_actors.recipes.election.Hold`. It is released by
``release()``, on leaving the ``with``, or by the cluster when its lease
expires (death, pause, partition); ``lost`` tells the holder.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.kv import KVResult
from ..errors import ClusterError, CoordinationTimeout
from .checks import check_name, check_timeout, check_ttl
from .election import Hold
from .line import LeaderInfo, LeaseLine, Ready, is_first

if TYPE_CHECKING:
    from ..client.session import LeaderSession


class LineHolder:
    """A lock-like contender (see the module doc). Not reentrant; one handle
    is one contender. Subclasses set ``kind``, the ``ready`` rule and the
    ``extra`` fields of their record."""

    kind: ClassVar[str] = "lock"

    def __init__(self, session: LeaderSession, line: LeaseLine, name: str, ttl: float = 2.0,
                 holder_id: str | None = None, timeout: float | None = None,
                 ready: Ready = is_first, extra: dict[str, Any] | None = None) -> None:
        self.session = session
        self.name = check_name("name", name)
        self.ttl = check_ttl(ttl)
        self.timeout = check_timeout(timeout)  #: for ``with`` (None: as long as it takes)
        self.holder_id = holder_id or f"{self.kind}-{uuid.uuid4().hex[:8]}"
        self.line = line
        self._ready = ready
        self._extra = dict(extra or {})
        self.hold: Hold | None = None

    def acquire(self, blocking: bool = True, timeout: float | None = None,
                cancel: threading.Event | None = None) -> bool:
        """Take it; False if not taken within ``timeout`` s (or at once when
        not ``blocking``)."""
        timeout = check_timeout(timeout)
        if self.hold is not None and not self.hold.lost.is_set():
            raise ClusterError(f"{self.kind} {self.name!r} is already held by this handle "
                               f"(it is not reentrant): release it first")
        try:
            lease, key, token = self.line.enter_and_wait(
                self.holder_id, None, self.ttl, timeout if blocking else 0.0, cancel,
                ready=self._ready, extra=self._extra)
        except CoordinationTimeout:
            return False
        self.hold = Hold(self.session, key, token, lease)
        return True

    def release(self) -> bool:
        """Release it (revoke the lease). True if confirmed now."""
        hold, self.hold = self.hold, None
        if hold is None:
            raise ClusterError(f"{self.kind} {self.name!r} is not held by this handle: "
                               f"acquire it first")
        return hold.lease.revoke()

    def held(self) -> bool:
        """True while this handle surely holds it (a local check, no call)."""
        return self.hold is not None and self.hold.is_held()

    def contenders(self) -> list[LeaderInfo]:
        """Everyone in line, holders first (linearizable read)."""
        return self.line.line()

    @property
    def token(self) -> int | None:
        """The fencing token of the current hold, or None."""
        return self.hold.token if self.hold is not None else None

    @property
    def lost(self) -> threading.Event:
        """Set once the hold ended (released, or the lease lost)."""
        return self._require_hold().lost

    def guarded_put(self, key: str, value: Any, timeout: float | None = None) -> KVResult:
        """Write ``key`` only while this hold stands (else StaleToken)."""
        return self._require_hold().guarded_put(key, value, timeout)

    def fenced_put(self, resource: str, key: str, value: Any,
                   timeout: float | None = None) -> KVResult:
        """Write ``key`` only if no newer token was used on ``resource``."""
        return self._require_hold().fenced_put(resource, key, value, timeout)

    def _require_hold(self) -> Hold:
        if self.hold is None:
            raise ClusterError(f"{self.kind} {self.name!r} is not held by this handle: "
                               f"acquire it first")
        return self.hold

    def _not_acquired(self) -> CoordinationTimeout:
        return CoordinationTimeout(f"{self.kind} {self.name!r} not acquired within "
                                   f"{self.timeout} s: its holders have not released it; "
                                   f"wait longer (timeout=) or find who holds it")

    def __enter__(self) -> Any:
        if not self.acquire(timeout=self.timeout):
            raise self._not_acquired()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.hold is not None:
            self.release()

    async def __aenter__(self) -> Any:
        cancel = threading.Event()
        try:
            acquired = await asyncio.to_thread(self.acquire, True, self.timeout, cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise
        if not acquired:
            raise self._not_acquired()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.hold is not None:
            await asyncio.to_thread(self.release)

    def __repr__(self) -> str:
        state = f"held, token {self.token}" if self.held() else "not held"
        return f"<{type(self).__name__} {self.name!r} {state}>"


__all__ = ["LineHolder"]
