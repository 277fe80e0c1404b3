"""The Transport on the data plane, two nodes in one event loop with real
Unix sockets and local peer handles (no Ray): frames when the link is up,
Ray-style calls otherwise, the fault filter on both paths, a broken link as
a hint and Ray's death watch as the only word on a death."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from cluster_actors.runtime import dataplane_process
from cluster_actors.runtime import transport as transport_module
from cluster_actors.runtime.dataplane import DataPlane
from cluster_actors.runtime.hosting import LocalComponent
from cluster_actors.runtime.transport import FaultFilter, Transport

SECRET = b"s" * 32
CLUSTER = "tdp"


def run(test: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(test(), timeout)
    asyncio.run(bounded())


async def until(condition: Callable[[], Any]) -> Any:
    """Yield to the loop until ``condition()`` holds (the test's timeout catches hangs)."""
    while not (value := condition()):
        await asyncio.sleep(0.001)
    return value


class _Id:
    def __init__(self, text: str) -> None:
        self.text = text

    def hex(self) -> str:
        return self.text


class Node:
    """One node's component: its Transport, its plane and what it received."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.plane = DataPlane(CLUSTER, name, f"actor-{name}", SECRET, tcp_host=None,
                               runtime_dir=base,
                               on_link_down=lambda component, peer: self.transport.link_down(peer))
        self.received: list[tuple[str, list[Any]]] = []
        self.ray_calls = 0
        self.stopped = asyncio.get_running_loop().create_future()
        self.transport: Transport = None  # type: ignore[assignment]

    # what peers call on its handle ------------------------------------
    def receive(self, cluster: str, src: str, messages: Any) -> None:
        self.ray_calls += 1
        self.deliver(cluster, src, messages)

    def deliver(self, cluster: str, src: str, messages: Any) -> None:
        accepted = self.transport.accept(cluster, src, messages, lambda m: None)
        if accepted:
            self.received.append((src, accepted))

    async def dataplane_address(self, cluster: str) -> Any:
        return self.plane.addresses()

    async def until_stopped(self) -> str:
        return await self.stopped


@pytest.fixture
def base() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="tdp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pair(monkeypatch: pytest.MonkeyPatch, base: str, warm: bool = True,
         dial_early: bool = False) -> Callable[[], Awaitable[list[Node]]]:
    """Start n1 and n2 with their transports wired to each other's local
    handles; with ``warm``, send until each link is up."""

    async def start() -> list[Node]:
        nodes = {name: Node(name, base) for name in ("n1", "n2")}
        handles = {name: LocalComponent(node, _Id(f"actor-{name}"))
                   for name, node in nodes.items()}
        for node in nodes.values():
            await node.plane.start()

        async def attach(transport: Transport) -> DataPlane:
            return nodes[transport.node_id].plane

        monkeypatch.setattr(dataplane_process, "attach", attach)
        monkeypatch.setattr(dataplane_process, "detach", lambda transport: None)
        monkeypatch.setattr(transport_module, "find_component",
                            lambda cluster, node, component: handles[node])
        for name, node in nodes.items():
            node.transport = Transport(CLUSTER, name, "raft", ["n1", "n2"],
                                       data_plane=True, receiver=node.deliver,
                                       dial_early=dial_early)
        for node in nodes.values():
            await until(lambda n=node: n.transport.plane is not None)
            for peer in node.transport.peers if warm else ():
                while not node.plane.is_up("raft", peer):
                    node.transport.send_batch(peer, ["warm"])
                    await asyncio.sleep(0.005)
        return list(nodes.values())

    return start


def test_batches_travel_as_frames_once_the_link_is_up(monkeypatch: pytest.MonkeyPatch,
                                                      base: str) -> None:
    async def body() -> None:
        n1, n2 = await pair(monkeypatch, base)()
        calls_before = n2.ray_calls
        n1.transport.send([("m", i) for i in range(5)], dst_of=lambda m: "n2")
        await until(lambda: any(batch == [("m", i) for i in range(5)]
                                for _, batch in n2.received))
        assert n2.ray_calls == calls_before
        assert n1.transport.stats["frames"] >= 1
        assert n2.transport.stats["frames_in"] >= 1

    run(body)


def test_a_link_dialled_early_is_up_as_soon_as_the_peers_address_is_known(
        monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    # followers send each other nothing until their leader dies; their votes
    # must then find the link up, not dial it or fall back to Ray calls
    async def body() -> None:
        n1, n2 = await pair(monkeypatch, base, warm=False, dial_early=True)()
        await until(lambda: n1.plane.is_up("raft", "n2") and n2.plane.is_up("raft", "n1"))
        assert n1.transport.stats["frames"] == n2.transport.stats["frames"] == 0
        calls = n2.ray_calls
        n1.transport.send_batch("n2", ["vote"])
        await until(lambda: any(batch == ["vote"] for _, batch in n2.received))
        assert n2.ray_calls == calls and n1.transport.stats["frames"] == 1

    run(body)


def test_a_blocked_peer_gets_nothing_on_either_path(monkeypatch: pytest.MonkeyPatch,
                                                    base: str) -> None:
    async def body() -> None:
        n1, n2 = await pair(monkeypatch, base)()
        n1.transport.faults = FaultFilter({"n2"})
        n2.transport.faults = FaultFilter({"n1"})
        seen = len(n2.received)
        n1.transport.send_batch("n2", ["blocked"])
        n1.plane.forget("raft", "n2")  # the Ray path too
        n1.transport.send_batch("n2", ["blocked"])
        n1.transport._call(n1.transport.handles["n2"], ["forced"])  # sent anyway: refused
        await asyncio.sleep(0.05)
        assert len(n2.received) == seen
        assert n1.transport.stats["dropped_out"] == 2
        assert n2.transport.stats["dropped_in"] == 1

    run(body)


def test_a_broken_link_falls_back_to_calls_and_the_link_comes_back(
        monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    async def body() -> None:
        n1, n2 = await pair(monkeypatch, base)()
        for link in list(n1.plane._links.values()):
            link.conn.transport.abort()  # type: ignore[union-attr]
        await until(lambda: not n1.plane.is_up("raft", "n2"))
        calls = n2.ray_calls
        n1.transport.send_batch("n2", ["during"])
        await until(lambda: any(batch == ["during"] for _, batch in n2.received))
        assert n2.ray_calls == calls + 1  # the fallback
        assert n1.transport.stats["link_down"] >= 1
        assert "n2" in n1.transport.handles  # a hint, not a death
        await until(lambda: n1.plane.is_up("raft", "n2"))
        frames = n1.transport.stats["frames"]
        n1.transport.send_batch("n2", ["after"])
        assert n1.transport.stats["frames"] == frames + 1
        await until(lambda: any(batch == ["after"] for _, batch in n2.received))

    run(body)


def test_only_the_death_watch_forgets_the_link(monkeypatch: pytest.MonkeyPatch,
                                               base: str) -> None:
    async def body() -> None:
        n1, n2 = await pair(monkeypatch, base)()
        n2.stopped.set_exception(RuntimeError("actor died"))
        await until(lambda: n1.transport.stats["peer_deaths"] == 1)
        assert ("raft", "n2") not in n1.plane._links
        n1.transport.close()
        n2.transport.close()
        n1.plane.close()
        n2.plane.close()

    run(body)


def test_a_batch_plain_pickle_refuses_goes_as_a_call(monkeypatch: pytest.MonkeyPatch,
                                                     base: str) -> None:
    async def body() -> None:
        n1, n2 = await pair(monkeypatch, base)()
        calls = n1.transport.stats["calls"]
        n1.transport.send_batch("n2", [lambda: None])
        assert n1.transport.stats["calls"] == calls + 1
        await until(lambda: any(callable(batch[0]) for _, batch in n2.received))

    run(body)


def test_without_dial_early_no_link_is_opened_before_the_first_send(
        monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    async def body() -> None:
        n1, _n2 = await pair(monkeypatch, base, warm=False)()
        # an early dial would start in the same step that records the address
        await until(lambda: n1.transport.stats["addresses"] == 1)
        assert not n1.plane.is_up("raft", "n2") and n1.plane.stats["dials"] == 0

    run(body)
