"""Warm spares: children created ahead of their start, for fast restarts.

A cold restart is dominated by Ray starting a new worker process for the new
actor (about 90–500 ms on an idle small machine, more under load; Ray's own
``max_restarts`` takes about 2 s). With ``ChildSpec(warm_spare=True)`` a
supervisor keeps one spare instance per child, constructed and pinged but not
activated; on a death it activates the spare (a restart in milliseconds) and
prepares the next spare in the background. The price is one more idle
process per child, and the factory must not give every instance the same
actor name (the spare lives next to the running child, and Ray cannot rename
an actor), so such children are reached through
:meth:`~cluster_actors.runtime.supervisor.actor.Supervisor.get_child` or events
rather than by a fixed name. A supervisor starting its children also creates
the next few ahead of their turn the same way (spawning a worker process is
most of a start, and Ray spawns several at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorAlreadyExistsError

from .protocol import ChildSpec

logger = logging.getLogger(__name__)


async def awaited(ref: Any) -> Any:
    """``await ref`` as a coroutine (what ``asyncio.wait_for`` takes)."""
    return await ref


async def create_child(spec: ChildSpec) -> ActorHandle:
    """Call the factory off the event loop (actor creation makes a blocking GCS
    lookup); retry briefly if the killed predecessor still holds the name."""
    delay = 0.01
    for _ in range(8):
        try:
            return await asyncio.to_thread(spec.start)
        except ActorAlreadyExistsError:
            await asyncio.sleep(delay)
            delay *= 2
    return await asyncio.to_thread(spec.start)


class WarmSpares:
    """One supervisor's spare instances: at most one per child id, each a task
    that creates and pings (never activates) an instance.

    ``spawn`` runs a coroutine as one of the supervisor's background tasks;
    ``on_ready(child_id, handle)`` is told when a spare of a ``warm_spare``
    child is ready (the supervisor records ``spare_ready``). A spare that is
    discarded, or not taken in time, is killed.
    """

    def __init__(self, name: str,
                 spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
                 on_ready: Callable[[str, ActorHandle], None]) -> None:
        self._name = name
        self._spawn = spawn
        self._on_ready = on_ready
        self._tasks: dict[str, asyncio.Task[ActorHandle]] = {}

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._tasks

    def prepare(self, spec: ChildSpec) -> None:
        """Start creating a spare of ``spec``'s child (replacing none: call
        only when it has none)."""
        self._tasks[spec.id] = self._spawn(self._make(spec))

    def ready(self, child_id: str) -> bool:
        """True if the child's spare is created and answered ``ping``."""
        task = self._tasks.get(child_id)
        return task is not None and task.done() and not task.cancelled() \
            and task.exception() is None

    async def take(self, spec: ChildSpec) -> ActorHandle | None:
        """The child's spare (waiting up to ``spec.start_timeout`` for one still
        starting), or None; it is no longer a spare."""
        task = self._tasks.pop(spec.id, None)
        if task is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(task), spec.start_timeout)
        except Exception as error:
            logger.warning("supervisor %s: no spare for %s (%s)", self._name, spec.id, error)
            task.add_done_callback(_kill_spare)
            return None

    def discard(self, child_id: str) -> None:
        """Kill the child's spare (once it exists), if it has one."""
        task = self._tasks.pop(child_id, None)
        if task is not None:
            task.add_done_callback(_kill_spare)  # runs at once if already done

    def discard_all(self) -> None:
        """Kill every spare."""
        for child_id in list(self._tasks):
            self.discard(child_id)

    async def _make(self, spec: ChildSpec) -> ActorHandle:
        handle = await create_child(spec)
        try:
            await asyncio.wait_for(awaited(handle.ping.remote()), spec.start_timeout)
        except BaseException:
            ray.kill(handle, no_restart=True)
            raise
        if spec.warm_spare and self._tasks.get(spec.id) is asyncio.current_task():
            self._on_ready(spec.id, handle)
        return handle


def _kill_spare(task: asyncio.Task[ActorHandle]) -> None:
    if not task.cancelled() and task.exception() is None:
        ray.kill(task.result(), no_restart=True)
