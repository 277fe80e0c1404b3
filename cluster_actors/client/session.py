"""LeaderSession: one client's session with a cluster's Raft leader.

Everything that talks to the leader from outside the cluster goes through a
session: the KV client (:class:`~cluster_actors.client.kv.KVClient`), the
leases, the election, the lock and the other recipes. ``Cluster`` owns one
(``cluster.session``); :meth:`LeaderSession.attach` makes one for a cluster
running elsewhere on the Ray cluster (inside a Ray actor, say). A session owns

* **the leader**: as the nodes push it (:attr:`watch`, a
  :class:`~cluster_actors.client.leader_watch.LeaderWatch`), as the nodes
  answer when asked (:meth:`find_leader`), and the last node that answered
  as leader (the hint its calls and commands go to first);
* **the handles** of the nodes' consensus actors, cached, forgotten when
  one dies (:meth:`handle`, :meth:`forget`);
* **calls on the leader** (:meth:`call`): redirected on ``NotLeader`` and
  retried through leader changes until a deadline;
* **numbered commands** (:meth:`submit`, :meth:`run`): each carries
  ``(client_id, seq)``, so a command retried after a timeout or a leader
  change is applied at most once. Concurrent callers are coalesced: a sender
  thread ships every command queued while the previous batch was in flight
  as one Ray call, with up to ``max_in_flight`` batches pipelined. A follower
  answers ``NotLeader`` with the leader's id and the batch is redirected
  (writes are not forwarded between nodes). :meth:`wait` waits for a
  command's outcome and raises an error outcome.

Errors are per command: an op that is malformed, a value the log's plain
pickle refuses or larger than ``max_value_bytes`` is refused locally, before
it is queued (its future holds the ValidationFailed; nothing is sent). Should
a batch still fail as a whole (Ray cannot serialize one of its values, say),
its commands are sent again one by one, so only the culprit fails; the
sender thread survives any error, and every resolved command stops holding
back the acknowledged-results floor (``ack_below``).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from ..core.cluster_state import ClusterStateMachine
from ..core.kv import Command, InvalidCommand, shown
from ..core.limits import DEFAULT_MAX_VALUE_BYTES, MAX_TIMEOUT_S, check_op
from ..core.raft import ProposalDropped
from ..errors import ClusterError, CoordinationTimeout, NoQuorum, NotLeader, ValidationFailed
from ..options import ClusterOptions
from ..runtime.hosting import find_component
from ..runtime.naming import namespace, registry_name
from .components import DEFAULT_TIMEOUT, logger, unwrap
from .leader_watch import LeaderWatch

#: one queued command: the command, its future, its ``time.monotonic()`` deadline
Queued = tuple[Command, Future[Any], float]


def registered_cluster(name: str, timeout: float = DEFAULT_TIMEOUT
                       ) -> tuple[list[str], ClusterOptions]:
    """The node ids and options of cluster ``name`` as its registry actor
    knows them (Ray must be initialized); ClusterError if none runs."""
    try:
        registry = ray.get_actor(registry_name(name), namespace=namespace(name))
    except ValueError:
        raise ClusterError(f"no cluster named {name!r} runs on this Ray cluster; start it "
                           f"with Cluster.start({name!r}) or `cluster-actors up`") from None
    info = ray.get(registry.info.remote(), timeout=timeout)
    return list(info["node_ids"]), ClusterOptions.parse(info["options"])


class LeaderSession:
    """One client's session with the leader of cluster ``cluster`` (see the
    module doc). ``node_ids()`` names the nodes (read again on every use, so
    added and removed nodes count); ``options`` are the cluster's (for the
    local checks of commands and lease TTLs; None: the defaults);
    ``timeout`` is the default of every call and command, in seconds."""

    def __init__(self, cluster: str, node_ids: Callable[[], list[str]],
                 options: ClusterOptions | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 max_in_flight: int = 8, max_batch: int = 2048) -> None:
        self.name = cluster
        self.namespace = namespace(cluster)
        self.node_ids = node_ids
        self.options = options
        self.timeout = timeout
        self.client_id = f"kv-{uuid.uuid4().hex[:12]}"
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._handles: dict[str, Any] = {}
        self._watch: LeaderWatch | None = None
        self._leader: str | None = None  # the hint: the last node that answered as leader
        self._seq = itertools.count(1)
        self._lock = threading.Condition()
        self._queue: list[Queued] = []
        self._outstanding: set[int] = set()
        self._outstanding_heap: list[int] = []
        self._in_flight: dict[Any, tuple[str, list[Queued]]] = {}
        self._sender: threading.Thread | None = None
        self._closed = False

    @classmethod
    def attach(cls, cluster: str, timeout: float = DEFAULT_TIMEOUT) -> LeaderSession:
        """A session with cluster ``cluster`` running on this Ray cluster
        (Ray must be initialized; ClusterError if no such cluster runs)."""
        node_ids, options = registered_cluster(cluster, timeout)
        return cls(cluster, lambda: node_ids, options)

    def close(self) -> None:
        """Stop the leader watch and the sender (after the commands in flight)
        and forget the cached handles; commands submitted later raise ClusterError."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._watch is not None:
            self._watch.close()
        self._handles.clear()

    # ---------------------------------------------------------- the leader
    @property
    def watch(self) -> LeaderWatch:
        """The leadership the nodes push to this process (started on first use)."""
        if self._watch is None:
            self._watch = LeaderWatch(self.name, self.node_ids)
        return self._watch

    def leader(self) -> str | None:
        """The current leader's node id, or None: answered from the leadership
        the nodes pushed (no Ray call), else from one quick poll of the nodes."""
        return self.watch.leader() or self.find_leader(timeout=0)

    def wait_for_leader(self, timeout: float) -> str | None:
        """Block until a leader is known (pushed, else one last poll); None
        after ``timeout`` s."""
        return self.watch.wait_for_leader(timeout) or self.find_leader(timeout=0.1)

    def handle(self, node_id: str) -> Any:
        """``node_id``'s consensus actor (cached); ValueError while it is not running."""
        handle = self._handles.get(node_id)
        if handle is None:
            handle = find_component(self.name, node_id, "consensus")
            self._handles[node_id] = handle
        return handle

    def forget(self, node_id: str) -> None:
        """Drop ``node_id``'s cached handle (its actor died or was restarted)."""
        self._handles.pop(node_id, None)

    def find_leader(self, timeout: float = 2.0) -> str | None:
        """The node that leads in the highest term any node reports, or None.

        Answers as soon as the nodes that replied name a leader; a node that
        is dead or restarting never holds the answer up. Each round is one
        light call per node (``leadership``); rounds are spaced 50 ms apart,
        5 ms more per node beyond ten, so waiting on a large cluster does not
        load it.
        """
        deadline = time.monotonic() + timeout
        node_ids = self.node_ids()
        spacing = 0.05 + 0.005 * max(0, len(node_ids) - 10)
        while True:
            refs: dict[Any, str] = {}
            for node_id in node_ids:
                with contextlib.suppress(ValueError):
                    refs[self.handle(node_id).leadership.remote()] = node_id
            pending = list(refs)
            leaders: list[tuple[int, str]] = []
            round_started = time.monotonic()
            round_deadline = round_started + min(spacing, max(0.01, deadline - round_started))
            while pending and not leaders:
                ready, pending = ray.wait(pending, num_returns=1,
                                          timeout=max(0.0, round_deadline - time.monotonic()))
                if not ready:
                    break
                for ref in ready:
                    try:
                        status = ray.get(ref)
                    except Exception:
                        self.forget(refs[ref])
                        continue
                    if status["role"] == "leader":
                        leaders.append((status["term"], refs[ref]))
            if leaders:
                return max(leaders)[1]
            if time.monotonic() >= deadline:
                return None
            time.sleep(max(0.005, min(round_started + spacing, deadline) - time.monotonic()))
            node_ids = self.node_ids()

    # ------------------------------------------------------------- calls
    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """``method(*args)`` on the leader's consensus actor, following
        ``NotLeader`` redirects and retrying through leader changes until
        ``timeout`` s (default the session's). An error the leader raises is
        raised as is; NoQuorum when no leader answered, CoordinationTimeout
        when the call did not complete."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            leader = self._leader or self.find_leader(timeout=deadline - time.monotonic())
            if leader is None:
                break
            try:
                handle = self.handle(leader)
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
                self.forget(leader)
            else:
                self._leader = leader
        if isinstance(last_error, NotLeader) or last_error is None:
            raise NoQuorum(f"no leader answered within {timeout} s: the cluster may have lost "
                           f"its quorum; restore nodes or heal the partition") from None
        raise CoordinationTimeout(f"{method} did not complete within {timeout} s "
                                  f"({last_error})") from None

    # ---------------------------------------------------------- commands
    def check(self, op: Any) -> None:
        """Raise InvalidCommand unless the cluster would accept ``op`` (the
        checks the leader repeats: see :mod:`~cluster_actors.core.limits`)."""
        check_op(op, extra_ops=ClusterStateMachine.EXTRA_OPS,
                 max_value_bytes=getattr(self.options, "max_value_bytes",
                                         DEFAULT_MAX_VALUE_BYTES),
                 min_lease_ttl_ms=getattr(self.options, "election_timeout", 1))

    def submit(self, op: tuple[Any, ...]) -> Future[Any]:
        """Queue one state-machine command; the future resolves to its
        result (an error result is an exception object, not raised). Commands
        queued together travel in one Ray call. An op refused by :meth:`check`
        resolves at once to its InvalidCommand (a ValidationFailed) and is
        not sent; a closed session raises ClusterError."""
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

    def wait(self, future: Future[Any], timeout: float | None = None,
             what: str = "command") -> Any:
        """The outcome of a submitted command, waiting up to ``timeout`` s
        (default the session's); an error outcome is raised, and so is
        CoordinationTimeout (naming ``what``) when none came. A ``timeout``
        that is not a number of seconds >= 0 raises ValidationFailed."""
        timeout = self._seconds(timeout)
        try:
            result = future.result(timeout + 1.0)
        except TimeoutError:
            raise CoordinationTimeout(f"{what} not acknowledged within {timeout} s; its "
                                      f"outcome is unknown") from None
        if isinstance(result, Exception):
            raise result
        return result

    def run(self, op: tuple[Any, ...], timeout: float | None = None) -> Any:
        """Submit ``op`` and wait for its result (see :meth:`submit`, :meth:`wait`)."""
        what = str(op[0]) if isinstance(op, tuple) and op else "command"
        timeout = self._seconds(timeout)  # refused before anything is sent
        return self.wait(self.submit(op), timeout, what)

    def _seconds(self, timeout: Any) -> float:
        """``timeout`` (None: the session's) if it is a number of seconds >= 0,
        at most an hour; else ValidationFailed."""
        if timeout is None:
            return self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not timeout >= 0:
            raise ValidationFailed([("timeout", f"give None or a number of seconds >= 0, "
                                                f"got {shown(timeout)}")])
        return float(min(timeout, MAX_TIMEOUT_S))

    # ------------------------------------------------------------ sender
    def _ack_below(self) -> int:
        """The lowest sequence number still awaiting its result (call with the lock)."""
        heap = self._outstanding_heap
        while heap and heap[0] not in self._outstanding:
            heapq.heappop(heap)
        return heap[0] if heap else next(self._seq)

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
                batch: list[Queued] = []
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

    def _dispatch(self, batch: list[Queued]) -> None:
        leader = self._leader
        if leader is None:
            leader = self.find_leader(timeout=0.5)
        if leader is None:
            self._requeue(batch, delay=0.02)
            return
        self._leader = leader
        try:
            handle = self.handle(leader)
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

    def _fail_batch(self, batch: list[Queued], error: BaseException) -> None:
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
            self.forget(leader)
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

    def _requeue(self, batch: list[Queued], delay: float) -> None:
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

    def __repr__(self) -> str:
        return f"<LeaderSession {self.client_id} of {self.name!r}>"


def _refused(command: Command, error: BaseException) -> ClusterError:
    """A command Ray could not carry, as a ClusterError naming the real error."""
    refused = ClusterError(
        f"command {command.op[0]} on {shown(command.op[1]) if len(command.op) > 1 else ''} "
        f"could not be sent or answered: {type(error).__name__}: {error}; use plain data as "
        "values")
    refused.__cause__ = error
    return refused


__all__ = ["LeaderSession", "registered_cluster"]
