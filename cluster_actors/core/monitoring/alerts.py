"""Alert rules as data, and the engine that fires and resolves them.

A rule has a signal (a number per subject, e.g. phi per peer), a firing
level, a lower clearing level (hysteresis: a value oscillating around the
firing level fires once and resolves once) and a time the condition must hold
before firing. Event rules fire when an event such as ``config_rollback`` is
recorded and resolve after a hold time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cluster_actors.errors import ValidationFailed

from .observation import NodeObservation


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
    ratio = o.intensity_ratio
    return None if ratio is None else {"": ratio}


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
