"""The data plane: length-prefixed frames over Unix and TCP streams between
the processes that host components.

A Ray actor call costs about a millisecond of CPU; a frame on a stream costs
a few microseconds. So Ray stays the control plane (placement, names,
supervision, the death watch, admin calls, bulk transfers) and the hot
messages (Raft, heartbeats, client commands, event pushes) travel here.

How :class:`~cluster_actors.runtime.transport.Transport` will use it
--------------------------------------------------------------------
* Each process that hosts components owns one :class:`DataPlane`: a
  component actor (``per_component``) or a node host (``per_node``, one plane
  for all the node's components; siblings in one host keep calling each other
  directly). It is made with the process's actor id and the cluster's secret
  (made at ``Cluster.start`` with :func:`make_secret`, handed out through
  Ray), started with ``await plane.start()``, and a Ray method of the actor
  returns :meth:`DataPlane.addresses`: that is how peers learn where to dial.
  A driver that wants replies on a stream (the KV client) runs a plane too,
  as a node of its own name.
* A component calls :meth:`DataPlane.register` with its handler and policy
  (``"drop"`` for Raft, ``"keep_newest"`` for heartbeats); frames reach
  ``on_frames(src_node, payloads)``, where the Transport unpickles them and
  applies what :meth:`Transport.accept` applies to a Ray batch (membership,
  the fault filter's blocked peers, message validation).
* When the Transport resolves a peer through Ray (``find_component``), it
  also asks the peer for its :class:`Endpoint` and calls
  :meth:`DataPlane.set_address` (per component: in ``per_component`` a
  peer's components are separate processes). On send it pickles a batch once
  and calls :meth:`DataPlane.send_many` with ``FaultFilter.passes``, so
  partitions and drops hold on the stream too; every peer returned (no link
  up yet, or the payload is over ``max_frame``, or plain pickle refused it)
  gets the batch as a Ray call, as today. A delay the fault filter asks for
  is applied by the caller before it sends.
* ``on_link_down(component, peer)`` is a hint, not a death: the Transport
  re-resolves the peer's address through Ray (a dial refused as stale means
  the peer restarted) and falls back to Ray calls meanwhile. Only Ray's
  death watch (``until_stopped``) declares a peer dead; on that word the
  Transport calls :meth:`DataPlane.forget`, then ``set_address`` with the
  new incarnation's endpoint once it resolves.
* The stream and the Ray path are not ordered with each other; Raft and the
  failure detector tolerate reordering and loss, as they do today.

Links and frames
----------------
One outgoing link per (component, peer node): heartbeats never queue behind
appends. A link carries frames one way (its dialler sends, the listener
receives); replies travel on the peer's own link back. A frame is a 4-byte
big-endian length and the payload. Everything :meth:`DataPlane.send` queues
in one event-loop turn leaves in one write at the end of the turn. Each link
has a high-water mark on its unsent bytes (outbox plus socket buffer) and a
policy from its component: ``"drop"`` drops and counts new frames above it
(Raft probes and resends), ``"keep_newest"`` keeps only the newest unsent
frame (heartbeats).

Handshake (mutual, HMAC-SHA256 with the cluster's secret)
----------------------------------------------------------
The listener speaks first with a random nonce; the dialler answers with the
cluster id, its node, the component, its own actor id, the actor id it
expects to reach, its nonce and an HMAC over all of it and both nonces; the
listener checks the cluster, the HMAC, that the expected actor id is its own
(an address published by a previous incarnation is stale) and that the
component is registered, then proves it knows the secret too. Anything
else is refused, closed and counted in :attr:`DataPlane.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ValidationFailed
from . import dataplane_wire as wire
from .dataplane_sockets import DataPlaneError, machine_id, nodelay, socket_path
from .dataplane_wire import HANDSHAKE_MAX, LENGTH, FrameReader, FrameTooLarge

__all__ = ["DataPlane", "DataPlaneError", "Endpoint", "make_secret"]

logger = logging.getLogger(__name__)

MAX_FRAME = 64 << 20  #: largest payload a link carries; larger ones go as Ray calls
HIGH_WATER = 8 << 20  #: default unsent bytes per link before its policy applies
DIAL_TIMEOUT = 2.0  #: seconds to connect and finish the handshake
HANDSHAKE_TIMEOUT = 2.0  #: seconds a listener waits for a dialler's hello
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0  #: seconds between failed dials, doubling
POLICIES = ("drop", "keep_newest")

FrameHandler = Callable[[str, list[bytes]], None]


def make_secret() -> bytes:
    """A fresh per-cluster secret for the handshake's HMAC (32 random bytes)."""
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class Endpoint:
    """Where a :class:`DataPlane` listens, published through Ray.

    ``actor`` is the listener's actor (or incarnation) id: a dial that
    expects another one is refused as stale. ``machine`` identifies the host;
    a dialler on the same machine uses the Unix socket, others use TCP.
    """

    node: str
    actor: str
    machine: str
    unix: str | None
    tcp: tuple[str, int] | None

    def __post_init__(self) -> None:
        if self.tcp is not None:  # a list after a trip through JSON compares unequal
            object.__setattr__(self, "tcp", (str(self.tcp[0]), int(self.tcp[1])))


