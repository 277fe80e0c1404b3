"""Prometheus metrics and OpenTelemetry spans for cluster_actors.

Prometheus: a :class:`PrometheusExporter` owns its own ``CollectorRegistry``
(several exporters in one process never collide), turns each
:class:`~cluster_actors.core.monitoring.NodeObservation` into gauge, counter
and histogram values labelled ``cluster`` and ``node``, and serves
``/metrics`` over HTTP, bound to localhost unless told otherwise.

OpenTelemetry: :func:`configure_tracing` installs a module-level
``TracerProvider`` (never the process-global one, which OpenTelemetry lets a
process set only once), exporting to the console, to memory (tests), to an
OTLP collector (when ``opentelemetry-exporter-otlp`` is installed), or
nowhere. :func:`span` and the helpers :func:`election_span`,
:func:`config_change_span`, :func:`sync_span`, :func:`supervisor_restart_span`
and :func:`chaos_fault_span` open spans with the attributes ``term``, ``node``,
``strategy``, ``bytes`` and friends. Until tracing is configured every span is
a no-op. :func:`ensure_tracing` configures a process once (components
that start in the same process, or again after a restart, keep the spans
recorded so far); :func:`start_span` opens a span that another call ends.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cluster_actors.errors import ClusterError, ValidationFailed

# --------------------------------------------------------------- OpenTelemetry

TRACER_NAME = "cluster_actors"
EXPORTERS = ("console", "memory", "otlp", "none")
SPAN_ELECTION = "cluster_actors.election"
SPAN_CONFIG_CHANGE = "cluster_actors.config_change"
SPAN_SYNC_ROUND = "cluster_actors.sync_round"
SPAN_SUPERVISOR_RESTART = "cluster_actors.supervisor_restart"
SPAN_CHAOS_FAULT = "cluster_actors.chaos_fault"
#: Environment variable read by :func:`configure_tracing_from_env`.
TRACING_ENV = "CLUSTER_ACTORS_TRACING"
_OTLP_MODULES = {"grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
                 "http": "opentelemetry.exporter.otlp.proto.http.trace_exporter"}
_lock = threading.Lock()
_provider: TracerProvider | None = None
_memory: InMemorySpanExporter | None = None
#: (exporter, service name, endpoint, protocol) of the current configuration;
#: None after a configuration :func:`ensure_tracing` cannot compare (an ``out``).
_settings: tuple[str, str, str | None, str | None] | None = ("none", TRACER_NAME, None, None)


def configure_tracing(exporter: str = "console", service_name: str = "cluster_actors", *,
                      endpoint: str | None = None, protocol: str | None = None,
                      out: IO[str] | None = None) -> TracerProvider | None:
    """Install this module's tracer provider, replacing (and shutting down) the last one.

    ``exporter``: ``console`` (to ``out``, default stdout), ``memory`` (see
    :func:`memory_exporter`), ``otlp`` (``protocol`` ``grpc`` or ``http``,
    default whichever is installed; ``endpoint`` default from the usual
    ``OTEL_EXPORTER_OTLP_*`` variables) or ``none`` (spans become no-ops;
    returns None). On error (:class:`ValidationFailed`: unknown exporter, OTLP
    package missing) the previous configuration stays in place.
    """
    global _provider, _memory, _settings
    if exporter not in EXPORTERS:
        raise ValidationFailed([("exporter", f"unknown trace exporter {exporter!r}; "
                                 f"expected one of {', '.join(EXPORTERS)}")])
    provider: TracerProvider | None = None
    memory: InMemorySpanExporter | None = None
    if exporter != "none":
        span_exporter: SpanExporter
        if exporter == "otlp":
            span_exporter = _otlp_exporter(endpoint, protocol)
        elif exporter == "memory":
            span_exporter = memory = InMemorySpanExporter()
        else:
            span_exporter = ConsoleSpanExporter(out=out) if out else ConsoleSpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        processor = (BatchSpanProcessor(span_exporter) if exporter == "otlp"
                     else SimpleSpanProcessor(span_exporter))
        provider.add_span_processor(processor)
    with _lock:
        previous, _provider, _memory = _provider, provider, memory
        _settings = None if out is not None else (exporter, service_name, endpoint, protocol)
    if previous is not None:
        previous.shutdown()
    return provider


def configure_tracing_from_env(environ: Mapping[str, str] | None = None
                               ) -> TracerProvider | None:
    """Configure from ``CLUSTER_ACTORS_TRACING`` (an exporter name) if it is set.

    For processes (such as actors) that do not share the driver's
    configuration. Configures as :func:`ensure_tracing` does (the same
    setting again changes nothing). Returns the current provider.
    """
    environ = os.environ if environ is None else environ
    name = environ.get(TRACING_ENV, "").strip().lower()
    if name:
        return ensure_tracing(name, environ.get("OTEL_SERVICE_NAME", "cluster_actors"))
    return _provider


def ensure_tracing(exporter: str, service_name: str = "cluster_actors", *,
                   endpoint: str | None = None, protocol: str | None = None
                   ) -> TracerProvider | None:
    """:func:`configure_tracing`, unless this process already traces exactly so.

    Then nothing changes and the spans recorded so far stay (the in-memory
    exporter is kept), so every component starting in a process, and a
    component restarted in the same process, may call it. Returns the
    current provider.
    """
    with _lock:
        unchanged = _settings == (exporter, service_name, endpoint, protocol)
        provider = _provider
    if unchanged:
        return provider
    return configure_tracing(exporter, service_name, endpoint=endpoint, protocol=protocol)


def configure_tracing_from_options(options: Any) -> TracerProvider | None:
    """Trace as ``options.tracing`` (of a ``ClusterOptions``) says, once per process.

    ``"none"`` leaves the process as it is (untraced, or configured from the
    environment). Returns the current provider.
    """
    exporter = getattr(options, "tracing", "none")
    return _provider if exporter == "none" else ensure_tracing(exporter)


def _otlp_exporter(endpoint: str | None, protocol: str | None) -> SpanExporter:
    if protocol is not None and protocol not in _OTLP_MODULES:
        raise ValidationFailed([("protocol", f"unknown OTLP protocol {protocol!r}; "
                                 "expected grpc or http")])
    for name in [protocol] if protocol else list(_OTLP_MODULES):
        try:
            module = importlib.import_module(_OTLP_MODULES[name])
        except ImportError:
            continue
        kwargs = {"endpoint": endpoint} if endpoint else {}
        return module.OTLPSpanExporter(**kwargs)  # type: ignore[no-any-return]
    raise ValidationFailed([("exporter", "OTLP export needs the exporter package: "
                             "pip install opentelemetry-exporter-otlp")])


def tracer_provider() -> TracerProvider | None:
    """The provider installed by :func:`configure_tracing`, or None."""
    return _provider


def tracer() -> trace.Tracer:
    """A tracer from this module's provider (a no-op tracer until configured)."""
    provider = _provider
    return provider.get_tracer(TRACER_NAME) if provider else trace.NoOpTracer()


