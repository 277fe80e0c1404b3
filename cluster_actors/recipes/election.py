"""Leader election and locks with fencing tokens, on the cluster's leases
(etcd's election recipe).

A candidate takes a lease, attaches one key ``election/<name>/<lease id>`` to
it, and leads once its key has the lowest ``create_revision`` under the
prefix. Its fencing token is that ``create_revision``.

Why the token strictly increases with each new leader: revisions only grow,
and a key's ``create_revision`` is the revision at which it was created and
which it keeps until deleted. Say key A led (it was the lowest at a
linearizable read) and key B leads after it. If B's create revision were
below A's, B was created before A and was never deleted (it still exists,
leading), so B existed, lower than A, when A was read as the lowest: a
contradiction. Hence token(B) > token(A).

A leader's lease is kept alive in the background (:class:`~.lease.Lease`).
Losing it (partition, pause, death of the process) ends the leadership: its
key is deleted by the cluster, the next key in line leads, and the holder is
told (``lost`` is set and ``on_lost`` runs). A holder cannot know it was
paused between deciding to write and writing, so writes that must not come
from a former leader carry the token:

* :meth:`Hold.guarded_put` (the default to use): a ``txn`` that writes only if
  the holder's key still exists with ``create_revision == token``. Rejected as
  soon as the lease is gone, even before any successor wrote.
* :meth:`Hold.fenced_put` ("cas on the token"): ``fence/<resource>`` keeps the
  highest token used on a resource; a write applies only if its token is at
  least that. Rejected once a newer holder used the resource; this is the
  scheme to use when the guarded store only sees tokens.

Both raise :class:`StaleToken` when rejected. :class:`~.lock.Lock` is the
same mechanism under ``lock/<name>/``, as a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..core.kv import KVResult, shown
from ..errors import ClusterError, ValidationFailed
from .lease import Lease
from .line import POLL_S, Cancelled, LeaderInfo, LeaseLine, first_of, info_of

if TYPE_CHECKING:
    from ..client.session import LeaderSession

ELECTION_PREFIX = "election/"
FENCE_PREFIX = "fence/"

# the line of contenders moved to recipes/line.py; these names stay importable
_Queue = LeaseLine
_info = info_of
_first = first_of


class StaleToken(ClusterError):
    """A write carried a fencing token that is no longer current: the holder
    lost its leadership or lock. ``newer`` is the token that superseded it,
    when known. Do not retry: campaign (or acquire) again."""

    code = "stale_token"

    def __init__(self, token: int, newer: int | None = None, message: str | None = None) -> None:
        self.token = token
        self.newer = newer
        if message is None:
            message = (f"fencing token {token} is stale: leadership was lost (lease expired "
                       f"or revoked)" + (f"; token {newer} superseded it" if newer else "")
                       + "; campaign again before writing")
        super().__init__(message)


class Hold:
    """Holding a leadership or a lock: the key, its fencing ``token`` and the
    lease behind it. ``lost`` is the lease's event."""

    def __init__(self, session: LeaderSession, key: str, token: int, lease: Lease) -> None:
        self.session = session
        self.key = key
        self.token = token
        self.lease = lease

    @property
    def lost(self) -> threading.Event:
        """Set once the hold ended: lease lost, expired, revoked (resigned)."""
        return self.lease.lost

    @property
    def lost_reason(self) -> str | None:
        return self.lease.lost_reason

    def is_held(self) -> bool:
        """True while the lease surely holds (a local check, no call)."""
        return self.lease.is_alive()

    # ------------------------------------------------------------ fenced writes
    def guarded_put(self, key: str, value: Any, timeout: float | None = None) -> KVResult:
        """Write ``key`` only if our key still exists with our token; else
        raise StaleToken (see the module doc)."""
        return self.guarded([("put", key, value)], timeout)

    def guarded_delete(self, key: str, timeout: float | None = None) -> KVResult:
        return self.guarded([("delete", key)], timeout)

    def guarded(self, ops: Sequence[tuple[Any, ...]], timeout: float | None = None
                ) -> KVResult:
        """Apply put/delete ops atomically, only while our key holds our token."""
        op = ("txn", ((self.key, "create_revision", self.token),), tuple(ops), ())
        result = self.session.run(op, timeout)
        if not result.ok:
            raise StaleToken(self.token)
        return result

    def fenced_put(self, resource: str, key: str, value: Any, timeout: float | None = None
                   ) -> KVResult:
        """Write ``key`` only if our token is at least the highest token used
        on ``resource`` (stored at ``fence/<resource>``), raising that to our
        token; else raise StaleToken naming the newer token."""
        return self.fenced(resource, [("put", key, value)], timeout)

    def fenced(self, resource: str, ops: Sequence[tuple[Any, ...]],
               timeout: float | None = None) -> KVResult:
        result = self.session.run(("fence", FENCE_PREFIX + resource, self.token,
                                       tuple(ops)), timeout)
        if not result.ok:
            newer = result.prev.value if result.prev is not None else None
            raise StaleToken(self.token, newer if isinstance(newer, int) else None)
        return result


