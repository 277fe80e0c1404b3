"""Hypothesis calls the public client calls (data, config, coordinator, the
components' clients, KV) of one small running cluster with wrong types, huge
numbers, NaN, unpicklable and oversized values: each either answers or raises
a ClusterError, and a refused call leaves the written replica's CRDT state
and the configuration as they were. The examples are few (one Ray call each); the
in-process fuzz of every remote method is ``tests/unit/test_fuzz_components.py``."""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_actors.cluster import Cluster
from cluster_actors.errors import ClusterError

HANG = 30.0  # seconds; only catches hangs

BAD = st.one_of(
    st.none(), st.booleans(), st.integers(), st.just(10**400), st.floats(),
    st.just(math.nan), st.just(math.inf), st.text(max_size=8), st.just("x" * 100_000),
    st.just(b"\0" * (2 << 20)), st.just(threading.Lock()), st.just(lambda: 1),
    st.lists(st.integers(), max_size=2), st.just({"n2": math.nan}), st.just({1: 2}))

#: (client, method, arity): calls a user makes; none that stops, splits,
#: moves leadership or removes a member with a valid argument
CALLS: list[tuple[str, str, int]] = [
    *[("data", m, n) for m, n in [
        ("update", 1), ("increment", 2), ("decrement", 2), ("add", 2), ("remove", 2),
        ("set", 2), ("set_value", 2), ("put_field", 3), ("remove_field", 2), ("get", 1),
        ("entry", 1), ("resolve_conflict", 3), ("vector_clock", 1)]],
    *[("config", m, n) for m, n in [
        ("get_config", 1), ("set_config", 2), ("validate_config", 1), ("rollback", 1),
        ("import_config", 1)]],
    *[("coordinator", m, n) for m, n in [
        ("get_config", 1), ("propose_config", 1), ("approve_config", 1),
        ("get_member_info", 1), ("resolve_conflict", 3), ("lifecycle_history", 1)]],
    *[("heartbeat", m, n) for m, n in [
        ("configure", 2), ("get_node_health", 1), ("receive_heartbeat", 2)]],
    *[("membership", m, n) for m, n in [("get_member_info", 1), ("get_quorum", 1)]],
    *[("monitor", m, n) for m, n in [
        ("get_node_metrics", 1), ("get_history", 2), ("get_events", 2),
        ("record_metric", 2)]],
    *[("kv", m, n) for m, n in [("put", 2), ("get", 1), ("delete", 1), ("cas", 3)]],
]


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start(f"fuzz-{uuid.uuid4().hex[:8]}", nodes=3)
    try:
        c.wait_for_leader(timeout=HANG)
        yield c
    finally:
        c.shutdown()


def _client(cluster: Cluster, name: str) -> Any:
    if name == "data":
        return cluster.data("n1")
    if name == "config":
        return cluster.config("n1")
    if name == "coordinator":
        return cluster.coordinator("n1")
    if name == "kv":
        return cluster.kv
    return getattr(cluster.node("n1"), name)


def _state(cluster: Cluster) -> tuple[Any, ...]:
    """n1's CRDT state (only n1 is written to, so nothing else moves it) and
    the configuration's version."""
    return cluster.data("n1").state_hash(), cluster.config("n1").get_version()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(call=st.sampled_from(CALLS).flatmap(
    lambda c: st.tuples(st.just(c), st.lists(BAD, min_size=c[2], max_size=c[2]))))
def test_fuzzed_client_calls_answer_or_raise_a_cluster_error_and_refusals_change_nothing(
        cluster: Cluster, call: tuple[tuple[str, str, int], list[Any]]) -> None:
    (client, method, _), args = call
    before = _state(cluster)
    target: Callable[..., Any] = getattr(_client(cluster, client), method)
    try:
        target(*args)
    except ClusterError:
        assert _state(cluster) == before, f"{client}.{method} changed the state"
    except Exception as error:
        raise AssertionError(f"{client}.{method}{tuple(args)!r:.200} raised "
                             f"{type(error).__name__}: {str(error)[:300]}") from error
