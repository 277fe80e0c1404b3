"""Local-callable subscriptions without Ray: a fake component answers the
long-poll. One thread per callable, found again by any client of the same
component, events filtered by type and delivered in order, each once."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from cluster_actors.client import ComponentClient, Subscription
from cluster_actors.runtime.events import EventCursor
from tests.waiting import wait_until


class FakeActorId:
    def hex(self) -> str:
        return "actor-1"


class FakeHandle:
    _actor_id = FakeActorId()


class FakeComponent:
    """The server side of ``latest_event_seq`` / ``wait_events``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def publish(self, type: str) -> None:
        with self.changed:
            self.events.append({"seq": len(self.events) + 1, "type": type})
            self.changed.notify_all()

    def wait(self, since: int, timeout: float) -> list[dict[str, Any]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.events) > since, timeout)
            return [e for e in self.events if e["seq"] > since]


class FakeClient(ComponentClient):
    def __init__(self, server: FakeComponent, component: str = "membership") -> None:
        super().__init__("fake-cluster", "n1", component)
        self._server = server
        self._handle = FakeHandle()

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        if method == "latest_event_seq":
            return len(self._server.events)
        if method == "wait_events":
            return self._server.wait(args[0], min(args[1], 0.1))
        raise AssertionError(f"unexpected call {method}")


def test_events_after_the_subscription_arrive_in_order_filtered_by_type() -> None:
    server = FakeComponent()
    server.publish("old")  # before the subscription: not delivered
    got: list[dict[str, Any]] = []
    client = FakeClient(server)
    subscription = client.subscribe(got.append, types="member_up")  # one type, as a string
    assert isinstance(subscription, Subscription)
    for kind in ("member_up", "member_down", "member_up"):
        server.publish(kind)
    wait_until(lambda: len(got) == 2)
    assert [e["seq"] for e in got] == [2, 4] and {e["type"] for e in got} == {"member_up"}
    assert client.unsubscribe(got.append) is True and not subscription.active


def test_one_thread_per_callable_found_again_by_a_new_client() -> None:
    server = FakeComponent()
    got: list[dict[str, Any]] = []
    first = FakeClient(server).subscribe(got.append)
    assert FakeClient(server).subscribe(got.append) is first  # no second thread
    server.publish("x")
    server.publish("y")
    wait_until(lambda: any(e["type"] == "y" for e in got))
    assert [e["type"] for e in got] == ["x", "y"]  # each once, in order
    other = FakeClient(server, component="heartbeat")
    assert other.unsubscribe(got.append) is False  # another component's subscriptions
    assert FakeClient(server).unsubscribe(got.append) is True and not first.active
    assert FakeClient(server).unsubscribe(got.append) is False


def test_a_failing_callback_is_logged_and_delivery_goes_on() -> None:
    server = FakeComponent()
    seen: list[int] = []

    def callback(event: dict[str, Any]) -> None:
        seen.append(event["seq"])
        if event["seq"] == 1:
            raise RuntimeError("boom")

    client = FakeClient(server)
    client.subscribe(callback)
    server.publish("a")
    server.publish("b")
    wait_until(lambda: len(seen) == 2)
    assert seen == [1, 2]
    client.unsubscribe(callback)


def test_anything_but_a_callable_or_an_actor_handle_is_refused() -> None:
    with pytest.raises(TypeError, match="callable or a Ray actor handle"):
        FakeClient(FakeComponent()).subscribe(42)


def test_an_event_cursor_reads_on_and_starts_over_with_a_restarted_actor() -> None:
    def handle(actor_id: str) -> Any:
        return SimpleNamespace(_actor_id=SimpleNamespace(hex=lambda: actor_id))

    cursor = EventCursor()
    assert cursor.follow(handle("a")) and cursor.since == 0  # the first instance is new
    cursor.advance([{"seq": 1}, {"seq": 2}])
    cursor.advance([])
    assert not cursor.follow(handle("a")) and cursor.since == 2
    assert cursor.follow(handle("b")) and (cursor.since, cursor.instance) == (0, "b")
