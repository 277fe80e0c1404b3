"""``Coordinator``: the blocking, typed client of one node's coordinator.

Every remote method of :class:`~cluster_actors.actors.coordinator.CoordinatorActor`
is available (through :class:`~cluster_actors.client.ComponentClient`); the
calls below return typed values instead of plain data::

    coord = Coordinator("demo", "n1")
    coord.get_leader()                        # "n2" or None
    ok, size, current = coord.get_quorum()    # Quorum(has_quorum=True, quorum_size=2, current=3)
    state, status = coord.get_cluster_status()  # "stable", ClusterStatusModel(...)
    version = coord.propose_config({"heartbeat_interval": 150})

    subscription = coord.subscribe_events(print)   # a callable: delivered by a daemon thread
    subscription.cancel()

Errors are the package's own (:class:`~cluster_actors.errors.ValidationFailed`,
:class:`~cluster_actors.errors.NotLeader`, ...), unwrapped from Ray's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from ray.actor import ActorHandle

from .client import DEFAULT_TIMEOUT, ComponentClient
from .errors import ClusterError

logger = logging.getLogger(__name__)

Event = dict[str, Any]


class Quorum(NamedTuple):
    """``(has_quorum, quorum_size, current)``: reachable voters against the size needed."""

    has_quorum: bool
    quorum_size: int
    current: int


class ClusterStatusModel(BaseModel):
    """One node's view of the cluster, as ``get_cluster_status`` reports it."""

    model_config = ConfigDict(extra="allow")

    node_id: str
    cluster: str
    state: str
    leader: str | None = None
    term: int = 0
    role: str | None = None
    members: list[str] = Field(default_factory=list)
    voters: list[str] = Field(default_factory=list)
    learners: list[str] = Field(default_factory=list)
    reachable: list[str] = Field(default_factory=list)
    unreachable: list[str] = Field(default_factory=list)
    quorum: Quorum
    commit: int | None = None
    applied: int | None = None
    config_version: int | None = None
    components: dict[str, bool] = Field(default_factory=dict)
    pending_proposals: list[int] = Field(default_factory=list)
    partition: dict[str, Any] | None = None
    lifecycle_sequence: int = 0


class LifecycleTransition(BaseModel):
    """One transition of a node's lifecycle."""

    model_config = ConfigDict(populate_by_name=True)

    sequence: int
    source: str = Field(alias="from")
    event: str
    target: str = Field(alias="to")
    guard: str | None = None
    at: float | None = None


class Subscription:
    """A local callback fed by a daemon thread that long-polls ``wait_events``.

    Events are delivered in order, each once, starting with the first event
    after the subscription was made. If the coordinator restarts, delivery
    continues with the new instance's events. An exception in the callback is
    logged and does not stop delivery. :meth:`cancel` stops the thread.
    """

    def __init__(self, client: Coordinator, callback: Callable[[Event], Any],
                 poll_timeout: float = 1.0) -> None:
        self._client = client
        self._callback = callback
        self._poll_timeout = poll_timeout
        self._stop = threading.Event()
        self.since = client.call("latest_event_seq")
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"events-{client._node_id}")
        self._thread.start()

    def _run(self) -> None:
        actor_id = self._client.handle._actor_id.hex()
        while not self._stop.is_set():
            try:
                events = self._client.call("wait_events", self.since, self._poll_timeout,
                                           timeout=self._poll_timeout + 10.0)
            except ClusterError as error:
                logger.debug("event subscription: %s", error)
                self._stop.wait(0.2)
                continue
            except Exception as error:  # the actor died twice in a row, Ray shutting down
                logger.debug("event subscription: %s", error)
                self._stop.wait(0.2)
                continue
            current = self._client.handle._actor_id.hex()
            if current != actor_id:  # a restarted coordinator numbers from 1 again
                actor_id, self.since = current, 0
                continue
            for event in events:
                if self._stop.is_set():
                    return
                self.since = event["seq"]
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


