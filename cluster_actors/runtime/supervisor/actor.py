"""The OTP supervisor as a Ray actor.

Decisions come from the pure :class:`~cluster_actors.core.supervision.SupervisorCore`;
this module carries them out on Ray actors. Its children speak the protocol
of :mod:`~cluster_actors.runtime.supervisor.protocol` (:class:`ChildSpec`,
:class:`SupervisedActor`); warm spares live in
:mod:`~cluster_actors.runtime.supervisor.spares`.

**Death detection without polling.** For each running child the supervisor
keeps one outstanding ``until_stopped.remote()`` call. It returns ``"normal"``
only after a requested graceful stop; if the actor dies, Ray fails the call
with ``ActorDiedError`` within milliseconds (``ray.kill`` → reason
``"killed"``, a crashed process or node → ``"crashed"``).

**Restart cost.** Restart time is measured from the death notice until the new
child has answered ``activate``; a cold restart is mostly Ray starting a new
worker process, which a warm spare saves (see
:mod:`~cluster_actors.runtime.supervisor.spares`).
A killed named actor's name is free at once, so the factory can recreate the
same name.

**Supervision trees.** :class:`Supervisor` is itself a supervised actor, so a
parent supervisor can own child supervisors (``kind="supervisor"``). A
supervisor starts its children when activated (or on
:meth:`Supervisor.start_children`), so ``activate`` answers once the subtree
is up. When the restart intensity is exceeded it stops its children in reverse
order, records ``escalated``, fails every pending ``until_stopped`` call with
:class:`SupervisorEscalated` and exits; its parent sees an abnormal exit and
applies its own strategy, typically restarting it (the factory creates a new
supervisor with the same child specs, which starts the children again).

**A child that cannot be placed.** A restart that Ray refuses as
unschedulable (``ActorUnschedulableError``: the child is pinned to a Ray node
that is gone, and a Ray node never comes back under the same id) is not
retried: the child is left stopped (event ``child_unplaceable``) and does not
count against the intensity, so losing the machine of one pinned child does
not exhaust the intensity with instant failures and take its siblings down.
``restart_child`` tries it again; ``terminate_child``/``delete_child`` drop it.

Ray makes the supervisor the owner of the actors its factories create, and
kills owned (non-detached) actors when their owner dies: a dead supervisor
takes its subtree with it, much like OTP links. Factories should therefore not
create ``lifetime="detached"`` children, which would outlive a dead supervisor
and keep their names from its replacement.

Chaos and tests kill children with ``ray.kill(handle, no_restart=True)`` so that
this supervisor, not Ray's ``max_restarts``, brings them back.

**Tracing.** A supervisor given ``tracing`` (or told later through
``configure_tracing``) configures each child it starts the same way before
activating it, so configuring the root supervisor traces the whole tree; each
restart becomes a ``cluster_actors.supervisor_restart`` span from the death
notice to the new child's ``activate`` answer (attributes ``child``, ``node``,
``reason``, ``cause``, ``warm``, ``supervisor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    ActorUnschedulableError,
    RayActorError,
)

from cluster_actors.core.stats import percentile
from cluster_actors.core.supervision import (
    UNPLACEABLE,
    Decision,
    Escalate,
    RestartPlan,
    SupervisorCore,
    SupervisorFlags,
)
from cluster_actors.errors import ClusterError, CoordinationTimeout, ValidationFailed
from cluster_actors.runtime.naming import node_supervisor_name
from cluster_actors.telemetry.tracing import SPAN_SUPERVISOR_RESTART, ensure_tracing, start_span

from .protocol import ChildSpec, SupervisedActor, SupervisorEscalated
from .spares import WarmSpares, awaited, create_child

logger = logging.getLogger(__name__)

#: Upper bound on waiting for Ray to confirm a kill (catches hangs only).
_KILL_CONFIRM_TIMEOUT = 10.0
#: Children created ahead of their turn while a supervisor starts its children.
START_AHEAD = 3


# --------------------------------------------------------------------------
# the supervisor actor


@dataclass
class _Running:
    """A running child: its handle and the task watching it."""

    handle: ActorHandle
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    exit_reason: str | None = None
    watch: asyncio.Task[None] | None = None


def _actor_id(handle: ActorHandle) -> str:
    return handle._actor_id.hex()


def _node_of(name: str) -> str | None:
    """The node of a node supervisor (named as ``naming.node_supervisor_name``), else None."""
    parts = name.split(":")
    if len(parts) == 3 and node_supervisor_name(parts[0], parts[1]) == name:
        return parts[1]
    return None


@ray.remote(num_cpus=0, max_restarts=0)
class Supervisor(SupervisedActor):
    """An OTP supervisor over Ray actors (an async actor; see the module doc).

    ``Supervisor.options(name=..., namespace=...).remote(flags, children, name=...)``;
    children start on :meth:`start_children` or on ``activate`` (which is how
    a parent supervisor starts it). ``tracing``: an exporter name for this
    process and every child it starts (None or ``"none"``: untraced until
    :meth:`configure_tracing`; see the module doc).
    """

    def __init__(self, flags: SupervisorFlags, children: Sequence[ChildSpec] = (),
                 name: str = "supervisor", max_events: int = 10_000,
                 tracing: str | None = None) -> None:
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValidationFailed([("children", f"child ids must be unique, got {ids}")])
        self._name = name
        self._core = SupervisorCore(flags, [(spec.id, spec.restart) for spec in children])
        self._specs: dict[str, ChildSpec] = {spec.id: spec for spec in children}
        self._running: dict[str, _Running] = {}
        self._restarts: dict[str, int] = dict.fromkeys(ids, 0)
        self._restart_ms: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._started = False
        self._stopped = False
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._seq = 0
        self._waiters: list[tuple[str, str | None, asyncio.Future[dict[str, Any]]]] = []
        self._subscribers: list[ActorHandle] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._deliveries: set[asyncio.Task[Any]] = set()
        self._spares = WarmSpares(name, self._spawn, self._spare_ready)
        self._node = _node_of(name)
        self._tracing: str | None = None
        if tracing is not None and tracing != "none":
            ensure_tracing(tracing)
            self._tracing = tracing

    # -- protocol ------------------------------------------------------------

    async def on_activate(self) -> None:
        """Start the children (a parent's ``activate`` returns once they are up)."""
        await self.start_children()

    async def on_stop(self) -> None:
        """Stop every running child in reverse start order, then record ``stopped``."""
        async with self._lock:
            self._stopped = True
            for child_id in self._core.shutdown_order():
                await self._stop_child(child_id)
                self._mark_terminated(child_id)
            self._spares.discard_all()
            self._record("stopped")
            await self._flush_deliveries()

    async def stop(self) -> None:
        """Stop the children in reverse order (each per its ``shutdown``), then exit."""
        await self.graceful_stop()

    # -- OTP API ---------------------------------------------------------

    async def start_children(self) -> list[str]:
        """Start every child in order, each answering ``activate`` before the next.

        Idempotent. If a child fails to start, the ones already started are
        stopped in reverse order and :class:`ClusterError` is raised.
        """
        async with self._lock:
            self._require_active()
            if self._started:
                return list(self._core.running())
            started: list[str] = []
            order = list(self._core.child_ids)
            for position, child_id in enumerate(order):
                self._create_ahead(order[position:position + START_AHEAD])
                try:
                    await self._start_child(child_id)
                except Exception as error:
                    for later in order[position + 1:]:
                        self._spares.discard(later)
                    for done in reversed(started):
                        await self._stop_child(done)
                        self._mark_terminated(done)
                    raise ClusterError(f"supervisor {self._name!r}: child {child_id!r} failed "
                                       f"to start ({error}); started children were stopped"
                                       ) from error
                started.append(child_id)
            self._started = True
            return started

    def _create_ahead(self, child_ids: list[str]) -> None:
        """Create (not activate) the next children while earlier ones start:
        spawning a worker process is most of a start, and Ray spawns several
        at once. Each is activated in order, as a spare would be."""
        for child_id in child_ids:
            if child_id not in self._spares and child_id not in self._running:
                self._spares.prepare(self._specs[child_id])

    async def which_children(self) -> list[dict[str, Any]]:
        """Every child in start order: ``id, kind, restart, handle (None if not running),
        actor_id, alive, restarts, spare`` (``spare``: a warm spare is ready)."""
        result = []
        for child_id in self._core.child_ids:
            running = self._running.get(child_id)
            spec = self._specs[child_id]
            result.append({
                "id": child_id, "kind": spec.kind, "restart": spec.restart.value,
                "handle": running.handle if running else None,
                "actor_id": _actor_id(running.handle) if running else None,
                "alive": self._core.is_running(child_id),
                "restarts": self._restarts.get(child_id, 0),
                "spare": self._spares.ready(child_id),
            })
        return result

    async def get_child(self, child_id: str) -> ActorHandle | None:
        """The running child's handle, or None while it is not running."""
        if not self._core.has_child(child_id):
            raise ValidationFailed([("id", f"no child with id {child_id!r}")])
        running = self._running.get(child_id)
        return running.handle if running else None

    async def start_child(self, spec: ChildSpec) -> ActorHandle:
        """Add a child at the end of the start order and start it; return its handle.

        If it fails to start it is not added.
        """
        async with self._lock:
            self._require_active()
            self._core.add_child(spec.id, spec.restart)
            self._specs[spec.id] = spec
            self._restarts[spec.id] = 0
            try:
                return await self._start_child(spec.id)
            except Exception:
                self._forget(spec.id)
                raise

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child per its ``shutdown``; it is not restarted (a temporary one is removed)."""
        async with self._lock:
            self._require_active()
            if self._core.is_running(child_id):
                await self._stop_child(child_id)
            self._mark_terminated(child_id)

    async def restart_child(self, child_id: str) -> ActorHandle:
        """Start again a child that was terminated; return its handle."""
        async with self._lock:
            self._require_active()
            if self._core.is_running(child_id):
                raise ClusterError(f"child {child_id!r} is running; terminate it first")
            return await self._start_child(child_id)

    async def delete_child(self, child_id: str) -> None:
        """Forget the spec of a child that is not running."""
        async with self._lock:
            self._core.remove_child(child_id)
            self._drop_spec(child_id)

    async def count_children(self) -> dict[str, int]:
        """``specs``, ``active`` (running), ``supervisors`` and ``workers`` counts."""
        kinds = [self._specs[c].kind for c in self._core.child_ids]
        return {"specs": len(kinds), "active": len(self._core.running()),
                "supervisors": kinds.count("supervisor"), "workers": kinds.count("worker")}

    # -- observation -----------------------------------------------------

    async def events_since(self, since: int = 0) -> list[dict[str, Any]]:
        """Recorded events with ``seq > since``, oldest first.

        Each has ``seq``, ``time`` (wall clock), ``type``, ``source`` (this
        supervisor's name), as every actor's events do, and
        type-specific fields: ``child_started`` (child_id, actor_id, restart),
        ``child_exited`` (child_id, actor_id, reason), ``child_restarted``
        (child_id, actor_id, restart_ms, cause, warm), ``spare_ready``
        (child_id, actor_id), ``child_stopped``
        (child_id, how: shutdown|killed), ``child_start_failed`` (child_id,
        error), ``child_unplaceable`` (child_id: left stopped, see the module
        doc), ``child_removed`` (child_id), ``escalated`` (child_id, reason,
        restarts, intensity, period) and ``stopped``.
        """
        return [e for e in self._events if e["seq"] > since]

    async def wait_event(self, type: str, child_id: str | None = None, since: int = 0,
                         timeout: float = 30.0) -> dict[str, Any]:
        """The first event of ``type`` (and ``child_id``, if given) after ``since``,
        waiting up to ``timeout`` seconds for it (raises :class:`CoordinationTimeout`)."""
        for event in self._events:
            if event["seq"] > since and self._matches(event, type, child_id):
                return event
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiter = (type, child_id, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise CoordinationTimeout(f"no {type!r} event for child {child_id!r} within "
                                      f"{timeout} s on supervisor {self._name!r}") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def subscribe(self, subscriber: ActorHandle | None) -> int:
        """Send every future event to ``subscriber.on_supervisor_event(event)``
        (fire-and-forget); ``None`` removes all subscribers. Returns the last seq."""
        if subscriber is None:
            self._subscribers.clear()
        elif all(_actor_id(s) != _actor_id(subscriber) for s in self._subscribers):
            self._subscribers.append(subscriber)
        return self._seq

    async def stats(self) -> dict[str, Any]:
        """Restart durations (death notice → new child answered ``activate``), in ms:
        ``restart_ms`` lists ``{child_id, ms, warm}``."""
        durations = [r["ms"] for r in self._restart_ms]
        return {"restarts": len(durations), "restart_ms": list(self._restart_ms),
                "p50_ms": percentile(durations, 50), "p99_ms": percentile(durations, 99),
                "max_ms": max(durations, default=None), "escalated": self._core.escalated}

    async def configure_tracing(self, exporter: str) -> None:
        """Trace this process with ``exporter`` and configure each child started
        from now on the same way, before it is activated (``"none"``: children
        are left as they are)."""
        ensure_tracing(exporter)
        self._tracing = None if exporter == "none" else exporter

    # -- internals: starting and stopping ---------------------------------

    async def _start_child(self, child_id: str, noticed_at: float | None = None,
                           cause: str | None = None, reason: str | None = None) -> ActorHandle:
        """Activate a warm spare, or create the child and await its ``ping``; then
        await ``activate`` and watch it. A restart (``noticed_at`` given: when
        the exit of child ``cause`` for ``reason`` was noticed) is recorded and
        traced. Caller holds the lock."""
        spec = self._specs[child_id]
        handle = await self._spares.take(spec)
        warm = handle is not None
        if handle is not None:
            try:
                await self._trace_child(handle, spec)
                await asyncio.wait_for(awaited(handle.activate.remote()), spec.start_timeout)
            except Exception as error:
                logger.warning("supervisor %s: spare of %s failed to activate (%s); "
                               "starting a new instance", self._name, child_id, error)
                ray.kill(handle, no_restart=True)
                handle, warm = None, False
        if handle is None:
            if noticed_at is not None and spec.restart_delay:
                await asyncio.sleep(spec.restart_delay)
            handle = await create_child(spec)
            try:
                await asyncio.wait_for(awaited(handle.ping.remote()), spec.start_timeout)
                await self._trace_child(handle, spec)
                await asyncio.wait_for(awaited(handle.activate.remote()), spec.start_timeout)
            except BaseException:
                ray.kill(handle, no_restart=True)
                raise
        answered = time.monotonic()
        running = _Running(handle)
        self._running[child_id] = running
        self._core.child_started(child_id)
        running.watch = self._spawn(self._watch(child_id, running))
        self._record("child_started", child_id=child_id, actor_id=_actor_id(handle),
                     restart=noticed_at is not None)
        if noticed_at is not None:
            ms = (answered - noticed_at) * 1000.0
            self._restarts[child_id] = self._restarts.get(child_id, 0) + 1
            self._restart_ms.append({"child_id": child_id, "ms": ms, "warm": warm})
            self._record("child_restarted", child_id=child_id, actor_id=_actor_id(handle),
                         restart_ms=ms, cause=cause, warm=warm)
            self._trace_restart(child_id, noticed_at, answered, cause, reason, warm)
        if spec.warm_spare:
            self._spares.prepare(spec)
        return handle

    async def _trace_child(self, handle: ActorHandle, spec: ChildSpec) -> None:
        """Configure the child's tracing as this supervisor's (before ``activate``).
        A child that cannot trace so is started anyway."""
        if self._tracing is None:
            return
        try:
            await asyncio.wait_for(awaited(handle.configure_tracing.remote(self._tracing)),
                                   spec.start_timeout)
        except (asyncio.TimeoutError, RayActorError):
            raise
        except Exception as error:
            logger.warning("supervisor %s: child %s does not trace (%s)", self._name, spec.id,
                           error)

    def _trace_restart(self, child_id: str, noticed_at: float, answered: float,
                       cause: str | None, reason: str | None, warm: bool) -> None:
        """A span from the death notice to the new child's ``activate`` answer."""
        now_ns, now = time.time_ns(), time.monotonic()
        span = start_span(SPAN_SUPERVISOR_RESTART, now_ns - int((now - noticed_at) * 1e9),
                          node=self._node, child=child_id, reason=reason, cause=cause,
                          warm=warm, supervisor=self._name)
        span.end(now_ns - int((now - answered) * 1e9))

    async def _stop_child(self, child_id: str) -> None:
        """Stop a running child per its ``shutdown``. Caller holds the lock."""
        running = self._running.pop(child_id, None)
        if running is None:
            return
        running.stopping = True
        spec = self._specs[child_id]
        how = "shutdown"
        if spec.shutdown == "brutal_kill":
            how = "killed"
        else:
            self._spawn(self._swallow(running.handle.graceful_stop.remote()))
            try:
                await asyncio.wait_for(running.exited.wait(), float(spec.shutdown))
            except asyncio.TimeoutError:
                how = "killed"
        ray.kill(running.handle, no_restart=True)
        try:
            await asyncio.wait_for(running.exited.wait(), _KILL_CONFIRM_TIMEOUT)
        except asyncio.TimeoutError:
            logger.warning("supervisor %s: no death notice for %s after kill", self._name,
                           child_id)
        if running.watch is not None:
            running.watch.cancel()
        self._record("child_stopped", child_id=child_id, how=how)

    # -- internals: watching and restarting -------------------------------

    async def _watch(self, child_id: str, running: _Running) -> None:
        """Await the child's end through its outstanding ``until_stopped`` call."""
        reason = await self._await_exit(running.handle)
        noticed_at = time.monotonic()
        running.exit_reason = reason
        running.exited.set()
        if running.stopping:
            return
        await self._handle_exit(child_id, running, reason, noticed_at)

    async def _await_exit(self, handle: ActorHandle) -> str:
        while True:
            try:
                result = await handle.until_stopped.remote()
                return result if isinstance(result, str) else "normal"
            except ActorDiedError as error:
                return "killed" if "ray.kill" in str(error) else "crashed"
            except ActorUnavailableError:
                # Unreachable for a moment (exiting, network): ask again.
                await asyncio.sleep(0.05)
            except RayActorError:
                return "crashed"
            except Exception as error:
                cause = getattr(error, "cause", error)
                return "escalated" if isinstance(cause, SupervisorEscalated) else "crashed"

    async def _handle_exit(self, child_id: str, running: _Running, reason: str,
                           noticed_at: float) -> None:
        async with self._lock:
            if running.stopping or self._running.get(child_id) is not running \
                    or self._stopped or self._core.escalated:
                return
            del self._running[child_id]
            ray.kill(running.handle, no_restart=True)  # an exit may leave the process up
            self._record("child_exited", child_id=child_id, actor_id=_actor_id(running.handle),
                         reason=reason)
            decision = self._core.child_exited(child_id, reason, time.monotonic())
            while True:
                if isinstance(decision, Escalate):
                    await self._escalate(decision)
                    return
                failed: Decision | None = None
                for child_id, why in await self._carry_out(decision, noticed_at, reason):
                    outcome = self._core.child_exited(child_id, why, time.monotonic())
                    if why != UNPLACEABLE:
                        failed, reason = outcome, why
                    elif self._core.has_child(child_id):
                        logger.warning("supervisor %s: %s cannot be placed (its Ray node "
                                       "is gone); left stopped", self._name, child_id)
                        self._record("child_unplaceable", child_id=child_id)
                if failed is None:
                    return
                decision = failed

    async def _carry_out(self, plan: RestartPlan, noticed_at: float,
                         reason: str | None = None) -> list[tuple[str, str]]:
        """Stop then start per ``plan`` (``reason``: why ``plan.child_id`` exited);
        return ``(child id, reason)`` of each child that failed to start: reason
        ``unplaceable`` when Ray can never schedule it (the plan goes on with the
        next child), else ``start_failed`` (the last one: the plan stops there)."""
        for child_id in plan.stop:
            await self._stop_child(child_id)
        for child_id in plan.removed:
            self._drop_spec(child_id)
        failures: list[tuple[str, str]] = []
        for child_id in plan.restart:
            try:
                await self._start_child(child_id, noticed_at=noticed_at, cause=plan.child_id,
                                        reason=reason)
            except Exception as error:
                logger.warning("supervisor %s: restart of %s failed: %s", self._name,
                               child_id, error)
                self._record("child_start_failed", child_id=child_id, error=str(error))
                if not isinstance(error, ActorUnschedulableError):
                    failures.append((child_id, "start_failed"))
                    break
                failures.append((child_id, UNPLACEABLE))
        return failures

    async def _escalate(self, decision: Escalate) -> None:
        for child_id in decision.stop:
            await self._stop_child(child_id)
        self._spares.discard_all()
        self._record("escalated", child_id=decision.child_id, reason=decision.reason,
                     restarts=decision.restarts, intensity=decision.intensity,
                     period=decision.period)
        logger.error("supervisor %s: %d restarts within %s s (intensity %d); escalating",
                     self._name, decision.restarts, decision.period, decision.intensity)
        for _, _, future in self._waiters:
            if not future.done():
                future.set_exception(SupervisorEscalated(f"supervisor {self._name!r} escalated"))
        await self._flush_deliveries()
        self._finish("escalated")
        # Should a call in progress hold the exit up, end the process anyway.
        asyncio.get_running_loop().call_later(
            5.0, lambda: ray.kill(ray.get_runtime_context().current_actor, no_restart=True))

    # -- internals: bookkeeping -------------------------------------------

    def _spare_ready(self, child_id: str, handle: ActorHandle) -> None:
        self._record("spare_ready", child_id=child_id, actor_id=_actor_id(handle))

    def _record(self, type: str, **fields: Any) -> None:
        self._seq += 1
        # the shape of every actor's events (runtime/events.py EventStream)
        event = {"seq": self._seq, "time": time.time(), "type": type, "source": self._name,
                 **fields}
        self._events.append(event)
        for waiter in list(self._waiters):
            want_type, want_child, future = waiter
            if not future.done() and self._matches(event, want_type, want_child):
                future.set_result(event)
        for subscriber in list(self._subscribers):
            ref = subscriber.on_supervisor_event.remote(event)  # submitted in event order
            task = self._spawn(self._deliver(subscriber, ref, event["type"]))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _flush_deliveries(self, timeout: float = 3.0) -> None:
        """Let subscribers receive the events recorded so far (before an exit)."""
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=timeout)

    async def _deliver(self, subscriber: ActorHandle, ref: Any, event_type: str) -> None:
        try:
            await ref
        except RayActorError:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
        except Exception:
            logger.exception("subscriber failed on event %s", event_type)

    @staticmethod
    def _matches(event: dict[str, Any], type: str, child_id: str | None) -> bool:
        return event["type"] == type and (child_id is None or event.get("child_id") == child_id)

    def _mark_terminated(self, child_id: str) -> None:
        self._spares.discard(child_id)
        self._core.child_terminated(child_id)
        if not self._core.has_child(child_id):  # a temporary child is removed
            self._drop_spec(child_id)

    def _forget(self, child_id: str) -> None:
        if self._core.has_child(child_id) and not self._core.is_running(child_id):
            self._core.remove_child(child_id)
        self._drop_spec(child_id)

    def _drop_spec(self, child_id: str) -> None:
        self._spares.discard(child_id)
        if self._specs.pop(child_id, None) is not None:
            self._restarts.pop(child_id, None)
            self._record("child_removed", child_id=child_id)

    def _require_active(self) -> None:
        if self._stopped or self._core.escalated:
            raise ClusterError(f"supervisor {self._name!r} is stopping; it takes no more "
                               "requests")

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("supervisor %s: background task failed: %r", self._name,
                           task.exception())

    @staticmethod
    async def _swallow(ref: Any) -> None:
        # graceful_stop's own reply is not needed: until_stopped reports the end.
        with contextlib.suppress(Exception):
            await ref


__all__ = ["Supervisor"]
