"""COMMIT_LATENCY_BUCKETS, PrometheusExporter: part of the package
:mod:`cluster_actors.telemetry`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cluster_actors.core.monitoring import NodeObservation
from cluster_actors.errors import ClusterError, ValidationFailed

# ------------------------------------------------------------------ Prometheus

#: Commit latency buckets, seconds: 0.5 ms to 5 s.
COMMIT_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                          1.0, 2.5, 5.0)
_LABELS = ("cluster", "node")
_PEER_LABELS = ("cluster", "node", "peer")
#: Observation totals that feed counters: field -> counter attribute.
_TOTALS = {"elections_total": "elections", "config_changes_total": "config_changes",
           "supervisor_restarts_total": "supervisor_restarts",
           "sync_bytes_total": "sync_bytes"}


class PrometheusExporter:
    """Prometheus metrics of one or more nodes of cluster ``cluster``.

    Counters grow either from the monotonic ``*_total`` fields of the
    observations given to :meth:`update` (a total that went down, i.e. a
    restarted component, counts as a reset) or from the ``count_*`` methods;
    use one or the other per counter, not both. ``node`` is the default node
    label for calls that do not name one.
    """

    def __init__(self, cluster: str = "default", node: str | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.cluster = cluster
        self.node = node
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.leader_changes = Counter("cluster_actors_leader_changes_total",
                                      "Times a node saw a new leader", _LABELS, registry=r)
        self.elections = Counter("cluster_actors_elections_total",
                                 "Elections started", _LABELS, registry=r)
        self.config_changes = Counter("cluster_actors_config_changes_total",
                                      "Configuration changes applied", _LABELS, registry=r)
        self.supervisor_restarts = Counter("cluster_actors_supervisor_restarts_total",
                                           "Children restarted by the supervisor", _LABELS,
                                           registry=r)
        self.sync_bytes = Counter("cluster_actors_sync_bytes_total",
                                  "Bytes moved by data sync rounds", _LABELS, registry=r)
        self.has_leader = Gauge("cluster_actors_has_leader",
                                "1 if the node knows a leader, else 0", _LABELS, registry=r)
        self.term = Gauge("cluster_actors_term", "Current Raft term", _LABELS, registry=r)
        self.commit_index = Gauge("cluster_actors_commit_index", "Raft commit index",
                                  _LABELS, registry=r)
        self.members = Gauge("cluster_actors_members", "Cluster members the node knows",
                             _LABELS, registry=r)
        self.alerts_active = Gauge("cluster_actors_alerts_active", "Alerts currently active",
                                   _LABELS, registry=r)
        self.phi = Gauge("cluster_actors_phi", "Phi accrual suspicion of a peer",
                         _PEER_LABELS, registry=r)
        self.health_score = Gauge("cluster_actors_health_score",
                                  "Health score of a peer: 1 fresh, 0 failed", _PEER_LABELS,
                                  registry=r)
        self.commit_latency = Histogram("cluster_actors_commit_latency_seconds",
                                        "Time from proposal to commit", _LABELS,
                                        buckets=COMMIT_LATENCY_BUCKETS, registry=r)
        self._last_leader: dict[str, str] = {}
        self._totals: dict[tuple[str, str], int] = {}
        self._peers: dict[str, set[str]] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- inputs
    def update(self, observation: NodeObservation | Mapping[str, Any]) -> None:
        """Set every metric the observation knows (None fields are left alone)."""
        o = NodeObservation.coerce(observation)
        node = o.node_id
        labels = (self.cluster, node)
        if o.has_leader is not None:
            self.has_leader.labels(*labels).set(1 if o.has_leader else 0)
        for gauge, value in ((self.term, o.term), (self.commit_index, o.commit_index),
                             (self.members, o.members)):
            if value is not None:
                gauge.labels(*labels).set(value)
        if o.leader is not None and self._last_leader.get(node) != o.leader:
            self._last_leader[node] = o.leader
            self.leader_changes.labels(*labels).inc()
        for field, attribute in _TOTALS.items():
            total = getattr(o, field)
            if total is None:
                continue
            previous = self._totals.get((node, field))
            self._totals[(node, field)] = total
            delta = total if previous is None or total < previous else total - previous
            if delta:
                getattr(self, attribute).labels(*labels).inc(delta)
        if o.phi is not None:
            self._set_peers(node, o.phi, o.health_scores or {})
        for seconds in o.commit_latencies:
            self.commit_latency.labels(*labels).observe(seconds)

    def observe_commit_latency(self, seconds: float, node: str | None = None) -> None:
        """Add one commit latency sample (seconds)."""
        self.commit_latency.labels(self.cluster, self._node(node)).observe(seconds)

    def set_alerts_active(self, count: int, node: str | None = None) -> None:
        self.alerts_active.labels(self.cluster, self._node(node)).set(count)

    def count_leader_change(self, node: str | None = None) -> None:
        self.leader_changes.labels(self.cluster, self._node(node)).inc()

    def count_election(self, node: str | None = None) -> None:
        self.elections.labels(self.cluster, self._node(node)).inc()

    def count_config_change(self, node: str | None = None) -> None:
        self.config_changes.labels(self.cluster, self._node(node)).inc()

    def count_supervisor_restart(self, node: str | None = None) -> None:
        self.supervisor_restarts.labels(self.cluster, self._node(node)).inc()

    def add_sync_bytes(self, nbytes: int, node: str | None = None) -> None:
        self.sync_bytes.labels(self.cluster, self._node(node)).inc(nbytes)

    # -------------------------------------------------------------- output
    def render(self) -> str:
        """The registry in the Prometheus text format (what ``/metrics`` serves)."""
        return prometheus_client.generate_latest(self.registry).decode("utf-8")

    def start_http_server(self, port: int = 0, addr: str = "127.0.0.1") -> tuple[str, int]:
        """Serve ``/metrics`` on ``addr:port`` in a daemon thread; port 0 picks a free one.

        Returns the bound ``(host, port)``. Raises :class:`ClusterError` if
        this exporter is already serving.
        """
        if self._server is not None:
            host, bound = self.address  # type: ignore[misc]
            raise ClusterError(f"already serving metrics on {host}:{bound}: call stop() first")
        started = prometheus_client.start_http_server(port, addr=addr, registry=self.registry)
        self._server, self._thread = started
        return self.address  # type: ignore[return-value]

    @property
    def address(self) -> tuple[str, int] | None:
        """The ``(host, port)`` being served, or None."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop serving and free the port; a no-op when not serving."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    # ----------------------------------------------------------- internals
    def _node(self, node: str | None) -> str:
        node = node if node is not None else self.node
        if node is None:
            raise ValidationFailed([("node", "name the node or give the exporter a default "
                                             "node")])
        return node

    def _set_peers(self, node: str, phi: Mapping[str, float],
                   scores: Mapping[str, float]) -> None:
        """Set phi and health score per peer; drop the series of peers gone since."""
        for peer in self._peers.get(node, set()) - set(phi):
            for gauge in (self.phi, self.health_score):
                with suppress(KeyError):
                    gauge.remove(self.cluster, node, peer)
        for peer, value in phi.items():
            self.phi.labels(self.cluster, node, peer).set(value)
            if peer in scores:
                self.health_score.labels(self.cluster, node, peer).set(scores[peer])
        self._peers[node] = set(phi)


__all__ = ["COMMIT_LATENCY_BUCKETS", "PrometheusExporter"]
