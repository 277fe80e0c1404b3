"""The monitor component: a thin Ray shell around :class:`MonitorCore`.

Every ``heartbeat_interval`` the monitor gathers one
:class:`~cluster_actors.core.monitoring.NodeObservation` of its node from the
components that are running (each is optional and skipped when absent):

* consensus ``status()``: leader, term, role, commit index, voters, config
  version, commit latency p50 (one sample per round in which commands were
  proposed); its ``events(since)``: config changes and rollbacks;
* heartbeat ``get_heartbeat_status()``: phi per watched peer;
* the node supervisor (``<cluster>:<node>:supervisor``) ``events(since)``:
  child restarts, in total and within ``supervisor_period``;
* coordinator ``local_view()``: lifecycle state and quorum;
* sync ``get_sync_status()``: pending conflicts and bytes moved.

The observation goes to ``MonitorCore.observe`` (history, event log, alert
rules) and to a :class:`~cluster_actors.telemetry.PrometheusExporter`; alert
transitions are pushed to alert subscribers (``handle.on_alert(alert)``,
fire-and-forget) and published in the event stream as ``alert_fired`` /
``alert_resolved``.

With ``options.prometheus_port`` set, ``/metrics`` is served on 127.0.0.1:
port 0 picks a free port per node; a fixed port ``p`` serves node ``i`` (its
position among the sorted initial voters) on ``p + i`` so that several nodes
fit on one machine, falling back to a free port (logged) if that one is taken.
:meth:`MonitorActor.metrics_address` tells where.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import ray
from ray.exceptions import RayActorError

from ..core.limits import check_seq
from ..core.monitoring import MonitorCore, NodeObservation
from ..errors import ClusterError, CoordinationTimeout, NotFound, ValidationFailed
from ..runtime.calls import bounded, task_cause
from ..runtime.events import EventCursor, subscriber_key
from ..runtime.hosting import find_component
from ..runtime.naming import namespace, node_supervisor_name
from ..telemetry.metrics import PrometheusExporter
from ..telemetry.tracing import configure_tracing_from_env
from .base import ComponentActor

logger = logging.getLogger(__name__)

def phi_from_heartbeat(status: Any) -> dict[str, float] | None:
    """Phi per peer from a heartbeat status: ``{"peers": {peer: {"phi": x}}}``,
    ``{peer: {"phi": x}}`` or ``{peer: x}`` (a ``(ok, status)`` pair is unwrapped).
    None when nothing in it looks like phi."""
    if isinstance(status, (tuple, list)) and len(status) == 2 and isinstance(status[1], Mapping):
        status = status[1]
    if not isinstance(status, Mapping):
        return None
    peers = status.get("peers", status)
    if not isinstance(peers, Mapping):
        return None
    phi: dict[str, float] = {}
    for peer, info in peers.items():
        value = info.get("phi") if isinstance(info, Mapping) else info
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            phi[str(peer)] = float(value)
    return phi or None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, (list, tuple, dict, set)):
        return len(value)
    return None


def sync_fields(status: Any) -> dict[str, int]:
    """``pending_conflicts`` and ``sync_bytes_total`` from a sync status, when present."""
    if isinstance(status, (tuple, list)) and len(status) == 2 and isinstance(status[1], Mapping):
        status = status[1]
    out: dict[str, int] = {}
    if not isinstance(status, Mapping):
        return out
    for key in ("pending_conflicts", "conflicts"):
        count = _count(status.get(key))
        if count is not None:
            out["pending_conflicts"] = count
            break
    for key in ("sync_bytes_total", "bytes_total", "bytes"):
        count = _count(status.get(key))
        if count is not None and isinstance(status.get(key), int):
            out["sync_bytes_total"] = count
            break
    return out


def _check_str(field: str, value: Any) -> str:
    """``value`` if it is a string, else ValidationFailed."""
    if not isinstance(value, str):
        raise ValidationFailed([(field, f"must be a string, got {type(value).__name__}")])
    return value


@ray.remote(num_cpus=0, max_restarts=0)
class MonitorActor(ComponentActor):
    """The seed's Monitoring API for one node (see the module doc)."""

    component = "monitor"
    uses_transport = False

    def __init__(self, cluster: str, node_id: str, voters: list[str],
                 options: dict[str, Any], initial_config: dict[str, Any] | None = None,
                 join: bool = False) -> None:
        super().__init__(cluster, node_id, voters, options, initial_config, join)
        self.core = MonitorCore(node_id)
        self.exporter = PrometheusExporter(cluster, node_id)
        self._alert_subscribers: dict[str, Any] = {}
        self._gather_lock = asyncio.Lock()
        self._members = list(self.voters)  # voters and learners, from the latest status
        self._consensus_events_read = EventCursor()
        self._rollbacks = 0
        self._last_proposed: int | None = None
        self._supervisor: Any = None
        self._supervisor_events_read = EventCursor()
        self._restart_times: deque[float] = deque(maxlen=10_000)
        self._restarts_total = 0
        self._gather_stats: dict[str, Any] = {"rounds": 0, "last_ms": None, "max_ms": 0.0,
                                              "failed_calls": {}}

    async def on_start(self) -> None:
        configure_tracing_from_env()
        if self.options.prometheus_port is not None:
            self._serve_metrics(self.options.prometheus_port)
        self.every(self.options.heartbeat_interval / 1000, self._gather)

    async def on_stop(self) -> None:
        self.exporter.stop()
        await super().on_stop()

    def _serve_metrics(self, port: int) -> None:
        if port:
            ordered = sorted(self.voters)
            port += ordered.index(self.node_id) if self.node_id in ordered else 0
        try:
            self.exporter.start_http_server(min(port, 65535), addr="127.0.0.1")
        except OSError as error:
            logger.warning("monitor of %s: port %s unavailable (%s); serving metrics on a "
                           "free port instead", self.node_id, port, error)
            self.exporter.start_http_server(0, addr="127.0.0.1")

    # ------------------------------------------------------------- gathering
    def _optional(self, component: str) -> Any | None:
        try:
            return self.sibling(component)
        except ClusterError:
            return None

    async def _ask(self, component: str, method: str, *args: Any) -> Any:
        """``method`` of a running sibling, or None if it is absent, dead or slow."""
        handle = self._optional(component)
        if handle is None or not hasattr(handle, method):
            return None
        try:
            return await bounded(getattr(handle, method).remote(*args))
        except RayActorError:
            self.forget_sibling(component)
        except Exception as error:
            logger.debug("monitor of %s: %s.%s failed: %s", self.node_id, component, method,
                         task_cause(error))
        failed = self._gather_stats["failed_calls"]
        failed[f"{component}.{method}"] = failed.get(f"{component}.{method}", 0) + 1
        return None

    async def _consensus_events(self) -> list[dict[str, Any]]:
        handle = self._optional("consensus")
        if handle is None:
            return []
        cursor = self._consensus_events_read
        cursor.follow(handle)
        events = await self._ask("consensus", "events_since", cursor.since) or []
        cursor.advance(events)
        return events

    async def _supervisor_events(self) -> list[dict[str, Any]]:
        if self._supervisor is None:
            try:
                self._supervisor = ray.get_actor(node_supervisor_name(self.cluster, self.node_id),
                                                 namespace=namespace(self.cluster))
            except ValueError:
                return []
        cursor = self._supervisor_events_read
        cursor.follow(self._supervisor)
        try:
            events = await bounded(self._supervisor.events_since.remote(cursor.since))
        except Exception:
            self._supervisor = None
            return []
        cursor.advance(events)
        return events

    async def _gather(self) -> None:
        """Gather one observation of this node and feed it everywhere."""
        async with self._gather_lock:
            started = time.perf_counter()
            try:
                await self._gather_once()
            finally:
                ms = (time.perf_counter() - started) * 1000
                stats = self._gather_stats
                stats["rounds"] += 1
                stats["last_ms"], stats["max_ms"] = ms, max(stats["max_ms"], ms)

    async def _gather_once(self) -> None:
        status, events, heartbeat, supervisor, view, sync = await asyncio.gather(
            self._ask("consensus", "status"), self._consensus_events(),
            self._ask("heartbeat", "get_heartbeat_status"), self._supervisor_events(),
            self._ask("coordinator", "local_view"), self._ask("sync", "get_sync_status"))
        now = time.time()
        fields = self._observation_fields(status, events, heartbeat, supervisor, view, sync,
                                          now)
        try:
            observation = NodeObservation.coerce(fields)
        except ClusterError as error:
            logger.warning("monitor of %s: bad observation dropped: %s", self.node_id, error)
            return
        for event in events:
            if event["type"] in ("config_changed", "peer_died", "snapshot_installed"):
                details = {k: v for k, v in event.items()
                           if k not in ("seq", "time", "type", "source")}
                self._deliver(self.core.record_event(event["type"], details, t=now))
        self._deliver(self.core.observe(observation, now))
        self.exporter.update(observation)
        self.exporter.set_alerts_active(len(self.core.active_alerts()))

    def _observation_fields(self, status: dict[str, Any] | None, events: list[dict[str, Any]],
                            heartbeat: Any, supervisor: list[dict[str, Any]],
                            view: dict[str, Any] | None, sync: Any, now: float
                            ) -> dict[str, Any]:
        fields: dict[str, Any] = {"node_id": self.node_id,
                                  "phi_threshold": self.options.phi_threshold,
                                  "supervisor_intensity": self.options.supervisor_intensity}
        if status and status.get("role") not in (None, "starting"):
            self._members = sorted({*(status.get("voters") or self._members),
                                    *(status.get("learners") or ())})
            proposed = (status.get("stats") or {}).get("proposed", 0)
            latency = status.get("commit_latency_p50_ms")
            if latency is not None and proposed != self._last_proposed:
                fields["commit_latencies"] = (latency / 1000,)
            self._last_proposed = proposed
            version = status.get("config_version")
            fields.update(leader=status.get("leader"), has_leader=status.get("leader") is not None,
                          term=status.get("term"), role=status.get("role"),
                          commit_index=status.get("commit"), members=len(status["voters"]),
                          elections_total=status.get("term"),  # every term opens with an election
                          config_version=version,
                          config_changes_total=max(0, version - 1) if version else None)
        self._rollbacks += sum(1 for e in events
                               if e["type"] == "config_changed" and e.get("kind") == "rollback")
        fields["config_rollbacks"] = self._rollbacks
        phi = phi_from_heartbeat(heartbeat)
        if phi is not None:
            fields["phi"] = phi
        for event in supervisor:
            if event.get("type") == "child_restarted":
                self._restarts_total += 1
                self._restart_times.append(float(event.get("time", now)))
        window = now - self.options.supervisor_period
        while self._restart_times and self._restart_times[0] < window:
            self._restart_times.popleft()
        fields["supervisor_restarts_in_window"] = len(self._restart_times)
        fields["supervisor_restarts_total"] = self._restarts_total
        if view:
            fields["lifecycle_state"] = view.get("lifecycle_state")
            if view.get("has_quorum") is not None:
                fields["has_quorum"] = bool(view["has_quorum"])
        fields.update(sync_fields(sync))
        return fields

    def _deliver(self, transitions: list[Any]) -> None:
        """Publish alert transitions and push them to the alert subscribers."""
        for transition in transitions:
            alert = transition.to_dict()
            self.events.publish(f"alert_{transition.kind}", **alert)
            for key, handle in list(self._alert_subscribers.items()):
                try:
                    handle.on_alert.remote(alert)
                except Exception:
                    self._alert_subscribers.pop(key, None)

    # ------------------------------------------------------ the seed's API
    async def get_health(self) -> tuple[str, dict[str, Any]]:
        """``(health, details)``: ``healthy`` / ``degraded`` / ``critical`` and why."""
        return self.core.get_health()

    async def force_check(self) -> tuple[str, dict[str, Any]]:
        """Gather an observation now, then answer :meth:`get_health`."""
        self.require_started()
        await self._gather()
        return self.core.get_health()

    async def get_metrics(self) -> dict[str, Any]:
        """Summary and latest value of every series, alert and event counts, and
        ``gathering``: rounds, last/max round time (ms), failed sibling calls."""
        return {**self.core.get_metrics(), "gathering": {
            **self._gather_stats, "failed_calls": dict(self._gather_stats["failed_calls"])}}

    async def record_event(self, type: str, details: dict[str, Any] | None = None) -> None:
        """Append an event to this monitor's log; event alert rules may fire."""
        _check_str("type", type)
        if details is not None and (not isinstance(details, dict)
                                    or not all(isinstance(k, str) for k in details)):
            raise ValidationFailed([("details", "must be a dict with str keys or None")])
        self._deliver(self.core.record_event(type, details, t=time.time()))

    async def record_metric(self, name: str, value: float,
                            tags: dict[str, Any] | None = None) -> None:
        """Append one sample to the history of ``name`` (raises ValidationFailed)."""
        self.core.record_metric(name, value, tags, t=time.time())

    async def get_cluster_overview(self) -> dict[str, Any]:
        """The cluster as the nodes' monitors see it: this node's latest
        observation and each peer monitor's (asked now, one call per peer);
        ``unreachable`` lists peers whose monitor did not answer."""
        peers = [p for p in self._members if p != self.node_id]

        async def ask(peer: str) -> dict[str, Any] | None:
            try:
                handle = find_component(self.cluster, peer, "monitor")
                return await bounded(handle.latest_observation.remote())
            except Exception:
                return None

        answers = await asyncio.gather(*(ask(p) for p in peers))
        own = self.core.latest_observation(self.node_id)
        observations = ([own] if own else []) + [a for a in answers if a]
        overview = self.core.get_cluster_overview(observations)
        overview["unreachable"] = sorted(p for p, a in zip(peers, answers, strict=True)
                                         if a is None)
        return overview

    async def latest_observation(self, node: str | None = None) -> dict[str, Any] | None:
        """The newest observation of ``node`` (default this node) as a dict, or None."""
        if node is not None:
            _check_str("node", node)
        observation = self.core.latest_observation(node or self.node_id)
        return observation.to_dict() if observation else None

    async def subscribe_alerts(self, handle: Any) -> None:
        """Push every alert transition to ``handle.on_alert(alert)`` (a Ray actor
        handle; anything else raises ValidationFailed). Each is also published as
        an ``alert_<kind>`` event, which the client's callable subscriptions follow."""
        self._alert_subscribers[subscriber_key(handle)] = handle

    async def unsubscribe_alerts(self, handle: Any) -> bool:
        return self._alert_subscribers.pop(subscriber_key(handle), None) is not None

    async def get_node_metrics(self, node: str) -> dict[str, Any]:
        """Latest observation, health and alerts of ``node``: from this monitor
        when it observed ``node``, else from the monitor of ``node`` itself (a
        member's own monitor observes it). Raises :class:`NotFound` (code
        ``not_found``) for a node that is not a member or whose monitor has no
        observation yet, and :class:`ClusterError` when that monitor does not answer."""
        metrics = self.core.get_node_metrics(_check_str("node", node))
        if metrics is not None:
            return metrics
        if not isinstance(node, str) or node == self.node_id or node not in self._members:
            raise NotFound(f"no observation of node {node!r} on the monitor of "
                           f"{self.node_id}; members: {sorted(self._members)}")
        try:
            handle = find_component(self.cluster, node, "monitor")
        except ValueError:
            raise ClusterError(f"the monitor of {node} is not running; retry in a "
                               "moment") from None
        try:
            return await bounded(handle.get_node_metrics.remote(node))
        except ray.exceptions.RayTaskError as error:
            raise task_cause(error) from None
        except (asyncio.TimeoutError, RayActorError):
            raise CoordinationTimeout(f"the monitor of {node} did not answer; retry in a "
                                      "moment") from None

    async def get_history(self, metric_name: str, limit: int = 100,
                          tags: dict[str, Any] | None = None) -> list[tuple[float, float]]:
        """The newest ``limit`` ``(time, value)`` points of a metric, oldest first.
        ``tags`` select one series (e.g. ``{"peer": "n2"}`` for ``phi``)."""
        _check_str("metric_name", metric_name)
        check_seq(limit, "limit")
        if tags is not None and (not isinstance(tags, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, (str, int, float)))
                for k, v in tags.items())):
            raise ValidationFailed([("tags", "must map str to str, number or None")])
        return self.core.get_history(metric_name, limit, tags)

    async def get_events(self, since: int = 0, limit: int | None = None
                         ) -> list[dict[str, Any]]:
        """The monitor's event log (leader/state/quorum changes, alerts, recorded events)."""
        return self.core.events_since(check_seq(since),
                                      None if limit is None else check_seq(limit, "limit"))

    async def observe(self, observation: dict[str, Any]) -> list[dict[str, Any]]:
        """Feed an observation pushed by a component; returns the alert transitions."""
        obs = NodeObservation.coerce(observation)
        transitions = self.core.observe(obs, time.time())
        self.exporter.update(obs)
        self._deliver(transitions)
        return [t.to_dict() for t in transitions]

    async def active_alerts(self) -> list[dict[str, Any]]:
        return self.core.active_alerts()

    async def metrics_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the ``/metrics`` endpoint, None when not serving."""
        return self.exporter.address

    async def metrics_text(self) -> str:
        """The Prometheus text the endpoint serves (also without a port)."""
        return self.exporter.render()
