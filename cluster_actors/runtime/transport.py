"""Node-to-node messages between the same component on different nodes.

One :class:`Transport` lives inside each component actor. It

* batches: :meth:`Transport.send` takes every message produced by one
  protocol step, groups them per destination and makes **one** Ray call per
  peer carrying all of them (heartbeats, entries and acknowledgements ride
  together);
* resolves peers by name (``<cluster>:<node>:<component>``) and re-resolves
  them after a restart;
* watches peers: for each it keeps one outstanding ``until_stopped`` call
  that fails within milliseconds when the peer's actor dies, and reports the
  death (the consensus actor uses this to start a pre-vote at once instead of
  waiting for an election timeout);
* validates what arrives: a batch from another cluster, from a sender that
  is not a member (when the component says who is),
  holding malformed messages or messages whose own source differs from the
  batch's is dropped and counted, never applied;
* applies the :class:`FaultFilter` the chaos layer sets: blocked peers in
  either direction, a drop rate and an added delay, on both paths below;
* with ``data_plane=True``, sends a batch as a frame on the process's
  :class:`~cluster_actors.runtime.dataplane.DataPlane` when the link to the
  peer is up, and as a Ray call otherwise. The peer's address is asked of the
  peer (``dataplane_address``) once its handle resolves; a broken link is a
  hint (the address is asked again, Ray calls carry the batches meanwhile);
  only Ray's death watch declares a peer dead. Incoming frames go through the
  same ``receiver`` (and so :meth:`Transport.accept`) as Ray batches.
  :attr:`Transport.stats` counts ``frames`` against ``calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import dataplane_process
from .hosting import find_component, tell
from .naming import namespace

logger = logging.getLogger(__name__)

#: Waits between lookups of a peer not running (yet); then every 2 s. A
#: resolved peer is sent an empty batch (a hello), which wakes the lookup of
#: us it may be waiting in, so nodes starting one after another find each
#: other at once without polling the GCS often.
RESOLVE_RETRY_SECONDS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
RESOLVE_STEADY_SECONDS = 2.0
#: Waits between asks for a peer's data-plane address while it has none (yet).
ADDRESS_RETRY_SECONDS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)


def _encode(batch: list[Any]) -> bytes | list[Any]:
    """A batch as one pickle made by the C pickler: Ray would pickle it with
    cloudpickle, whose per-object Python hook makes a 1,000-entry append
    several times slower to encode. Anything plain pickle refuses travels
    as is."""
    try:
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return batch


@dataclass
class FaultFilter:
    """Faults injected on one node's links (set by the chaos layer)."""

    blocked: set[str] = field(default_factory=set)
    drop_rate: float = 0.0
    delay_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be within [0, 1], got {self.drop_rate}")
        if self.delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {self.delay_ms}")

    def passes(self, peer: str) -> bool:
        if peer in self.blocked:
            return False
        return not (self.drop_rate and self.rng.random() < self.drop_rate)

    def describe(self) -> dict[str, Any]:
        return {"blocked": sorted(self.blocked), "drop_rate": self.drop_rate,
                "delay_ms": self.delay_ms}


