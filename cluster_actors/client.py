"""Blocking clients for a running cluster: a generic proxy to any component
actor, and the linearizable key-value client.

:class:`ComponentClient` turns every remote method of a component actor into
a blocking call (``client.get_status()``), re-resolving the actor by name if
it was restarted by its supervisor.

:class:`KVClient` writes through Raft with a client session: each command
carries ``(client_id, seq)``, so a command retried after a timeout or a
leader change is applied at most once. Concurrent callers are coalesced: a
sender thread ships every command queued while the previous batch was in
flight as one Ray call, with up to ``max_in_flight`` batches pipelined.
Writes go to the leader; a follower answers ``NotLeader`` with the leader's id
and the client redirects (writes are not forwarded between nodes).

Errors are per command: an op that is malformed, a value the log's plain
pickle refuses or larger than ``max_value_bytes`` is refused locally, before
it is queued (its future holds the ValidationFailed; nothing is sent). Should
a batch still fail as a whole (Ray cannot serialize one of its values, say),
its commands are sent again one by one, so only the culprit fails; the
sender thread survives any error, and every resolved command stops holding
back the acknowledged-results floor (``ack_below``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayActorError

from .core.cluster_state import ClusterStateMachine
from .core.kv import Command, InvalidCommand, KeyValue, KVResult, check_key, shown
from .core.limits import DEFAULT_MAX_VALUE_BYTES, check_keys, check_op
from .core.mvcc import RangeResult, check_range, prefix_end
from .core.raft import ProposalDropped
from .errors import (
    ClusterError,
    CoordinationTimeout,
    NoQuorum,
    NotFound,
    NotLeader,
    ValidationFailed,
)
from .kv_watch import Watch
from .runtime.hosting import find_component
from .runtime.naming import actor_name

if TYPE_CHECKING:
    from .cluster import Cluster

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0

Event = dict[str, Any]


_SUBSCRIPTIONS: dict[tuple[Any, ...], Subscription] = {}
_SUBSCRIPTIONS_LOCK = threading.Lock()


def _identity(subscriber: Any) -> Any:
    """A callable as a dict key: itself (so ``events.append`` made twice is one
    subscriber, as bound methods compare equal), or its id if unhashable."""
    try:
        hash(subscriber)
    except TypeError:
        return id(subscriber)
    return subscriber


def unwrap(error: BaseException) -> BaseException:
    """The ClusterError inside a Ray task error, if any."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    as_instance = getattr(error, "as_instanceof_cause", None)
    if callable(as_instance):
        try:
            converted = as_instance()
        except Exception:
            return error
        if isinstance(converted, ClusterError):
            return converted
    return error


