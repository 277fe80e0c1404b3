"""The OTP supervisor on a real local Ray: strategies, restart types, start and
stop order, escalation through a supervision tree, death detection by an
outstanding call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster_actors.core.supervision import Restart, SupervisorFlags
from cluster_actors.errors import ClusterError
from cluster_actors.runtime.supervisor import (
    ActorFactory,
    ChildSpec,
    SupervisedActor,
    Supervisor,
)

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

HANG = 60.0  # seconds; only catches hangs, asserts nothing about speed
NAMESPACE = "supervisor-tests"


@ray.remote(num_cpus=0)
class Recorder:
    """Collects what children and supervisors report, in arrival order."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, ...]] = []
        self._events: list[dict[str, Any]] = []

    def record(self, item: tuple[Any, ...]) -> None:
        self._items.append(item)

    def on_supervisor_event(self, event: dict[str, Any]) -> None:
        self._items.append(("event", event["source"], event["type"], event.get("child_id")))
        self._events.append(event)

    def items(self) -> list[tuple[Any, ...]]:
        return list(self._items)

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)


@ray.remote(num_cpus=0)
class Worker(SupervisedActor):
    """A supervised child that reports its activation and its stop."""

    def __init__(self, name: str, recorder: Any, fail: bool = False,
                 hang_on_stop: bool = False) -> None:
        if fail:
            raise RuntimeError(f"{name} cannot start")
        self._name = name
        self._recorder = recorder
        self._hang_on_stop = hang_on_stop
        self._pings = 0
        self._watches = 0

    async def ping(self) -> str:
        self._pings += 1
        return await super().ping()

    async def on_activate(self) -> None:
        await self._recorder.record.remote(("start", self._name))

    async def until_stopped(self) -> str:
        self._watches += 1
        return await super().until_stopped()

    async def on_stop(self) -> None:
        await self._recorder.record.remote(("stop", self._name))
        if self._hang_on_stop:
            await asyncio.Event().wait()

    async def probe(self) -> dict[str, Any]:
        return {"actor_id": ray.get_runtime_context().get_actor_id(),
                "pings": self._pings, "watches": self._watches}

    async def finish(self) -> None:
        """End on purpose: the supervisor sees the reason "normal"."""
        await self.graceful_stop()


def get(ref: Any) -> Any:
    return ray.get(ref, timeout=HANG)


@pytest.fixture
def recorder() -> Iterator[Any]:
    handle = Recorder.remote()
    yield handle
    ray.kill(handle, no_restart=True)


@pytest.fixture
def supervisors() -> Iterator[list[Any]]:
    """Supervisors to kill after the test (their children die with them: Ray fate-sharing)."""
    handles: list[Any] = []
    yield handles
    for handle in handles:
        ray.kill(handle, no_restart=True)


def worker_spec(prefix: str, name: str, recorder: Any, restart: Restart = Restart.PERMANENT,
                shutdown: float | str = 5.0, **worker_kwargs: Any) -> ChildSpec:
    factory = ActorFactory(Worker, args=(name, recorder), kwargs=worker_kwargs,
                           options={"name": f"{prefix}:{name}", "namespace": NAMESPACE})
    return ChildSpec(id=name, start=factory, restart=restart, shutdown=shutdown)


def start_supervisor(supervisors: list[Any], flags: SupervisorFlags, specs: list[ChildSpec],
                     name: str) -> Any:
    sup = Supervisor.remote(flags, specs, name=name)
    supervisors.append(sup)
    assert get(sup.start_children.remote()) == [spec.id for spec in specs]
    return sup


def actor_ids(sup: Any) -> dict[str, str | None]:
    return {c["id"]: c["actor_id"] for c in get(sup.which_children.remote())}


def handle_of(sup: Any, child_id: str) -> Any:
    handle = get(sup.get_child.remote(child_id))
    assert handle is not None
    return handle


def last_seq(sup: Any) -> int:
    events = get(sup.events_since.remote())
    return events[-1]["seq"] if events else 0


def unique() -> str:
    return uuid.uuid4().hex[:8]


