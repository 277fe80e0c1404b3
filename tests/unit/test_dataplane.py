"""The data plane between two (or three) DataPlanes in one process, on real
Unix and TCP sockets: order, batching, the handshake's refusals, foreign
clients, broken links, high-water policies and the socket directory."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cluster_actors.errors import ClusterError, ValidationFailed
from cluster_actors.runtime import dataplane_wire as wire
from cluster_actors.runtime.dataplane import DataPlane, DataPlaneError, Endpoint, make_secret
from cluster_actors.runtime.dataplane_sockets import UNIX_PATH_LIMIT, socket_path

SECRET = b"k" * 32
RAFT = "raft"


def run(test: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    """Run an async test; the timeout only catches hangs."""
    async def bounded() -> None:
        await asyncio.wait_for(test(), timeout)
    asyncio.run(bounded())


@pytest.fixture
def base() -> Any:
    """A short private base directory for the socket directories."""
    path = tempfile.mkdtemp(prefix="dp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Sink:
    """A frame handler that records what arrives and lets a test wait for it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.sources: list[str] = []
        self.batches = 0
        self.changed = asyncio.Event()

    def __call__(self, src: str, payloads: list[bytes]) -> None:
        self.frames.extend(payloads)
        self.sources.append(src)
        self.batches += 1
        self.changed.set()

    async def wait(self, count: int) -> list[bytes]:
        while len(self.frames) < count:
            self.changed.clear()
            await self.changed.wait()
        return self.frames


@dataclasses.dataclass
class Node:
    plane: DataPlane
    sink: Sink
    downs: list[tuple[str, str]]
    down: asyncio.Event

    @property
    def endpoint(self) -> Endpoint:
        return self.plane.addresses()

    async def link_to(self, other: Node, component: str = RAFT, **changes: Any) -> bool:
        endpoint = dataclasses.replace(other.endpoint, **changes)
        self.plane.set_address(component, other.plane.node, endpoint)
        return await self.plane.connect(component, other.plane.node)


@contextlib.asynccontextmanager
async def started(base: str, *names: str, cluster: str = "c1", secret: bytes = SECRET,
                  policy: str = "drop", high_water: int | None = None,
                  **options: Any) -> AsyncIterator[list[Node]]:
    nodes = []
    for name in names:
        downs: list[tuple[str, str]] = []
        down = asyncio.Event()

        def on_down(component: str, peer: str, downs: Any = downs, down: Any = down) -> None:
            downs.append((component, peer))
            down.set()

        plane = DataPlane(cluster, name, f"{name}-actor-1", secret, runtime_dir=base,
                          on_link_down=on_down, **options)
        sink = Sink()
        plane.register(RAFT, sink, policy=policy, high_water=high_water)
        await plane.start()
        nodes.append(Node(plane, sink, downs, down))
    try:
        yield nodes
    finally:
        for node in nodes:
            node.plane.close()
            await node.plane.wait_closed()


def _socket_of(node: Node, peer: str, component: str = RAFT) -> socket.socket:
    return node.plane._links[(component, peer)].conn.transport.get_extra_info("socket")


def _payloads(count: int, size: int = 200) -> list[bytes]:
    return [f"{i:08d}".encode().ljust(size, b".") for i in range(count)]


