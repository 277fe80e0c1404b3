"""The monitor's pure core: metric history, event log, alert rules and health.

One module each: :mod:`.history` (:class:`MetricHistory`, :class:`EventLog`),
:mod:`.observation` (:class:`NodeObservation`), :mod:`.alerts`
(:class:`AlertRule`, :class:`AlertEngine`), :mod:`.health` and :mod:`.monitor`
(:class:`MonitorCore`, which ties them together).

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

from .alerts import AlertEngine, AlertRule, AlertTransition, Severity, builtin_rules
from .health import CRITICAL_STATES, DEGRADED_STATES, health_summary, worst_health
from .history import EventLog, MetricHistory, series_label
from .monitor import MonitorCore
from .observation import OBSERVED_METRICS, NodeObservation

__all__ = [
    "CRITICAL_STATES", "DEGRADED_STATES", "OBSERVED_METRICS", "AlertEngine", "AlertRule",
    "AlertTransition", "EventLog", "MetricHistory", "MonitorCore", "NodeObservation",
    "Severity", "builtin_rules", "health_summary", "series_label", "worst_health",
]
