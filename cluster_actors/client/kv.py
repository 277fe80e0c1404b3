"""KVClient: part of the package :mod:`cluster_actors.client`."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from ..core.cluster_state import ClusterStateMachine
from ..core.kv import Command, InvalidCommand, KeyValue, KVResult, check_key, shown
from ..core.limits import DEFAULT_MAX_VALUE_BYTES, check_keys, check_op
from ..core.mvcc import RangeResult, check_range, prefix_end
from ..core.raft import ProposalDropped
from ..errors import (
    ClusterError,
    CoordinationTimeout,
    NoQuorum,
    NotFound,
    NotLeader,
    ValidationFailed,
)
from .components import DEFAULT_TIMEOUT, logger, unwrap
from .watch import Watch

if TYPE_CHECKING:
    from ..cluster import Cluster


class KVClient:
    """Linearizable key-value operations through Raft (see the module doc).

    ``put``/``cas``/``delete``/``txn`` return when the command is applied on
    the leader; ``get`` is a ReadIndex read confirmed by a quorum.
    """

    def __init__(self, cluster: Cluster, max_in_flight: int = 8, max_batch: int = 2048,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._cluster = cluster
        self.client_id = f"kv-{uuid.uuid4().hex[:12]}"
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._seq = itertools.count(1)
        self._lock = threading.Condition()
        self._queue: list[tuple[Command, Future[Any], float]] = []
        self._outstanding: set[int] = set()
        self._outstanding_heap: list[int] = []
        self._in_flight: dict[Any, tuple[str, list[tuple[Command, Future[Any], float]]]] = {}
        self._leader: str | None = None
        self._sender: threading.Thread | None = None
        self._closed = False

    # ---------------------------------------------------------------- API
    def put(self, key: str, value: Any, timeout: float | None = None,
            lease: Any = None) -> KVResult:
        """Set ``key``; returns the result with the new revision. ``lease`` (a
        :class:`~cluster_actors.recipes.lease.Lease` or its id) attaches the key to it:
        the key is deleted when the lease expires or is revoked."""
        if lease is not None:
            return self._put_leased(key, value, lease, timeout)
        return self._wait(self.submit(("put", key, value)), timeout)

    def cas(self, key: str, expected: Any, new: Any, timeout: float | None = None) -> bool:
        """Set ``key`` to ``new`` only if its value is ``expected`` (None: absent)."""
        return self._wait(self.submit(("cas", key, expected, new)), timeout).ok

    def delete(self, key: str, timeout: float | None = None) -> bool:
        """Delete ``key``; True if it existed."""
        return self._wait(self.submit(("delete", key)), timeout).ok

    def txn(self, compares: Iterable[tuple[str, str, Any]], success: Iterable[tuple[Any, ...]],
            failure: Iterable[tuple[Any, ...]] = (), timeout: float | None = None) -> KVResult:
        """Atomic compare-then-write (etcd's Txn): ``compares`` are
        ``(key, field, value)``; ``ok`` tells which branch ran."""
        op = ("txn", tuple(compares), tuple(success), tuple(failure))
        return self._wait(self.submit(op), timeout)

    def get(self, key: str, default: Any = None, timeout: float | None = None) -> Any:
        """The value of ``key`` (linearizable), or ``default``."""
        kv = self.get_kv(key, timeout)
        return default if kv is None else kv.value

    def get_kv(self, key: str, timeout: float | None = None) -> KeyValue | None:
        """The record of ``key`` with its revisions (linearizable), or None."""
        return self.get_many([key], timeout)[0]

    def get_many(self, keys: list[str], timeout: float | None = None) -> list[KeyValue | None]:
        """The records of ``keys`` (linearizable); ValidationFailed for a bad key."""
        return self._leader_call("read", check_keys(keys), timeout=timeout)

    def items(self, prefix: str = "") -> list[KeyValue]:
        """All records whose key starts with ``prefix``, in key order: one
        linearizable read (ReadIndex) on the leader."""
        check_key(prefix, "prefix")
        return self._leader_call("read_prefix", prefix, timeout=None)

    def submit(self, op: tuple[Any, ...]) -> Future[Any]:
        """Queue one command; the future resolves to its KVResult. Commands
        queued together travel in one Ray call. An op refused by
        :meth:`check` resolves at once to its InvalidCommand (a
        ValidationFailed) and is not sent."""
        future: Future[Any] = Future()
        try:
            self.check(op)
        except InvalidCommand as error:
            future.set_result(error)
            return future
        with self._lock:
            if self._closed:
                raise ClusterError("the kv client is closed")
            seq = next(self._seq)
            self._outstanding.add(seq)
            heapq.heappush(self._outstanding_heap, seq)
            command = Command(self.client_id, seq, op, self._ack_below())
            self._queue.append((command, future, time.monotonic() + self.timeout))
            self._ensure_sender()
            self._lock.notify()
        return future

    def check(self, op: Any) -> None:
        """Raise InvalidCommand unless the cluster would accept ``op`` (the
        checks the leader repeats: see :mod:`~cluster_actors.core.limits`)."""
        options = getattr(self._cluster, "options", None)
        check_op(op, extra_ops=ClusterStateMachine.EXTRA_OPS,
                 max_value_bytes=getattr(options, "max_value_bytes", DEFAULT_MAX_VALUE_BYTES),
                 min_lease_ttl_ms=getattr(options, "election_timeout", 1))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()

    # ------------------------------------------------------------ helpers
    def _ack_below(self) -> int:
        """The lowest sequence number still awaiting its result (call with the lock)."""
        heap = self._outstanding_heap
        while heap and heap[0] not in self._outstanding:
            heapq.heappop(heap)
        return heap[0] if heap else next(self._seq)

    def _wait(self, future: Future[Any], timeout: float | None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        try:
            result = future.result(timeout + 1.0)
        except TimeoutError:
            raise CoordinationTimeout(f"command not acknowledged within {timeout} s; its "
                                      f"outcome is unknown") from None
        if isinstance(result, Exception):
            raise result
        return result

    def _leader_call(self, method: str, *args: Any, timeout: float | None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            leader = self._leader or self._cluster.find_leader(timeout=deadline - time.monotonic())
            if leader is None:
                break
            try:
                handle = self._cluster._consensus_handle(leader)
                return ray.get(getattr(handle, method).remote(*args),
                               timeout=max(0.1, deadline - time.monotonic()))
            except ray.exceptions.RayTaskError as error:  # first: it may also be a ValueError
                cause = unwrap(error)
                if isinstance(cause, NotLeader):
                    self._leader = cause.leader_id
                    last_error = cause
                    if cause.leader_id is None:
                        time.sleep(0.02)
                    continue
                raise cause from None
            except (RayActorError, GetTimeoutError, ValueError) as error:
                last_error = error
                self._leader = None
                self._cluster._forget_handle(leader)
            else:
                self._leader = leader
        if isinstance(last_error, NotLeader) or last_error is None:
            raise NoQuorum(f"no leader answered within {timeout} s: the cluster may have lost "
                           f"its quorum; restore nodes or heal the partition") from None
        raise CoordinationTimeout(f"{method} did not complete within {timeout} s "
                                  f"({last_error})") from None

    def _ensure_sender(self) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._send_loop, daemon=True,
                                            name=f"{self.client_id}-sender")
            self._sender.start()

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._in_flight and not self._queue:
                    self._lock.wait(1.0)
                if self._closed and not self._queue and not self._in_flight:
                    return
                batch: list[tuple[Command, Future[Any], float]] = []
                if len(self._in_flight) < self.max_in_flight and self._queue:
                    batch = self._queue[:self.max_batch]
                    del self._queue[:len(batch)]
            try:
                if batch:
                    self._dispatch(batch)
                    batch = []
                if self._in_flight:
                    ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=0.05)
                    for ref in ready:
                        self._complete(ref)
                self._expire()
            except Exception as error:  # a bug or Ray shutting down: never kill the sender
                logger.exception("kv client sender: %s", error)
                for command, future, _ in batch:
                    self._finish(command, future, ClusterError(
                        f"command {command.op[0]} failed in the kv client: "
                        f"{type(error).__name__}: {error}"))
                time.sleep(0.01)

    def _dispatch(self, batch: list[tuple[Command, Future[Any], float]]) -> None:
        leader = self._leader
        if leader is None:
            leader = self._cluster.find_leader(timeout=0.5)
        if leader is None:
            self._requeue(batch, delay=0.02)
            return
        self._leader = leader
        try:
            handle = self._cluster._consensus_handle(leader)
        except ValueError:  # its actor is being restarted: ask again shortly
            self._leader = None
            self._requeue(batch, delay=0.01)
            return
        try:
            ref = handle.submit.remote([c for c, _, _ in batch], self.timeout)
        except Exception as error:  # Ray cannot serialize a value (the local check passed)
            self._fail_batch(batch, error)
            return
        self._in_flight[ref] = (leader, batch)

    def _fail_batch(self, batch: list[tuple[Command, Future[Any], float]],
                    error: BaseException) -> None:
        """A batch failed as a whole: send each of its commands on its own, so
        that only the culprit fails (a retry of the same seq applies at most
        once); a single command fails with ``error`` (a ClusterError as is,
        anything else named by :func:`_refused`)."""
        if len(batch) > 1:
            for item in batch:
                self._dispatch([item])
            return
        [(command, future, _)] = batch
        self._finish(command, future, error if isinstance(error, ClusterError)
                     else _refused(command, error))

    def _complete(self, ref: Any) -> None:
        leader, batch = self._in_flight.pop(ref)
        try:
            results = ray.get(ref)
        except RayActorError:
            self._leader = None
            self._cluster._forget_handle(leader)
            self._requeue(batch, delay=0.0)
            return
        except ray.exceptions.RayTaskError as error:
            cause = unwrap(error)
            if isinstance(cause, NotLeader):
                self._leader = cause.leader_id
                self._requeue(batch, delay=0.0 if cause.leader_id else 0.02)
                return
            if isinstance(cause, (CoordinationTimeout, ProposalDropped)):
                self._leader = None
                self._requeue(batch, delay=0.01)
                return
            self._fail_batch(batch, cause)
            return
        except Exception as error:  # the reply cannot be read (Ray could not deserialize it)
            self._fail_batch(batch, error)
            return
        if not isinstance(results, list) or len(results) != len(batch):
            for command, future, _ in batch:
                self._finish(command, future, ClusterError(
                    f"the leader answered {shown(results)} to a batch of {len(batch)} "
                    "commands; their outcome is unknown"))
            return
        for (command, future, _), result in zip(batch, results, strict=True):
            self._finish(command, future, result)

    def _finish(self, command: Command, future: Future[Any], result: Any) -> None:
        """Resolve a command: it no longer holds back ``ack_below``."""
        with self._lock:
            self._outstanding.discard(command.seq)
        self._resolve(future, result)

    def _requeue(self, batch: list[tuple[Command, Future[Any], float]], delay: float) -> None:
        if delay:
            time.sleep(delay)
        with self._lock:
            ack = self._ack_below()
            self._queue[:0] = [(Command(c.client_id, c.seq, c.op, min(ack, c.seq)), f, d)
                               for c, f, d in batch]

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [item for item in self._queue if item[2] < now]
            if expired:
                self._queue = [item for item in self._queue if item[2] >= now]
                for command, _, _ in expired:
                    self._outstanding.discard(command.seq)
        for command, future, _ in expired:
            self._resolve(future, CoordinationTimeout(
                f"command {command.op[0]} on {command.op[1]!r} was not acknowledged within "
                f"{self.timeout} s; its outcome is unknown"))

    @staticmethod
    def _resolve(future: Future[Any], result: Any) -> None:
        if not future.done():
            future.set_result(result)

    # ------------------------------------------------- etcd-style reads and watches
    def _put_leased(self, key: str, value: Any, lease: Any, timeout: float | None) -> KVResult:
        lease_id = getattr(lease, "lease_id", lease)
        if isinstance(lease_id, bool) or not isinstance(lease_id, int):
            raise ValidationFailed([("lease", f"must be a Lease or a lease id, got {lease!r}")])
        result = self._wait(self.submit(("put_lease", key, value, lease_id)), timeout)
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
        return self._leader_call("read_range", start, end, limit, revision, timeout=timeout)

    def compact(self, revision: int, timeout: float | None = None) -> int:
        """Drop the history up to ``revision`` (at most the current one):
        past reads and watches from before it raise ``Compacted``. Returns
        the compacted revision."""
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise ValidationFailed([("revision", f"must be an integer >= 0, got {revision!r}")])
        try:
            return self._wait(self.submit(("compact", revision)), timeout)
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
        return Watch(self, key_or_prefix, end, start_revision, poll_timeout)


def _refused(command: Command, error: BaseException) -> ClusterError:
    """A command Ray could not carry, as a ClusterError naming the real error."""
    refused = ClusterError(
        f"command {command.op[0]} on {shown(command.op[1]) if len(command.op) > 1 else ''} "
        f"could not be sent or answered: {type(error).__name__}: {error}; use plain data as "
        "values")
    refused.__cause__ = error
    return refused