def test_children_start_in_order_and_stop_in_reverse(recorder: Any,
                                                     supervisors: list[Any]) -> None:
    prefix = unique()
    specs = [worker_spec(prefix, n, recorder) for n in ("a", "b", "c")]
    sup = start_supervisor(supervisors, SupervisorFlags("one_for_one"), specs, "order")
    children = [handle_of(sup, n) for n in ("a", "b", "c")]
    watch = sup.until_stopped.remote()

    get(sup.stop.remote())

    assert get(recorder.items.remote()) == [("start", "a"), ("start", "b"), ("start", "c"),
                                            ("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert get(watch) == "normal"  # a requested stop ends the supervisor normally
    for child in children:
        with pytest.raises(RayActorError):
            get(child.ping.remote())


def test_shutdown_timeout_and_brutal_kill(recorder: Any, supervisors: list[Any]) -> None:
    prefix = unique()
    specs = [worker_spec(prefix, "stuck", recorder, shutdown=0.5, hang_on_stop=True),
             worker_spec(prefix, "brutal", recorder, shutdown="brutal_kill"),
             worker_spec(prefix, "polite", recorder)]
    sup = start_supervisor(supervisors, SupervisorFlags("one_for_one"), specs, "shutdowns")
    get(sup.subscribe.remote(recorder))

    get(sup.stop.remote())

    # Reverse order; brutal_kill skips on_stop; the stuck child is killed after 0.5 s.
    assert [i for i in get(recorder.items.remote()) if i[0] == "stop"] == [
        ("stop", "polite"), ("stop", "stuck")]
    # The supervisor delivers its last events to subscribers before it exits.
    events = get(recorder.events.remote())
    assert [(e["child_id"], e["how"]) for e in events if e["type"] == "child_stopped"] == [
        ("polite", "shutdown"), ("brutal", "killed"), ("stuck", "killed")]
    assert events[-1]["type"] == "stopped"


def test_failed_start_stops_the_started_children(recorder: Any,
                                                 supervisors: list[Any]) -> None:
    prefix = unique()
    specs = [worker_spec(prefix, "a", recorder), worker_spec(prefix, "bad", recorder, fail=True)]
    sup = Supervisor.remote(SupervisorFlags("one_for_one"), specs, name="failing")
    supervisors.append(sup)
    with pytest.raises(ClusterError, match="bad"):
        get(sup.start_children.remote())
    assert get(recorder.items.remote()) == [("start", "a"), ("stop", "a")]
    assert get(sup.count_children.remote())["active"] == 0


@pytest.mark.parametrize(("strategy", "restarted"), [
    ("one_for_one", ["b"]),
    ("one_for_all", ["a", "b", "c"]),
    ("rest_for_one", ["b", "c"]),
])
def test_strategy_restarts_exactly_the_right_children(strategy: str, restarted: list[str],
                                                      recorder: Any,
                                                      supervisors: list[Any]) -> None:
    prefix = unique()
    specs = [worker_spec(prefix, n, recorder) for n in ("a", "b", "c")]
    sup = start_supervisor(supervisors, SupervisorFlags(strategy), specs, strategy)
    before = actor_ids(sup)
    since = last_seq(sup)

    ray.kill(handle_of(sup, "b"), no_restart=True)
    # The plan restarts in start order: the last restarted child ends it.
    get(sup.wait_event.remote("child_restarted", restarted[-1], since, HANG))

    after = actor_ids(sup)
    assert {c for c in before if after[c] != before[c]} == set(restarted)
    events = get(sup.events_since.remote(since))
    assert [(e["type"], e["child_id"]) for e in events if e["type"] != "child_started"] == (
        [("child_exited", "b")]
        + [("child_stopped", c) for c in reversed(restarted) if c != "b"]
        + [("child_restarted", c) for c in restarted])
    assert next(e for e in events if e["type"] == "child_exited")["reason"] == "killed"
    if strategy == "one_for_one":
        # Death is detected by the one outstanding until_stopped call per child,
        # not by polling: the untouched children were pinged once (at start) and
        # watched once, although a restart happened meanwhile.
        for name in ("a", "c"):
            probe = get(handle_of(sup, name).probe.remote())
            assert (probe["pings"], probe["watches"]) == (1, 1)
    for child in get(sup.which_children.remote()):
        assert child["alive"]
        assert child["restarts"] == (1 if child["id"] in restarted else 0)
        assert get(child["handle"].ping.remote()) == "pong"


def test_restart_types(recorder: Any, supervisors: list[Any]) -> None:
    prefix = unique()
    specs = [worker_spec(prefix, "perm", recorder, Restart.PERMANENT),
             worker_spec(prefix, "trans", recorder, Restart.TRANSIENT),
             worker_spec(prefix, "temp", recorder, Restart.TEMPORARY)]
    sup = start_supervisor(supervisors, SupervisorFlags("one_for_one", intensity=10),
                           specs, "types")
    ids = actor_ids(sup)

    # transient, normal exit: not restarted
    since = last_seq(sup)
    handle_of(sup, "trans").finish.remote()  # the caller may see the kill that follows
    exited = get(sup.wait_event.remote("child_exited", "trans", since, HANG))
    assert exited["reason"] == "normal"

    # permanent, normal exit: restarted. Exits are handled one at a time and in
    # order, so once this restart is recorded the transient exit is settled.
    handle_of(sup, "perm").finish.remote()
    restarted = get(sup.wait_event.remote("child_restarted", "perm", since, HANG))
    assert restarted["actor_id"] != ids["perm"]
    children = {c["id"]: c for c in get(sup.which_children.remote())}
    assert children["trans"]["alive"] is False and children["trans"]["handle"] is None
    assert children["trans"]["restarts"] == 0

    # transient, killed: restarted
    trans = get(sup.restart_child.remote("trans"))
    since = last_seq(sup)
    ray.kill(trans, no_restart=True)
    restarted = get(sup.wait_event.remote("child_restarted", "trans", since, HANG))
    assert restarted["actor_id"] not in (ids["trans"], trans._actor_id.hex())

    # temporary, killed: never restarted, and removed from the child list.
    # Killing perm afterwards and awaiting its restart settles the temp exit.
    since = last_seq(sup)
    ray.kill(handle_of(sup, "temp"), no_restart=True)
    get(sup.wait_event.remote("child_removed", "temp", since, HANG))
    ray.kill(handle_of(sup, "perm"), no_restart=True)
    get(sup.wait_event.remote("child_restarted", "perm", since, HANG))
    assert [c["id"] for c in get(sup.which_children.remote())] == ["perm", "trans"]
    assert get(sup.count_children.remote()) == {"specs": 2, "active": 2, "supervisors": 0,
                                                "workers": 2}
    types = [e["type"] for e in get(sup.events_since.remote(since)) if e.get("child_id") == "temp"]
    assert types == ["child_exited", "child_removed"]


def test_dynamic_children(recorder: Any, supervisors: list[Any]) -> None:
    prefix = unique()
    sup = start_supervisor(supervisors, SupervisorFlags("rest_for_one"),
                           [worker_spec(prefix, "a", recorder)], "dynamic")
    added = get(sup.start_child.remote(worker_spec(prefix, "z", recorder)))
    assert get(added.ping.remote()) == "pong"
    assert [c["id"] for c in get(sup.which_children.remote())] == ["a", "z"]
    with pytest.raises(ClusterError):
        get(sup.delete_child.remote("z"))  # running

    get(sup.terminate_child.remote("z"))
    with pytest.raises(RayActorError):
        get(added.ping.remote())
    assert get(sup.count_children.remote())["active"] == 1
    again = get(sup.restart_child.remote("z"))
    assert get(again.probe.remote())["actor_id"] != added._actor_id.hex()

    get(sup.terminate_child.remote("z"))
    get(sup.delete_child.remote("z"))
    assert [c["id"] for c in get(sup.which_children.remote())] == ["a"]
    assert get(recorder.items.remote()) == [("start", "a"), ("start", "z"), ("stop", "z"),
                                            ("start", "z"), ("stop", "z")]


def test_escalation_restarts_the_node_supervisor_and_its_children(
        recorder: Any, supervisors: list[Any]) -> None:
    prefix = unique()
    node_specs = [worker_spec(prefix, n, recorder) for n in ("x", "y")]
    node_flags = SupervisorFlags("one_for_one", intensity=1, period=60.0)
    node_factory = ActorFactory(Supervisor, args=(node_flags, node_specs),
                                kwargs={"name": "n1"},
                                options={"name": f"{prefix}:n1:supervisor",
                                         "namespace": NAMESPACE})
    root_spec = ChildSpec(id="n1", start=node_factory, kind="supervisor", shutdown=30.0)
    root = start_supervisor(supervisors, SupervisorFlags("one_for_one"), [root_spec], "root")
    node = handle_of(root, "n1")
    old_children = actor_ids(node)
    assert all(old_children.values())
    old_y = handle_of(node, "y")
    get(node.subscribe.remote(recorder))
    root_since = last_seq(root)

    # First kill: within the intensity, the node supervisor restarts x itself.
    since = last_seq(node)
    ray.kill(handle_of(node, "x"), no_restart=True)
    get(node.wait_event.remote("child_restarted", "x", since, HANG))
    # Second kill within the period: 2 restarts > intensity 1, so n1 escalates.
    ray.kill(handle_of(node, "x"), no_restart=True)

    restarted = get(root.wait_event.remote("child_restarted", "n1", root_since, HANG))
    exited = get(root.wait_event.remote("child_exited", "n1", root_since, HANG))
    assert exited["reason"] == "escalated"
    new_node = handle_of(root, "n1")
    assert restarted["actor_id"] == new_node._actor_id.hex() != node._actor_id.hex()
    new_children = {c["id"]: c for c in get(new_node.which_children.remote())}
    assert all(c["alive"] for c in new_children.values())
    assert not set(old_children.values()) & {c["actor_id"] for c in new_children.values()}
    with pytest.raises(RayActorError):
        get(old_y.ping.remote())

    items = get(recorder.items.remote())
    # The escalating supervisor stopped its surviving child gracefully, told its
    # subscriber, and its replacement started both children again in order.
    escalated_at = items.index(("event", "n1", "escalated", "x"))
    assert ("stop", "y") in items[:escalated_at]
    assert [i for i in items[escalated_at:] if i[0] == "start"] == [("start", "x"),
                                                                    ("start", "y")]
    assert get(root.which_children.remote())[0]["restarts"] == 1


def test_warm_spare_is_activated_on_death_and_replaced(recorder: Any,
                                                       supervisors: list[Any]) -> None:
    # An unnamed factory: the spare lives next to the running child.
    spec = ChildSpec(id="w", start=ActorFactory(Worker, args=("w", recorder)), warm_spare=True)
    sup = start_supervisor(supervisors, SupervisorFlags("one_for_one"), [spec], "warm")
    spare = get(sup.wait_event.remote("spare_ready", "w", 0, HANG))
    assert get(recorder.items.remote()) == [("start", "w")]  # the spare is not activated
    since = last_seq(sup)

    ray.kill(handle_of(sup, "w"), no_restart=True)

    restarted = get(sup.wait_event.remote("child_restarted", "w", since, HANG))
    assert restarted["warm"] is True
    assert restarted["actor_id"] == spare["actor_id"] == handle_of(sup, "w")._actor_id.hex()
    assert get(recorder.items.remote()) == [("start", "w"), ("start", "w")]
    next_spare = get(sup.wait_event.remote("spare_ready", "w", since, HANG))
    assert next_spare["actor_id"] != spare["actor_id"]
    assert get(sup.which_children.remote())[0]["spare"] is True


#: a Ray node id no node has: Ray can never schedule an actor pinned to it
GONE_RAY_NODE = "ab" * 28


@dataclass
class LosesItsRayNode:
    """A factory whose first instance starts; every later one is pinned to a
    Ray node that is gone (as a child pinned to a removed Ray node is)."""

    factory: ActorFactory
    calls: int = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls == 1:
            return self.factory()
        pinned = NodeAffinitySchedulingStrategy(GONE_RAY_NODE, soft=False)
        return self.factory.actor_class.options(
            **self.factory.options, scheduling_strategy=pinned).remote(*self.factory.args)


def test_a_child_whose_ray_node_is_gone_is_left_stopped_without_escalating(
        recorder: Any, supervisors: list[Any]) -> None:
    prefix = unique()
    pinned = worker_spec(prefix, "b", recorder)
    specs = [worker_spec(prefix, "a", recorder),
             ChildSpec(id="b", start=LosesItsRayNode(pinned.start)),
             worker_spec(prefix, "c", recorder)]
    # one_for_all with intensity 1: counted, its instant failed restarts would
    # escalate at once and take a and c down with the supervisor
    sup = start_supervisor(supervisors, SupervisorFlags("one_for_all", intensity=1,
                                                        period=60.0), specs, "unplaceable")
    since = last_seq(sup)

    ray.kill(handle_of(sup, "b"), no_restart=True)

    get(sup.wait_event.remote("child_unplaceable", "b", since, HANG))
    get(sup.wait_event.remote("child_restarted", "c", since, HANG))  # the plan went on
    events = [(e["type"], e["child_id"]) for e in get(sup.events_since.remote(since))
              if e["type"] not in ("child_started", "child_stopped")]
    assert events == [("child_exited", "b"), ("child_restarted", "a"),
                      ("child_start_failed", "b"), ("child_restarted", "c"),
                      ("child_unplaceable", "b")]
    children = {c["id"]: c for c in get(sup.which_children.remote())}
    assert {c: children[c]["alive"] for c in children} == {"a": True, "b": False, "c": True}
    assert get(children["c"]["handle"].ping.remote()) == "pong"
    assert get(sup.stats.remote())["escalated"] is False
    # an operator drops it as any stopped child
    get(sup.terminate_child.remote("b"))
    get(sup.delete_child.remote("b"))
    assert [c["id"] for c in get(sup.which_children.remote())] == ["a", "c"]
