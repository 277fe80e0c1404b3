"""A node's health (``healthy``, ``degraded``, ``critical``) and why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cluster_actors.core.phi import health_band

from .observation import NodeObservation

#: Lifecycle states in which a node serves but is not at full strength.
DEGRADED_STATES = frozenset({"degraded", "electing", "recovery", "merging", "resyncing",
                             "forming", "joining"})
#: Lifecycle states in which a node cannot serve the cluster.
CRITICAL_STATES = frozenset({"partitioning", "shutdown"})
_RANK = {"healthy": 0, "degraded": 1, "critical": 2}


def health_summary(observation: NodeObservation | Mapping[str, Any],
                   active_alerts: Iterable[Mapping[str, Any]] = ()
                   ) -> tuple[str, dict[str, Any]]:
    """``(health, details)`` for the seed's ``get_health()``.

    ``critical``: quorum lost, a critical lifecycle state, the supervisor
    beyond its intensity, or an active critical alert. ``degraded``: no
    leader, a peer at or above the phi threshold, a degraded lifecycle state,
    pending sync conflicts, supervisor restarts at >= 80 % of intensity, or an
    active warning. Otherwise ``healthy``. ``details["reasons"]`` says why.
    """
    o = NodeObservation.coerce(observation)
    critical: list[str] = []
    degraded: list[str] = []
    if o.has_quorum is False:
        critical.append("quorum lost")
    if o.lifecycle_state in CRITICAL_STATES:
        critical.append(f"lifecycle state {o.lifecycle_state}")
    elif o.lifecycle_state in DEGRADED_STATES:
        degraded.append(f"lifecycle state {o.lifecycle_state}")
    if o.has_leader is False:
        degraded.append("no leader")
    peers = {p: {"phi": v, "band": health_band(v, o.phi_threshold).value,
                 "score": (o.health_scores or {}).get(p)}
             for p, v in sorted((o.phi or {}).items())}
    failed = [p for p, info in peers.items() if info["band"] == "failed"]
    if failed:
        degraded.append("peers above the phi threshold: " + ", ".join(failed))
    if o.pending_conflicts:
        degraded.append(f"{o.pending_conflicts} pending sync conflicts")
    ratio = o.intensity_ratio or 0.0
    if ratio > 1.0:
        critical.append("supervisor restart intensity exceeded")
    elif ratio >= 0.8:
        degraded.append("supervisor restart intensity near its limit")
    alerts = list(active_alerts)
    for alert in alerts:
        (critical if alert.get("severity") == "critical" else degraded).append(
            f"alert {alert.get('alert_id')}")
    health = "critical" if critical else "degraded" if degraded else "healthy"
    return health, {
        "node": o.node_id, "reasons": critical + degraded, "leader": o.leader,
        "has_leader": o.has_leader, "term": o.term, "has_quorum": o.has_quorum,
        "lifecycle_state": o.lifecycle_state, "peers": peers, "alerts_active": len(alerts),
    }


def worst_health(healths: Iterable[str]) -> str:
    """The worst of ``healthy`` < ``degraded`` < ``critical`` (healthy if none)."""
    return max(healths, key=_RANK.__getitem__, default="healthy")
