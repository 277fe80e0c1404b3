"""Telemetry: the Prometheus exporter (``metrics``) and OpenTelemetry spans (``tracing``).
It stands low, like logging: it imports nothing of the project above ``core``.

Re-exports what the module ``cluster_actors.telemetry`` exported before it became this
package."""

from __future__ import annotations

from .tracing import (
    _OTLP_MODULES as _OTLP_MODULES,
)
from .tracing import (
    EXPORTERS,
    SPAN_CHAOS_FAULT,
    SPAN_CONFIG_CHANGE,
    SPAN_ELECTION,
    SPAN_SUPERVISOR_RESTART,
    SPAN_SYNC_ROUND,
    TRACING_ENV,
    chaos_fault_span,
    config_change_span,
    configure_tracing,
    configure_tracing_from_env,
    configure_tracing_from_options,
    election_span,
    ensure_tracing,
    memory_exporter,
    span,
    start_span,
    supervisor_restart_span,
    sync_span,
    tracer,
    tracer_provider,
)
from .tracing import (
    InMemorySpanExporter as InMemorySpanExporter,
)

__all__ = [
    "COMMIT_LATENCY_BUCKETS",
    "EXPORTERS",
    "SPAN_CHAOS_FAULT",
    "SPAN_CONFIG_CHANGE",
    "SPAN_ELECTION",
    "SPAN_SUPERVISOR_RESTART",
    "SPAN_SYNC_ROUND",
    "TRACING_ENV",
    "PrometheusExporter",
    "chaos_fault_span",
    "config_change_span",
    "configure_tracing",
    "configure_tracing_from_env",
    "configure_tracing_from_options",
    "election_span",
    "ensure_tracing",
    "memory_exporter",
    "span",
    "start_span",
    "supervisor_restart_span",
    "sync_span",
    "tracer",
    "tracer_provider",
]


def __getattr__(name: str) -> object:
    """The Prometheus names, imported on first use: prometheus-client and the
    monitoring core cost every component process about 0.1 s to import, and
    only the monitor serves ``/metrics``."""
    if name in ("COMMIT_LATENCY_BUCKETS", "PrometheusExporter"):
        from . import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
