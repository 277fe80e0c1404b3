"""Blocking clients for a running cluster: a generic proxy to any component
actor, and subscriptions to the events of a component.

:class:`ComponentClient` turns every remote method of a component actor into
a blocking call (``client.get_status()``), re-resolving the actor by name if
it was restarted by its supervisor. The key-value store has its own client
(:mod:`~cluster_actors.client.kv`, on a :mod:`~cluster_actors.client.session`).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayActorError

from ..core.limits import check_timeout
from ..errors import ClusterError, CoordinationTimeout, ValidationFailed
from ..runtime.events import EventCursor
from ..runtime.hosting import find_component
from ..runtime.naming import actor_name

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


class NotASubscriber(ValidationFailed, TypeError):
    """A subscriber that is neither a callable nor a Ray actor handle."""


def listed(value: Any, what: str) -> list[Any]:
    """``value`` as a list if it is a list, tuple or set; else ValidationFailed."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise ValidationFailed([(what, f"a list, got {type(value).__name__}")])
    return list(value)


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
        timeout = self._timeout if timeout is None else check_timeout(timeout)
        for attempt in range(2):
            handle = self.handle
            remote_method = getattr(handle, method)
            try:
                ref = remote_method.remote(*args, **kwargs)
            except (TypeError, ValueError, pickle.PicklingError) as error:
                raise ValidationFailed([("arguments", (
                    f"the arguments of {self._component}.{method} cannot be sent "
                    f"({type(error).__name__}: {str(error)[:200]}); pass plain data, not "
                    "locks, handles or open files"))]) from None
            try:
                return ray.get(ref, timeout=timeout)
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
        :class:`NotASubscriber` (a ValidationFailed, and a TypeError)."""
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
            raise NotASubscriber([("subscriber", f"{method} takes a callable or a Ray actor "
                                                 f"handle, not {type(subscriber).__name__}")])
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
        self._cursor = EventCursor(client.call("latest_event_seq"),
                                   EventCursor.instance_of(client.handle))
        self.delivered = 0
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name=f"events-{client._node_id}-{client._component}")
        self._thread.start()

    def _run(self) -> None:
        cursor = self._cursor
        while not self._stop.is_set():
            try:
                events = self._client.call("wait_events", cursor.since, self._poll_timeout,
                                           timeout=self._poll_timeout + 10.0)
            except Exception as error:  # restarting, died twice in a row, Ray shutting down
                logger.debug("event subscription: %s", error)
                self._stop.wait(0.2)
                continue
            if cursor.follow(self._client.handle):  # answered by a restarted actor
                continue
            for event in events:
                if self._stop.is_set():
                    return
                cursor.advance((event,))
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
