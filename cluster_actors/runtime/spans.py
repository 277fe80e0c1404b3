"""Spans recorded in actor processes, read back as plain dicts.

With ``configure_tracing("memory")`` (``ClusterOptions(tracing="memory")``)
every actor process keeps its finished spans in memory.
:meth:`~cluster_actors.runtime.supervisor.SupervisedActor.finished_spans`
returns them from one actor (:func:`recorded_spans` in that process);
:func:`collect_spans` gathers them from many actors at once and
:func:`cluster_actor_handles` names the actors of a cluster. The memory
exporter keeps every span until it is cleared: it is meant for tests and
short diagnostics, not for a cluster that runs for days.

A span record is ``{"name", "attributes", "start_ns", "end_ns", "status",
"status_description", "trace_id", "span_id", "parent_id", "service",
"pid"}`` (ids in hex, times in ns since the epoch, ``status`` ``UNSET``,
``OK`` or ``ERROR``, sequence attributes as lists); :func:`collect_spans`
adds ``source``, the name of the actor it came from.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ray
from opentelemetry.sdk.trace import ReadableSpan

from .. import telemetry
from .naming import (
    COMPONENTS,
    actor_name,
    host_name,
    namespace,
    node_supervisor_name,
    root_supervisor_name,
)


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as a plain, picklable dict (see the module doc)."""
    context, parent = span.context, span.parent
    return {
        "name": span.name,
        "attributes": {k: list(v) if isinstance(v, tuple) else v
                       for k, v in (span.attributes or {}).items()},
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "trace_id": format(context.trace_id, "032x") if context else None,
        "span_id": format(context.span_id, "016x") if context else None,
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "service": span.resource.attributes.get("service.name"),
        "pid": os.getpid(),
    }


def recorded_spans(clear: bool = False) -> list[dict[str, Any]]:
    """The spans this process finished, oldest first, if it traces to memory, else [].

    ``clear`` forgets them once read.
    """
    if telemetry.tracer_provider() is None:
        return []
    try:
        exporter = telemetry.memory_exporter()
    except Exception:  # traced, but not to memory
        return []
    spans = exporter.get_finished_spans()
    if clear:
        exporter.clear()
    return sorted((span_record(s) for s in spans), key=lambda r: r["start_ns"] or 0)


def collect_spans(handles: Mapping[str, Any] | Iterable[Any], timeout: float = 10.0,
                  clear: bool = False) -> list[dict[str, Any]]:
    """The recorded spans of every actor in ``handles``, oldest first.

    ``handles`` maps a source name (added to each record as ``source``) to
    an actor handle, or is a plain iterable of handles (``source`` is then
    the position). Each actor must offer ``finished_spans`` (every
    supervised actor does). Actors that are dead, do not answer within
    ``timeout`` seconds in all, or fail are left out. A span seen through
    two handles of one process (components hosted together) is kept once.
    """
    named = dict(handles) if isinstance(handles, Mapping) else {
        str(i): handle for i, handle in enumerate(handles)}
    refs: dict[Any, str] = {}
    for source, handle in named.items():
        with contextlib.suppress(Exception):
            refs[handle.finished_spans.remote(clear)] = source
    if not refs:
        return []
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    seen: set[tuple[str | None, str | None]] = set()
    out: list[dict[str, Any]] = []
    for ref in ready:
        try:
            records = ray.get(ref)
        except Exception:
            continue
        for record in records:
            key = (record.get("trace_id"), record.get("span_id"))
            if key in seen:
                continue
            seen.add(key)
            out.append({**record, "source": refs[ref]})
    out.sort(key=lambda r: r["start_ns"] or 0)
    return out


def cluster_actor_handles(cluster: str, node_ids: Sequence[str]) -> dict[str, Any]:
    """The running actors of cluster ``cluster`` by name: its root supervisor,
    each node's supervisor and components (or host, ``per_node``). Actors not running are left out."""
    names = [root_supervisor_name(cluster)]
    for node_id in node_ids:
        names.append(node_supervisor_name(cluster, node_id))
        names.append(host_name(cluster, node_id))
        names.extend(actor_name(cluster, node_id, c) for c in COMPONENTS)
    handles: dict[str, Any] = {}
    for name in names:
        with contextlib.suppress(ValueError):
            handles[name] = ray.get_actor(name, namespace=namespace(cluster))
    return handles


__all__ = ["cluster_actor_handles", "collect_spans", "recorded_spans", "span_record"]
