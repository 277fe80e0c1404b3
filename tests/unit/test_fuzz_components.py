"""Hypothesis calls every public remote method of the heartbeat, membership,
sync and monitor components (run in-process, see ``shells.py``) with wrong
types, huge numbers, NaN, unpicklable and oversized values: each call either
answers or raises a ClusterError, and a refused call leaves the component's
state as it was; so does every call of the data store's client (over the
in-process sync component). The consensus actor's remote calls are fuzzed the
same way in ``test_fuzz_consensus.py``, the coordinator's and its clients' in
``test_fuzz_coordinator.py``, the KV client's in ``test_limits.py``."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_actors.actors.heartbeat import HeartbeatActor
from cluster_actors.actors.membership import MembershipActor
from cluster_actors.actors.monitor import MonitorActor
from cluster_actors.actors.sync import SyncActor
from cluster_actors.client.data import DataStore
from cluster_actors.core.config import ConfigStore
from cluster_actors.core.data_ops import DATA_OPS
from cluster_actors.errors import ClusterError
from tests.unit.shells import InProcessHandle, in_process_clients, shell

HANG = 10.0
#: not remote calls of the component's own: lifecycle, tracing and the data
#: plane (process-wide), joining through another node's actor (needs Ray)
SKIPPED = frozenset({
    "activate", "on_activate", "on_start", "on_stop", "graceful_stop", "until_stopped",
    "configure_tracing", "finished_spans", "dataplane_address", "dataplane_break_links",
    "dataplane_stats", "join_cluster", "ping"})
#: monitor calls that ask the other nodes' monitors (through Ray)
ASKS_PEERS = frozenset({"force_check", "get_cluster_overview", "get_node_metrics"})

BAD = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18),
    st.just(10**400), st.floats(), st.just(math.nan), st.just(math.inf), st.just(-math.inf),
    st.text(max_size=12), st.just("n2"), st.just("x" * 100_000), st.binary(max_size=8),
    st.just(b"\0" * (2 << 20)), st.just(lambda: 1), st.just(threading.Lock()),
    st.just(object()), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers() | st.floats(), max_size=3),
    st.just({"n2": math.nan}), st.just({1: 2}), st.just({"type": "heartbeat"}),
    st.just(("put", "k", 1)), st.just(("counter_add", "k", 10**30)),
    st.just(("counter_add", "k", math.nan)), st.just(("register_set", "k", lambda: 1)),
)
#: a timeout a test can afford: bad ones, or short
TIMEOUT = st.one_of(st.none(), st.just(math.nan), st.just(-1), st.just("1"),
                    st.floats(min_value=0, max_value=0.01))


def remote_methods(actor_class: Any) -> dict[str, inspect.Signature]:
    plain = actor_class.__ray_actor_class__
    return {name: inspect.signature(getattr(plain, name)) for name in sorted(dir(plain))
            if not name.startswith("_") and name not in SKIPPED
            and not (name in ASKS_PEERS and actor_class is MonitorActor)
            and inspect.iscoroutinefunction(getattr(plain, name))}


def arguments(signature: inspect.Signature,
              special: dict[str, st.SearchStrategy[Any]] | None = None
              ) -> st.SearchStrategy[tuple[Any, ...]]:
    """Positional arguments for a call of ``signature``: BAD values, a
    TIMEOUT for ``timeout``, ``special[name]`` for the parameters it names."""
    special = {"timeout": TIMEOUT, **(special or {})}
    params = [p for name, p in signature.parameters.items()
              if name not in ("self", "_ray_trace_ctx")
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in params)
    names = [p.name for p in params]
    if "timeout" in names:  # always given: the default would wait for seconds
        required = max(required, names.index("timeout") + 1)
    values = [special.get(p.name, BAD) for p in params]
    return st.integers(required, len(params)).flatmap(
        lambda n: st.tuples(*values[:n]))


def _calls(actor_class: Any) -> st.SearchStrategy[tuple[str, tuple[Any, ...]]]:
    methods = remote_methods(actor_class)
    return st.sampled_from(sorted(methods)).flatmap(
        lambda name: st.tuples(st.just(name), arguments(methods[name])))


def _state(actor: Any) -> Any:
    """What a refused call must not change."""
    if isinstance(actor, HeartbeatActor.__ray_actor_class__):
        return (actor._settings(), dict(actor.own_metadata), sorted(actor.registry.peers()),
                sorted(actor.nodes), actor.transport.faults.describe())
    if isinstance(actor, MembershipActor.__ray_actor_class__):
        return actor.membership.digest(), actor.membership.quorum_size()
    if isinstance(actor, SyncActor.__ray_actor_class__):
        return (actor.store.state_hash(), actor.store.conflicts(), actor.mode,
                actor.strategy_name, sorted(actor.transport.peers))
    core = actor.core  # the monitor's
    return (core.history._series_count, core.history.dropped, len(core.events),
            core.events_since(0)[-1:], sorted(actor._alert_subscribers))


class Loop:
    """One event loop on a thread for the whole module: the shells live on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(HANG)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def actors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    loop = Loop()
    data_dir = str(tmp_path_factory.mktemp("fuzz"))
    contexts = {"heartbeat": shell(HeartbeatActor), "membership": shell(MembershipActor),
                "sync": shell(SyncActor, data_dir=data_dir),
                "monitor": shell(MonitorActor)}
    started = {name: loop.run(context.__aenter__()) for name, context in contexts.items()}
    started["_loop"] = loop
    yield started
    for context in contexts.values():
        loop.run(context.__aexit__(None, None, None))
    loop.close()


