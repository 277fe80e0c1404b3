"""Hypothesis calls every public remote method of the coordinator with wrong
types, huge numbers, NaN, unpicklable and oversized values. The coordinator
runs in-process over a one-node cluster's consensus actor (its sibling,
called directly as the ``per_node`` placement does; ``test_limits.Node``):
each call either answers or raises a ClusterError, and a refused call leaves
the replicated state (the state machine's hash, the configuration version,
the Raft configuration) and the coordinator's own (lifecycle, partition,
split, upgrade) as they were. No Ray is started: a call that would reach
another actor finds none."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_actors.actors.coordinator import CoordinatorActor
from cluster_actors.client.config import ConfigClient
from cluster_actors.client.coordinator import Coordinator
from cluster_actors.errors import ClusterError
from cluster_actors.runtime.hosting import LocalComponent
from tests.unit.shells import InProcessHandle, in_process_clients
from tests.unit.test_fuzz_components import BAD, SKIPPED, arguments
from tests.unit.test_limits import Node, founding_node

#: calls that end this node (``stop``, ``leave_cluster``: tested with Ray)
ENDS_THE_NODE = frozenset({"stop", "leave_cluster"})
PLAIN = CoordinatorActor.__ray_actor_class__  # type: ignore[attr-defined]


def remote_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(PLAIN, name)) for name in sorted(dir(PLAIN))
            if not name.startswith("_") and name not in SKIPPED | ENDS_THE_NODE
            and inspect.iscoroutinefunction(getattr(PLAIN, name))}


METHODS = remote_methods()
CALLS = st.sampled_from(sorted(METHODS)).flatmap(
    lambda name: st.tuples(st.just(name), arguments(METHODS[name])))


class Coordinated:
    """A one-node cluster's consensus actor and its node's coordinator, on one
    event loop."""

    def __init__(self, node: Node) -> None:
        self.node = node
        consensus = LocalComponent(node.actor, types.SimpleNamespace(hex=lambda: "local"))
        coordinator = PLAIN("fuzz", "n1", ["n1"], {"data_plane": False})

        def sibling(component: str) -> Any:
            if component == "consensus":
                return consensus
            raise ClusterError(f"{component} is not running (in-process)")

        async def not_restarted() -> bool:
            return False

        def no_task(coroutine: Any, *_args: Any) -> None:
            coroutine.close()

        coordinator.sibling = sibling
        coordinator._was_restarted = not_restarted
        coordinator.run_forever = no_task
        coordinator.every = lambda *_args, **_kwargs: None
        self.coordinator = coordinator
        node.run(self._start())

    async def _start(self) -> None:
        await self.coordinator.on_start()
        self.coordinator.started = True

    def state(self) -> Any:
        c, core = self.coordinator, self.node.actor.core
        return (self.node.state(), core.sm.config.version, sorted(core.raft.conf.voters),
                sorted(core.raft.conf.learners), c.lifecycle.state, c._partition, c._split,
                c._upgrade, core.sm.approvals.pending_ids())


def _no_ray(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("an in-process coordinator call tried to start Ray")


@pytest.fixture(scope="module")
def coordinated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinated]:
    with pytest.MonkeyPatch.context() as patch:
        if not ray.is_initialized():  # a peer lookup must not auto-start a Ray instance
            patch.setattr(ray, "init", _no_ray)
        with founding_node(str(tmp_path_factory.mktemp("coordinator")),
                           "coordinator-fuzz") as node:
            yield Coordinated(node)


@settings(max_examples=600, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(call=CALLS)
def test_every_coordinator_remote_call_answers_or_raises_a_cluster_error(
        coordinated: Coordinated, call: tuple[str, tuple[Any, ...]]) -> None:
    method, args = call
    node = coordinated.node
    node.settle()  # leads (a one-node cluster that stepped down leads again), no leases
    before = coordinated.state()
    try:
        node.run(getattr(coordinated.coordinator, method)(*args))
    except ClusterError:
        assert coordinated.state() == before, f"{method}{args!r:.200} changed the state"
    except Exception as error:
        raise AssertionError(f"coordinator.{method}{args!r:.200} raised "
                             f"{type(error).__name__}: {error}"[:600]) from error
    assert node.ticking() and node.actor.core.failed is None


def test_the_fuzzed_coordinator_methods_are_every_public_remote_method() -> None:
    public = {name for name in dir(PLAIN) if not name.startswith("_")
              and inspect.iscoroutinefunction(getattr(PLAIN, name))}
    assert set(METHODS) == public - SKIPPED - ENDS_THE_NODE
    assert {"set_config", "propose_config", "approve_config", "rollback", "import_config",
            "approve_join", "reject_join", "report_partition", "split",
            "request_leadership", "resolve_conflict"} <= set(METHODS)


# ------------------------------------------- the coordinator's public clients
#: the calls that end the node or join another cluster (tested with Ray), and
#: the subscriptions of a local callable (a thread each; test_subscriptions.py)
CLIENT_SKIPPED = frozenset({"stop", "leave_cluster", "join_cluster", "handle", "node_id"})
SUBSCRIBER = BAD.filter(lambda value: not callable(value))


def client_methods(client_class: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(client_class, name))
            for name in sorted(dir(client_class))
            if not name.startswith("_") and name not in CLIENT_SKIPPED
            and callable(getattr(client_class, name))}


CLIENT_CLASSES = {"coordinator": Coordinator, "config": ConfigClient}
CLIENT_CALLS = st.sampled_from(sorted(
    (kind, name) for kind, cls in CLIENT_CLASSES.items() for name in client_methods(cls)
)).flatmap(lambda pick: st.tuples(st.just(pick), arguments(
    client_methods(CLIENT_CLASSES[pick[0]])[pick[1]],
    {"subscriber": SUBSCRIBER, "method": st.sampled_from(sorted(METHODS))})))


@pytest.fixture(scope="module")
def clients(coordinated: Coordinated) -> Iterator[dict[str, Any]]:
    made = {kind: cls("fuzz", "n1", timeout=5.0) for kind, cls in CLIENT_CLASSES.items()}
    with in_process_clients():
        for client in made.values():
            client._handle = InProcessHandle(coordinated.coordinator, coordinated.node.loop)
        yield made


@settings(max_examples=600, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(call=CLIENT_CALLS)
def test_every_coordinator_and_config_client_call_answers_or_raises_a_cluster_error(
        coordinated: Coordinated, clients: dict[str, Any],
        call: tuple[tuple[str, str], tuple[Any, ...]]) -> None:
    (kind, method), args = call
    node = coordinated.node
    node.settle()  # leads (a one-node cluster that stepped down leads again), no leases
    before = coordinated.state()
    try:
        getattr(clients[kind], method)(*args)
    except ClusterError:
        assert coordinated.state() == before, f"{method}{args!r:.200} changed the state"
    except Exception as error:
        raise AssertionError(f"{kind} client {method}{args!r:.200} raised "
                             f"{type(error).__name__}: {error}"[:600]) from error


def test_the_fuzzed_client_calls_are_every_public_call_of_the_clients() -> None:
    for cls in CLIENT_CLASSES.values():
        public = {name for name in dir(cls) if not name.startswith("_")}
        assert set(client_methods(cls)) == public - CLIENT_SKIPPED
    assert {"propose_config", "split", "report_partition", "subscribe_events",
            "call"} <= set(client_methods(Coordinator))
    assert {"set_config", "rollback", "import_config", "subscribe_changes"} <= set(
        client_methods(ConfigClient))