# ---------------------------------------------------------------- the links
@dataclass(eq=False)
class _Link:
    component: str
    peer: str
    endpoint: Endpoint
    policy: str
    high_water: int
    state: str = "down"  # "down" | "dialling" | "up"
    conn: _Outbound | None = None
    outbox: list[bytes] = field(default_factory=list)  # header, payload, header, ...
    outbox_bytes: int = 0
    paused: bool = False
    dirty: bool = False
    backoff: float = 0.0
    retry_at: float = 0.0
    task: asyncio.Task[None] | None = None


class _Outbound(asyncio.Protocol):
    """The dialling side of one connection of a link."""

    def __init__(self, plane: DataPlane, link: _Link) -> None:
        self.plane, self.link = plane, link
        self.reader = FrameReader(HANDSHAKE_MAX)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[str | None] = plane._loop.create_future()
        self.nonce = os.urandom(16)
        self.fields = b""
        self.server_nonce: bytes | None = None
        self.up = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        nodelay(transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameTooLarge:
            frames = [b""]
        for frame in frames:
            if self.ready.done():
                return  # a listener says nothing after its welcome
            if self.server_nonce is None:
                self.server_nonce = wire.parse_challenge(frame)
                if self.server_nonce is None:
                    self._fail("malformed")
                    return
                self.fields, message = wire.hello(self.plane._secret, self.server_nonce,
                                                  self.nonce, self._identity())
                self.transport.write(message)  # type: ignore[union-attr]
                continue
            kind, body = wire.parse_reply(frame)
            if kind == "welcome" and hmac.compare_digest(body, wire.proof(
                    self.plane._secret, b"welcome", self.nonce, self.server_nonce, self.fields)):
                self.ready.set_result(None)
            elif kind == "refused":
                reason = body.decode("ascii", "replace")
                self._fail(reason if reason in wire.REFUSAL_REASONS else "other")
            else:
                self._fail("bad_proof")

    def _identity(self) -> list[str]:
        plane, link = self.plane, self.link
        return [plane.cluster, plane.node, link.component, plane.actor_id, link.endpoint.actor]

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_result(reason)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result("closed")
        if self.up:
            self.up = False
            self.plane._link_lost(self.link, self)

    def pause_writing(self) -> None:
        self.link.paused = True

    def resume_writing(self) -> None:
        self.link.paused = False
        if self.up:
            self.plane._mark_dirty(self.link)


class _Inbound(asyncio.Protocol):
    """The listening side of one connection: handshake, then frames to a handler."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.reader = FrameReader(HANDSHAKE_MAX)
        self.transport: asyncio.Transport | None = None
        self.nonce = os.urandom(16)
        self.src: str | None = None
        self.component: str | None = None  # set by a good hello
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        nodelay(transport)
        self.plane._inbound.add(self)
        self.plane.stats["accepted"] += 1
        transport.write(wire.challenge(self.nonce))  # type: ignore[attr-defined]
        self.timer = self.plane._loop.call_later(self.plane.handshake_timeout,
                                                 self._refuse, "timeout")

    def data_received(self, data: bytes) -> None:
        plane = self.plane
        try:
            frames = self.reader.feed(data)
        except FrameTooLarge:
            if self.component is None:
                self._refuse("malformed")
            else:
                plane.stats["frames_too_large"] += 1
                self.transport.abort()  # type: ignore[union-attr]
            return
        if self.component is None:
            if not frames:
                return
            if not self._hello(frames.pop(0)):
                return
        if frames:
            stats = plane.stats
            stats["frames_in"] += len(frames)
            stats["bytes_in"] += sum(map(len, frames))
            stats["batches_in"] += 1
            try:
                plane._handlers[self.component](self.src, frames)  # type: ignore[arg-type]
            except Exception:
                stats["handler_errors"] += 1
                logger.exception("data plane handler failed for frames from %s", self.src)

    def _hello(self, frame: bytes) -> bool:
        plane = self.plane
        parsed = wire.parse_hello(frame)
        if parsed is None:
            return self._refuse("malformed")
        nonce, mac, fields, (cluster, src, component, _src_actor, dst_actor) = parsed
        if cluster != plane.cluster:
            return self._refuse("cluster")
        if not hmac.compare_digest(mac, wire.proof(plane._secret, b"hello", self.nonce, nonce,
                                                   fields)):
            return self._refuse("bad_hmac")
        if dst_actor != plane.actor_id:
            return self._refuse("stale")
        if component not in plane._handlers:
            return self._refuse("component")
        self.timer.cancel()  # type: ignore[union-attr]
        self.src, self.component = src, component
        self.reader.limit = plane.max_frame
        plane.stats["links_in"] += 1
        self.transport.write(wire.welcome(plane._secret, nonce, self.nonce, fields))  # type: ignore[union-attr]
        return True

    def _refuse(self, reason: str) -> bool:
        self.plane.stats[f"refused_{reason}"] += 1
        if self.timer is not None:
            self.timer.cancel()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(wire.refusal(reason))
            transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.plane._inbound.discard(self)


# ------------------------------------------------------------- the data plane
class DataPlane:
    """The streams of one process that hosts components (see the module doc).

    ``actor_id`` is this process's actor (or incarnation) id and ``secret``
    the cluster's (at least 16 bytes). ``tcp_host`` is the node IP to listen
    on (None: no TCP listener), ``unix`` whether to listen on a Unix socket in
    the cluster's private directory under ``runtime_dir``. ``machine``
    overrides :func:`machine_id`. ``on_link_down(component, peer)`` is called
    when an up link breaks and when a dial fails (at most once per backoff).

    :attr:`stats` counts, among others: ``frames_out``, ``bytes_out`` and
    ``writes`` (socket writes: one per link per loop turn), ``frames_in``,
    ``bytes_in``, ``batches_in`` (handler calls), ``dropped_hwm``,
    ``dropped_fault``, ``dropped_down`` (queued frames lost with their link),
    ``fallback`` (sends refused because the link is not up), ``no_address``,
    ``too_large_out``, ``frames_too_large`` (incoming; the link is closed),
    ``dials``, ``links_up``, ``links_down``, ``dial_failed``,
    ``dial_refused_<reason>``, ``dial_bad_proof``, ``accepted``, ``links_in``,
    ``refused_<reason>`` for ``malformed``, ``cluster``, ``bad_hmac``,
    ``stale``, ``component`` and ``timeout``, and ``handler_errors``.
    """

    def __init__(self, cluster: str, node: str, actor_id: str, secret: bytes, *,
                 tcp_host: str | None = "127.0.0.1", unix: bool = True,
                 runtime_dir: str | None = None, machine: str | None = None,
                 max_frame: int = MAX_FRAME, high_water: int = HIGH_WATER,
                 dial_timeout: float = DIAL_TIMEOUT,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 on_link_down: Callable[[str, str], None] | None = None) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValidationFailed([("secret", "the cluster secret must be at least 16 bytes")])
        if max_frame < 1 or high_water < 1:
            raise ValidationFailed([("max_frame", "max_frame and high_water must be > 0")])
        self.cluster, self.node, self.actor_id = cluster, node, actor_id
        self._secret = secret
        self.tcp_host, self.unix, self.runtime_dir = tcp_host, unix, runtime_dir
        self.machine = machine if machine is not None else machine_id()
        self.max_frame, self.high_water = max_frame, high_water
        self.dial_timeout, self.handshake_timeout = dial_timeout, handshake_timeout
        self.on_link_down = on_link_down
        self.stats: Counter[str] = Counter()
        self._handlers: dict[str, FrameHandler] = {}
        self._policies: dict[str, tuple[str, int]] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._inbound: set[_Inbound] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._dirty: list[_Link] = []
        self._flush_scheduled = False
        self._closed = False
        self._unix_path: Path | None = None
        self._tcp: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # by start()

    async def start(self) -> Endpoint:
        """Listen, and return :meth:`addresses`. Raises :class:`DataPlaneError`
        if the socket directory is not private to this user."""
        if self._loop is not None:
            return self.addresses()
        self._loop = asyncio.get_running_loop()
        if self.unix:
            path = socket_path(self.cluster, self.node, self.runtime_dir)
            if path is None:
                logger.warning("no Unix socket path fits the limit; TCP only")
            else:
                self._servers.append(await self._loop.create_unix_server(
                    lambda: _Inbound(self), str(path)))
                self._unix_path = path
        if self.tcp_host is not None:
            server = await self._loop.create_server(lambda: _Inbound(self), self.tcp_host, 0)
            self._servers.append(server)
            self._tcp = (self.tcp_host, server.sockets[0].getsockname()[1])
        return self.addresses()

    def addresses(self) -> Endpoint:
        """What peers need to dial this process: publish it through Ray."""
        return Endpoint(self.node, self.actor_id, self.machine,
                        str(self._unix_path) if self._unix_path else None, self._tcp)

    def register(self, component: str, on_frames: FrameHandler, policy: str = "drop",
                 high_water: int | None = None) -> None:
        """Receive ``component``'s frames with ``on_frames(src_node, payloads)``
        (called once per batch read, in order), and send its frames with
        ``policy`` above ``high_water`` unsent bytes per link."""
        if policy not in POLICIES:
            raise ValidationFailed([("policy", f"policy must be one of {POLICIES}, "
                                               f"got {policy!r}")])
        self._handlers[component] = on_frames
        self._policies[component] = (policy, high_water or self.high_water)
        for link in self._links.values():
            if link.component == component:
                link.policy, link.high_water = self._policies[component]

    # ------------------------------------------------------------ addresses
    def set_address(self, component: str, peer: str, endpoint: Endpoint) -> None:
        """Where ``component`` of ``peer`` listens. A changed address (a new
        incarnation) closes the old link; the next send dials the new one."""
        key = (component, peer)
        link = self._links.get(key)
        if link is not None:
            if link.endpoint == endpoint:
                return
            self._drop_link(link)
        policy, high_water = self._policies.get(component, ("drop", self.high_water))
        self._links[key] = _Link(component, peer, endpoint, policy, high_water)

    def forget(self, component: str, peer: str) -> None:
        """Close the link to ``peer`` and forget its address: it is no longer
        a peer, or Ray's death watch says it died (a link to a host that
        vanished without closing its sockets would otherwise look up)."""
        link = self._links.pop((component, peer), None)
        if link is not None:
            self._drop_link(link)

    def is_up(self, component: str, peer: str) -> bool:
        link = self._links.get((component, peer))
        return link is not None and link.state == "up"

    async def connect(self, component: str, peer: str) -> bool:
        """Dial the link now if it is down (backoff permitting) and wait for
        the outcome; True if it is up."""
        link = self._links.get((component, peer))
        if link is None:
            return False
        self._dial(link)
        if link.task is not None:
            await asyncio.wait([link.task])  # a dial cancelled by close() is an outcome too
        return link.state == "up"

    # --------------------------------------------------------------- sending
    def send(self, component: str, peer: str, payload: bytes,
             passes: Callable[[str], bool] | None = None) -> bool:
        """Queue ``payload`` for ``peer``'s ``component``; it leaves at the end
        of this loop turn. False if the caller must send it another way (no
        link is up: one is dialled, or the payload is over ``max_frame``);
        True if the data plane took it, including when ``passes(peer)`` said
        drop or the high-water policy dropped it (both counted)."""
        return not self.send_many(component, (peer,), payload, passes)

    def send_many(self, component: str, peers: Iterable[str], payload: bytes,
                  passes: Callable[[str], bool] | None = None) -> list[str]:
        """:meth:`send` of one encoded ``payload`` to each of ``peers`` (its
        bytes are shared, not copied); returns the peers that must be sent
        to another way."""
        peers = list(peers)
        size = len(payload)
        if size > self.max_frame or self._closed:
            self.stats["too_large_out" if size > self.max_frame else "fallback"] += len(peers)
            return peers
        header = LENGTH.pack(size)
        stats, links, fallback = self.stats, self._links, []
        for peer in peers:
            if passes is not None and not passes(peer):
                stats["dropped_fault"] += 1
                continue
            link = links.get((component, peer))
            if link is None:
                stats["no_address"] += 1
                fallback.append(peer)
            elif link.state != "up":
                stats["fallback"] += 1
                fallback.append(peer)
                self._dial(link)
            else:
                self._queue(link, header, payload, size + 4)
        return fallback

    def _queue(self, link: _Link, header: bytes, payload: bytes, size: int) -> None:
        outbox = link.outbox
        pending = link.outbox_bytes + link.conn.transport.get_write_buffer_size()  # type: ignore[union-attr]
        if pending and pending + size > link.high_water:
            if link.policy == "drop":
                self.stats["dropped_hwm"] += 1
                return
            self.stats["dropped_hwm"] += len(outbox) // 2
            outbox.clear()  # type: ignore[union-attr]
            link.outbox_bytes = 0
        outbox.append(header)  # type: ignore[union-attr]
        outbox.append(payload)
        link.outbox_bytes += size
        self._mark_dirty(link)

    def _mark_dirty(self, link: _Link) -> None:
        if not link.dirty:
            link.dirty = True
            self._dirty.append(link)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write each link's outbox in one write (once per loop turn)."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        stats = self.stats
        for link in dirty:
            link.dirty = False
            outbox = link.outbox
            if link.state != "up" or link.paused or not outbox:
                continue
            data = b"".join(outbox)
            link.conn.transport.write(data)  # type: ignore[union-attr]
            stats["writes"] += 1
            stats["frames_out"] += len(outbox) // 2
            stats["bytes_out"] += len(data)
            link.outbox = []
            link.outbox_bytes = 0

    # --------------------------------------------------------------- dialling
    def _dial(self, link: _Link) -> None:
        if link.state != "down" or self._closed or self._loop.time() < link.retry_at:
            return
        link.state = "dialling"
        self.stats["dials"] += 1
        link.task = self._loop.create_task(self._dialling(link))

    async def _dialling(self, link: _Link) -> None:
        """Connect (Unix on the same machine, else or if that fails TCP) and
        handshake; the link is then up, or down with a longer backoff."""
        endpoint, reason, conn = link.endpoint, "unreachable", None
        deadline = self._loop.time() + self.dial_timeout
        routes = [True] if endpoint.unix and endpoint.machine == self.machine else []
        for unix in routes + ([False] if endpoint.tcp else []):
            conn = None
            try:
                conn = await asyncio.wait_for(self._connect(link, unix),
                                              deadline - self._loop.time())
                reason = await asyncio.wait_for(conn.ready, deadline - self._loop.time()) or ""
            except (OSError, asyncio.TimeoutError):
                reason = "unreachable" if conn is None else "timeout"
            except asyncio.CancelledError:  # the link was closed or replaced
                if conn is not None:
                    conn.transport.abort()  # type: ignore[union-attr]
                raise
            if reason and conn is not None:
                conn.transport.abort()  # type: ignore[union-attr]
            if reason != "unreachable":
                break
        link.task = None
        if link.state != "dialling" or self._links.get((link.component, link.peer)) is not link:
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            return  # closed or replaced meanwhile
        if not reason and conn is not None and not conn.transport.is_closing():  # type: ignore[union-attr]
            conn.up = True
            link.conn, link.state, link.paused = conn, "up", False
            link.backoff = 0.0
            self.stats["links_up"] += 1
            return
        link.state = "down"
        link.backoff = min(max(2 * link.backoff, BACKOFF_MIN), BACKOFF_MAX)
        link.retry_at = self._loop.time() + link.backoff
        self.stats["dial_failed"] += 1
        if reason == "bad_proof":
            self.stats["dial_bad_proof"] += 1
        elif reason not in ("unreachable", "timeout", "closed", ""):
            self.stats[f"dial_refused_{reason}"] += 1
        self._report_down(link)

    async def _connect(self, link: _Link, unix: bool) -> _Outbound:
        endpoint = link.endpoint
        if unix:
            _, conn = await self._loop.create_unix_connection(
                lambda: _Outbound(self, link), endpoint.unix)
        else:
            host, port = endpoint.tcp  # type: ignore[misc]
            _, conn = await self._loop.create_connection(lambda: _Outbound(self, link), host, port)
        return conn

    def _link_lost(self, link: _Link, conn: _Outbound) -> None:
        """An up link's connection broke: down, redialled on the next send."""
        if link.conn is not conn:
            return
        self.stats["links_down"] += 1
        self.stats["dropped_down"] += len(link.outbox) // 2
        link.conn, link.state, link.outbox, link.outbox_bytes = None, "down", [], 0
        link.retry_at = 0.0
        if not self._closed:
            self._report_down(link)

    def _report_down(self, link: _Link) -> None:
        if self.on_link_down is None or self._closed:
            return
        try:
            self.on_link_down(link.component, link.peer)
        except Exception:
            logger.exception("on_link_down failed for %s of %s", link.component, link.peer)

    def _drop_link(self, link: _Link) -> None:
        """Close ``link`` on purpose: not reported as down."""
        conn, link.conn, link.state = link.conn, None, "closed"
        if link.task is not None:
            link.task.cancel()
        if conn is not None:
            conn.up = False
            conn.transport.close()  # type: ignore[union-attr]

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Stop listening, close every link and remove the socket file."""
        if self._closed:
            return
        self._closed = True
        for server in self._servers:
            server.close()
        for link in self._links.values():
            self._drop_link(link)
        for inbound in list(self._inbound):
            if inbound.transport is not None:
                inbound.transport.abort()
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                self._unix_path.unlink()

    async def wait_closed(self) -> None:
        """Wait until the listeners are closed (after :meth:`close`)."""
        for server in self._servers:
            await server.wait_closed()

