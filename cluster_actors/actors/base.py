"""What every component actor shares: identity, options, an event stream with
subscriptions, a transport to the same component on peer nodes, timers,
access to sibling components on the same node, and the fault filter.

A component is written as::

    @ray.remote(num_cpus=0, max_restarts=0)
    class HeartbeatActor(ComponentActor):
        component = "heartbeat"

        async def on_start(self) -> None:      # build the core, start timers
            self.every(self.options.heartbeat_interval / 1000, self._beat)

        async def receive(self, cluster, src, messages) -> None:   # peers' batches
            for message in self.transport.accept(cluster, src, messages, validate):
                ...

All component actors take the same constructor arguments, so ``node.py`` can
build every child spec the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.limits import check_faults, check_seq, check_timeout
from ..errors import ClusterError
from ..options import ClusterOptions
from ..runtime.events import EventStream
from ..runtime.hosting import find_component, hosted_by
from ..runtime.supervisor.protocol import SupervisedActor
from ..runtime.transport import FaultFilter, Transport

logger = logging.getLogger(__name__)


class ComponentActor(SupervisedActor):
    """Base of the component actors (see the module doc)."""

    component: str = "component"
    uses_transport: bool = True
    #: whether peer batches travel on the data plane (with ``options.data_plane``)
    #: and the links' high-water policy
    uses_data_plane: bool = False
    data_plane_policy: str = "drop"

    def __init__(self, cluster: str, node_id: str, voters: list[str],
                 options: dict[str, Any], initial_config: dict[str, Any] | None = None,
                 join: bool = False) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.voters = list(voters)
        self.options = ClusterOptions.parse(options)
        self.initial_config = initial_config or {}
        self.join = join
        self.events = EventStream(f"{node_id}:{self.component}")
        self.transport: Transport = None  # type: ignore[assignment]
        self._timers: list[asyncio.Task[None]] = []
        self._siblings: dict[str, Any] = {}
        self.started = False

    # ----------------------------------------------------------- lifecycle
    async def on_activate(self) -> None:
        if self.uses_transport:
            streams = self.uses_data_plane and self.options.data_plane
            self.transport = Transport(self.cluster, self.node_id, self.component,
                                       self.voters, on_peer_death=self.on_peer_death,
                                       data_plane=streams, receiver=getattr(self, "receive", None),
                                       policy=self.data_plane_policy)
        await self.on_start()
        self.started = True
        self.events.publish("started", node=self.node_id)

    async def on_start(self) -> None:
        """Hook: build the core and start timers."""

    async def on_stop(self) -> None:
        for task in self._timers:
            task.cancel()
        if self.transport is not None:
            self.transport.close()

    def on_crash(self) -> None:
        """Fail-stop: the timers and the transport stop at once."""
        for task in self._timers:
            task.cancel()
        if self.transport is not None:
            self.transport.close()

    def on_peer_death(self, peer: str) -> None:
        """Hook: the same component on ``peer`` died."""

    def every(self, seconds: float | Callable[[], float],
              callback: Callable[[], Awaitable[None] | None]) -> asyncio.Task[None]:
        """Run ``callback`` every ``seconds`` (a number or a function giving the
        next interval, for adaptive periods) until the actor stops."""

        async def loop() -> None:
            while True:
                delay = seconds() if callable(seconds) else seconds
                await asyncio.sleep(delay)
                try:
                    result = callback()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    logger.exception("%s timer of %s failed", self.component, self.node_id)

        task = self.run_forever(loop(), f"a {self.component} timer of {self.node_id}")
        self._timers.append(task)
        return task

    def sibling(self, component: str) -> Any:
        """The handle of another component of this node (resolved by name)."""
        handle = self._siblings.get(component)
        if handle is None:
            host = hosted_by(self)
            try:
                handle = (host.sibling(component) if host is not None
                          else find_component(self.cluster, self.node_id, component))
            except (ValueError, ClusterError):
                raise ClusterError(f"{component} of node {self.node_id} is not running") from None
            self._siblings[component] = handle
        return handle

    def forget_sibling(self, component: str) -> None:
        self._siblings.pop(component, None)

    def require_started(self) -> None:
        if not self.started:
            raise ClusterError(f"{self.component} of node {self.node_id} is still starting; "
                               "retry in a moment")

    # -------------------------------------------------------- common calls
    async def events_since(self, since: int = 0) -> list[dict[str, Any]]:
        return self.events.since(check_seq(since))

    async def wait_events(self, since: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Long-poll: events after ``since``, waiting up to ``timeout`` s for one
        (a positive number, at most an hour); ValidationFailed for bad ones."""
        return await self.events.wait(check_seq(since), check_timeout(timeout))

    async def latest_event_seq(self) -> int:
        """The seq of the newest event (subscribe from here to skip older ones)."""
        return self.events.seq

    async def subscribe(self, subscriber: Any, types: list[str] | None = None) -> None:
        """Push every event (of ``types``, default all) to ``subscriber.on_event(event)``
        (a Ray actor handle; anything else raises ValidationFailed). Driver-side
        clients turn local callbacks into a long-poll on ``wait_events``."""
        self.events.subscribe(subscriber, types=types)

    async def unsubscribe(self, subscriber: Any) -> bool:
        return self.events.unsubscribe(subscriber)

    async def set_faults(self, blocked: list[str] | None = None, drop_rate: float = 0.0,
                         delay_ms: float = 0.0) -> dict[str, Any]:
        """Chaos: block peers both ways, drop or delay this component's messages.
        ``blocked`` lists node ids, ``drop_rate`` lies in [0, 1], ``delay_ms``
        in [0, 3,600,000]; else ValidationFailed and nothing changes."""
        faults = FaultFilter(*check_faults(blocked, drop_rate, delay_ms))
        if self.transport is None:  # a component without peers of its own
            return {}
        self.transport.faults = faults
        return faults.describe()

    async def transport_stats(self) -> dict[str, int]:
        return dict(self.transport.stats) if self.transport is not None else {}
