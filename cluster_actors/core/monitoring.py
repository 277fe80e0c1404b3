"""The monitor's pure core: metric history, event log, alert rules and health.

A node's monitor periodically gathers a :class:`NodeObservation` (leader,
term, quorum, phi per peer, supervisor restarts, pending sync conflicts, ...)
and feeds it to :meth:`MonitorCore.observe` together with the current time.
The core

* records the observation's numbers in :class:`MetricHistory`, one numpy ring
  buffer of ``(t, value)`` pairs per metric name and tag set;
* appends what changed (leader, lifecycle state, quorum) to the
  :class:`EventLog`;
* evaluates the :class:`AlertRule` set with an :class:`AlertEngine` and
  returns the resulting :class:`AlertTransition` values (fired or resolved),
  which the caller delivers to its subscribers. Transitions are also
  appended to the event log as ``alert_fired`` / ``alert_resolved`` events.

Alert rules are data: a signal (a number per subject, e.g. phi per peer), a
firing level, a lower clearing level (hysteresis: a value oscillating around
the firing level fires once and resolves once) and a time the condition must
hold before firing. Event rules fire when an event such as
``config_rollback`` is recorded and resolve after a hold time.

Nothing here reads a clock or does IO: every method that depends on time takes
``t`` (float seconds, non-decreasing). The Prometheus and OpenTelemetry export
lives in :mod:`cluster_actors.telemetry`.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from cluster_actors.core.phi import health_band, health_score
from cluster_actors.errors import ValidationFailed

TagKey = tuple[tuple[str, str], ...]

#: Metric names :meth:`MonitorCore.observe` records (tagged ``node``; phi and
#: health score also ``peer``).
OBSERVED_METRICS = (
    "term", "has_leader", "has_quorum", "commit_index", "members", "pending_conflicts",
    "supervisor_restarts_in_window", "phi", "health_score", "commit_latency_seconds",
)


def _tag_key(tags: Mapping[str, Any] | None) -> TagKey:
    return tuple(sorted((str(k), str(v)) for k, v in (tags or {}).items()))


def series_label(name: str, tags: Mapping[str, Any] | TagKey | None = None) -> str:
    """Prometheus-style label of one series: ``phi{node=n1,peer=n2}`` or ``term``."""
    key = tags if isinstance(tags, tuple) else _tag_key(tags)
    return f"{name}{{{','.join(f'{k}={v}' for k, v in key)}}}" if key else name


# ------------------------------------------------------------------ history


class _Ring:
    """A fixed-capacity ring of float64 ``(t, value)`` rows."""

    __slots__ = ("count", "data", "head")

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros((capacity, 2), dtype=np.float64)
        self.head = 0  # next row to write
        self.count = 0

    def append(self, t: float, value: float) -> None:
        self.data[self.head] = (t, value)
        self.head = (self.head + 1) % len(self.data)
        self.count = min(self.count + 1, len(self.data))

    def ordered(self) -> np.ndarray:
        """A copy of the rows, oldest first."""
        if self.count < len(self.data):
            return self.data[: self.count].copy()
        return np.concatenate((self.data[self.head:], self.data[: self.head]))


class MetricHistory:
    """The last ``capacity`` samples of each series (metric name + tag set).

    At most ``max_series`` series are kept; samples of further series are
    dropped and counted in :attr:`dropped` (a runaway tag value must not eat
    the memory). Values must be real numbers (infinity is allowed: phi can be
    infinite; NaN is not).
    """

    def __init__(self, capacity: int = 1024, max_series: int = 10_000) -> None:
        errors = [(path, "must be an integer >= 1")
                  for path, value in (("capacity", capacity), ("max_series", max_series))
                  if isinstance(value, bool) or not isinstance(value, int) or value < 1]
        if errors:
            raise ValidationFailed(errors)
        self.capacity = capacity
        self.max_series = max_series
        self.dropped = 0
        self._series: dict[str, dict[TagKey, _Ring]] = {}
        self._series_count = 0

    def record(self, name: str, value: float, t: float,
               tags: Mapping[str, Any] | None = None) -> None:
        """Append ``(t, value)`` to the series ``name`` with ``tags``.

        Raises :class:`ValidationFailed` for an empty name or a value that is
        not a real number.
        """
        if not isinstance(name, str) or not name:
            raise ValidationFailed([("name", f"must be a non-empty string, got {name!r}")])
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isnan(number):
            raise ValidationFailed([("value", f"metric {name!r} needs a real number, "
                                              f"got {value!r}")])
        key = _tag_key(tags)
        by_tags = self._series.setdefault(name, {})
        ring = by_tags.get(key)
        if ring is None:
            if self._series_count >= self.max_series:
                self.dropped += 1
                return
            ring = by_tags[key] = _Ring(self.capacity)
            self._series_count += 1
        ring.append(float(t), number)

    def array(self, name: str, tags: Mapping[str, Any] | None = None) -> np.ndarray:
        """The series as a ``(n, 2)`` float64 array of ``(t, value)``, oldest first."""
        ring = self._series.get(name, {}).get(_tag_key(tags))
        return ring.ordered() if ring else np.zeros((0, 2), dtype=np.float64)

    def history(self, name: str, limit: int | None = None,
                tags: Mapping[str, Any] | None = None) -> list[tuple[float, float]]:
        """The newest ``limit`` samples (all if None) of one series, newest last.

        ``tags`` must match the series' tags exactly; an unknown series gives [].
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValidationFailed([("limit", f"must be an integer >= 0 or None, got {limit!r}")])
        rows = self.array(name, tags)
        if limit is not None:
            rows = rows[len(rows) - limit:] if limit else rows[:0]
        return [(float(t), float(v)) for t, v in rows]

    def latest(self, name: str, tags: Mapping[str, Any] | None = None
               ) -> tuple[float, float] | None:
        """The newest ``(t, value)`` of one series, or None if it has none."""
        newest = self.history(name, 1, tags)
        return newest[0] if newest else None

    def summary(self, name: str, tags: Mapping[str, Any] | None = None
                ) -> dict[str, float] | None:
        """count, min, max, mean, p50 and p99 over the buffered values (None if none)."""
        values = self.array(name, tags)[:, 1]
        if not len(values):
            return None
        all_finite = bool(np.isfinite(values).all())
        with np.errstate(invalid="ignore"):  # +inf and -inf together: NaN mean
            mean = float(np.mean(values))
        # interpolating next to an infinity gives NaN: take the nearest sample then
        method = "linear" if all_finite else "nearest"
        p50, p99 = (float(p) for p in np.percentile(values, [50, 99], method=method))
        return {"count": len(values), "min": float(values.min()), "max": float(values.max()),
                "mean": mean, "p50": p50, "p99": p99}

    def names(self) -> list[str]:
        """Metric names with at least one series, sorted."""
        return sorted(self._series)

    def series(self, name: str) -> list[dict[str, str]]:
        """The tag sets recorded under ``name`` (``{}`` for the untagged series)."""
        return [dict(key) for key in sorted(self._series.get(name, {}))]

    def resolve_tags(self, name: str, tags: Mapping[str, Any] | None = None
                     ) -> dict[str, str] | None:
        """The one series of ``name`` that ``tags`` selects, or None if none does.

        An exact tag match wins; otherwise ``tags`` is a filter and must select
        exactly one series, else :class:`ValidationFailed` lists the candidates.
        """
        key = _tag_key(tags)
        by_tags = self._series.get(name, {})
        if key in by_tags:
            return dict(key)
        wanted = set(key)
        matches = [k for k in sorted(by_tags) if wanted <= set(k)]
        if len(matches) > 1:
            raise ValidationFailed([("tags", f"{len(matches)} series of {name!r} match: "
                                     + ", ".join(series_label(name, k) for k in matches)
                                     + "; pass tags that select one")])
        return dict(matches[0]) if matches else None


