"""Ray-native leadership: a base class for Ray actors that do their work only
while they lead an election, and a guard for their methods.

    @ray.remote
    class Scheduler(LeaderActor):
        def __init__(self, cluster_name):
            super().__init__(cluster_name, "scheduler")

        def lead(self, leadership):            # runs only while leading
            while not leadership.lost.is_set():
                leadership.guarded_put("schedule", plan())   # fenced write
                leadership.lost.wait(1.0)

        @leader_only
        def submit(self, job): ...             # refused on the followers

The actor campaigns in a background thread from construction on. Once
elected it calls ``on_elected`` and then ``lead`` (a plain or ``async``
method). When the lease is lost (the process was paused or partitioned past
its TTL), ``on_lost`` runs at once in the keepalive thread, ``lost`` is set so
``lead`` can return, and the actor campaigns again. If ``lead`` returns while
the actor still leads, it resigns, handing over to the next contender, and
campaigns again. The default ``lead`` just holds leadership until it is lost.

This works in plain actors (sync, threaded or async) and in Ray Serve
deployments, which are Ray actors too: derive the deployment class from
``LeaderActor`` and guard the request handlers with ``@leader_only``. For a
Ray task, use ``with cluster.election(name).leading(candidate):``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from ..client.session import LeaderSession
from ..errors import ClusterError
from .election import Cancelled, LeaderElection, LeaderInfo, Leadership

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class NotLeading(ClusterError):
    """A leader-only method was called on an actor that does not lead; call
    the leader instead (``LeaderElection.leader()`` names it)."""

    code = "not_leading"


class LeaderActor:
    """Base class of actors that work only while they lead (see the module doc).

    ``cluster``: the cluster's name (or a Cluster handle, whose name is used);
    ``election``: the election's name; ``candidate_id``: defaults to
    ``<pid>-<random>``; ``ttl``: lease seconds; ``autostart``:
    campaign from construction on (else call ``start_campaigning``).
    """

    def __init__(self, cluster: Any, election: str, *, candidate_id: str | None = None,
                 value: Any = None, ttl: float = 2.0, autostart: bool = True) -> None:
        name = cluster if isinstance(cluster, str) else cluster.name
        self._leader_session = LeaderSession.attach(name)
        self._leader_election = LeaderElection(self._leader_session, election)
        self.candidate_id = candidate_id or f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._leader_value = value
        self._leader_ttl = ttl
        self._leadership: Leadership | None = None
        self._leader_stop = threading.Event()
        self._leader_thread: threading.Thread | None = None
        self.terms_led = 0  #: how many times this actor was elected
        if autostart:
            self.start_campaigning()

    # ------------------------------------------------------------ to override
    def lead(self, leadership: Leadership) -> Any:
        """The work done while leading (may be ``async def``). Return, or let
        it notice ``leadership.lost``; by default, hold until lost."""
        leadership.lost.wait()

    def on_elected(self, leadership: Leadership) -> None:
        """Called when elected, before ``lead``."""

    def on_lost(self, leadership: Leadership) -> None:
        """Called once, at once, when leadership is lost involuntarily."""

    # ------------------------------------------------------------ queries
    def is_leader(self) -> bool:
        """True while this actor surely leads (local, no remote call)."""
        leadership = self._leadership
        return leadership is not None and leadership.is_held()

    def leadership_token(self) -> int | None:
        """The fencing token of the current leadership, or None."""
        leadership = self._leadership
        return leadership.token if leadership is not None and leadership.is_held() else None

    def current_leader(self) -> LeaderInfo | None:
        """Who leads the election now (a linearizable read)."""
        return self._leader_election.leader()

    # ------------------------------------------------------------ control
    def start_campaigning(self) -> None:
        """Start (or keep) campaigning in the background."""
        if self._leader_thread is not None and self._leader_thread.is_alive():
            return
        self._leader_stop.clear()
        self._leader_thread = threading.Thread(target=self._campaign_loop, daemon=True,
                                               name=f"campaign-{self.candidate_id}")
        self._leader_thread.start()

    def stop_campaigning(self) -> None:
        """Stop campaigning and resign if leading."""
        self._leader_stop.set()
        leadership = self._leadership
        if leadership is not None:
            leadership.resign()

    def resign(self) -> bool:
        """Hand leadership over (the actor then campaigns again); False if
        this actor did not lead."""
        leadership = self._leadership
        if leadership is None or not leadership.is_held():
            return False
        return leadership.resign()

    # ------------------------------------------------------------ the loop
    def _campaign_loop(self) -> None:
        while not self._leader_stop.is_set():
            try:
                leadership = self._leader_election.campaign(
                    self.candidate_id, self._leader_value, self._leader_ttl,
                    on_lost=self._lost, cancel=self._leader_stop)
            except Cancelled:
                return
            except Exception as error:  # no quorum for a while: campaign again
                logger.warning("campaign of %s failed: %s", self.candidate_id, error)
                self._leader_stop.wait(min(self._leader_ttl, 1.0))
                continue
            self._leadership = leadership
            self.terms_led += 1
            try:
                self.on_elected(leadership)
                outcome = self.lead(leadership)
                if inspect.isawaitable(outcome):
                    asyncio.run(_await(outcome))
            except Exception:
                logger.exception("lead() of %s failed; handing over", self.candidate_id)
            finally:
                if not leadership.lost.is_set():
                    leadership.resign()
                self._leadership = None

    def _lost(self, leadership: Leadership) -> None:
        try:
            self.on_lost(leadership)
        except Exception:
            logger.exception("on_lost() of %s failed", self.candidate_id)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def leader_only(method: F) -> F:
    """Guard a method of a :class:`LeaderActor`: on an actor that does not
    lead it raises :class:`NotLeading` instead of running."""

    def refuse(self: LeaderActor) -> NotLeading:
        return NotLeading(f"{type(self).__name__} {self.candidate_id!r} does not lead election "
                          f"{self._leader_election.name!r}; call the leader "
                          f"(LeaderElection.leader() names it)")

    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def guarded_async(self: LeaderActor, *args: Any, **kwargs: Any) -> Any:
            if not self.is_leader():
                raise refuse(self)
            return await method(self, *args, **kwargs)
        return guarded_async  # type: ignore[return-value]

    @functools.wraps(method)
    def guarded(self: LeaderActor, *args: Any, **kwargs: Any) -> Any:
        if not self.is_leader():
            raise refuse(self)
        return method(self, *args, **kwargs)
    return guarded  # type: ignore[return-value]


__all__ = ["LeaderActor", "NotLeading", "leader_only"]