class Leadership(Hold):
    """Leading an election: ``token``, ``candidate_id``, ``value``, ``lost``."""

    def __init__(self, election: LeaderElection, candidate_id: str, value: Any, key: str,
                 token: int, lease: Lease) -> None:
        super().__init__(election.session, key, token, lease)
        self.election = election.name
        self.candidate_id = candidate_id
        self.value = value

    def proclaim(self, value: Any, timeout: float | None = None) -> None:
        """Announce a new value without an election; StaleToken if we no longer lead."""
        record = {"candidate": self.candidate_id, "value": value}
        op = ("guarded", ((self.key, "create_revision", self.token),),
              (("put_lease", self.key, record, self.lease.lease_id),))
        if not self.session.run(op, timeout).ok:
            raise StaleToken(self.token)
        self.value = value

    def resign(self, timeout: float | None = None) -> bool:
        """Give up leadership: the lease is revoked, the key deleted, the next
        contender leads. True if confirmed now (else it expires within the TTL)."""
        return self.lease.revoke(timeout)

    def __repr__(self) -> str:
        state = "leading" if self.is_held() else f"lost ({self.lost_reason})"
        return (f"<Leadership {self.election!r} candidate={self.candidate_id!r} "
                f"token={self.token} {state}>")


class LeaderElection:
    """One named election (``cluster.election(name)``), modelled on etcd's:
    ``campaign``, ``proclaim``, ``leader``, ``observe``, ``resign``. Every
    blocking call has an ``a``-prefixed awaitable twin."""

    def __init__(self, session: LeaderSession, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationFailed([("name", f"an election name is a non-empty string, got "
                                             f"{shown(name)}")])
        self.session = session
        self.name = name
        self._queue = LeaseLine(session, f"{ELECTION_PREFIX}{name}/")
        self.leadership: Leadership | None = None  #: from this handle's last campaign

    def campaign(self, candidate_id: str, value: Any = None, ttl: float = 2.0,
                 timeout: float | None = None,
                 on_lost: Callable[[Leadership], Any] | None = None,
                 cancel: threading.Event | None = None) -> Leadership:
        """Block until ``candidate_id`` leads; its :class:`Leadership`. The
        lease (``ttl`` s) is kept alive in the background; ``on_lost`` runs
        (in that background thread) if it is lost. Raises CoordinationTimeout
        after ``timeout`` s, Cancelled once ``cancel`` is set."""
        lease, key, token = self._queue.enter_and_wait(candidate_id, value, ttl, timeout,
                                                       cancel)
        leadership = Leadership(self, candidate_id, value, key, token, lease)
        if cancel is not None and cancel.is_set():
            leadership.resign()
            raise Cancelled("cancelled while waiting for leadership")
        if on_lost is not None:
            lease.notify_loss(lambda _lease: on_lost(leadership))
        self.leadership = leadership
        return leadership

    @contextlib.contextmanager
    def leading(self, candidate_id: str, value: Any = None, ttl: float = 2.0,
                timeout: float | None = None) -> Iterator[Leadership]:
        """``with election.leading("me") as leadership:`` campaign, then resign
        on exit (for Ray tasks and scripts)."""
        leadership = self.campaign(candidate_id, value, ttl, timeout)
        try:
            yield leadership
        finally:
            leadership.resign()

    def leader(self) -> LeaderInfo | None:
        """The current leader (linearizable read), or None."""
        return self._queue.head()

    def candidates(self) -> list[LeaderInfo]:
        """The leader and the waiting candidates, in the order they will lead."""
        return self._queue.line()

    def proclaim(self, value: Any) -> None:
        """Proclaim through this handle's leadership (see Leadership.proclaim)."""
        self._require_leadership().proclaim(value)

    def resign(self) -> bool:
        """Resign this handle's leadership (see Leadership.resign)."""
        return self._require_leadership().resign()

    def observe(self, poll: float = POLL_S) -> Observation:
        """Leadership changes: an iterator (and async iterator) that yields the
        current :class:`LeaderInfo` (None: nobody leads) first, then each
        change of leader or proclaimed value."""
        return Observation(self._queue, poll)

    def async_observe(self, poll: float = POLL_S) -> Observation:
        """The same Observation, for ``async for``."""
        return Observation(self._queue, poll)

    def _require_leadership(self) -> Leadership:
        if self.leadership is None:
            raise ClusterError(f"this handle has not won election {self.name!r}: campaign first")
        return self.leadership

    # ------------------------------------------------------------- async twins
    async def acampaign(self, candidate_id: str, value: Any = None, ttl: float = 2.0,
                        timeout: float | None = None,
                        on_lost: Callable[[Leadership], Any] | None = None) -> Leadership:
        """Await leadership. Cancelling the awaiting task cancels the campaign."""
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self.campaign, candidate_id, value, ttl, timeout,
                                           on_lost, cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise

    async def aleader(self) -> LeaderInfo | None:
        return await asyncio.to_thread(self.leader)

    async def aproclaim(self, value: Any) -> None:
        await asyncio.to_thread(self.proclaim, value)

    async def aresign(self) -> bool:
        return await asyncio.to_thread(self.resign)

    def __repr__(self) -> str:
        return f"<LeaderElection {self.name!r} of {self.session.name!r}>"


_UNSEEN = object()


class Observation:
    """Iterator over leadership changes (sync: ``for``; async: ``async for``).
    ``close()`` ends it within one poll."""

    def __init__(self, queue: LeaseLine, poll: float = POLL_S) -> None:
        self._queue = queue
        self._poll = poll
        self._known: list[tuple[str, int]] | None = None
        self._last: object = _UNSEEN
        self._closed = threading.Event()

    def __iter__(self) -> Observation:
        return self

    def __next__(self) -> LeaderInfo | None:
        while not self._closed.is_set():
            try:
                items = self._queue.items(self._known,
                                          0.0 if self._known is None else self._poll)
            except ClusterError:
                self._closed.wait(0.05)  # no leader for a moment: try again
                continue
            self._known = [(item[0], item[3]) for item in items]
            first = first_of(items)
            ident = None if first is None else (first[0], first[3])
            if ident != self._last:
                self._last = ident
                return None if first is None else info_of(first)
        raise StopIteration

    def __aiter__(self) -> Observation:
        return self

    async def __anext__(self) -> LeaderInfo | None:
        done = object()
        change = await asyncio.to_thread(next, self, done)
        if change is done:
            raise StopAsyncIteration
        return change  # type: ignore[return-value]

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> Observation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



__all__ = ["ELECTION_PREFIX", "FENCE_PREFIX", "Cancelled", "Hold", "LeaderElection",
           "LeaderInfo", "Leadership", "Observation", "StaleToken"]
