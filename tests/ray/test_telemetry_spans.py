"""OpenTelemetry spans from a running cluster on a real local Ray.

The cluster runs with ``tracing="memory"``: every actor process keeps its
spans, read back through ``finished_spans``. The chaos monkey records its
fault spans in this (the driver's) process, traced to memory here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ray

from cluster_actors import telemetry
from cluster_actors.cluster import Cluster
from cluster_actors.core.supervision import SupervisorFlags
from cluster_actors.options import ClusterOptions
from cluster_actors.runtime.naming import actor_name, namespace, node_supervisor_name
from cluster_actors.runtime.spans import cluster_actor_handles, collect_spans
from cluster_actors.runtime.supervisor import (
    ActorFactory,
    ChildSpec,
    SupervisedActor,
    Supervisor,
)
from tests.waiting import wait_until

NAME = "spans"
CALL_GUARD = 30.0  # seconds; a hang guard on single calls


@pytest.fixture(scope="module")
def driver_spans() -> Iterator[Any]:
    telemetry.configure_tracing("memory")
    yield telemetry.memory_exporter()
    telemetry.configure_tracing("none")


@pytest.fixture(scope="module")
def cluster(ray_local: None, driver_spans: Any) -> Iterator[Cluster]:
    c = Cluster.start(NAME, nodes=3, options=ClusterOptions(tracing="memory",
                                                            sync_interval=300))
    yield c
    c.shutdown()


def actor(name: str) -> Any:
    return ray.get_actor(name, namespace=namespace(NAME))


def spans_of(name: str, span_name: str, **attributes: Any) -> list[dict[str, Any]]:
    """The spans named ``span_name`` that actor ``name`` recorded, whose
    attributes include ``attributes``."""
    try:
        records = ray.get(actor(name).finished_spans.remote(), timeout=CALL_GUARD)
    except (ValueError, ray.exceptions.RayActorError):
        return []  # not running right now (restarting)
    return [r for r in records if r["name"] == span_name
            and all(r["attributes"].get(k) == v for k, v in attributes.items())]


def leader_term(cluster: Cluster, leader: str) -> int:
    status = ray.get(actor(actor_name(NAME, leader, "consensus")).status.remote(),
                     timeout=CALL_GUARD)
    assert status["role"] == "leader"
    return int(status["term"])


def test_the_elected_leader_records_an_election_span_with_its_term(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    term = leader_term(cluster, leader)
    (won,) = wait_until(lambda: spans_of(actor_name(NAME, leader, "consensus"),
                                         telemetry.SPAN_ELECTION, term=term, outcome="won"))
    assert won["attributes"]["node"] == leader
    assert won["attributes"]["leader"] == leader
    assert won["start_ns"] <= won["end_ns"]
    assert won["status"] == "UNSET"
    assert won["service"] == "cluster_actors"
    # followers traced no win in that term
    for follower in (n for n in cluster.node_ids if n != leader):
        assert not spans_of(actor_name(NAME, follower, "consensus"), telemetry.SPAN_ELECTION,
                            term=term, outcome="won")


def test_a_forced_election_records_another_election_span(cluster: Cluster) -> None:
    old_leader = cluster.wait_for_leader()
    old_term = leader_term(cluster, old_leader)
    successor = next(n for n in cluster.node_ids if n != old_leader)
    cluster.coordinator(successor).become_leader(timeout=CALL_GUARD)
    new_term = leader_term(cluster, successor)
    assert new_term > old_term
    (won,) = wait_until(lambda: spans_of(actor_name(NAME, successor, "consensus"),
                                         telemetry.SPAN_ELECTION, term=new_term,
                                         outcome="won"))
    assert won["attributes"]["node"] == successor
    # the coordinator traced the forced election it asked for, around the win
    (forced,) = spans_of(actor_name(NAME, successor, "coordinator"), telemetry.SPAN_ELECTION,
                         forced=True)
    assert forced["attributes"]["node"] == successor
    assert forced["start_ns"] <= won["end_ns"] <= forced["end_ns"]


def test_a_config_change_records_a_span_with_its_version(cluster: Cluster) -> None:
    version = cluster.coordinator("n1").propose_config({"metadata": {"owner": "spans"}})
    (change,) = spans_of(actor_name(NAME, "n1", "coordinator"), telemetry.SPAN_CONFIG_CHANGE,
                         version=version)
    attributes = change["attributes"]
    assert attributes["node"] == "n1" and attributes["term"] >= 1
    assert attributes["leader"] == cluster.wait_for_leader()
    assert change["status"] == "UNSET"


def test_a_sync_round_records_strategy_peers_and_bytes(cluster: Cluster) -> None:
    store = cluster.data("n2")
    store.increment("visits", 5)
    store.add("tags", "blue")
    record = store.sync_now(timeout=CALL_GUARD)
    assert record["outcome"] == "completed"
    (full,) = spans_of(actor_name(NAME, "n2", "sync"), telemetry.SPAN_SYNC_ROUND,
                       trigger="full_sync")
    attributes = full["attributes"]
    assert attributes["node"] == "n2" and attributes["strategy"] == "anti_entropy"
    assert attributes["peers"] == ["n1", "n3"] and attributes["messages"] == 2
    assert attributes["bytes"] > 0
    # periodic rounds of the configured strategy are traced as well
    periodic = wait_until(lambda: spans_of(actor_name(NAME, "n2", "sync"),
                                           telemetry.SPAN_SYNC_ROUND, trigger="periodic"))
    assert {s["attributes"]["strategy"] for s in periodic} == {cluster.options.sync_strategy}


def test_a_killed_component_gives_a_chaos_span_and_a_restart_span(
        cluster: Cluster, driver_spans: Any) -> None:
    driver_spans.clear()
    sync_name = actor_name(NAME, "n3", "sync")
    killed_id = actor(sync_name)._actor_id.hex()
    cluster.chaos.kill("n3", component="sync")
    (fault,) = [s for s in driver_spans.get_finished_spans()
                if s.name == telemetry.SPAN_CHAOS_FAULT]
    assert dict(fault.attributes) == {"fault": "kill_component", "target": "n3:sync",
                                      "node": "n3", "component": "sync"}
    supervisor = node_supervisor_name(NAME, "n3")
    (restart,) = wait_until(lambda: spans_of(supervisor, telemetry.SPAN_SUPERVISOR_RESTART,
                                             child="sync"))
    attributes = restart["attributes"]
    assert attributes["node"] == "n3" and attributes["reason"] == "killed"
    assert attributes["cause"] == "sync" and attributes["supervisor"] == supervisor
    assert restart["start_ns"] >= fault.start_time
    # the new sync actor was started traced: its own rounds show up
    assert actor(sync_name)._actor_id.hex() != killed_id
    wait_until(lambda: spans_of(sync_name, telemetry.SPAN_SYNC_ROUND, trigger="periodic"))


def test_collect_spans_gathers_every_actor_once(cluster: Cluster) -> None:
    handles = cluster_actor_handles(NAME, cluster.node_ids)
    assert len(handles) == 1 + 3 * 7  # root, and per node a supervisor and six components
    spans = collect_spans(handles)
    names = {s["name"] for s in spans}
    assert {telemetry.SPAN_ELECTION, telemetry.SPAN_CONFIG_CHANGE, telemetry.SPAN_SYNC_ROUND,
            telemetry.SPAN_SUPERVISOR_RESTART} <= names
    assert all(s["source"] in handles for s in spans)
    assert len({(s["trace_id"], s["span_id"]) for s in spans}) == len(spans)
    assert [s["start_ns"] for s in spans] == sorted(s["start_ns"] for s in spans)
    # the same handle twice yields each span once
    doubled = collect_spans([handles[actor_name(NAME, "n1", "coordinator")]] * 2)
    assert doubled and len(doubled) == len({s["span_id"] for s in doubled})


@ray.remote(num_cpus=0)
class TracedWorker(SupervisedActor):
    """A child that opens a span when it is activated."""

    async def on_activate(self) -> None:
        with telemetry.span("test.activated"):
            pass


def test_a_traced_supervisor_traces_its_children_and_their_restarts(ray_local: None) -> None:
    """Configuring a supervisor (as the root is given ``tracing``) reaches each
    child before it is activated, also a restarted one."""
    ns = "telemetry-spans-tests"
    child = ChildSpec("worker", ActorFactory(TracedWorker, options={"namespace": ns}))
    supervisor = Supervisor.options(namespace=ns).remote(
        SupervisorFlags(intensity=5), [child], name="traced", tracing="memory")
    try:
        ray.get(supervisor.start_children.remote(), timeout=CALL_GUARD)
        first = ray.get(supervisor.get_child.remote("worker"), timeout=CALL_GUARD)
        assert [s["name"] for s in ray.get(first.finished_spans.remote())] == ["test.activated"]
        ray.kill(first, no_restart=True)
        ray.get(supervisor.wait_event.remote("child_restarted", "worker"), timeout=CALL_GUARD)
        second = ray.get(supervisor.get_child.remote("worker"), timeout=CALL_GUARD)
        assert [s["name"] for s in ray.get(second.finished_spans.remote())] == ["test.activated"]
        (restart,) = ray.get(supervisor.finished_spans.remote())
        assert restart["name"] == telemetry.SPAN_SUPERVISOR_RESTART
        assert restart["attributes"] == {"child": "worker", "reason": "killed",
                                         "cause": "worker", "warm": False,
                                         "supervisor": "traced"}  # no node: not a node's
        assert restart["start_ns"] < restart["end_ns"]
    finally:
        ray.get(supervisor.stop.remote(), timeout=CALL_GUARD)