# ------------------------------------------------------------------- events


class EventLog:
    """The newest ``capacity`` events, each ``{"seq", "t", "type", "node", "details"}``.

    ``seq`` starts at 1 and increases by one per event, also across evictions,
    so a reader that remembers the last ``seq`` it saw gets exactly the newer
    events from :meth:`since` (and sees a gap if some were evicted).
    """

    def __init__(self, capacity: int = 1000) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValidationFailed([("capacity", f"must be an integer >= 1, got {capacity!r}")])
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.last_seq = 0

    def append(self, event_type: str, t: float, node: str | None = None,
               details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record one event and return (a copy of) it."""
        if not isinstance(event_type, str) or not event_type:
            raise ValidationFailed([("type", f"must be a non-empty string, got {event_type!r}")])
        self.last_seq += 1
        event = {"seq": self.last_seq, "t": float(t), "type": event_type, "node": node,
                 "details": dict(details or {})}
        self._events.append(event)
        return _copy_event(event)

    def since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Retained events with ``seq`` greater than the given one, oldest first."""
        newer = [_copy_event(e) for e in self._events if e["seq"] > seq]
        return newer[:limit] if limit is not None else newer

    def __len__(self) -> int:
        return len(self._events)


def _copy_event(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "details": dict(event["details"])}


# -------------------------------------------------------------- observation


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

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts and lists), suitable for sending between processes."""
        data = asdict(self)
        data["commit_latencies"] = list(self.commit_latencies)
        return data


# ------------------------------------------------------------------- alerts


class Severity(str, enum.Enum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


#: A rule's signal: the observation's value per subject ("" = the node itself),
#: or None when the observation does not carry the information (state is kept).
Signal = Callable[[NodeObservation], "Mapping[str, float] | None"]


@dataclass(frozen=True)
class AlertRule:
    """One alert rule, as data.

    A *signal* rule fires for a subject once its value has been ``>= fire_at``
    for ``for_seconds`` and resolves when it drops ``< clear_below`` (default
    ``fire_at``; lower means hysteresis). A subject missing from the signal's
    mapping resolves too (e.g. a removed peer). An *event* rule
    (``trigger_event`` set, no signal) fires when that event is recorded and
    resolves ``hold_seconds`` later; a repeat while active re-arms the hold.
    ``message`` is a format string over ``node``, ``subject``, ``value``,
    ``fire_at``, ``clear_below`` and ``for_seconds``.
    """

    name: str
    severity: Severity
    message: str
    signal: Signal | None = None
    fire_at: float = 1.0
    clear_below: float | None = None
    for_seconds: float = 0.0
    trigger_event: str | None = None
    hold_seconds: float | None = None

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []
        try:
            object.__setattr__(self, "severity", Severity(self.severity))
        except ValueError:
            errors.append(("severity", f"unknown severity {self.severity!r}"))
        if not self.name:
            errors.append(("name", "must be a non-empty string"))
        if (self.signal is None) == (self.trigger_event is None):
            errors.append(("signal", "give exactly one of signal and trigger_event"))
        if self.clear_below is None:
            object.__setattr__(self, "clear_below", self.fire_at)
        elif self.clear_below > self.fire_at:
            errors.append(("clear_below", f"must be <= fire_at ({self.fire_at}), "
                                          f"got {self.clear_below}"))
        if self.for_seconds < 0:
            errors.append(("for_seconds", "must be >= 0"))
        if self.trigger_event is not None and not (self.hold_seconds or 0) > 0:
            errors.append(("hold_seconds", "an event rule needs hold_seconds > 0"))
        if errors:
            raise ValidationFailed([(f"{self.name}.{p}", m) for p, m in errors])

    def describe(self, node: str, subject: str, value: float) -> str:
        return self.message.format(node=node, subject=subject, value=value,
                                   fire_at=self.fire_at, clear_below=self.clear_below,
                                   for_seconds=self.for_seconds)


def _flag(value: bool | None) -> Mapping[str, float] | None:
    return None if value is None else {"": 1.0 if value else 0.0}


def _intensity_ratio(o: NodeObservation) -> Mapping[str, float] | None:
    if o.supervisor_restarts_in_window is None or o.supervisor_intensity is None:
        return None
    if o.supervisor_intensity == 0:
        return {"": math.inf if o.supervisor_restarts_in_window else 0.0}
    return {"": o.supervisor_restarts_in_window / o.supervisor_intensity}


def builtin_rules(*, no_leader_after: float = 2.0, phi_threshold: float = 8.0,
                  phi_clear_ratio: float = 0.5, intensity_fire_ratio: float = 0.8,
                  intensity_clear_ratio: float = 0.5, conflicts_after: float = 5.0,
                  rollback_hold: float = 30.0) -> list[AlertRule]:
    """The six standard rules: no_leader, quorum_lost, phi_high,
    supervisor_intensity, sync_conflicts, config_rollback."""
    return [
        AlertRule("no_leader", Severity.CRITICAL,
                  "{node} has had no leader for more than {for_seconds:g} s",
                  signal=lambda o: None if o.has_leader is None else _flag(not o.has_leader),
                  for_seconds=no_leader_after),
        AlertRule("quorum_lost", Severity.CRITICAL,
                  "{node} has lost quorum: too few voting members are reachable",
                  signal=lambda o: None if o.has_quorum is None else _flag(not o.has_quorum)),
        AlertRule("phi_high", Severity.WARNING,
                  "phi of peer {subject} seen from {node} is {value:.2f} "
                  "(threshold {fire_at:g})",
                  signal=lambda o: o.phi, fire_at=phi_threshold,
                  clear_below=phi_threshold * phi_clear_ratio),
        AlertRule("supervisor_intensity", Severity.WARNING,
                  "{node}'s supervisor used {value:.0%} of its restart intensity",
                  signal=_intensity_ratio, fire_at=intensity_fire_ratio,
                  clear_below=intensity_clear_ratio),
        AlertRule("sync_conflicts", Severity.WARNING,
                  "{node} has had {value:g} unresolved sync conflicts for more than "
                  "{for_seconds:g} s",
                  signal=lambda o: (None if o.pending_conflicts is None
                                    else {"": float(o.pending_conflicts)}),
                  for_seconds=conflicts_after),
        AlertRule("config_rollback", Severity.WARNING,
                  "{node} rolled its configuration back",
                  trigger_event="config_rollback", hold_seconds=rollback_hold),
    ]


@dataclass(frozen=True)
class AlertTransition:
    """An alert that fired or resolved at time ``t``."""

    kind: str  # "fired" | "resolved"
    alert_id: str
    rule: str
    severity: Severity
    node: str
    subject: str
    value: float
    message: str
    t: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity.value}


@dataclass
class _AlertState:
    pending_since: float | None = None
    fired_at: float | None = None
    expires_at: float | None = None
    value: float = 0.0
    message: str = ""


class AlertEngine:
    """Evaluates :class:`AlertRule` values per (rule, node, subject).

    An alert is fired once and stays active, without firing again, until it
    resolves. Transitions come out in rule order, then subject order.
    """

    def __init__(self, rules: Iterable[AlertRule] | None = None) -> None:
        self.rules = list(builtin_rules() if rules is None else rules)
        names = [r.name for r in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationFailed([("rules", f"duplicate rule names: {duplicates}")])
        self._states: dict[tuple[str, str, str], _AlertState] = {}

    @staticmethod
    def alert_id(rule: str, node: str, subject: str = "") -> str:
        return f"{rule}:{node}:{subject}" if subject else f"{rule}:{node}"

    def evaluate(self, observation: NodeObservation | Mapping[str, Any],
                 t: float) -> list[AlertTransition]:
        """Feed one node's observation at time ``t``; return what fired or resolved."""
        obs = NodeObservation.coerce(observation)
        out = self.expire(t)
        for rule in self.rules:
            if rule.signal is None:
                continue
            values = rule.signal(obs)
            if values is None:
                continue
            node = obs.node_id
            known = {s for (r, n, s) in self._states if r == rule.name and n == node}
            for subject in sorted(known | set(values)):
                value = values.get(subject)
                out.extend(self._step(rule, node, subject, value, t))
        return out

    def notify(self, event_type: str, t: float, node: str,
               subject: str = "") -> list[AlertTransition]:
        """An event happened: fire (or re-arm) every event rule it triggers."""
        out = self.expire(t)
        for rule in self.rules:
            if rule.trigger_event != event_type:
                continue
            state = self._states.setdefault((rule.name, node, subject), _AlertState())
            state.expires_at = t + (rule.hold_seconds or 0.0)
            if state.fired_at is None:
                out.append(self._fire(rule, node, subject, 1.0, t, state))
        return out

    def expire(self, t: float) -> list[AlertTransition]:
        """Resolve event alerts whose hold time has passed."""
        out = []
        for (name, node, subject), state in sorted(self._states.items()):
            if state.expires_at is not None and t >= state.expires_at:
                rule = self._rule(name)
                out.append(self._transition("resolved", rule, node, subject, state.value, t,
                                            f"resolved after {rule.hold_seconds:g} s: "
                                            + state.message))
                del self._states[(name, node, subject)]
        return out

    def active(self) -> list[dict[str, Any]]:
        """The active alerts, sorted by id, as plain dicts."""
        return [{"alert_id": self.alert_id(name, node, subject), "rule": name,
                 "severity": self._rule(name).severity.value, "node": node,
                 "subject": subject, "value": s.value, "message": s.message,
                 "since": s.fired_at}
                for (name, node, subject), s in sorted(self._states.items())
                if s.fired_at is not None]

    # ------------------------------------------------------------ internals
    def _step(self, rule: AlertRule, node: str, subject: str, value: float | None,
              t: float) -> list[AlertTransition]:
        key = (rule.name, node, subject)
        state = self._states.get(key)
        if state is not None and state.fired_at is not None:
            if value is None or value < (rule.clear_below or 0.0):
                del self._states[key]
                why = "no longer observed" if value is None else f"value {value:g}"
                return [self._transition("resolved", rule, node, subject,
                                         state.value if value is None else value, t,
                                         f"resolved ({why}): {state.message}")]
            state.value = value
            return []
        if value is None or value < rule.fire_at:
            self._states.pop(key, None)
            return []
        state = state or self._states.setdefault(key, _AlertState())
        if state.pending_since is None:
            state.pending_since = t
        if t - state.pending_since >= rule.for_seconds:
            return [self._fire(rule, node, subject, value, t, state)]
        return []

    def _fire(self, rule: AlertRule, node: str, subject: str, value: float, t: float,
              state: _AlertState) -> AlertTransition:
        state.fired_at, state.value = t, value
        state.message = rule.describe(node, subject, value)
        return self._transition("fired", rule, node, subject, value, t, state.message)

    def _transition(self, kind: str, rule: AlertRule, node: str, subject: str, value: float,
                    t: float, message: str) -> AlertTransition:
        return AlertTransition(kind, self.alert_id(rule.name, node, subject), rule.name,
                               rule.severity, node, subject, float(value), message, float(t))

    def _rule(self, name: str) -> AlertRule:
        return next(r for r in self.rules if r.name == name)


# ------------------------------------------------------------------- health

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
    ratio = (_intensity_ratio(o) or {}).get("", 0.0)
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


# --------------------------------------------------------------- the core


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
                "has_quorum": bool(quorum) and sum(quorum) * 2 > len(quorum),
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


__all__ = [
    "CRITICAL_STATES", "DEGRADED_STATES", "OBSERVED_METRICS", "AlertEngine", "AlertRule",
    "AlertTransition", "EventLog", "MetricHistory", "MonitorCore", "NodeObservation",
    "Severity", "builtin_rules", "health_summary", "series_label", "worst_health",
]
