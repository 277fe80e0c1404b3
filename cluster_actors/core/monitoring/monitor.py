"""The monitor's pure core, :class:`MonitorCore`: history, events, alerts and
health of the observed nodes (see the package doc)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cluster_actors.core.quorum import is_majority

from .alerts import AlertEngine, AlertRule, AlertTransition
from .health import health_summary, worst_health
from .history import EventLog, MetricHistory, series_label
from .observation import NodeObservation


class MonitorCore:
    """History, events and alerts of a monitor; the seed's Monitoring API, pure.

    ``node_id`` is the node whose health :meth:`get_health` reports (None:
    the worst over every observed node). Subscriptions and delivery of the
    returned :class:`AlertTransition` values belong to the caller.
    """

    def __init__(self, node_id: str | None = None, *, history_capacity: int = 1024,
                 event_capacity: int = 1000, rules: Iterable[AlertRule] | None = None) -> None:
        self.node_id = node_id
        self.history = MetricHistory(history_capacity)
        self.events = EventLog(event_capacity)
        self.alerts = AlertEngine(rules)
        self._latest: dict[str, NodeObservation] = {}
        self._observed_at: dict[str, float] = {}

    # ----------------------------------------------------------- inputs
    def observe(self, observation: NodeObservation | Mapping[str, Any],
                t: float) -> list[AlertTransition]:
        """Record a node's observation at ``t``; return the alert transitions."""
        obs = NodeObservation.coerce(observation)
        node = obs.node_id
        previous = self._latest.get(node)
        self._latest[node], self._observed_at[node] = obs, t
        self._record_metrics(obs, t)
        out: list[AlertTransition] = []
        if previous is not None:
            self._log_changes(previous, obs, t)
            if previous.config_rollbacks is not None and obs.config_rollbacks is not None \
                    and obs.config_rollbacks > previous.config_rollbacks:
                out += self.record_event("config_rollback", {"version": obs.config_version},
                                         t=t, node=node)
        transitions = self.alerts.evaluate(obs, t)
        self._log_transitions(transitions)
        return out + transitions

    def record_event(self, event_type: str, details: Mapping[str, Any] | None = None, *,
                     t: float, node: str | None = None) -> list[AlertTransition]:
        """Append an event; return the transitions of event rules it triggers."""
        node = node if node is not None else self.node_id
        self.events.append(event_type, t, node, details)
        transitions = self.alerts.notify(event_type, t, node or "")
        self._log_transitions(transitions)
        return transitions

    def record_metric(self, name: str, value: float, tags: Mapping[str, Any] | None = None,
                      *, t: float) -> None:
        """Append one sample to the history of ``name`` with ``tags``."""
        self.history.record(name, value, t, tags)

    def tick(self, t: float) -> list[AlertTransition]:
        """Resolve held event alerts whose time is up (call periodically)."""
        transitions = self.alerts.expire(t)
        self._log_transitions(transitions)
        return transitions

    # ---------------------------------------------------------- queries
    def get_history(self, metric: str, limit: int | None = None,
                    tags: Mapping[str, Any] | None = None) -> list[tuple[float, float]]:
        """Samples of ``metric``, newest last; ``tags`` select the series.

        Tags are a filter: ``get_history("term")`` works while one node is
        observed; with several, pass ``tags={"node": ...}``
        (:class:`ValidationFailed` lists the candidates otherwise).
        """
        resolved = self.history.resolve_tags(metric, tags)
        return [] if resolved is None else self.history.history(metric, limit, resolved)

    def get_metrics(self) -> dict[str, Any]:
        """Summary and latest value of every series, plus alert and event counts."""
        series: dict[str, Any] = {}
        for name in self.history.names():
            for tags in self.history.series(name):
                latest = self.history.latest(name, tags)
                series[series_label(name, tags)] = {
                    "name": name, "tags": tags, **(self.history.summary(name, tags) or {}),
                    "latest": latest[1] if latest else None,
                    "latest_t": latest[0] if latest else None}
        return {"series": series, "alerts_active": len(self.alerts.active()),
                "events_recorded": self.events.last_seq, "nodes": sorted(self._latest),
                "dropped_samples": self.history.dropped}

    def get_health(self) -> tuple[str, dict[str, Any]]:
        """``(health, details)`` of ``node_id``, or the worst over observed nodes."""
        nodes = [self.node_id] if self.node_id is not None else sorted(self._latest)
        observed = [n for n in nodes if n in self._latest]
        if not observed:
            return "degraded", {"node": self.node_id, "reasons": ["no observation yet"]}
        summaries = {n: self._health_of(n) for n in observed}
        if self.node_id is not None:
            return summaries[self.node_id]
        health = worst_health(h for h, _ in summaries.values())
        return health, {"nodes": {n: d for n, (_, d) in summaries.items()},
                        "reasons": [f"{n}: {r}" for n, (_, d) in summaries.items()
                                    for r in d["reasons"]]}

    def get_node_metrics(self, node: str) -> dict[str, Any] | None:
        """The latest observation, health and alerts of ``node``; None (not_found) if unseen."""
        obs = self._latest.get(node)
        if obs is None:
            return None
        health, details = self._health_of(node)
        return {"node": node, "observed_at": self._observed_at[node],
                "observation": obs.to_dict(), "health": health, "reasons": details["reasons"],
                "alerts": [a for a in self.alerts.active() if a["node"] == node]}

    def get_cluster_overview(self, observations: Iterable[NodeObservation | Mapping[str, Any]]
                             | None = None) -> dict[str, Any]:
        """The cluster seen from the given observations (default: the latest per node).

        ``leader`` is the one leader named at the highest term, None if no node
        names one; ``leaders_disagree`` is True when nodes at that term name
        different leaders.
        """
        if observations is None:
            obs = list(self._latest.values())
        else:
            obs = [NodeObservation.coerce(o) for o in observations]
        terms = [o.term for o in obs if o.term is not None]
        top = max(terms, default=None)
        named = sorted({o.leader for o in obs if o.leader is not None
                        and (o.term == top or top is None)})
        healths = {o.node_id: health_summary(o, [a for a in self.alerts.active()
                                                 if a["node"] == o.node_id])[0] for o in obs}
        quorum = [o.has_quorum for o in obs if o.has_quorum is not None]
        return {"nodes": sorted(healths), "term": top,
                "leader": named[0] if len(named) == 1 else None,
                "leaders_disagree": len(named) > 1,
                "has_quorum": is_majority(sum(quorum), len(quorum)),
                "health": worst_health(healths.values()), "health_by_node": healths,
                "alerts_active": len(self.alerts.active())}

    def active_alerts(self) -> list[dict[str, Any]]:
        return self.alerts.active()

    def events_since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return self.events.since(seq, limit)

    def latest_observation(self, node: str) -> NodeObservation | None:
        return self._latest.get(node)

    # -------------------------------------------------------- internals
    def _health_of(self, node: str) -> tuple[str, dict[str, Any]]:
        return health_summary(self._latest[node],
                              [a for a in self.alerts.active() if a["node"] == node])

    def _log_changes(self, before: NodeObservation, after: NodeObservation, t: float) -> None:
        """Events for a changed leader, lifecycle state or quorum (unknowns are no change)."""
        changes = []
        if before.has_leader is not None and after.has_leader is not None \
                and before.leader != after.leader:
            changes.append(("leader_changed", before.leader, after.leader))
        for event, name in (("state_changed", "lifecycle_state"),
                            ("quorum_changed", "has_quorum")):
            old, new = getattr(before, name), getattr(after, name)
            if old is not None and new is not None and old != new:
                changes.append((event, old, new))
        for event, old, new in changes:
            self.events.append(event, t, after.node_id, {"from": old, "to": new,
                                                         "term": after.term})

    def _log_transitions(self, transitions: Iterable[AlertTransition]) -> None:
        for tr in transitions:
            self.events.append(f"alert_{tr.kind}", tr.t, tr.node, tr.to_dict())

    def _record_metrics(self, o: NodeObservation, t: float) -> None:
        tags = {"node": o.node_id}
        for name in ("term", "has_leader", "has_quorum", "commit_index", "members",
                     "pending_conflicts", "supervisor_restarts_in_window"):
            value = getattr(o, name)
            if value is not None:
                self.history.record(name, float(value), t, tags)
        for peer, value in (o.phi or {}).items():
            self.history.record("phi", value, t, {**tags, "peer": peer})
        for peer, value in (o.health_scores or {}).items():
            self.history.record("health_score", value, t, {**tags, "peer": peer})
        for sample in o.commit_latencies:
            self.history.record("commit_latency_seconds", sample, t, tags)
