"""The coordinator's observing half: following the siblings' event streams,
the health round (consensus status, peer pings, heartbeat phi, quorum) and
the :class:`~cluster_actors.core.lifecycle.NodeView` it keeps. :class:`Observer` is a mixin of
:class:`~cluster_actors.actors.coordinator.CoordinatorActor`; after each
change it calls the coordinator's ``_reconcile`` (the lifecycle) and, after a
health round, ``_run_autopilot`` and ``_run_strategies``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import ray
from ray.exceptions import RayActorError

from ..core.lifecycle import LifecycleEvent, NodeView, quorum_triple
from ..core.membership import quorum_size
from ..errors import ClusterError
from ..runtime.calls import bounded, task_cause
from ..runtime.events import EventCursor
from ..runtime.hosting import find_component, hosted_by
from ..runtime.naming import namespace, node_supervisor_name, root_supervisor_name
from .coordinator_config import HOT_KEYS
from .monitor import phi_from_heartbeat

logger = logging.getLogger(__name__)

E = LifecycleEvent

#: Components whose event streams the coordinator follows when they are installed.
FOLLOWED = ("membership", "heartbeat")
#: Seconds a peer's consensus actor gets to answer a reachability ping.
PING_TIMEOUT = 1.0


def installed(component: str) -> bool:
    """Whether component ``component``'s actor module is installed."""
    return importlib.util.find_spec(f"cluster_actors.actors.{component}") is not None