def _check(actors: dict[str, Any], component: str, call: tuple[str, tuple[Any, ...]]) -> None:
    actor, loop = actors[component], actors["_loop"]
    method, args = call
    before = _state(actor)
    try:
        loop.run(getattr(actor, method)(*args))
    except ClusterError:
        assert _state(actor) == before, f"{method}{args!r:.200} changed the state"
    except Exception as error:
        raise AssertionError(f"{component}.{method}{args!r:.200} raised "
                             f"{type(error).__name__}: {error}"[:600]) from error


FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(call=_calls(HeartbeatActor))
def test_every_heartbeat_remote_call_answers_or_raises_a_cluster_error(
        actors: dict[str, Any], call: tuple[str, tuple[Any, ...]]) -> None:
    _check(actors, "heartbeat", call)


@FUZZ
@given(call=_calls(MembershipActor))
def test_every_membership_remote_call_answers_or_raises_a_cluster_error(
        actors: dict[str, Any], call: tuple[str, tuple[Any, ...]]) -> None:
    _check(actors, "membership", call)


@FUZZ
@given(call=_calls(SyncActor))
def test_every_sync_remote_call_answers_or_raises_a_cluster_error(
        actors: dict[str, Any], call: tuple[str, tuple[Any, ...]]) -> None:
    _check(actors, "sync", call)


@FUZZ
@given(call=_calls(MonitorActor))
def test_every_monitor_remote_call_answers_or_raises_a_cluster_error(
        actors: dict[str, Any], call: tuple[str, tuple[Any, ...]]) -> None:
    _check(actors, "monitor", call)


def test_the_fuzzed_methods_are_every_public_remote_method() -> None:
    calls: dict[str, Callable[..., Any]] = {}
    for actor_class in (HeartbeatActor, MembershipActor, SyncActor, MonitorActor):
        calls.update({f"{actor_class.__ray_actor_class__.__name__}.{name}": None  # type: ignore[misc]
                      for name in remote_methods(actor_class)})
    assert "SyncActor.data_update" in calls and "HeartbeatActor.receive" in calls
    assert "MembershipActor.request_join" in calls and "MonitorActor.observe" in calls


CONFIG_CALLS = st.one_of(
    st.tuples(st.sampled_from(["get", "record", "prepare_rollback", "prepare_import",
                               "validate", "prepare", "rollback", "import_config"]),
              st.tuples(BAD)),
    st.tuples(st.just("set"), st.tuples(BAD, BAD)),
)


@FUZZ
@given(call=CONFIG_CALLS)
def test_every_config_store_call_a_coordinator_forwards_answers_or_raises_a_cluster_error(
        call: tuple[str, tuple[Any, ...]]) -> None:
    store = ConfigStore()
    store.set("heartbeat_interval", 2000)
    method, args = call
    before = store.export_config(), store.version
    try:
        getattr(store, method)(*args)
    except ClusterError:
        assert (store.export_config(), store.version) == before
    except Exception as error:
        raise AssertionError(f"ConfigStore.{method}{args!r:.200} raised "
                             f"{type(error).__name__}: {error}"[:600]) from error


DATA_OP = st.sampled_from(sorted(DATA_OPS)).flatmap(lambda name: st.tuples(
    st.just(name), st.one_of(st.just("k"), st.just("m"), BAD),
    *[BAD] * (len(DATA_OPS[name]) - 1)))


@FUZZ
@given(op=DATA_OP)
def test_every_data_operation_with_bad_arguments_answers_or_raises_a_cluster_error(
        actors: dict[str, Any], op: tuple[Any, ...]) -> None:
    _check(actors, "sync", ("data_update", (op,)))


# --------------------------------------------------- the data store's client
def data_client_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(DataStore, name)) for name in sorted(dir(DataStore))
            if not name.startswith("_") and callable(getattr(DataStore, name))}


DATA_CLIENT_CALLS = st.sampled_from(sorted(data_client_methods())).flatmap(
    lambda name: st.tuples(st.just(name), arguments(data_client_methods()[name])))


@pytest.fixture(scope="module")
def data_store(actors: dict[str, Any]) -> Iterator[DataStore]:
    store = DataStore("c", "n1", timeout=5.0)
    with in_process_clients():
        store._sync._handle = InProcessHandle(actors["sync"], actors["_loop"].loop)
        assert store.increment("fuzz/reached", 2) == 2  # the calls reach the component
        yield store


@FUZZ
@given(call=DATA_CLIENT_CALLS)
def test_every_data_store_client_call_answers_or_raises_a_cluster_error(
        actors: dict[str, Any], data_store: DataStore,
        call: tuple[str, tuple[Any, ...]]) -> None:
    method, args = call
    before = _state(actors["sync"])
    try:
        getattr(data_store, method)(*args)
    except ClusterError:
        assert _state(actors["sync"]) == before, f"{method}{args!r:.200} changed the state"
    except Exception as error:
        raise AssertionError(f"DataStore.{method}{args!r:.200} raised "
                             f"{type(error).__name__}: {error}"[:600]) from error


def test_the_fuzzed_data_store_calls_are_its_public_calls() -> None:
    assert {"update", "increment", "put_field", "delete", "get", "resolve_conflict",
            "vector_clock", "sync_now"} <= set(data_client_methods())