class Coordinator(ComponentClient):
    """Blocking, typed calls on the coordinator of ``node_id`` (see the module doc)."""

    def __init__(self, cluster: str, node_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(cluster, node_id, "coordinator", timeout)
        self._subscriptions: dict[int, Subscription] = {}

    @property
    def node_id(self) -> str:
        return self._node_id

    def get_leader(self) -> str | None:
        return self.call("get_leader")

    def get_members(self) -> list[str]:
        return list(self.call("get_members"))

    def get_cluster_status(self) -> tuple[str, ClusterStatusModel]:
        state, status = self.call("get_cluster_status")
        return state, ClusterStatusModel.model_validate(status)

    def get_quorum(self) -> Quorum:
        return Quorum(*self.call("get_quorum"))

    def get_config(self) -> dict[str, Any]:
        return dict(self.call("get_config"))

    def propose_config(self, new_config: dict[str, Any], require_approval: bool = False,
                       timeout: float | None = None) -> int:
        """Validate and replicate ``new_config`` (the keys to change); its version."""
        seconds = self._timeout if timeout is None else timeout
        return int(self.call("propose_config", new_config, require_approval, seconds,
                             timeout=seconds + 5.0))

    def approve_config(self, version: int, approve: bool = True,
                       timeout: float | None = None) -> int | None:
        seconds = self._timeout if timeout is None else timeout
        return self.call("approve_config", version, approve, seconds, timeout=seconds + 5.0)

    def rollback_config(self, version: int, timeout: float | None = None) -> int:
        seconds = self._timeout if timeout is None else timeout
        return int(self.call("rollback_config", version, seconds, timeout=seconds + 5.0))

    def join_cluster(self, seed_nodes: list[str], timeout: float = 30.0) -> dict[str, Any]:
        """Join the cluster of ``seed_nodes`` (a no-op for a member)."""
        return self.call("join_cluster", list(seed_nodes), timeout, timeout=timeout + 5.0)

    def leave_cluster(self, reason: str = "", timeout: float = 30.0) -> None:
        """Leave the cluster: the node ends in lifecycle ``shutdown``."""
        self.call("leave_cluster", reason, timeout, timeout=timeout + 5.0)

    def become_leader(self, timeout: float = 5.0) -> None:
        """Force an election here and wait until this node leads."""
        self.call("become_leader", timeout, timeout=timeout + 5.0)

    def request_leadership(self, target: str) -> str:
        """Ask the failover strategy to move leadership to ``target`` (the one
        thing ``manual`` waits for); forwarded to the leader."""
        return str(self.call("request_leadership", target))

    def get_failover_info(self) -> dict[str, Any]:
        """The failover strategy's ranking, this node's election bias, the last
        reason, and the partition strategy's decision and data mode here."""
        return dict(self.call("get_failover_info"))

    def lifecycle_state(self) -> str:
        return str(self.call("lifecycle_state"))

    def lifecycle_history(self, limit: int | None = None) -> list[LifecycleTransition]:
        return [LifecycleTransition.model_validate(t)
                for t in self.call("lifecycle_history", limit)]

    def health_check(self) -> tuple[str, dict[str, Any]]:
        health, details = self.call("health_check")
        return health, details

    def subscribe_events(self, subscriber: Callable[[Event], Any] | Any
                         ) -> Subscription | None:
        """A Python callable: deliver each event to it from a daemon thread and
        return the :class:`Subscription`. A Ray actor handle: the coordinator
        pushes to its ``on_event`` (returns None)."""
        if _is_actor_handle(subscriber):
            self.call("subscribe_events", subscriber)
            return None
        if not callable(subscriber):
            raise TypeError("subscribe_events takes a callable or a Ray actor handle")
        subscription = Subscription(self, subscriber)
        self._subscriptions[id(subscriber)] = subscription
        return subscription

    def unsubscribe_events(self, subscriber: Callable[[Event], Any] | Any) -> bool:
        if _is_actor_handle(subscriber):
            return bool(self.call("unsubscribe_events", subscriber))
        subscription = self._subscriptions.pop(id(subscriber), None)
        if subscription is None:
            return False
        subscription.cancel()
        return True

    def __repr__(self) -> str:
        return f"<Coordinator of {self._cluster}:{self._node_id}>"


def _is_actor_handle(value: Any) -> bool:
    return isinstance(value, ActorHandle)


__all__ = ["ClusterStatusModel", "Coordinator", "LifecycleTransition", "Quorum",
           "Subscription"]