# ----------------------------------------------------------------- frames
def test_frames_sent_over_the_unix_socket_arrive_whole_and_in_order(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", high_water=1 << 30) as (a, b):
            assert await a.link_to(b)
            assert _socket_of(a, "n2").family == socket.AF_UNIX
            sizes = [0, 1, 200, 70_000, 3, 1 << 20]
            sent = [bytes([i % 251]) * sizes[i % len(sizes)] for i in range(300)]
            for i, payload in enumerate(sent):
                assert a.plane.send(RAFT, "n2", payload)
                if i % 7 == 0:
                    await asyncio.sleep(0)  # spread over several loop turns
            assert await b.sink.wait(len(sent)) == sent
            assert set(b.sink.sources) == {"n1"}
            assert b.plane.stats["frames_in"] == a.plane.stats["frames_out"] == len(sent)
            assert a.plane.stats["dropped_hwm"] == 0
    run(test)


def test_frames_sent_over_tcp_arrive_in_order_on_a_nodelay_socket(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            assert await a.link_to(b, machine="another host")  # not this machine: TCP
            sock = _socket_of(a, "n2")
            assert sock.family == socket.AF_INET
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            sent = _payloads(500)
            for payload in sent:
                a.plane.send(RAFT, "n2", payload)
            assert await b.sink.wait(500) == sent
    run(test)


def test_a_unix_socket_that_is_gone_is_replaced_by_tcp_in_the_same_dial(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            assert await a.link_to(b, unix=f"{base}/no-such.sock")
            assert _socket_of(a, "n2").family == socket.AF_INET
            assert a.plane.stats["dials"] == 1
    run(test)


def test_many_sends_in_one_loop_turn_leave_in_one_write_and_one_handler_call(base: str
                                                                             ) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            assert await a.link_to(b)
            for payload in _payloads(100):
                a.plane.send(RAFT, "n2", payload)
            assert a.plane.stats["writes"] == 0  # nothing leaves before the turn ends
            await b.sink.wait(100)
            assert a.plane.stats["writes"] == 1
            assert a.plane.stats["frames_out"] == 100
            assert a.plane.stats["bytes_out"] == 100 * 204
            assert b.sink.batches == 1
    run(test)


def test_send_many_shares_one_encoded_payload_among_its_receivers(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", "n3") as (a, b, c):
            assert await a.link_to(b) and await a.link_to(c)
            payload = b"append" * 50
            assert a.plane.send_many(RAFT, ["n2", "n3"], payload) == []
            for peer in ("n2", "n3"):
                assert a.plane._links[(RAFT, peer)].outbox[1] is payload  # not copied
            assert await b.sink.wait(1) == [payload]
            assert await c.sink.wait(1) == [payload]
            assert a.plane.stats["writes"] == 2
    run(test)


# --------------------------------------------------------------- fallback
def test_a_send_without_an_up_link_returns_false_and_dials_in_the_background(base: str
                                                                            ) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            assert not a.plane.send(RAFT, "n2", b"x")  # no address yet
            assert a.plane.stats["no_address"] == 1
            a.plane.set_address(RAFT, "n2", b.endpoint)
            assert not a.plane.send(RAFT, "n2", b"x")  # starts the dial
            assert a.plane.send_many(RAFT, ["n2"], b"x") == ["n2"]  # still dialling
            assert a.plane.stats["dials"] == 1 and a.plane.stats["fallback"] == 2
            assert await a.plane.connect(RAFT, "n2")
            assert a.plane.send(RAFT, "n2", b"y")
            assert await b.sink.wait(1) == [b"y"]
    run(test)


def test_the_fault_filter_drops_frames_to_a_blocked_peer_without_a_fallback(base: str
                                                                            ) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", "n3") as (a, b, c):
            assert await a.link_to(b) and await a.link_to(c)
            blocked = {"n2"}

            def passes(peer: str) -> bool:
                return peer not in blocked

            assert a.plane.send_many(RAFT, ["n2", "n3"], b"one", passes) == []
            assert a.plane.send(RAFT, "n2", b"two", passes)  # taken (and dropped)
            blocked.clear()
            a.plane.send_many(RAFT, ["n2", "n3"], b"three", passes)
            assert await c.sink.wait(2) == [b"one", b"three"]
            assert await b.sink.wait(1) == [b"three"]
            assert a.plane.stats["dropped_fault"] == 2
    run(test)


def test_a_payload_over_the_frame_limit_is_left_to_the_caller(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", max_frame=1024) as (a, b):
            assert await a.link_to(b)
            assert not a.plane.send(RAFT, "n2", b"x" * 1025)
            assert a.plane.stats["too_large_out"] == 1
            assert a.plane.is_up(RAFT, "n2")
    run(test)


# -------------------------------------------------------------- handshake
async def _refused(base: str, reason: str, dialler: dict[str, Any] | None = None,
                   **changes: Any) -> None:
    """A dial from n1 (made with ``dialler`` options, to n2's address with
    ``changes``) is refused for ``reason``, counted on both sides, reported
    down, and n2 still serves a good dialler."""
    async with started(base, "n2") as (b,), started(base, "n1", **(dialler or {})) as (a,), \
            started(base, "n3") as (c,):
        assert not await a.link_to(b, **changes)
        assert b.plane.stats[f"refused_{reason}"] == 1
        assert a.plane.stats[f"dial_refused_{reason}"] == 1
        assert a.downs == [(RAFT, "n2")]
        assert not a.plane.send(RAFT, "n2", b"x")  # backing off: still refused
        assert b.plane.stats["links_in"] == 0 and b.sink.frames == []
        assert await c.link_to(b) and c.plane.send(RAFT, "n2", b"ok")
        assert await b.sink.wait(1) == [b"ok"]


def test_a_dialler_with_another_secret_is_refused_and_counted(base: str) -> None:
    run(lambda: _refused(base, "bad_hmac", dialler={"secret": make_secret()}))


def test_a_dialler_from_another_cluster_is_refused_and_counted(base: str) -> None:
    run(lambda: _refused(base, "cluster", dialler={"cluster": "c2"}))


def test_a_dial_to_a_previous_incarnation_is_refused_as_stale(base: str) -> None:
    run(lambda: _refused(base, "stale", actor="n2-actor-0"))


def test_a_dial_to_a_component_the_listener_does_not_host_is_refused() -> None:
    async def test() -> None:
        with tempfile.TemporaryDirectory(dir="/tmp") as root:
            async with started(root, "n1", "n2") as (a, b):
                a.plane.set_address("sync", "n2", b.endpoint)
                assert not await a.plane.connect("sync", "n2")
                assert b.plane.stats["refused_component"] == 1
    run(test)


def test_a_listener_that_cannot_prove_the_secret_is_not_trusted(base: str) -> None:
    async def test() -> None:
        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                           ) -> None:
            writer.write(wire.challenge(os.urandom(16)))
            size = int.from_bytes(await reader.readexactly(4), "big")
            await reader.readexactly(size)  # the hello
            writer.write(wire.frame(wire.MAGIC + b"W" + bytes(32)))
            await reader.read()

        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with started(base, "n1") as (a,):
            fake = Endpoint("n2", "x", "elsewhere", None, ("127.0.0.1", port))
            a.plane.set_address(RAFT, "n2", fake)
            assert not await a.plane.connect(RAFT, "n2")
            assert a.plane.stats["dial_bad_proof"] == 1
        server.close()
    run(test)


def test_foreign_clients_sending_garbage_are_refused_and_the_listener_keeps_serving(
        base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", handshake_timeout=0.2) as (a, b):
            host, port = b.endpoint.tcp  # type: ignore[misc]
            garbage = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                       wire.frame(b"\x00" * 100),
                       wire.frame(wire.MAGIC + b"H" + bytes(48) + b"[1, 2]"),
                       b"\xff" * 5000]
            challenge = wire.frame(wire.MAGIC + b"C" + bytes(16))[:9]
            for data in garbage:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(data)
                answer = await reader.read()  # the listener refuses and closes
                assert answer.startswith(challenge)
                assert answer.endswith(wire.refusal("malformed"))
                writer.close()
            reader, writer = await asyncio.open_unix_connection(b.endpoint.unix)
            writer.close()  # connects and leaves at once
            reader, writer = await asyncio.open_connection(host, port)
            assert await reader.read() != b""  # silent: challenged, then timed out
            writer.close()
            assert b.plane.stats["refused_malformed"] == len(garbage)
            assert b.plane.stats["refused_timeout"] == 1
            assert await a.link_to(b) and a.plane.send(RAFT, "n2", b"still here")
            assert await b.sink.wait(1) == [b"still here"]
    run(test)


# ------------------------------------------------------------------ faults
def test_a_link_killed_mid_stream_reports_down_and_recovers_on_the_next_send(base: str
                                                                             ) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            assert await a.link_to(b)
            sent = _payloads(200)
            for payload in sent[:100]:
                assert a.plane.send(RAFT, "n2", payload)
            await b.sink.wait(100)
            for inbound in list(b.plane._inbound):
                inbound.transport.abort()  # the stream breaks under the sender
            await a.down.wait()
            assert a.downs == [(RAFT, "n2")] and not a.plane.is_up(RAFT, "n2")
            assert not a.plane.send(RAFT, "n2", sent[100])  # fall back; redial now
            assert await a.plane.connect(RAFT, "n2")
            for payload in sent[101:]:
                assert a.plane.send(RAFT, "n2", payload)
            assert await b.sink.wait(199) == sent[:100] + sent[101:]
            assert a.plane.stats["links_up"] == 2 and a.plane.stats["links_down"] == 1
    run(test)


def test_a_frame_over_the_receivers_limit_closes_the_link_and_is_counted(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1") as (a,), \
                started(base, "n2", max_frame=1024) as (b,):
            assert await a.link_to(b)
            assert a.plane.send(RAFT, "n2", b"x" * 2048)
            await a.down.wait()
            assert b.plane.stats["frames_too_large"] == 1 and b.sink.frames == []
    run(test)


def test_a_failed_dial_backs_off_and_a_new_address_is_dialled_at_once(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1") as (a,):
            async with started(base, "n2") as (old,):
                stale = old.endpoint
            a.plane.set_address(RAFT, "n2", stale)  # its process has gone
            assert not await a.plane.connect(RAFT, "n2")
            assert a.downs == [(RAFT, "n2")]
            for _ in range(10):
                assert not a.plane.send(RAFT, "n2", b"x")
            assert a.plane.stats["dials"] == 1  # backing off, no redial per send
            async with started(base, "n2") as (new,):
                assert await a.link_to(new)  # the re-resolved address
                assert a.plane.send(RAFT, "n2", b"hello")
                assert await new.sink.wait(1) == [b"hello"]
    run(test)


def test_a_handler_that_raises_is_counted_and_the_link_stays_up(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            sink = b.sink

            def fragile(src: str, payloads: list[bytes]) -> None:
                sink(src, payloads)
                if b"boom" in payloads:
                    raise RuntimeError("a bug in the handler")

            b.plane.register(RAFT, fragile)
            assert await a.link_to(b)
            a.plane.send(RAFT, "n2", b"boom")
            await sink.wait(1)
            a.plane.send(RAFT, "n2", b"after")
            assert await sink.wait(2) == [b"boom", b"after"]
            assert b.plane.stats["handler_errors"] == 1 and a.plane.is_up(RAFT, "n2")
    run(test)


# ------------------------------------------------------------- high water
def test_the_drop_policy_drops_and_counts_frames_above_the_high_water_mark(base: str
                                                                          ) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", high_water=1000) as (a, b):
            assert await a.link_to(b)
            sent = _payloads(20)  # 204 bytes framed: four fit under 1000
            for payload in sent:
                assert a.plane.send(RAFT, "n2", payload)
            assert await b.sink.wait(4) == sent[:4]
            assert a.plane.stats["dropped_hwm"] == 16
    run(test)


def test_the_keep_newest_policy_keeps_only_the_newest_unsent_frame(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", policy="keep_newest", high_water=1) as (a, b):
            assert await a.link_to(b)
            sent = _payloads(20)
            for payload in sent:
                assert a.plane.send(RAFT, "n2", payload)
            assert await b.sink.wait(1) == [sent[-1]]
            assert a.plane.stats["dropped_hwm"] == 19
    run(test)


async def _stall_and_flood(a: Node, b: Node, frames: int) -> list[bytes]:
    """Send ``frames`` 64 KiB frames, one per loop turn, while n2 reads nothing;
    then let it read, and return what was sent."""
    for inbound in b.plane._inbound:
        inbound.transport.pause_reading()
    sent = [i.to_bytes(4, "big") * (1 << 14) for i in range(frames)]
    for payload in sent:
        assert a.plane.send(RAFT, "n2", payload)
        await asyncio.sleep(0)
    for inbound in b.plane._inbound:
        inbound.transport.resume_reading()
    return sent


def test_a_stalled_receiver_fills_the_high_water_mark_and_drop_keeps_a_prefix(base: str
                                                                              ) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", high_water=1 << 20) as (a, b):
            assert await a.link_to(b)
            sent = await _stall_and_flood(a, b, 200)  # 13 MiB against 1 MiB
            dropped = a.plane.stats["dropped_hwm"]
            assert dropped > 100
            kept = len(sent) - dropped
            assert await b.sink.wait(kept) == sent[:kept]
    run(test)


def test_a_stalled_receiver_of_heartbeats_gets_the_newest_when_it_reads_again(base: str
                                                                             ) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", policy="keep_newest",
                           high_water=1 << 20) as (a, b):
            assert await a.link_to(b)
            sent = await _stall_and_flood(a, b, 200)
            dropped = a.plane.stats["dropped_hwm"]
            assert dropped > 100
            received = await b.sink.wait(len(sent) - dropped)
            assert received[-1] == sent[-1]
            assert received == sorted(received)  # in order, gaps only
    run(test)


# ------------------------------------------------------ sockets and setup
def test_the_socket_directory_is_private_to_the_user(base: str) -> None:
    top = Path(base) / f"cluster_actors-{os.getuid()}"
    top.mkdir(mode=0o755)
    os.chmod(top, 0o755)  # a loose directory left by someone is tightened

    async def test() -> None:
        async with started(base, "n1") as (a,):
            path = Path(a.endpoint.unix)  # type: ignore[arg-type]
            assert path.parent.parent == top
            for directory in (top, path.parent):
                assert stat.S_IMODE(directory.stat().st_mode) == 0o700
            assert stat.S_ISSOCK(path.stat().st_mode)
    run(test)


def test_a_socket_directory_that_is_a_symlink_is_refused(base: str) -> None:
    os.symlink("/tmp", Path(base) / f"cluster_actors-{os.getuid()}")
    with pytest.raises(DataPlaneError) as error:
        socket_path("c1", "n1", base)
    assert isinstance(error.value, ClusterError) and "not a directory owned" in str(error.value)


def test_long_names_give_a_socket_path_within_the_unix_limit(base: str) -> None:
    async def test() -> None:
        long = "é-" * 200
        async with started(base, long, "n2", cluster="c/" * 100) as (a, b):
            path = a.endpoint.unix
            assert path is not None and len(os.fsencode(path)) <= UNIX_PATH_LIMIT
            assert await b.link_to(a)
            b.plane.send(RAFT, long, b"x")
            assert await a.sink.wait(1) == [b"x"] and a.sink.sources == ["n2"]
    run(test)


def test_close_removes_the_socket_file_and_reports_the_peers_link_down(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            assert await a.link_to(b)
            path = Path(b.endpoint.unix)  # type: ignore[arg-type]
            b.plane.close()
            await b.plane.wait_closed()
            assert not path.exists()
            await a.down.wait()
            assert not b.plane.send(RAFT, "n1", b"x")
            assert not a.plane.send(RAFT, "n2", b"x")
    run(test)


def test_bad_settings_are_refused_with_a_validation_error() -> None:
    with pytest.raises(ValidationFailed):
        DataPlane("c1", "n1", "a", b"short")
    plane = DataPlane("c1", "n1", "a", SECRET)
    with pytest.raises(ValidationFailed):
        plane.register(RAFT, lambda src, payloads: None, policy="fifo")


def test_the_frame_reader_reassembles_frames_split_anywhere() -> None:
    payloads = [b"", b"a", b"bc" * 1000, b"d"]
    stream = b"".join(wire.frame(p) for p in payloads)
    reader = wire.FrameReader(10_000)
    got = [frame for i in range(len(stream)) for frame in reader.feed(stream[i:i + 1])]
    assert got == payloads and not reader.buffer
    with pytest.raises(wire.FrameTooLarge):
        wire.FrameReader(10).feed(wire.frame(b"x" * 11))


def test_an_unchanged_address_keeps_its_link_and_forget_closes_it(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2") as (a, b):
            assert await a.link_to(b)
            endpoint = b.endpoint
            relayed = Endpoint(endpoint.node, endpoint.actor, endpoint.machine, endpoint.unix,
                               list(endpoint.tcp))  # type: ignore[arg-type]  # as JSON gives it
            a.plane.set_address(RAFT, "n2", relayed)
            assert a.plane.is_up(RAFT, "n2") and a.plane.stats["dials"] == 1
            a.plane.forget(RAFT, "n2")
            assert not a.plane.send(RAFT, "n2", b"x") and a.plane.stats["dials"] == 1
            assert a.downs == []  # closed on purpose: no hint to re-resolve
    run(test)


def test_one_frame_larger_than_the_high_water_mark_passes_an_empty_link(base: str) -> None:
    async def test() -> None:
        async with started(base, "n1", "n2", high_water=100) as (a, b):
            assert await a.link_to(b)
            assert a.plane.send(RAFT, "n2", b"y" * 1000)
            assert await b.sink.wait(1) == [b"y" * 1000]
            assert a.plane.stats["dropped_hwm"] == 0
    run(test)