class Observer:
    """Mixin: the coordinator's observation of its node and the cluster."""

    # provided by the coordinator
    cluster: str
    node_id: str
    options: Any
    events: Any
    lifecycle: Any
    view: NodeView
    started: bool
    heartbeat_interval_ms: int
    quorum_setting: int | None
    _pending: set[int]
    _kick: asyncio.Event
    _refresh_lock: asyncio.Lock
    _stats: dict[str, int]
    _consensus_up: bool
    _peer_handles: dict[str, Any]
    _slow: dict[str, int]
    _heartbeat_status: dict[str, Any] | None
    sibling: Callable[[str], Any]
    forget_sibling: Callable[[str], None]
    _reconcile: Callable[[], None]
    _fire: Callable[..., dict[str, Any]]
    _run_autopilot: Callable[[], None]
    _run_strategies: Callable[[Any], Awaitable[None]]
    _spawn_config_adoption: Callable[[], None]

    async def _was_restarted(self) -> bool:
        """True if the node supervisor saw a previous coordinator of this node
        exit (or, in the ``per_node`` placement, the root supervisor this node's host)."""
        hosted = hosted_by(self) is not None
        child = self.node_id if hosted else self.component
        name = (root_supervisor_name(self.cluster) if hosted
                else node_supervisor_name(self.cluster, self.node_id))
        try:
            supervisor = ray.get_actor(name, namespace=namespace(self.cluster))
            events = await bounded(supervisor.events_since.remote(0))
        except Exception:
            return False
        return any(e.get("type") == "child_exited" and e.get("child_id") == child
                   for e in events)

    async def _consensus_tail(self) -> EventCursor:
        """Where the consensus stream stands now (older events are not replayed);
        unknown (no instance) when the consensus actor does not answer."""
        cursor = EventCursor()
        try:
            handle = self.sibling("consensus")
            events = await bounded(handle.events_since.remote(0))
        except Exception:
            return cursor
        cursor.follow(handle)
        cursor.advance(events)
        return cursor

    async def _follow_consensus(self, cursor: EventCursor) -> None:
        """Long-poll the consensus events from ``cursor``; a dead consensus actor
        is a local failure."""
        while True:
            try:
                handle = self.sibling("consensus")
            except ClusterError:
                if self._consensus_up:
                    self._local_failure("consensus is not running")
                await asyncio.sleep(0.05)
                continue
            cursor.follow(handle)
            try:
                events = await handle.wait_events.remote(cursor.since, 5.0)
            except RayActorError:
                self.forget_sibling("consensus")
                self._local_failure("the consensus actor died")
                await asyncio.sleep(0.02)
                continue
            except Exception as error:
                logger.warning("coordinator of %s: consensus events: %s", self.node_id,
                               task_cause(error))
                await asyncio.sleep(0.2)
                continue
            for event in events:
                cursor.advance((event,))
                self._on_consensus_event(event)

    async def _follow(self, component: str) -> None:
        """Republish a sibling's events and re-check the view after each batch."""
        cursor = EventCursor()
        while True:
            try:
                handle = self.sibling(component)
            except ClusterError:
                await asyncio.sleep(2.0)
                continue
            followed_before = cursor.instance is not None
            if cursor.follow(handle):  # a new instance: read on from its newest event
                if followed_before:  # restarted: it runs the options' settings again
                    self._spawn_config_adoption()
                with contextlib.suppress(Exception):  # unanswered: read from its start
                    cursor.advance(await bounded(handle.events_since.remote(0)))
            try:
                events = await handle.wait_events.remote(cursor.since, 5.0)
            except RayActorError:
                self.forget_sibling(component)
                await asyncio.sleep(0.05)
                continue
            except Exception:
                await asyncio.sleep(1.0)
                continue
            for event in events:
                cursor.advance((event,))
                self._republish(component, event)
            if events:
                self._kick.set()

    async def _health_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):  # the period hot-reloads
                await asyncio.wait_for(self._kick.wait(), self.heartbeat_interval_ms / 1000)
            self._kick.clear()
            try:
                await self._refresh()
            except Exception:
                logger.exception("coordinator of %s: health round failed", self.node_id)
            await asyncio.sleep(0.02)  # at most ~50 rounds per second however often kicked

    # ---------------------------------------------------------- observing
    def _republish(self, component: str, event: dict[str, Any]) -> None:
        fields = {k: v for k, v in event.items() if k not in ("seq", "time", "type", "source")}
        self.events.publish(event["type"], component=component, **fields)

    def _on_consensus_event(self, event: dict[str, Any]) -> None:
        self._republish("consensus", event)
        kind = event["type"]
        if kind == "leader_changed":
            self._on_leader(event.get("leader"), event.get("term"))
        elif kind == "peer_died":
            self.view.reachable.discard(event["peer"])
            if event["peer"] == self.view.leader:
                self._on_leader(None, None)
            self._kick.set()
        elif kind == "started":
            self._consensus_up = True
            self._kick.set()
        elif kind == "config_changed" and HOT_KEYS & set(event.get("changed_keys") or ()):
            self._spawn_config_adoption()
        elif kind == "membership_changed":
            self.view.voters = list(event["voters"])
            self.view.learners = list(event["learners"])
            self._kick.set()
            self._spawn_config_adoption()  # is the configured quorum safe for these voters?
        self._reconcile()

    def _on_leader(self, leader: str | None, term: int | None) -> None:
        """Leader knowledge comes from the ordered event stream only (a status
        snapshot may be older than the events already seen)."""
        if leader is not None and self.view.leader is not None and leader != self.view.leader:
            self.view.leader = None  # replaced: an election happened in between
            self._reconcile()
        self.view.leader = leader
        if term is not None:
            self.view.term = term
        self._reconcile()

    def _local_failure(self, reason: str) -> None:
        self._consensus_up = False
        self.view.leader = None
        self._stats["local_failures"] += 1
        self.events.publish("component_failed", component="consensus", reason=reason)
        if self.lifecycle.can_fire(E.FAILURE_DETECTED, self.view.context()):
            self._fire(E.FAILURE_DETECTED, reason=reason)

    async def _refresh(self, reconcile: bool = True) -> None:
        """One health round: consensus status, peer pings, heartbeat phi, quorum."""
        async with self._refresh_lock:
            self._stats["refreshes"] += 1
            status = await self._ask("consensus", "status")
            if status is not None and status.get("role") not in (None, "starting"):
                self._consensus_up = True
                await self._update_view(status)
                self._run_autopilot()
        if reconcile:
            self._reconcile()
            try:
                await self._run_strategies(self._heartbeat_status)
            except Exception:
                logger.exception("coordinator of %s: strategy round failed", self.node_id)

    async def _update_view(self, status: dict[str, Any]) -> None:
        view = self.view
        view.status = status
        view.voters, view.learners = list(status["voters"]), list(status["learners"])
        self._pending = set(status.get("pending_proposals") or ())
        if self.view.leader is None and not self.started and status.get("leader"):
            view.leader = status["leader"]  # the first snapshot, before any event
        view.term = max(view.term, status.get("term") or 0)
        blocked = set((status.get("faults") or {}).get("blocked") or ())
        peers = sorted((set(view.voters) | set(view.learners)) - {self.node_id})
        heartbeat = self._heartbeat_status = await self._ask("heartbeat", "get_heartbeat_status")
        # Ping the peers this node's failure detector watches (k of them, as
        # the heartbeats go): the cost grows as N*k, not N^2. The others count
        # as reachable unless their actors died (consensus reports it). A peer
        # whose heartbeat arrived within the last round and a half evidently
        # answers, so only silent ones are pinged: in a healthy cluster a
        # health round makes no remote call at all.
        peer_infos = {p: info for p, info in ((heartbeat or {}).get("peers") or {}).items()
                      if isinstance(info, Mapping)}
        watched = {p for p, info in peer_infos.items() if info.get("watched")}
        fresh_within = 1.5 * self.heartbeat_interval_ms / 1000
        fresh = {p for p, info in peer_infos.items()
                 if (age := info.get("last_heartbeat_age")) is not None and age < fresh_within}
        for peer in fresh:
            self._slow.pop(peer, None)
        pinged = [p for p in (peers if len(peers) <= self.options.monitors_per_node
                              else sorted(p for p in peers if p in watched))
                  if p not in fresh]
        answers = dict(zip(pinged, await asyncio.gather(*(self._ping(p) for p in pinged)),
                           strict=True))
        dead = set(status.get("peers_down") or ())
        reachable = {self.node_id} | {p for p in peers if answers.get(p, p not in dead)
                                      and p not in blocked}
        phi = phi_from_heartbeat(heartbeat)
        for peer, value in (phi or {}).items():
            if value >= self.options.phi_threshold:
                reachable.discard(peer)
        view.reachable = reachable
        current = len(reachable & set(view.voters))
        size = quorum_size(len(view.voters), self.quorum_setting)
        view.quorum = (current >= size, size, current)
        reported = quorum_triple(await self._ask("membership", "get_quorum"))
        if reported is not None:
            view.quorum = reported

    async def _ping(self, peer: str) -> bool:
        """Whether ``peer``'s consensus actor answers. A dead or missing actor
        counts at once; a slow one only on its second timeout in a row (one
        late answer on a loaded machine is no failure)."""
        handle = self._resolve_peer(peer)
        if handle is None:
            return False
        try:
            await bounded(handle.ping.remote(), PING_TIMEOUT)
        except asyncio.TimeoutError:
            self._slow[peer] = self._slow.get(peer, 0) + 1
            return self._slow[peer] < 2
        except Exception:
            self._peer_handles.pop(peer, None)
            return False
        self._slow.pop(peer, None)
        return True

    def _resolve_peer(self, peer: str) -> Any | None:
        """``peer``'s consensus handle (cached; forget a dead one with
        ``_peer_handles.pop``), None if it does not run."""
        handle = self._peer_handles.get(peer)
        if handle is not None:
            return handle
        try:
            handle = find_component(self.cluster, peer, "consensus")
        except ValueError:
            return None
        self._peer_handles[peer] = handle
        return handle

    def _consensus_of(self, node: str) -> Any | None:
        """The consensus handle of ``node``: this node's sibling, or a peer's."""
        return self.sibling("consensus") if node == self.node_id else self._resolve_peer(node)

    async def _ask(self, component: str, method: str, *args: Any,
                   timeout: float = 2.0) -> Any:
        """``method`` of a running sibling; None if it is absent, dead or slow."""
        try:
            handle = self.sibling(component)
        except ClusterError:
            return None
        if not hasattr(handle, method):
            return None
        try:
            return await bounded(getattr(handle, method).remote(*args), timeout)
        except RayActorError:
            self.forget_sibling(component)
        except Exception as error:
            logger.debug("coordinator of %s: %s.%s: %s", self.node_id, component, method,
                         task_cause(error))
        return None
