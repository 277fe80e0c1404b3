"""What a node's monitor gathers at one instant: :class:`NodeObservation`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from cluster_actors.core.phi import health_score
from cluster_actors.errors import ValidationFailed

#: Metric names :meth:`MonitorCore.observe` records (tagged ``node``; phi and
#: health score also ``peer``).
OBSERVED_METRICS = (
    "term", "has_leader", "has_quorum", "commit_index", "members", "pending_conflicts",
    "supervisor_restarts_in_window", "phi", "health_score", "commit_latency_seconds",
)


_OPTIONAL_INTS = ("term", "commit_index", "members", "supervisor_restarts_in_window",
                  "supervisor_intensity", "pending_conflicts", "config_version",
                  "config_rollbacks", "elections_total", "supervisor_restarts_total",
                  "config_changes_total", "sync_bytes_total")


@dataclass(frozen=True)
class NodeObservation:
    """What one node's components report at one instant; None means "not known".

    ``has_leader`` defaults to ``leader is not None`` when a leader is named.
    ``phi`` maps each watched peer to its phi; ``health_scores`` default to
    :func:`cluster_actors.core.phi.health_score` of those. ``commit_latencies``
    are the commit latency samples (seconds) measured since the previous
    observation. ``*_total`` fields and ``config_rollbacks`` are monotonic
    counters kept by the components. Raises :class:`ValidationFailed` on bad
    fields.
    """

    node_id: str
    leader: str | None = None
    has_leader: bool | None = None
    term: int | None = None
    role: str | None = None
    has_quorum: bool | None = None
    commit_index: int | None = None
    members: int | None = None
    lifecycle_state: str | None = None
    phi: Mapping[str, float] | None = None
    phi_threshold: float = 8.0
    health_scores: Mapping[str, float] | None = None
    supervisor_restarts_in_window: int | None = None
    supervisor_intensity: int | None = None
    pending_conflicts: int | None = None
    config_version: int | None = None
    config_rollbacks: int | None = None
    commit_latencies: tuple[float, ...] = ()
    elections_total: int | None = None
    supervisor_restarts_total: int | None = None
    config_changes_total: int | None = None
    sync_bytes_total: int | None = None

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []
        if not isinstance(self.node_id, str) or not self.node_id:
            errors.append(("node_id", f"must be a non-empty string, got {self.node_id!r}"))
        for name in _OPTIONAL_INTS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                errors.append((name, f"must be an integer >= 0 or None, got {value!r}"))
        if not (isinstance(self.phi_threshold, (int, float)) and self.phi_threshold > 0):
            errors.append(("phi_threshold", f"must be > 0, got {self.phi_threshold!r}"))
        phi = self._floats("phi", self.phi, errors)
        scores = self._floats("health_scores", self.health_scores, errors)
        try:
            latencies = tuple(float(x) for x in self.commit_latencies)
        except (TypeError, ValueError):
            errors.append(("commit_latencies", "must be a sequence of seconds"))
            latencies = ()
        if errors:
            raise ValidationFailed(errors)
        if scores is None and phi is not None:
            scores = {p: health_score(v, self.phi_threshold) for p, v in phi.items()}
        if self.has_leader is None and self.leader is not None:
            object.__setattr__(self, "has_leader", True)
        object.__setattr__(self, "phi", phi)
        object.__setattr__(self, "health_scores", scores)
        object.__setattr__(self, "commit_latencies", latencies)

    @staticmethod
    def _floats(name: str, value: Mapping[str, float] | None,
                errors: list[tuple[str, str]]) -> dict[str, float] | None:
        if value is None:
            return None
        try:
            return {str(k): float(v) for k, v in dict(value).items()}
        except (TypeError, ValueError):
            errors.append((name, "must map peer ids to numbers"))
            return None

    @classmethod
    def coerce(cls, observation: NodeObservation | Mapping[str, Any]) -> NodeObservation:
        """Return ``observation`` itself or build one from a dict of its fields.

        Unknown keys raise :class:`ValidationFailed` naming them.
        """
        if isinstance(observation, cls):
            return observation
        if not isinstance(observation, Mapping):
            raise ValidationFailed([("observation", "must be a NodeObservation or a dict, "
                                     f"got {type(observation).__name__}")])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(observation) - known)
        if unknown:
            raise ValidationFailed([(k, "unknown observation field") for k in unknown])
        if "node_id" not in observation:
            raise ValidationFailed([("node_id", "is required")])
        return cls(**observation)

    @property
    def intensity_ratio(self) -> float | None:
        """Supervisor restarts in the window over the restart intensity (infinite
        for any restart under an intensity of 0); None when either is unknown."""
        restarts, intensity = self.supervisor_restarts_in_window, self.supervisor_intensity
        if restarts is None or intensity is None:
            return None
        if intensity == 0:
            return math.inf if restarts else 0.0
        return restarts / intensity

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts and lists), suitable for sending between processes."""
        data = asdict(self)
        data["commit_latencies"] = list(self.commit_latencies)
        return data