class ComponentClient:
    """Blocking calls on one node's component actor, e.g.
    ``cluster.node("n1").consensus.get_status()``."""

    def __init__(self, cluster: str, node_id: str, component: str,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._cluster = cluster
        self._node_id = node_id
        self._component = component
        self._timeout = timeout
        self._handle: Any = None

    @property
    def handle(self) -> Any:
        if self._handle is None:
            self._handle = self._resolve(self._timeout)
        return self._handle

    def _resolve(self, timeout: float) -> Any:
        name = actor_name(self._cluster, self._node_id, self._component)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return find_component(self._cluster, self._node_id, self._component)
            except ValueError:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"no actor {name!r}: is the cluster {self._cluster!r} running and does "
                        f"node {self._node_id!r} have a {self._component} component?") from None
                time.sleep(0.05)

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` and wait for its result; retried once on a fresh
        handle if the actor died and was restarted meanwhile."""
        timeout = self._timeout if timeout is None else timeout
        for attempt in range(2):
            handle = self.handle
            try:
                return ray.get(getattr(handle, method).remote(*args, **kwargs), timeout=timeout)
            except GetTimeoutError:
                raise CoordinationTimeout(
                    f"{self._component}.{method} on {self._node_id} did not answer within "
                    f"{timeout} s") from None
            except RayActorError:
                self._handle = None
                if attempt:
                    raise
            except ray.exceptions.RayTaskError as error:
                raise unwrap(error) from None
        raise AssertionError("unreachable")

    def subscribe(self, subscriber: Callable[[Event], Any] | Any,
                  types: Collection[str] | None = None) -> Subscription | None:
        """Deliver this component's events (of ``types``, default all).

        A Python callable: from a daemon thread, in order, each once; returns
        the :class:`Subscription`. A Ray actor handle: the component pushes
        each event to its ``on_event`` (returns None). Anything else raises
        TypeError."""
        return self._subscribe("subscribe", subscriber, types)

    def unsubscribe(self, subscriber: Callable[[Event], Any] | Any) -> bool:
        """Stop a subscription made with :meth:`subscribe`; False if there was none."""
        return self._unsubscribe("unsubscribe", subscriber)

    def _subscribe(self, method: str, subscriber: Any, types: Collection[str] | None,
                   accept: Callable[[Event], bool] | None = None) -> Subscription | None:
        if isinstance(types, str):
            types = [types]  # one event type, not its letters
        if isinstance(subscriber, ActorHandle):
            self.call(method, subscriber, *([sorted(types)] if types else []))
            return None
        if not callable(subscriber):
            raise TypeError(f"{method} takes a callable or a Ray actor handle, "
                            f"not {type(subscriber).__name__}")
        if types:
            wanted = frozenset(types)
            accept = (lambda event: event["type"] in wanted) if accept is None else accept
        key = self._subscription_key(method, subscriber)
        with _SUBSCRIPTIONS_LOCK:
            existing = _SUBSCRIPTIONS.get(key)
            if existing is not None and existing.active:
                return existing  # one thread per callable: no event delivered twice
            subscription = _SUBSCRIPTIONS[key] = Subscription(self, subscriber, accept)
        return subscription

    def _unsubscribe(self, method: str, subscriber: Any) -> bool:
        if isinstance(subscriber, ActorHandle):
            return bool(self.call(method, subscriber))
        with _SUBSCRIPTIONS_LOCK:
            subscription = _SUBSCRIPTIONS.pop(
                self._subscription_key(method.removeprefix("un"), subscriber), None)
        if subscription is None:
            return False
        subscription.cancel()
        return True

    def _subscription_key(self, method: str, subscriber: Any) -> tuple[Any, ...]:
        """Subscriptions are per process, so any client of the same component
        (``cluster.node(n)`` makes new ones) finds and cancels them."""
        return (self._cluster, self._node_id, self._component, method, _identity(subscriber))

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def remote_call(*args: Any, **kwargs: Any) -> Any:
            return self.call(method, *args, **kwargs)

        remote_call.__name__ = method
        return remote_call

    def __repr__(self) -> str:
        return f"<{self._component} client of {self._cluster}:{self._node_id}>"


class Subscription:
    """A local callback fed by a daemon thread that long-polls a component's
    ``wait_events`` (made by :meth:`ComponentClient.subscribe` and the
    component-specific ``subscribe_*`` calls).

    Events (those ``accept`` takes, default all) are delivered in order, each
    once, starting with the first event after the subscription was made. If the
    component restarts, delivery continues with the new instance's events. An
    exception in the callback is logged and does not stop delivery.
    :meth:`cancel` stops the thread.
    """

    def __init__(self, client: ComponentClient, callback: Callable[[Event], Any],
                 accept: Callable[[Event], bool] | None = None,
                 poll_timeout: float = 1.0) -> None:
        self._client = client
        self._callback = callback
        self._accept = accept
        self._poll_timeout = poll_timeout
        self._stop = threading.Event()
        self.since = client.call("latest_event_seq")
        self.delivered = 0
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name=f"events-{client._node_id}-{client._component}")
        self._thread.start()

    def _run(self) -> None:
        actor_id = self._client.handle._actor_id.hex()
        while not self._stop.is_set():
            try:
                events = self._client.call("wait_events", self.since, self._poll_timeout,
                                           timeout=self._poll_timeout + 10.0)
            except Exception as error:  # restarting, died twice in a row, Ray shutting down
                logger.debug("event subscription: %s", error)
                self._stop.wait(0.2)
                continue
            current = self._client.handle._actor_id.hex()
            if current != actor_id:  # a restarted actor numbers from 1 again
                actor_id, self.since = current, 0
                continue
            for event in events:
                if self._stop.is_set():
                    return
                self.since = event["seq"]
                if self._accept is not None and not self._accept(event):
                    continue
                try:
                    self._callback(event)
                except Exception:
                    logger.exception("event callback failed on %s", event.get("type"))
                self.delivered += 1

    def cancel(self, timeout: float | None = None) -> None:
        """Stop delivering (waits up to ``timeout`` s for the thread to end)."""
        self._stop.set()
        self._thread.join(timeout if timeout is not None else self._poll_timeout + 11.0)

    @property
    def active(self) -> bool:
        return self._thread.is_alive()


class MonitorClient(ComponentClient):
    """The monitor's client: :meth:`subscribe_alerts` also takes a local callable."""

    def subscribe_alerts(self, subscriber: Callable[[Event], Any] | Any
                         ) -> Subscription | None:
        """Deliver each alert transition: to a callable as its ``alert_<kind>``
        event (returns the :class:`Subscription`), or pushed to a Ray actor
        handle's ``on_alert(alert)``."""
        return self._subscribe("subscribe_alerts", subscriber, None,
                               lambda event: event["type"].startswith("alert_"))

    def unsubscribe_alerts(self, subscriber: Callable[[Event], Any] | Any) -> bool:
        return self._unsubscribe("unsubscribe_alerts", subscriber)


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
        :class:`~cluster_actors.lease.Lease` or its id) attaches the key to it:
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
            if len(batch) > 1:
                self._isolate(batch)
                return
            [(command, future, _)] = batch
            self._finish(command, future, _refused(command, error))
            return
        self._in_flight[ref] = (leader, batch)

    def _isolate(self, batch: list[tuple[Command, Future[Any], float]]) -> None:
        """Send each command of a batch that failed as a whole on its own, so
        that only the culprit fails (a retry of the same seq applies at most once)."""
        for item in batch:
            self._dispatch([item])

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
            if len(batch) > 1:
                self._isolate(batch)
                return
            [(command, future, _)] = batch
            self._finish(command, future, cause if isinstance(cause, ClusterError)
                         else _refused(command, cause))
            return
        except Exception as error:  # the reply cannot be read (Ray could not deserialize it)
            if len(batch) > 1:
                self._isolate(batch)
                return
            [(command, future, _)] = batch
            self._finish(command, future, _refused(command, error))
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
        :class:`~cluster_actors.kv_watch.WatchEvent`, in revision order, each
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
