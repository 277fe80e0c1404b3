"""Prometheus exporter scraped over HTTP on localhost, and OpenTelemetry spans
read back from the in-memory exporter."""

from __future__ import annotations

import io
import json
import sys
import types
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from cluster_actors import telemetry
from cluster_actors.core.monitoring import NodeObservation
from cluster_actors.errors import ClusterError, ValidationFailed
from cluster_actors.telemetry import PrometheusExporter


def scrape(host: str, port: int) -> dict[str, dict[tuple, float]]:
    """GET /metrics and index samples as {sample name: {sorted labels: value}}."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def lbl(**labels: str) -> tuple:
    return tuple(sorted({"cluster": "demo", "node": "n1", **labels}.items()))


@pytest.fixture
def exporter() -> Iterator[PrometheusExporter]:
    exp = PrometheusExporter(cluster="demo", node="n1")
    yield exp
    exp.stop()


def test_metrics_are_served_on_localhost_and_parse(exporter: PrometheusExporter) -> None:
    host, port = exporter.start_http_server()  # port 0: an ephemeral port
    assert host == "127.0.0.1" and port > 0 and exporter.address == (host, port)
    exporter.update(NodeObservation(
        node_id="n1", leader="n2", term=7, commit_index=42, members=3,
        phi={"n2": 0.5, "n3": 9.25}, elections_total=2, supervisor_restarts_total=1,
        config_changes_total=4, sync_bytes_total=1000,
        commit_latencies=(0.0004, 0.003, 0.2, 7.0)))
    exporter.observe_commit_latency(0.0007)
    exporter.set_alerts_active(2)
    s = scrape(host, port)
    assert s["cluster_actors_has_leader"] == {lbl(): 1.0}
    assert s["cluster_actors_term"] == {lbl(): 7.0}
    assert s["cluster_actors_commit_index"] == {lbl(): 42.0}
    assert s["cluster_actors_members"] == {lbl(): 3.0}
    assert s["cluster_actors_alerts_active"] == {lbl(): 2.0}
    assert s["cluster_actors_phi"] == {lbl(peer="n2"): 0.5, lbl(peer="n3"): 9.25}
    assert s["cluster_actors_health_score"][lbl(peer="n3")] == 0.0
    assert s["cluster_actors_leader_changes_total"] == {lbl(): 1.0}
    assert s["cluster_actors_elections_total"] == {lbl(): 2.0}
    assert s["cluster_actors_supervisor_restarts_total"] == {lbl(): 1.0}
    assert s["cluster_actors_config_changes_total"] == {lbl(): 4.0}
    assert s["cluster_actors_sync_bytes_total"] == {lbl(): 1000.0}
    buckets = s["cluster_actors_commit_latency_seconds_bucket"]
    assert buckets[lbl(le="0.0005")] == 1.0
    assert buckets[lbl(le="0.001")] == 2.0
    assert buckets[lbl(le="0.005")] == 3.0
    assert buckets[lbl(le="0.25")] == 4.0
    assert buckets[lbl(le="5.0")] == 4.0
    assert buckets[lbl(le="+Inf")] == 5.0
    assert s["cluster_actors_commit_latency_seconds_count"] == {lbl(): 5.0}
    assert s["cluster_actors_commit_latency_seconds_sum"][lbl()] == pytest.approx(7.2041)


def test_counters_follow_totals_and_gone_peers_disappear(exporter: PrometheusExporter) -> None:
    exporter.update({"node_id": "n1", "leader": "n1", "elections_total": 3,
                     "phi": {"n2": 1.0, "n3": 2.0}})
    exporter.update({"node_id": "n1", "leader": "n1", "elections_total": 5,
                     "phi": {"n2": 1.5}})  # same leader; n3 removed
    exporter.update({"node_id": "n1", "leader": None, "has_leader": False})
    exporter.update({"node_id": "n1", "leader": "n1", "elections_total": 1})  # restarted
    exporter.update({"node_id": "n1", "leader": "n3"})
    exporter.update({"node_id": "n2", "leader": "n3", "term": 9})
    s = {f.name: f for f in text_string_to_metric_families(exporter.render())}
    values = {(x.name, tuple(sorted(x.labels.items()))): x.value
              for f in s.values() for x in f.samples}
    assert values[("cluster_actors_elections_total", lbl())] == 3 + 2 + 1
    assert values[("cluster_actors_leader_changes_total", lbl())] == 2  # n1, then n3
    assert values[("cluster_actors_leader_changes_total", lbl(node="n2"))] == 1
    assert values[("cluster_actors_has_leader", lbl())] == 1.0
    assert values[("cluster_actors_term", lbl(node="n2"))] == 9.0
    phi = {k[1]: v for k, v in values.items() if k[0] == "cluster_actors_phi"}
    assert phi == {lbl(peer="n2"): 1.5}
    assert s["cluster_actors_commit_latency_seconds"].type == "histogram"
    assert s["cluster_actors_leader_changes"].type == "counter"


def test_exporters_have_private_registries_and_servers_stop() -> None:
    a, b = PrometheusExporter("a", "n1"), PrometheusExporter("b", "n1")
    a.count_election()
    assert "cluster_actors_elections_total{" in a.render()
    assert "cluster_actors_elections_total{" not in b.render()
    host, port = a.start_http_server()
    with pytest.raises(ClusterError, match="already serving"):
        a.start_http_server()
    a.stop()
    assert a.address is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5)
    a.stop()  # idempotent
    with pytest.raises(ValidationFailed):
        PrometheusExporter("c").count_election()  # no node anywhere


# ------------------------------------------------------------- OpenTelemetry


@pytest.fixture
def memory() -> Iterator[object]:
    telemetry.configure_tracing("memory")
    yield telemetry.memory_exporter()
    telemetry.configure_tracing("none")


def test_spans_carry_the_documented_attributes(memory: object) -> None:
    with telemetry.election_span("n1", term=4, outcome="won"), \
            telemetry.config_change_span("n1", version=3, term=4):
        pass  # the config change span is a child of the election span
    with telemetry.sync_span("n2", "merkle_tree", peer="n3") as sync:
        sync.set_attribute("bytes", 2048)
    with telemetry.supervisor_restart_span("n3", "consensus", reason="killed"):
        pass
    with telemetry.chaos_fault_span("partition", groups=[["n1"], ["n2", "n3"]]):
        pass
    spans = {s.name: s for s in telemetry.memory_exporter().get_finished_spans()}
    assert set(spans) == {telemetry.SPAN_ELECTION, telemetry.SPAN_CONFIG_CHANGE,
                          telemetry.SPAN_SYNC_ROUND, telemetry.SPAN_SUPERVISOR_RESTART,
                          telemetry.SPAN_CHAOS_FAULT}
    election = spans["cluster_actors.election"]
    assert dict(election.attributes) == {"node": "n1", "term": 4, "outcome": "won"}
    config = spans["cluster_actors.config_change"]
    assert dict(config.attributes) == {"node": "n1", "version": 3, "term": 4}
    assert config.parent is not None and config.parent.span_id == election.context.span_id
    assert dict(spans["cluster_actors.sync_round"].attributes) == {
        "node": "n2", "strategy": "merkle_tree", "peer": "n3", "bytes": 2048}
    assert spans["cluster_actors.supervisor_restart"].attributes["child"] == "consensus"
    chaos = spans["cluster_actors.chaos_fault"].attributes
    assert chaos["fault"] == "partition" and "node" not in chaos  # None is left out
    assert chaos["groups"] == "[['n1'], ['n2', 'n3']]"
    assert election.resource.attributes["service.name"] == "cluster_actors"


def test_a_failing_block_marks_its_span_as_error(memory: object) -> None:
    with pytest.raises(RuntimeError), telemetry.span("cluster_actors.test", node="n1"):
        raise RuntimeError("boom")
    (failed,) = telemetry.memory_exporter().get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


def test_reconfiguring_replaces_the_provider_and_none_disables() -> None:
    first = telemetry.configure_tracing("memory")
    with telemetry.span("one"):
        pass
    second = telemetry.configure_tracing("memory", service_name="other")
    assert second is not first and telemetry.tracer_provider() is second
    with telemetry.span("two"):
        pass
    assert [s.name for s in telemetry.memory_exporter().get_finished_spans()] == ["two"]
    assert telemetry.configure_tracing("none") is None
    with telemetry.span("three") as span:
        assert not span.is_recording()
    with pytest.raises(ClusterError, match="configure_tracing"):
        telemetry.memory_exporter()


def test_bad_exporter_names_change_nothing(memory: object) -> None:
    provider = telemetry.tracer_provider()
    with pytest.raises(ValidationFailed, match="console, memory, otlp, none"):
        telemetry.configure_tracing("zipkin")
    assert telemetry.tracer_provider() is provider


def test_otlp_without_the_package_says_what_to_install(
        memory: object, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = telemetry.tracer_provider()
    for module in telemetry._OTLP_MODULES.values():
        monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(ValidationFailed, match="pip install opentelemetry-exporter-otlp"):
        telemetry.configure_tracing("otlp")
    assert telemetry.tracer_provider() is provider


def test_otlp_uses_the_installed_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[dict[str, str]] = []

    class FakeOTLPSpanExporter(telemetry.InMemorySpanExporter):
        def __init__(self, **kwargs: str) -> None:
            super().__init__()
            created.append(kwargs)

    fake = types.ModuleType("fake_otlp")
    fake.OTLPSpanExporter = FakeOTLPSpanExporter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, telemetry._OTLP_MODULES["http"], fake)
    try:
        provider = telemetry.configure_tracing("otlp", protocol="http",
                                               endpoint="http://127.0.0.1:4318/v1/traces")
        assert provider is not None
        assert created == [{"endpoint": "http://127.0.0.1:4318/v1/traces"}]
    finally:
        telemetry.configure_tracing("none")


def test_console_export_and_configuration_from_the_environment() -> None:
    out = io.StringIO()
    try:
        telemetry.configure_tracing("console", out=out)
        with telemetry.election_span("n5", term=11):
            pass
        exported = json.loads(out.getvalue())
        assert exported["name"] == "cluster_actors.election"
        assert exported["attributes"] == {"node": "n5", "term": 11}
        provider = telemetry.configure_tracing_from_env({"CLUSTER_ACTORS_TRACING": "memory"})
        assert provider is telemetry.tracer_provider()
        assert telemetry.memory_exporter() is not None
        assert telemetry.configure_tracing_from_env({}) is provider  # unset: unchanged
    finally:
        telemetry.configure_tracing("none")
