"""The protocol every supervised actor speaks, and the spec of a supervisor's child.

A component shell imports this module, not the supervisor
(:mod:`cluster_actors.runtime.supervisor.actor`): it needs neither the supervisor's
machinery nor OpenTelemetry, which :meth:`SupervisedActor.configure_tracing`
loads only when asked to trace.

**Children.** A child is described by a :class:`ChildSpec` whose ``start`` is a
picklable zero-argument factory returning a fresh actor handle (for example an
:class:`ActorFactory`, or ``functools.partial(SomeActor.options(name=...,
namespace=..., num_cpus=0).remote, arg)``). The supervisor never imports the
classes it supervises. Every supervised actor implements the
:class:`SupervisedActor` protocol (inherit the mixin): ``ping``, ``activate``,
``until_stopped`` and ``graceful_stop``, with ``on_activate`` and ``on_stop``
hooks. Starting a child means: call the factory, await ``ping`` (the
constructor has run), await ``activate`` (the child begins its work), then
watch it; children start one after the other in this way.

**Tracing.** Every supervised actor offers ``configure_tracing`` (an
exporter name, see :mod:`cluster_actors.telemetry`; once per process) and
``finished_spans`` (what its process recorded with the ``memory`` exporter).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from ray.actor import ActorHandle

from cluster_actors.core.supervision import Restart
from cluster_actors.errors import ClusterError, ValidationFailed
from cluster_actors.runtime.failstop import run_forever

from .. import dataplane_process

logger = logging.getLogger(__name__)

#: Default seconds a worker child gets to stop gracefully before it is killed.
DEFAULT_WORKER_SHUTDOWN = 5.0
#: Default for a child supervisor, which stops its own subtree first.
DEFAULT_SUPERVISOR_SHUTDOWN = 60.0


class SupervisorEscalated(ClusterError):
    """A supervisor gave up: its children restarted more often than its intensity allows."""

    code = "escalated"


class ChildCrashed(ClusterError):
    """A supervised actor stopped itself on a fatal error (fail-stop, see
    :meth:`SupervisedActor.crash`); its supervisor restarts it from its storage."""

    code = "crashed"


# --------------------------------------------------------------------------
# child specs


@dataclass(frozen=True)
class ActorFactory:
    """A picklable zero-argument factory: ``actor_class.options(**options).remote(*args, **kwargs)``.

    ``actor_class`` is a Ray actor class (the result of ``ray.remote``).
    Its ``repr`` names the class and the actor name, which helps in logs.
    """

    actor_class: Any
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self) -> ActorHandle:
        return self.actor_class.options(**self.options).remote(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        cls = getattr(self.actor_class, "__ray_metadata__", None)
        cls_name = getattr(cls, "class_name", None) or repr(self.actor_class)
        return f"ActorFactory({cls_name}, name={self.options.get('name')!r})"


@dataclass(frozen=True)
class ChildSpec:
    """One child of a supervisor.

    ``start`` creates and returns a new actor handle each time it is called
    (the actor must implement :class:`SupervisedActor`). ``shutdown`` is the
    number of seconds the child gets to stop gracefully before it is killed,
    or ``"brutal_kill"``; ``None`` means 5 s for a worker and 60 s for a
    supervisor. ``start_timeout`` bounds each of the waits for the new
    child's ``ping`` and ``activate`` answers (a child supervisor answers
    ``activate`` once its subtree is up). ``warm_spare`` keeps a constructed,
    not yet activated instance ready for a fast restart (see
    :mod:`~cluster_actors.runtime.supervisor.spares`;
    ``start`` must then not use one fixed actor name). ``restart_delay`` is
    the seconds a restart waits before a new instance is created (not a
    first start, nor the activation of a warm spare).
    """

    id: str
    start: Callable[[], ActorHandle]
    restart: Restart = Restart.PERMANENT
    shutdown: float | Literal["brutal_kill"] | None = None
    kind: Literal["worker", "supervisor"] = "worker"
    start_timeout: float = 60.0
    warm_spare: bool = False
    restart_delay: float = 0.0

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []
        if not isinstance(self.id, str) or not self.id:
            errors.append(("id", f"must be a non-empty string, got {self.id!r}"))
        if not callable(self.start):
            errors.append(("start", "must be a zero-argument callable returning an actor handle"))
        try:
            object.__setattr__(self, "restart", Restart(self.restart))
        except ValueError:
            errors.append(("restart", f"unknown restart type {self.restart!r}"))
        if self.kind not in ("worker", "supervisor"):
            errors.append(("kind", f"must be 'worker' or 'supervisor', got {self.kind!r}"))
        if self.shutdown is None:
            object.__setattr__(self, "shutdown", DEFAULT_SUPERVISOR_SHUTDOWN
                               if self.kind == "supervisor" else DEFAULT_WORKER_SHUTDOWN)
        elif self.shutdown != "brutal_kill" and (
                isinstance(self.shutdown, bool) or not isinstance(self.shutdown, (int, float))
                or self.shutdown < 0):
            errors.append(("shutdown", f"must be seconds >= 0 or 'brutal_kill', "
                                       f"got {self.shutdown!r}"))
        if (isinstance(self.restart_delay, bool) or not isinstance(self.restart_delay, int | float)
                or not 0 <= self.restart_delay <= 3600):
            errors.append(("restart_delay", f"must be seconds in 0..3600, "
                                            f"got {self.restart_delay!r}"))
        if not self.start_timeout > 0:
            errors.append(("start_timeout", f"must be > 0, got {self.start_timeout!r}"))
        if errors:
            raise ValidationFailed([(f"child_spec.{p}", m) for p, m in errors])


# --------------------------------------------------------------------------
# the child protocol


class SupervisedActor:
    """Mixin for every actor that a :class:`Supervisor` may own.

    Write the actor as an async Ray actor that inherits this class. Do
    state-free setup (imports, allocations) in ``__init__``; do what depends
    on the current state of the world (reading durable state, starting
    timers, talking to peers) in :meth:`on_activate`, because a warm spare is
    constructed long before it is activated; clean up in :meth:`on_stop`. To
    end on purpose with reason ``"normal"`` (a transient child is then not
    restarted), call ``await self.graceful_stop()`` from one of its own
    methods. No ``super().__init__`` call is needed.
    """

    async def ping(self) -> str:
        """Answer ``"pong"`` (the constructor has run)."""
        return "pong"

    async def dataplane_address(self, cluster: str) -> Any:
        """Where this process's data plane for ``cluster`` listens (an
        :class:`~cluster_actors.runtime.dataplane.Endpoint`), or None when it
        runs none: peers' transports then stay on Ray calls."""
        return await dataplane_process.process_address(cluster)

    async def dataplane_break_links(self, cluster: str) -> int:
        """Test hook: abort this process's outgoing data-plane links (a network
        fault); the transports fall back to Ray calls and redial."""
        return dataplane_process.break_links(cluster)

    async def dataplane_stats(self, cluster: str) -> dict[str, int]:
        """The counters of this process's data plane (empty when it runs none)."""
        plane = dataplane_process.plane_of(cluster)
        return dict(plane.stats) if plane is not None else {}

    async def activate(self) -> str:
        """Run :meth:`on_activate` once (again only if it failed); answer ``"active"``.

        The supervisor starts the next child after this answer.
        """
        task = getattr(self, "_supervised_activation", None)
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            task = self._supervised_activation = asyncio.ensure_future(self.on_activate())
        await asyncio.shield(task)
        return "active"

    async def on_activate(self) -> None:
        """Hook: begin the actor's work (load durable state, start timers)."""

    async def until_stopped(self) -> str:
        """Complete only when the actor is stopped on request: return ``"normal"``.

        If the actor dies instead, the caller's ObjectRef fails with
        ``ActorDiedError``. A supervisor that escalates raises
        :class:`SupervisorEscalated` here.
        """
        await self._supervised_stop_event().wait()
        reason = getattr(self, "_supervised_exit_reason", "normal")
        if reason.startswith("crashed"):
            raise ChildCrashed(f"stopped on a fatal error ({reason}); its supervisor "
                               "restarts it")
        if reason != "normal":
            raise SupervisorEscalated(f"stopped abnormally: {reason}")
        return "normal"

    async def graceful_stop(self) -> None:
        """Run :meth:`on_stop`, complete every ``until_stopped`` call with
        ``"normal"``, then let the actor process exit.

        Idempotent. The process exits after the calls in progress finish;
        a supervisor kills it as soon as it has seen ``"normal"``, so a
        caller of this method may see ``ActorDiedError`` instead of ``None``.
        """
        if getattr(self, "_supervised_stopping", False):
            await self._supervised_stop_event().wait()
            return
        self._supervised_stopping = True
        try:
            await self.on_stop()
        except Exception:
            logger.exception("on_stop of %s failed; stopping anyway", type(self).__name__)
        self._finish("normal")

    async def on_stop(self) -> None:
        """Hook: release resources before a graceful stop (flush, close files)."""

    def crash(self, reason: str, error: BaseException | None = None) -> None:
        """Fail-stop: end this actor abnormally now, so that its supervisor sees
        ``"crashed"`` and restarts it from its durable state.

        For errors after which carrying on would be unsafe (a failed write to
        disk, a background loop that died). Logs ``reason`` (and ``error``'s
        traceback) at error level, runs :meth:`on_crash` synchronously (no
        await separates the error from the end of the work), fails every
        ``until_stopped`` call with :class:`ChildCrashed` and lets the process
        exit. A component hosted in a ``NodeHost`` ends its host the same way.
        Idempotent: only the first call counts.
        """
        if getattr(self, "_supervised_crashed", None) is not None:
            return
        self._supervised_crashed = reason
        self._supervised_stopping = True  # a later graceful_stop only waits
        logger.error("%s crashed (fail-stop, its supervisor restarts it): %s",
                     type(self).__name__, reason, exc_info=error)
        try:
            self.on_crash()
        except Exception:
            logger.exception("on_crash of %s failed; exiting anyway", type(self).__name__)
        self._finish(f"crashed: {reason}")

    def on_crash(self) -> None:
        """Hook of :meth:`crash`: stop every activity at once (timers, sends,
        answers); synchronous, and it must not write durable state."""

    def run_forever(self, coroutine: Any, what: str) -> asyncio.Task[Any]:
        """Start a background task whose exception crashes this actor (see
        :func:`~cluster_actors.runtime.failstop.run_forever`)."""
        return run_forever(coroutine, self.crash, f"{type(self).__name__}: {what}")

    async def configure_tracing(self, exporter: str) -> None:
        """Trace this actor's process with ``exporter`` (``console``, ``memory``,
        ``otlp`` or ``none``); the same exporter again keeps the spans recorded
        so far. Raises ``ValidationFailed`` for an unknown or missing exporter."""
        from cluster_actors.telemetry.tracing import ensure_tracing

        ensure_tracing(exporter)

    async def finished_spans(self, clear: bool = False) -> list[dict[str, Any]]:
        """The spans this actor's process recorded in the in-memory exporter, as
        plain dicts (``name``, ``attributes``, ``start_ns``, ``end_ns``,
        ``status``, ids; see :mod:`cluster_actors.runtime.spans`), oldest
        first; [] unless it traces to memory. ``clear`` forgets them once read."""
        from cluster_actors.runtime.spans import recorded_spans

        return recorded_spans(clear)

    # -- helpers for subclasses -------------------------------------------

    def _supervised_stop_event(self) -> asyncio.Event:
        event = getattr(self, "_supervised_event", None)
        if event is None:
            event = self._supervised_event = asyncio.Event()
        return event

    def _finish(self, reason: str) -> None:
        """Wake ``until_stopped`` callers (``"normal"`` or an escalation) and exit."""
        self._supervised_exit_reason = reason
        self._supervised_stop_event().set()
        if getattr(self, "_supervised_host", None) is not None:
            return  # a component inside a NodeHost: the host's process lives on
        # A termination task runs after the calls in progress, so the
        # until_stopped replies are delivered before the process goes away.
        ray.get_runtime_context().current_actor.__ray_terminate__.remote()


__all__ = [
    "DEFAULT_SUPERVISOR_SHUTDOWN",
    "DEFAULT_WORKER_SHUTDOWN",
    "ActorFactory",
    "ChildCrashed",
    "ChildSpec",
    "SupervisedActor",
    "SupervisorEscalated",
]