def memory_exporter() -> InMemorySpanExporter:
    """The in-memory exporter of ``configure_tracing("memory")``.

    Raises :class:`ClusterError` when tracing is configured otherwise.
    """
    if _memory is None:
        raise ClusterError("tracing does not export to memory: call "
                           "configure_tracing('memory') first")
    return _memory


def _attribute(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str))
                                                for v in value):
        return list(value)
    return str(value)


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _attribute(v) for k, v in attributes.items() if v is not None}


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span around the block, current for its duration; None attributes are left out.

    Other values that OpenTelemetry cannot hold become strings. An exception
    leaving the block is recorded on the span (status ERROR) and re-raised.
    """
    with tracer().start_as_current_span(name, attributes=_attributes(attributes)) as current:
        yield current


def start_span(name: str, start_ns: int | None = None, **attributes: Any) -> trace.Span:
    """Open a span that is not made current; the caller ends it (``span.end()``).

    For spans that begin and end in different calls: a fault that holds, an
    election that began ticks ago (``start_ns``: wall clock, ns since the
    epoch; default now). Attributes as in :func:`span`.
    """
    return tracer().start_span(name, attributes=_attributes(attributes), start_time=start_ns)


def election_span(node: str, term: int,
                  **attributes: Any) -> AbstractContextManager[trace.Span]:
    """Span ``cluster_actors.election``: ``node`` campaigns in ``term``."""
    return span(SPAN_ELECTION, node=node, term=term, **attributes)


def config_change_span(node: str, version: int | None = None, term: int | None = None,
                       **attributes: Any) -> AbstractContextManager[trace.Span]:
    """Span ``cluster_actors.config_change``: a config change to ``version``."""
    return span(SPAN_CONFIG_CHANGE, node=node, version=version, term=term, **attributes)


def sync_span(node: str, strategy: str, nbytes: int | None = None, peer: str | None = None,
              **attributes: Any) -> AbstractContextManager[trace.Span]:
    """Span ``cluster_actors.sync_round``; set ``bytes`` on the span when known later."""
    return span(SPAN_SYNC_ROUND, node=node, strategy=strategy, bytes=nbytes, peer=peer,
                **attributes)


def supervisor_restart_span(node: str, child: str, reason: str | None = None,
                            **attributes: Any) -> AbstractContextManager[trace.Span]:
    """Span ``cluster_actors.supervisor_restart`` of ``child`` on ``node``."""
    return span(SPAN_SUPERVISOR_RESTART, node=node, child=child, reason=reason, **attributes)


def chaos_fault_span(fault: str, node: str | None = None,
                     **attributes: Any) -> AbstractContextManager[trace.Span]:
    """Span ``cluster_actors.chaos_fault``: a ``fault`` (kill, partition, ...) injected."""
    return span(SPAN_CHAOS_FAULT, fault=fault, node=node, **attributes)


__all__ = [
    "EXPORTERS",
    "SPAN_CHAOS_FAULT",
    "SPAN_CONFIG_CHANGE",
    "SPAN_ELECTION",
    "SPAN_SUPERVISOR_RESTART",
    "SPAN_SYNC_ROUND",
    "TRACING_ENV",
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