class Transport:
    """Messages of one component to the same component on peer nodes.

    ``method`` is the remote method peers receive batches on; it is called as
    ``method(cluster, src, messages)``. ``on_peer_death(peer)`` is called
    when a watched peer's actor dies. With ``data_plane`` (and a
    ``receiver``, the local ``method``: frames are handed to it as
    ``receiver(cluster, src, encoded_batch)``) batches travel on streams while
    a link is up; ``policy`` is the links' high-water policy (``"drop"`` or
    ``"keep_newest"``). With ``dial_early`` a link is dialled as soon as the
    peer's address is known (consensus: followers must find their links up
    when their leader dies); otherwise at the first send (heartbeats go to a
    few monitors only, and 50 nodes would open 2,450 idle links).
    """

    def __init__(self, cluster: str, node_id: str, component: str, peers: Iterable[str],
                 method: str = "receive",
                 on_peer_death: Callable[[str], None] | None = None, *,
                 data_plane: bool = False,
                 receiver: Callable[[str, str, bytes], Any] | None = None,
                 policy: str = "drop", dial_early: bool = False) -> None:
        self.cluster = cluster
        self.dial_early = dial_early
        self.node_id = node_id
        self.component = component
        self.method = method
        self.namespace = namespace(cluster)
        self.on_peer_death = on_peer_death
        self.faults = FaultFilter()
        self.handles: dict[str, Any] = {}
        self.peers: set[str] = set()
        self._watch_tasks: dict[str, asyncio.Task[None]] = {}
        self._resolving: set[str] = set()
        self._wake: dict[str, asyncio.Event] = {}  # peer -> set when it said hello
        self._dead: dict[str, str] = {}  # peer -> actor id of its last dead incarnation
        self.stats: Counter[str] = Counter()
        self._closed = False
        self.plane: Any = None  # this process's DataPlane once attached
        self._receiver = receiver
        self._policy = policy
        self._address_tasks: dict[str, asyncio.Task[None]] = {}
        self._asked_of: dict[str, Any] = {}  # peer -> the handle its address is asked of
        self._handling: set[asyncio.Task[Any]] = set()  # async receivers of frames
        self.set_peers(peers)
        self._attaching = (asyncio.get_running_loop().create_task(self._attach_plane())
                           if data_plane and receiver is not None else None)

    # --------------------------------------------------------- data plane
    async def _attach_plane(self) -> None:
        plane = await dataplane_process.attach(self)
        if plane is None or self._closed:
            return
        plane.register(self.component, self._on_frames, self._policy)
        self.plane = plane
        for peer, handle in list(self.handles.items()):
            self._ask_address(peer, handle)

    def _on_frames(self, src: str, payloads: list[bytes]) -> None:
        """Frames of ``src`` (authenticated by the handshake): each is one batch."""
        self.stats["frames_in"] += len(payloads)
        loop = asyncio.get_running_loop()
        for payload in payloads:
            result = self._receiver(self.cluster, src, payload)  # type: ignore[misc]
            if asyncio.iscoroutine(result):
                task = loop.create_task(result)
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)

    def _ask_address(self, peer: str, handle: Any, dial: bool = True) -> None:
        if self.plane is None or self._closed:
            return
        asking = self._address_tasks.get(peer)
        if asking is not None and not asking.done():
            if self._asked_of.get(peer) is handle:
                return
            asking.cancel()  # still asking a previous incarnation
        self._asked_of[peer] = handle
        self._address_tasks[peer] = asyncio.get_running_loop().create_task(
            self._fetch_address(peer, handle, dial and self.dial_early))

    async def _fetch_address(self, peer: str, handle: Any, dial: bool) -> None:
        """Ask ``peer`` where its plane listens, until it says or its handle
        changes; then, if ``dial``, dial the link at once."""
        for backoff in (*ADDRESS_RETRY_SECONDS, *[ADDRESS_RETRY_SECONDS[-1]] * 10_000):
            if self._closed or self.handles.get(peer) is not handle:
                return
            try:
                endpoint = await handle.dataplane_address.remote(self.cluster)
            except Exception:
                endpoint = None  # dying or restarting: the death watch will tell
            if self._closed or self.handles.get(peer) is not handle:
                return
            if endpoint is not None:
                self.plane.set_address(self.component, peer, endpoint)
                self.stats["addresses"] += 1
                if dial:  # see dial_early
                    await self.plane.connect(self.component, peer)
                return
            await asyncio.sleep(backoff)

    def link_down(self, peer: str) -> None:
        """The plane's hint that the link to ``peer`` broke or cannot be dialled:
        not a death. Ask the peer's address again (Ray calls meanwhile)."""
        self.stats["link_down"] += 1
        handle = self.handles.get(peer)
        if handle is not None:
            self._ask_address(peer, handle, dial=False)  # the next send dials

    def _forget_link(self, peer: str) -> None:
        self._asked_of.pop(peer, None)
        task = self._address_tasks.pop(peer, None)
        if task is not None:
            task.cancel()
        if self.plane is not None:
            self.plane.forget(self.component, peer)

    # -------------------------------------------------------------- peers
    def set_peers(self, peers: Iterable[str]) -> None:
        new = set(peers) - {self.node_id}
        for gone in self.peers - new:
            self.handles.pop(gone, None)
            self._forget_link(gone)
            task = self._watch_tasks.pop(gone, None)
            if task:
                task.cancel()
        added = new - self.peers
        self.peers = new
        for peer in added:
            self._schedule_resolve(peer, 0.0)

    def _schedule_resolve(self, peer: str, delay: float) -> None:
        if peer in self._resolving or self._closed:
            return
        self._resolving.add(peer)
        asyncio.get_running_loop().create_task(self._resolve(peer, delay))

    async def _resolve(self, peer: str, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            for backoff in (*RESOLVE_RETRY_SECONDS, *[RESOLVE_STEADY_SECONDS] * 10_000):
                if peer not in self.peers or self._closed:
                    return
                try:  # a GCS lookup: off the loop, which keeps serving meanwhile
                    handle = await asyncio.to_thread(find_component, self.cluster, peer,
                                                     self.component)
                except ValueError:
                    await self._pause(peer, backoff)
                    continue
                if handle._actor_id.hex() == self._dead.get(peer):
                    await self._pause(peer, backoff)  # the name still points at the dead actor
                    continue
                self.handles[peer] = handle
                self._watch(peer, handle)
                self._ask_address(peer, handle)
                if self.faults.passes(peer):
                    self._call(handle, [])  # hello: the peer may be looking for us
                return
        finally:
            self._resolving.discard(peer)

    async def _pause(self, peer: str, seconds: float) -> None:
        """Wait ``seconds`` before looking ``peer`` up again, or less if it says hello."""
        wake = self._wake.setdefault(peer, asyncio.Event())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)
        wake.clear()

    def _watch(self, peer: str, handle: Any) -> None:
        old = self._watch_tasks.pop(peer, None)
        if old:
            old.cancel()
        self._watch_tasks[peer] = asyncio.get_running_loop().create_task(
            self._await_death(peer, handle))

    async def _await_death(self, peer: str, handle: Any) -> None:
        try:
            await handle.until_stopped.remote()
        except asyncio.CancelledError:
            raise
        except Exception:
            pass
        if self.handles.get(peer) is handle:
            del self.handles[peer]
            self._forget_link(peer)  # Ray's word: the peer died
        self._dead[peer] = handle._actor_id.hex()
        self.stats["peer_deaths"] += 1
        if self.on_peer_death is not None and not self._closed:
            try:
                self.on_peer_death(peer)
            except Exception:
                logger.exception("peer death handler failed for %s", peer)
        self._schedule_resolve(peer, RESOLVE_RETRY_SECONDS[0])

    # ------------------------------------------------------------ sending
    def send(self, messages: Sequence[Any], dst_of: Callable[[Any], str] = lambda m: m.dst
             ) -> None:
        """Send ``messages``: one Ray call per destination peer."""
        batches: dict[str, list[Any]] = {}
        for message in messages:
            batches.setdefault(dst_of(message), []).append(message)
        for dst, batch in batches.items():
            self.send_batch(dst, batch)

    def send_batch(self, dst: str, batch: list[Any]) -> None:
        """Send ``batch`` to ``dst``: a frame if its link is up, else a Ray call."""
        self.send_to((dst,), batch)

    def send_to(self, dsts: Iterable[str], batch: list[Any]) -> None:
        """Send the same ``batch`` to each of ``dsts``, encoded once for all."""
        payload: bytes | list[Any] | None = None
        for dst in dsts:
            if not self.faults.passes(dst):
                self.stats["dropped_out"] += len(batch)
                continue
            handle = self.handles.get(dst)
            if handle is None:
                self.stats["unresolved"] += len(batch)
                if dst in self.peers:
                    self._schedule_resolve(dst, 0.0)
                continue
            if payload is None:
                payload = _encode(batch)
            self.stats["sent"] += len(batch)
            if self.faults.delay_ms:
                asyncio.get_running_loop().call_later(
                    self.faults.delay_ms / 1000, self._deliver, dst, handle, payload)
            else:
                self._deliver(dst, handle, payload)

    def _deliver(self, dst: str, handle: Any, payload: bytes | list[Any]) -> None:
        plane = self.plane
        if (plane is not None and isinstance(payload, bytes) and not self._closed
                and plane.send(self.component, dst, payload)):
            self.stats["frames"] += 1
            return
        self.stats["calls"] += 1
        self._call(handle, payload)

    def _call(self, handle: Any, batch: bytes | list[Any]) -> None:
        tell(handle, self.method, self.cluster, self.node_id,
             batch if isinstance(batch, bytes) else _encode(batch))

    # ---------------------------------------------------------- receiving
    def accept(self, cluster: Any, src: Any, messages: Any,
               validate: Callable[[Any], str | None],
               src_of: Callable[[Any], Any] | None = None,
               is_member: Callable[[str], bool] | None = None) -> list[Any]:
        """The messages of an incoming batch that may be applied.

        Dropped whole (and counted in :attr:`stats`): a batch from another
        cluster (``dropped_foreign``), one that is not a list
        (``dropped_malformed``), from a blocked peer (``dropped_in``), or from
        a sender ``is_member`` (when given) refuses (``dropped_non_member``;
        without it any node of this cluster may send, e.g. gossip from a
        joiner). Then each
        message ``validate`` rejects (returning a reason) is dropped alone
        (``dropped_malformed``), and so is each whose own source
        (``src_of(message)``, when given) is not the batch's sender
        (``dropped_spoofed``).
        """
        if cluster != self.cluster:
            self.stats["dropped_foreign"] += 1
            return []
        if isinstance(messages, bytes):
            try:
                messages = pickle.loads(messages)
            except Exception:
                messages = None
        if not isinstance(messages, list):
            self.stats["dropped_malformed"] += 1
            return []
        if not isinstance(src, str) or src in self.faults.blocked:
            self.stats["dropped_in"] += len(messages)
            return []
        if is_member is not None and not is_member(src):
            if messages:  # an empty batch is a hello: nothing to count
                self.stats["dropped_non_member"] += 1
                logger.debug("dropped a batch of %d from %s: not a member", len(messages), src)
            return []
        if src not in self.handles and src in self._wake:
            self._wake[src].set()  # a peer we are looking for is up
        accepted = []
        for message in messages:
            reason = validate(message)
            if reason is not None:
                self.stats["dropped_malformed"] += 1
                logger.debug("dropped a malformed message from %s: %s", src, reason)
            elif src_of is not None and src_of(message) != src:
                self.stats["dropped_spoofed"] += 1
                logger.debug("dropped a message claiming sender %r in a batch from %s",
                             src_of(message), src)
            else:
                accepted.append(message)
        return accepted

    def close(self) -> None:
        self._closed = True
        for task in (*self._watch_tasks.values(), *self._address_tasks.values()):
            task.cancel()
        self._watch_tasks.clear()
        self._address_tasks.clear()
        if self.plane is not None:
            for peer in list(self.peers):
                self.plane.forget(self.component, peer)
        self.plane = None
        dataplane_process.detach(self)
