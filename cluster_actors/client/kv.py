"""KVClient: the linearizable key-value store (etcd's API), on a
:class:`~cluster_actors.client.session.LeaderSession`.

Writes are the session's numbered commands (applied at most once, batched
with every other command of the session); reads are ReadIndex reads on the
leader, confirmed by a quorum. The client keeps no state of its own: any
number of them may share one session.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from ..core.kv import InvalidCommand, KeyValue, KVResult, check_key
from ..core.limits import check_keys
from ..core.mvcc import RangeResult, check_range, prefix_end
from ..errors import NotFound, ValidationFailed
from .session import LeaderSession
from .watch import Watch


class KVClient:
    """Linearizable key-value operations through Raft (see the module doc).

    ``put``/``cas``/``delete``/``txn`` return when the command is applied on
    the leader; ``get`` is a ReadIndex read confirmed by a quorum.
    """

    def __init__(self, session: LeaderSession) -> None:
        self.session = session

    @property
    def timeout(self) -> float:
        """The default timeout of every call, in seconds (the session's)."""
        return self.session.timeout

    # ---------------------------------------------------------------- API
    def put(self, key: str, value: Any, timeout: float | None = None,
            lease: Any = None) -> KVResult:
        """Set ``key``; returns the result with the new revision. ``lease`` (a
        :class:`~cluster_actors.recipes.lease.Lease` or its id) attaches the key to it:
        the key is deleted when the lease expires or is revoked."""
        if lease is not None:
            return self._put_leased(key, value, lease, timeout)
        return self.session.run(("put", key, value), timeout)

    def cas(self, key: str, expected: Any, new: Any, timeout: float | None = None) -> bool:
        """Set ``key`` to ``new`` only if its value is ``expected`` (None: absent)."""
        return self.session.run(("cas", key, expected, new), timeout).ok

    def delete(self, key: str, timeout: float | None = None) -> bool:
        """Delete ``key``; True if it existed."""
        return self.session.run(("delete", key), timeout).ok

    def txn(self, compares: Iterable[tuple[str, str, Any]], success: Iterable[tuple[Any, ...]],
            failure: Iterable[tuple[Any, ...]] = (), timeout: float | None = None) -> KVResult:
        """Atomic compare-then-write (etcd's Txn): ``compares`` are
        ``(key, field, value)``; ``ok`` tells which branch ran."""
        op = ("txn", tuple(compares), tuple(success), tuple(failure))
        return self.session.run(op, timeout)

    def get(self, key: str, default: Any = None, timeout: float | None = None) -> Any:
        """The value of ``key`` (linearizable), or ``default``."""
        kv = self.get_kv(key, timeout)
        return default if kv is None else kv.value

    def get_kv(self, key: str, timeout: float | None = None) -> KeyValue | None:
        """The record of ``key`` with its revisions (linearizable), or None."""
        return self.get_many([key], timeout)[0]

    def get_many(self, keys: list[str], timeout: float | None = None) -> list[KeyValue | None]:
        """The records of ``keys`` (linearizable); ValidationFailed for a bad key."""
        return self.session.call("read", check_keys(keys), timeout=timeout)

    def items(self, prefix: str = "") -> list[KeyValue]:
        """All records whose key starts with ``prefix``, in key order: one
        linearizable read (ReadIndex) on the leader."""
        check_key(prefix, "prefix")
        return self.session.call("read_prefix", prefix, timeout=None)

    def submit(self, op: tuple[Any, ...]) -> Future[Any]:
        """Queue one command; the future resolves to its KVResult (see
        :meth:`LeaderSession.submit`: a refused op resolves at once to its
        InvalidCommand and is not sent)."""
        return self.session.submit(op)

    # ------------------------------------------------- etcd-style reads and watches
    def _put_leased(self, key: str, value: Any, lease: Any, timeout: float | None) -> KVResult:
        lease_id = getattr(lease, "lease_id", lease)
        if isinstance(lease_id, bool) or not isinstance(lease_id, int):
            raise ValidationFailed([("lease", f"must be a Lease or a lease id, got {lease!r}")])
        result = self.session.run(("put_lease", key, value, lease_id), timeout)
        if not result.ok:
            raise NotFound(f"lease {lease_id} does not exist (expired or revoked): grant a "
                           f"new lease and put {key!r} again")
        return result

    def range(self, start: str, end: str | None = None, limit: int | None = None,
              revision: int | None = None, timeout: float | None = None) -> RangeResult:
        """etcd's Range, linearizable: the records of the keys in ``[start,
        end)`` in key order (``end=None``: the key ``start`` alone;
        ``prefix_end(p)`` or ``"\\0"`` as ``end`` for a prefix or no bound), at most
        ``limit`` (``more`` tells if cut short), as of ``revision`` (None: now;
        a past one within the history). Raises ``Compacted`` for a compacted
        revision, ValidationFailed for a future one or bad arguments."""
        check_range(start, end, limit, revision)
        return self.session.call("read_range", start, end, limit, revision, timeout=timeout)

    def compact(self, revision: int, timeout: float | None = None) -> int:
        """Drop the history up to ``revision`` (at most the current one):
        past reads and watches from before it raise ``Compacted``. Returns
        the compacted revision."""
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise ValidationFailed([("revision", f"must be an integer >= 0, got {revision!r}")])
        try:
            return self.session.run(("compact", revision), timeout)
        except InvalidCommand as error:  # beyond the current revision
            raise ValidationFailed([("revision", str(error))]) from None

    def watch(self, key_or_prefix: str, start_revision: int | None = None,
              prefix: bool = True, end: str | None = None, poll_timeout: float = 1.0) -> Watch:
        """Follow the changes of the keys under a prefix (``prefix=False``: the
        one key; ``end``: the range ``[key_or_prefix, end)``) as an iterator of
        :class:`~cluster_actors.client.watch.WatchEvent`, in revision order, each
        once, across leader changes. From ``start_revision`` if given (still in
        the history, else ``Compacted`` is raised), else from now. Close it
        with ``close()`` or a ``with`` block."""
        if not isinstance(key_or_prefix, str):
            raise ValidationFailed([("key_or_prefix", "must be a string")])
        if end is None and prefix:
            end = prefix_end(key_or_prefix)
        check_range(key_or_prefix, end)
        return Watch(self.session, key_or_prefix, end, start_revision, poll_timeout)


__all__ = ["KVClient"]
